"""Flags shared by `estimate`, `recommend`, `trace` and `sweep`: one definition, one meaning."""

from __future__ import annotations

import click

from fitplan.solver.problem.knobs import Attention, FsdpStrategy, Method, Offload, Optimizer, Precision, Sharding


def _choice(enum) -> click.Choice:
    return click.Choice([e.value for e in enum], case_sensitive=False)


def _targets(_ctx, _param, value):
    if value is None:
        return None
    return tuple(part.strip() for part in value.split(",") if part.strip())


def model_and_gpus(func):
    func = click.option("--gpus", "gpus", required=True, help="GPU set: 8xP4, 4xA10, 1xA100-80G, 2x8xH100 (nodes x GPUs).")(func)
    func = click.option("--model", "model", required=True,
                        help="Catalog name (fitplan models) or a path to a Hugging Face config.json.")(func)
    return func


def knob_options(func):
    """The knobs; unset = LLaMA-Factory's default for estimate, a free decision for recommend."""
    options = [
        click.option("--method", type=_choice(Method), default=None, help="full, freeze, lora or qlora."),
        click.option("--bits", type=click.Choice(["16", "8", "4"]), default=None, help="Base weight bits (4/8 = QLoRA)."),
        click.option("--lora-rank", type=click.IntRange(min=1), default=None, help="LoRA rank (default 8)."),
        click.option("--lora-target", "lora_targets", default=None, callback=_targets,
                     help="Comma-separated module names, or 'all' (default)."),
        click.option("--freeze-layers", type=click.IntRange(min=1), default=None,
                     help="freeze method: how many last layers train (default 2)."),
        click.option("--micro-batch", type=click.IntRange(min=1), default=None, help="Per-GPU micro batch."),
        click.option("--grad-accum", type=click.IntRange(min=1), default=None, help="Gradient accumulation steps."),
        click.option("--grad-ckpt/--no-grad-ckpt", default=None, help="Gradient checkpointing (default on)."),
        click.option("--attn", type=_choice(Attention), default=None, help="eager, sdpa or fa2."),
        click.option("--sharding", type=_choice(Sharding), default=None,
                     help="Sharding engine: none (plain DDP), deepspeed (ZeRO, --zero picks the stage) or fsdp "
                          "(accelerate's FSDP, --fsdp-strategy picks how). Free by default; --zero 1-3 implies "
                          "deepspeed, --zero 0 none, an --fsdp-* flag fsdp."),
        click.option("--zero", "zero_stage", type=click.IntRange(0, 3), default=None,
                     help="DeepSpeed ZeRO stage (0 = plain DDP, no DeepSpeed)."),
        click.option("--fsdp-strategy", type=_choice(FsdpStrategy), default=None,
                     help="FSDP sharding strategy: full_shard (like ZeRO-3; the default), shard_grad_op (like "
                          "ZeRO-2), hybrid_shard (full_shard inside a node, replicated across nodes) or no_shard."),
        click.option("--fsdp-version", type=click.Choice(["1", "2"]), default=None,
                     help="accelerate fsdp_version: 1 (FullyShardedDataParallel, accelerate's and LLaMA-Factory's "
                          "examples' default) or 2 (fully_shard)."),
        click.option("--offload", type=_choice(Offload), default=None,
                     help="none, optimizer or all (CPU offload; under FSDP, all = fsdp_offload_params)."),
        click.option("--optim", type=_choice(Optimizer), default=None, help="Optimizer."),
        click.option("--precision", type=_choice(Precision), default=None,
                     help="bf16, fp16, fp32 or pure_bf16 (default bf16 where the GPU has it, else fp16)."),
        click.option("--n-gpus", type=click.IntRange(min=1), default=None, help="Use only this many of the GPUs."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def data_shape_options(func):
    """How long the samples really are: decides the caching allocator's variable-length reserve."""
    func = click.option("--mean-sample-len", type=click.IntRange(min=1), default=None,
                        help="Mean tokens per sample of your data (default: seq-len, the conservative end).")(func)
    func = click.option("--packing/--no-packing", default=False, show_default=True,
                        help="Samples packed to exactly seq-len (LLaMA-Factory packing): no variable-length reserve.")(func)
    return func


def workload_options(func):
    func = click.option("--global-batch", type=click.IntRange(min=1), default=None,
                        help="Samples per optimizer step over all GPUs.")(func)
    func = click.option("--seq-len", type=click.IntRange(min=1), default=2048, show_default=True,
                        help="Tokens per sample (LLaMA-Factory cutoff_len).")(func)
    return func


KNOB_NAMES = ("method", "bits", "lora_rank", "lora_targets", "freeze_layers", "micro_batch", "grad_accum",
              "grad_ckpt", "attn", "zero_stage", "offload", "optim", "precision", "n_gpus", "sharding",
              "fsdp_strategy", "fsdp_version")


def pins_from_kwargs(kwargs: dict) -> dict:
    """The knob flags of a command as Pins fields (bits as an int)."""
    pins = {k: kwargs.get(k) for k in KNOB_NAMES}
    for name in ("bits", "fsdp_version"):
        if pins[name] is not None:
            pins[name] = int(pins[name])
    return pins
