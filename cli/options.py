"""Flags shared by `estimate`, `recommend`, `trace` and `sweep`: one definition, one meaning."""

from __future__ import annotations

import math
import re

import click

from fitplan.solver.errors import shown
from fitplan.solver.problem.knobs import (
    Attention,
    FsdpStrategy,
    MemoryOptimizer,
    Method,
    Offload,
    Optimizer,
    Precision,
    Sharding,
)
from fitplan.solver.specs import limits


class BoundedCommand(click.Command):
    """A click command whose usage errors ("No such option: --...", "Got unexpected extra
    argument (...)") quote the user's words cut short, as every fitplan error does."""

    def parse_args(self, ctx, args):
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            exc.message = re.sub(r"\S{81,}", lambda m: shown(m.group()), exc.message)
            raise


class BoundedCount(click.ParamType):
    """A whole number in [low, high] (solver/specs/limits.py): ASCII digits only (no '²', no
    '1e3', no 4,300-digit numbers), and the refusal quotes the value cut short."""

    name = "integer"

    def __init__(self, low: int, high: int) -> None:
        self.low, self.high = low, high

    def convert(self, value, param, ctx):
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            text = str(value).strip()
            digits = text[1:] if text[:1] in "+-" else text
            if not (digits.isascii() and digits.isdigit()) or len(digits) > limits.MAX_COUNT_DIGITS:
                self.fail(f"'{shown(text)}' is not a whole number", param, ctx)
            number = int(text)
        if not self.low <= number <= self.high:
            self.fail(f"{shown(number)} is not in {self.low}..{self.high:,}", param, ctx)
        return number

    def __repr__(self) -> str:
        return f"BoundedCount({self.low}, {self.high})"


class FiniteFloat(click.ParamType):
    """A finite number in [low, high] (or (low, high] with `low_open`): nan and inf refused."""

    name = "float"

    def __init__(self, low: float, high: float, *, low_open: bool = False) -> None:
        self.low, self.high, self.low_open = low, high, low_open

    def convert(self, value, param, ctx):
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"'{shown(value)}' is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"'{shown(value)}' is not a finite number", param, ctx)
        above_low = number > self.low if self.low_open else number >= self.low
        if not (above_low and number <= self.high):
            bracket = "(" if self.low_open else "["
            self.fail(f"{number:g} is not in {bracket}{self.low:g}, {self.high:g}]", param, ctx)
        return number

    def __repr__(self) -> str:
        return f"FiniteFloat({self.low}, {self.high})"


def count(low: int, high: int) -> BoundedCount:
    return BoundedCount(low, high)


class ShortChoice(click.Choice):
    """click.Choice whose refusal quotes the value cut short (click's own echoes it whole)."""

    def convert(self, value, param, ctx):
        if isinstance(value, str) and len(value) > 64:
            self.fail(f"'{shown(value)}' is not one of {', '.join(map(str, self.choices))}", param, ctx)
        return super().convert(value, param, ctx)


def _choice(enum) -> click.Choice:
    return ShortChoice([e.value for e in enum], case_sensitive=False)


def _targets(_ctx, _param, value):
    if value is None:
        return None
    return tuple(part.strip() for part in value.split(",") if part.strip())


GPUS_HELP = ("GPU set: 8xP4, 4xA10, 1xA100-80G, 2x8xH100 (nodes x GPUs), or a VRAM budget: 1x24GiB, 2x80GB "
             "(GiB = 2^30 bytes, GB = 10^9), a generic card with bf16+fa2+bnb and unknown speed (plans that fit "
             "ranked on a reference card's rates); change its features with a suffix: 1x16GiB:fp16, 4x24GB:bf16+bnb, 1x12GiB:none.")
MODEL_HELP = ("Catalog name (fitplan models), a Hugging Face id (Qwen/Qwen3-8B: its config.json from the local HF "
              "cache, else downloaded; HF_HOME, HF_HUB_CACHE, HF_HUB_OFFLINE honoured), or a path to a config.json.")


def revision_option(func):
    return click.option("--revision", default=None,
                        help="Hub revision (branch, tag or commit) of a Hugging Face id's config.json (default main).")(func)


def inter_node_option(func):
    return click.option("--inter-node-gbps", "inter_node_gbps", type=FiniteFloat(0, limits.MAX_INTER_NODE_GBPS, low_open=True), default=None,
                        help="Network out of each node, all NICs together, in Gb/s (gigabits, as NICs are sold: "
                             "8 x 400 Gb/s = 3200). Default: the GPU kind's reference system (fitplan gpus --json).")(func)


def model_and_gpus(func):
    func = revision_option(func)
    func = click.option("--gpus", "gpus", required=True, help=GPUS_HELP)(func)
    func = click.option("--model", "model", required=True, help=MODEL_HELP)(func)
    return func


def knob_options(func):
    """The knobs; unset = LLaMA-Factory's default for estimate, a free decision for recommend."""
    options = [
        click.option("--method", type=_choice(Method), default=None, help="full, freeze, lora or qlora."),
        click.option("--bits", type=ShortChoice(["16", "8", "4"]), default=None, help="Base weight bits (4/8 = QLoRA)."),
        click.option("--lora-rank", type=count(1, limits.MAX_RANK), default=None, help="LoRA rank (default 8)."),
        click.option("--lora-target", "lora_targets", default=None, callback=_targets,
                     help="Comma-separated module names, or 'all' (default)."),
        click.option("--freeze-layers", type=count(1, limits.MAX_LAYERS), default=None,
                     help="freeze method: how many last layers train (default 2)."),
        click.option("--micro-batch", type=count(1, limits.MAX_MICRO_BATCH), default=None, help="Per-GPU micro batch."),
        click.option("--grad-accum", type=count(1, limits.MAX_GRAD_ACCUM), default=None, help="Gradient accumulation steps."),
        click.option("--grad-ckpt/--no-grad-ckpt", default=None, help="Gradient checkpointing (default on)."),
        click.option("--attn", type=_choice(Attention), default=None, help="eager, sdpa or fa2."),
        click.option("--sharding", type=_choice(Sharding), default=None,
                     help="Sharding engine: none (plain DDP), deepspeed (ZeRO, --zero picks the stage) or fsdp "
                          "(accelerate's FSDP, --fsdp-strategy picks how). Free by default; --zero 1-3 implies "
                          "deepspeed, --zero 0 none, an --fsdp-* flag fsdp."),
        click.option("--zero", "zero_stage", type=count(0, 3), default=None,
                     help="DeepSpeed ZeRO stage (0 = plain DDP, no DeepSpeed)."),
        click.option("--fsdp-strategy", type=_choice(FsdpStrategy), default=None,
                     help="FSDP sharding strategy: full_shard (like ZeRO-3; the default), shard_grad_op (like "
                          "ZeRO-2), hybrid_shard (full_shard inside a node, replicated across nodes) or no_shard."),
        click.option("--fsdp-version", type=ShortChoice(["1", "2"]), default=None,
                     help="accelerate fsdp_version: 1 (FullyShardedDataParallel, accelerate's and LLaMA-Factory's "
                          "examples' default) or 2 (fully_shard)."),
        click.option("--offload", type=_choice(Offload), default=None,
                     help="none, optimizer or all (CPU offload; under FSDP, all = fsdp_offload_params)."),
        click.option("--optim", type=_choice(Optimizer), default=None, help="Optimizer."),
        click.option("--precision", type=_choice(Precision), default=None,
                     help="bf16, fp16, fp32 or pure_bf16 (default bf16 where the GPU has it, else fp16)."),
        click.option("--n-gpus", type=count(1, limits.MAX_TOTAL_GPUS), default=None, help="Use only this many of the GPUs."),
        # the memory levers (LLaMA-Factory 0.9.5 keys in brackets; recommend searches --liger itself)
        click.option("--liger/--no-liger", default=None,
                     help="Liger kernels: fused linear cross-entropy, RMSNorm, SwiGLU, RoPE [enable_liger_kernel]."),
        click.option("--unsloth-gc/--no-unsloth-gc", default=None,
                     help="Checkpointed layer inputs offloaded to host RAM [use_unsloth_gc]."),
        click.option("--reentrant-gc/--no-reentrant-gc", default=None,
                     help="Reentrant gradient checkpointing (default on) [use_reentrant_gc]."),
        click.option("--memory-optimizer", type=_choice(MemoryOptimizer), default=None,
                     help="Full-parameter training at LoRA-like memory: galore, galore_layerwise, apollo, "
                          "apollo_layerwise, badam (layer mode) or adam_mini."),
        click.option("--projection-rank", type=count(1, limits.MAX_RANK), default=None,
                     help="GaLore / APOLLO projection rank (default 16) [galore_rank, apollo_rank]."),
        click.option("--dora/--no-dora", default=None, help="DoRA adapters [use_dora]."),
        click.option("--pissa/--no-pissa", default=None, help="PiSSA initialisation (same memory as LoRA) [pissa_init]."),
        click.option("--rslora/--no-rslora", default=None, help="Rank-stabilised LoRA scaling (no memory change) [use_rslora]."),
        click.option("--loraplus-lr-ratio", type=FiniteFloat(0, limits.MAX_LORAPLUS_RATIO, low_open=True), default=None,
                     help="LoRA+ learning-rate ratio of B to A (no memory change) [loraplus_lr_ratio]."),
        click.option("--upcast-layernorm/--no-upcast-layernorm", default=None,
                     help="Norm weights in fp32 [upcast_layernorm]."),
        click.option("--upcast-lmhead-output/--no-upcast-lmhead-output", default=None,
                     help="lm_head output cast to fp32 [upcast_lmhead_output]."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def data_shape_options(func):
    """How long the samples really are: decides the caching allocator's variable-length reserve."""
    func = click.option("--mean-sample-len", type=count(1, limits.MAX_SEQ_LEN), default=None,
                        help="Mean tokens per sample of your data (default: seq-len, the conservative end).")(func)
    func = click.option("--packing/--no-packing", default=False, show_default=True,
                        help="Samples packed to exactly seq-len (LLaMA-Factory packing): no variable-length reserve.")(func)
    func = click.option("--neat-packing/--no-neat-packing", default=False, show_default=True,
                        help="Packed, each sample attending only to itself (LLaMA-Factory neat_packing; implies packing).")(func)
    return func


def allow_packing_option(func):
    return click.option("--allow-packing/--no-allow-packing", default=False, show_default=True,
                        help="Let the plan pack samples to seq-len when that is faster (packing changes which samples "
                             "share a row and how many a step trains on; never chosen without this flag).")(func)
def moe_options(func):
    """Mixture-of-experts assumptions (docs/moe.md)."""
    func = click.option("--moe-aux-loss-coef", type=FiniteFloat(0, limits.MAX_AUX_LOSS_COEF, low_open=True), default=None,
                        help="LLaMA-Factory moe_aux_loss_coef: keeps router logits for the load-balancing loss.")(func)
    func = click.option("--capacity-factor", type=FiniteFloat(1.0, limits.MAX_CAPACITY_FACTOR), default=None,
                        help="MoE: routed rows over tokens x top-k (default 1.0, exact for transformers' grouped_mm).")(func)
    return func


def moe_kwargs(kwargs: dict) -> dict:
    """The --capacity-factor / --moe-aux-loss-coef values given, as keywords for fitplan.estimate/recommend."""
    return {k: kwargs[k] for k in ("capacity_factor", "moe_aux_loss_coef") if kwargs.get(k) is not None}


def workload_options(func):
    func = click.option("--global-batch", type=count(1, limits.MAX_GLOBAL_BATCH), default=None,
                        help="Samples per optimizer step over all GPUs.")(func)
    func = click.option("--seq-len", type=count(1, limits.MAX_SEQ_LEN), default=2048, show_default=True,
                        help="Tokens per sample (LLaMA-Factory cutoff_len).")(func)
    return func


KNOB_NAMES = ("method", "bits", "lora_rank", "lora_targets", "freeze_layers", "micro_batch", "grad_accum",
              "grad_ckpt", "attn", "zero_stage", "offload", "optim", "precision", "n_gpus", "sharding",
              "fsdp_strategy", "fsdp_version")
LEVER_NAMES = ("liger", "unsloth_gc", "reentrant_gc", "memory_optimizer", "projection_rank", "dora", "pissa", "rslora",
               "loraplus_lr_ratio", "upcast_layernorm", "upcast_lmhead_output")


def pins_from_kwargs(kwargs: dict) -> dict:
    """The knob flags of a command as Pins fields (bits as an int)."""
    pins = {k: kwargs.get(k) for k in KNOB_NAMES + LEVER_NAMES}
    for name in ("bits", "fsdp_version"):
        if pins[name] is not None:
            pins[name] = int(pins[name])
    return pins
