"""What the user asks: a model, a GPU set, a workload, and the knobs they pinned; and how pins
become a configuration (`config_for_estimate`) or are refused before any search (`check_pins`).

`estimate` fills every unpinned knob with LLaMA-Factory's default; `recommend` decides them."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, Strict, model_validator

from ..errors import InvalidConfigurationError
from ..specs import limits
from ..specs.gpu import GpuSet
from ..specs.model import ModelSpec
from . import rules
from .cautions import sdpa_drops_softcapping
from .config import TrainConfig, make_config
from .knobs import Attention, FsdpStrategy, MemoryOptimizer, Method, Offload, Optimizer, Precision, Sharding


def Count(low: int, high: int):  # noqa: N802 - a type
    """A whole number in [low, high]: an int, never a float (4.7 is not truncated) nor a bool."""
    return Annotated[int, Strict(), Field(ge=low, le=high)]


def Finite(high: float, *, gt: float | None = None, ge: float | None = None):  # noqa: N802 - a type
    """A finite number (NaN and infinities refused) below `high`; an int is read as a float."""
    return Annotated[float, Strict(), Field(gt=gt, ge=ge, le=high, allow_inf_nan=False)]


StrictBool = Annotated[bool, Strict()]


class Pins(BaseModel):
    """Knobs fixed by the user; None = free (recommend) or LLaMA-Factory's default (estimate)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Method | None = None
    bits: Count(4, 16) | None = None
    lora_rank: Count(1, limits.MAX_RANK) | None = None
    lora_targets: tuple[Annotated[str, Field(max_length=limits.MAX_PATH_COMPONENT_CHARS)], ...] | None = Field(
        default=None, max_length=limits.MAX_LAYERS)  # module names, each short
    freeze_layers: Count(1, limits.MAX_LAYERS) | None = None
    micro_batch: Count(1, limits.MAX_MICRO_BATCH) | None = None
    grad_accum: Count(1, limits.MAX_GRAD_ACCUM) | None = None
    grad_ckpt: StrictBool | None = None
    attn: Attention | None = None
    zero_stage: Count(0, 3) | None = None
    offload: Offload | None = None
    optim: Optimizer | None = None
    precision: Precision | None = None
    n_gpus: Count(1, limits.MAX_TOTAL_GPUS) | None = None
    # the memory levers (issue 16); None = free for recommend where it searches them, else LF's default
    liger: StrictBool | None = None
    unsloth_gc: StrictBool | None = None
    reentrant_gc: StrictBool | None = None
    dora: StrictBool | None = None
    pissa: StrictBool | None = None
    rslora: StrictBool | None = None
    loraplus_lr_ratio: Finite(limits.MAX_LORAPLUS_RATIO, gt=0) | None = None
    memory_optimizer: MemoryOptimizer | None = None
    projection_rank: Count(1, limits.MAX_RANK) | None = None
    upcast_layernorm: StrictBool | None = None
    upcast_lmhead_output: StrictBool | None = None
    # the sharding engine (docs/fsdp.md): --zero 1-3 implies deepspeed and --zero 0 none (plain
    # DDP), an FSDP strategy or version implies fsdp
    sharding: Sharding | None = None
    fsdp_strategy: FsdpStrategy | None = None
    fsdp_version: Count(1, 2) | None = None

    def pinned(self) -> dict:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class Workload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    seq_len: Count(1, limits.MAX_SEQ_LEN) = 2048
    global_batch: Count(1, limits.MAX_GLOBAL_BATCH) | None = None  # samples per optimizer step, all GPUs
    packing: StrictBool = False  # samples packed to exactly seq_len (LLaMA-Factory `packing`)
    mean_sample_len: Count(1, limits.MAX_SEQ_LEN) | None = None  # None = unknown, taken as seq_len
    neat_packing: StrictBool = False  # packed, each sample attending only to itself (LLaMA-Factory `neat_packing`)
    # The recommender may propose packing (a throughput lever that changes what a step trains on,
    # so never without the user's leave: --allow-packing).
    allow_packing: StrictBool = False
    capacity_factor: Finite(limits.MAX_CAPACITY_FACTOR, ge=1.0) = 1.0  # MoE routing margin (TrainConfig.capacity_factor)
    moe_aux_loss_coef: Finite(limits.MAX_AUX_LOSS_COEF, gt=0) | None = None  # LLaMA-Factory moe_aux_loss_coef, decided by the user

    @model_validator(mode="after")
    def _mean_within_seq_len(self) -> "Workload":
        if self.mean_sample_len is not None and self.mean_sample_len > self.seq_len:
            raise ValueError(f"--mean-sample-len {self.mean_sample_len} is above --seq-len {self.seq_len}: samples "
                             "are cut to seq-len tokens, so their mean is at most seq-len")
        return self

    def data_shape(self) -> dict:
        """The TrainConfig fields that describe the data rather than a knob."""
        shape = {"seq_len": self.seq_len, "packing": self.packing or self.neat_packing,
                 "mean_sample_len": self.mean_sample_len, "neat_packing": self.neat_packing}
        if self.capacity_factor != 1.0:
            shape["capacity_factor"] = self.capacity_factor
        if self.moe_aux_loss_coef is not None:
            shape["moe_aux_loss_coef"] = self.moe_aux_loss_coef
        return shape


class Instance(BaseModel):
    """One question: which configuration of `model` on `gpus` for this workload, given the pins."""

    model_config = ConfigDict(frozen=True)

    model: ModelSpec
    gpus: GpuSet
    workload: Workload = Workload()
    pins: Pins = Pins()


def completed_pins(pins: dict) -> dict:
    """What the pinned method and bits imply about each other: bits below 16 mean QLoRA, and
    QLoRA without bits is 4-bit (LLaMA-Factory's QLoRA examples)."""
    pins = dict(pins)
    if "method" not in pins and pins.get("bits", 16) != 16:
        pins["method"] = Method.qlora
    if "bits" not in pins and pins.get("method") == Method.qlora:
        pins["bits"] = 4
    if "method" not in pins and pins.get("memory_optimizer", MemoryOptimizer.none) != MemoryOptimizer.none:
        pins["method"] = Method.full  # GaLore, APOLLO, BAdam and Adam-mini train every parameter
    return pins


def pinned_sharding(pins: dict) -> Sharding | None:
    """The engine the pins decide, None when free (pins as `Pins.pinned()`)."""
    if pins.get("sharding") is not None:
        return Sharding(pins["sharding"])
    if pins.get("fsdp_strategy") is not None or pins.get("fsdp_version") is not None:
        return Sharding.fsdp
    if pins.get("zero_stage") is not None:
        return Sharding.deepspeed if pins["zero_stage"] else Sharding.none
    return None


def sharding_problem(pins: dict) -> str | None:
    """Pins that contradict the pinned engine, as one line."""
    engine = pinned_sharding(pins)
    stage = pins.get("zero_stage")
    if engine == Sharding.deepspeed and stage == 0:
        return "--sharding deepspeed needs --zero 1, 2 or 3 (--zero 0 is plain DDP)"
    if engine != Sharding.fsdp and (pins.get("fsdp_strategy") is not None or pins.get("fsdp_version") is not None):
        return f"--fsdp-strategy and --fsdp-version are FSDP's: use --sharding fsdp, not {engine.value}"
    if engine == Sharding.none and stage:
        return f"--zero {stage} is DeepSpeed: use --sharding deepspeed, or --zero 0 for plain DDP"
    return None


def _engine_knobs(pins: dict) -> dict:
    """Pins as TrainConfig fields: `sharding` becomes fsdp_strategy (FULL_SHARD, accelerate's
    default) or a ZeRO stage, and an unset FSDP version is accelerate's default."""
    pins = dict(pins)
    problem = sharding_problem(pins)
    if problem:
        raise InvalidConfigurationError(problem)
    engine = pinned_sharding(pins)
    pins.pop("sharding", None)
    if engine == Sharding.fsdp:
        pins.setdefault("fsdp_strategy", FsdpStrategy.full_shard)
    elif engine == Sharding.deepspeed and pins.get("zero_stage") is None:
        raise InvalidConfigurationError("--sharding deepspeed needs a ZeRO stage here: add --zero 1, 2 or 3")
    if pins.get("fsdp_version") is None:
        pins.pop("fsdp_version", None)
    return pins


def config_for_estimate(instance: Instance) -> TrainConfig:
    """A full configuration from the pins, LLaMA-Factory's defaults for the rest: LoRA rank 8 on
    all linear modules, checkpointing on, micro batch 1, SDPA (eager on Gemma-2), AdamW, bf16
    where the GPU has it (else fp16), no ZeRO, all GPUs."""
    problem = batch_split_problem(
        instance.workload.global_batch, instance.pins.pinned(), instance.pins.n_gpus or instance.gpus.total_gpus,
        n_gpus_free=False)
    if problem:
        raise InvalidConfigurationError(problem)
    pins = _engine_knobs(completed_pins(instance.pins.pinned()))
    pins.setdefault("precision", rules.default_precision(instance.gpus))
    if sdpa_drops_softcapping(instance.model, pins.get("attn", Attention.sdpa)) and "attn" not in pins:
        # LLaMA-Factory's `flash_attn: auto` on Gemma-2: FA2 if installed, else eager (cautions.py);
        # estimated as eager, the larger, as `check` reads `auto` (llamafactory/read_yaml.py)
        pins["attn"] = Attention.eager
    pins.setdefault("n_gpus", instance.gpus.total_gpus)
    if instance.workload.global_batch and "grad_accum" not in pins:
        per_step = pins.get("micro_batch", 1) * pins["n_gpus"]
        pins["grad_accum"] = max(1, -(-instance.workload.global_batch // per_step))
    config = make_config(**instance.workload.data_shape(), **pins)
    _refuse_undocumented(config.model_dump())
    return config


def _refuse_undocumented(knobs: dict) -> None:
    """A combination no framework documents is bad input, stated with its source (problem/rules.py)."""
    if {"method", "zero_stage", "offload"} <= set(knobs):
        problems = rules.undocumented_problems(method=knobs["method"], zero_stage=knobs["zero_stage"],
                                               offload=knobs["offload"])
        if problems:
            raise InvalidConfigurationError(problems[0])


COMBINED_KNOBS = ("method", "bits", "zero_stage", "offload", "optim", "precision", "memory_optimizer", "dora", "pissa",
                  "rslora", "loraplus_lr_ratio", "sharding", "fsdp_strategy", "fsdp_version")


# Pins that only act under some methods: pinned beside a method without them, they would be ignored.
LORA_ONLY_PINS = {"lora_rank": "--lora-rank", "lora_targets": "--lora-target", "dora": "--dora", "pissa": "--pissa",
                  "rslora": "--rslora", "loraplus_lr_ratio": "--loraplus-lr-ratio"}


def _flag(knob: str, value) -> str:
    return f"{LORA_ONLY_PINS.get(knob, '--' + knob.replace('_', '-'))}" + (
        "" if isinstance(value, bool) else f" {getattr(value, 'value', value)}")


def ineffective_pin_problem(pins: dict) -> str | None:
    """A pin that cannot take effect beside the others (pins as `Pins.pinned()`), as one line
    naming both: an error rather than a pin silently ignored."""
    pins = completed_pins(pins)
    method = pins.get("method")
    if method in (Method.full, Method.freeze):
        for knob in LORA_ONLY_PINS:
            if pins.get(knob) not in (None, False):
                return (f"{_flag(knob, pins[knob])} cannot take effect with --method {method.value}, which trains no "
                        f"LoRA adapters: drop {LORA_ONLY_PINS[knob]}, or use --method lora")
    if method not in (None, Method.freeze) and pins.get("freeze_layers") is not None:
        return (f"--freeze-layers {pins['freeze_layers']} cannot take effect with --method {method.value}: it counts "
                "the layers --method freeze trains; drop it, or use --method freeze")
    memory = pins.get("memory_optimizer")
    if pins.get("projection_rank") is not None and memory is not None and memory not in (
            MemoryOptimizer.galore, MemoryOptimizer.galore_layerwise, MemoryOptimizer.apollo,
            MemoryOptimizer.apollo_layerwise):
        return (f"--projection-rank {pins['projection_rank']} cannot take effect with --memory-optimizer "
                f"{memory.value}: it is GaLore's and APOLLO's rank; drop it, or use --memory-optimizer galore")
    return None


def batch_split_problem(global_batch: int | None, pins: dict, usable_gpus: int, n_gpus_free: bool) -> str | None:
    """--global-batch beside pinned --micro-batch and --grad-accum: they must multiply to it on
    the GPUs used (all of them, or any count up to `usable_gpus` when the GPU count is free)."""
    micro, accum = pins.get("micro_batch"), pins.get("grad_accum")
    if global_batch is None or micro is None or accum is None:
        return None
    per_gpu = micro * accum
    if n_gpus_free:
        if global_batch % per_gpu == 0 and global_batch // per_gpu <= usable_gpus:
            return None
        gpus = f"1..{usable_gpus} GPUs"
    else:
        n_gpus = pins.get("n_gpus") or usable_gpus
        if global_batch == per_gpu * n_gpus:
            return None
        gpus = f"{n_gpus} GPU(s) = {per_gpu * n_gpus}"
    return (f"--global-batch {global_batch} cannot take effect with --micro-batch {micro} and --grad-accum {accum}: "
            f"{micro} x {accum} x {gpus} is not {global_batch}; drop --global-batch or one of the others, or make "
            "them agree")


def check_user_pins(pins: Pins) -> None:
    """What the user pinned, before anything is searched (the API's entry, fitplan/__init__.py):
    a pin that cannot take effect beside the others, or pins that contradict each other whatever
    the model and GPUs, is bad input (exit 2) in estimate, recommend and sweep alike. (Pins the
    planner builds from a whole TrainConfig, as nearest_fit does, carry every field and are not
    judged by the first rule.)"""
    problem = ineffective_pin_problem(pins.pinned())
    if problem:
        raise InvalidConfigurationError(problem)
    check_pin_combination(pins)


def check_pin_combination(pins: Pins) -> None:
    """Pins that contradict each other whatever the model and GPUs: LLaMA-Factory's and
    accelerate's rejections, undocumented combinations."""
    combined = completed_pins({k: v for k, v in pins.pinned().items() if k in COMBINED_KNOBS})
    problem = sharding_problem(combined)
    if problem:
        raise InvalidConfigurationError(problem)
    engine = pinned_sharding(combined)
    if engine in (None, Sharding.deepspeed) and "zero_stage" not in combined \
            and combined.get("offload", Offload.none) != Offload.none:
        # a free ZeRO stage will be the lowest that offloads it: 2 for the optimizer, 3 for all
        # (a free engine may also be FSDP, which offloads all; the DeepSpeed reading is the wider)
        combined["zero_stage"] = 3 if combined["offload"] == Offload.all else 2
        combined.pop("sharding", None)
    if engine == Sharding.deepspeed and "zero_stage" not in combined:
        combined["zero_stage"] = 3  # the stage that combines with every other pin
    if engine == Sharding.none:
        combined.pop("sharding", None)
    make_config(**_engine_knobs(combined))  # LLaMA-Factory's and accelerate's rejections, as one line
    _refuse_undocumented(combined)


def check_pins(instance: Instance) -> None:
    """Pins the hardware or LLaMA-Factory rule out are bad input (exit 2), not 'nothing fits'."""
    pins, gpus = instance.pins, instance.gpus
    problems = rules.hardware_problems(gpus, precision=pins.precision, attn=pins.attn, bits=pins.bits,
                                       n_gpus=pins.n_gpus, liger=pins.liger)
    problems += rules.model_problems(instance.model, lora_rank=pins.lora_rank, zero_stage=pins.zero_stage,
                                     attn=pins.attn, seq_len=instance.workload.seq_len)
    problems += rules.prequantized_problems(instance.model, method=completed_pins(pins.pinned()).get("method"),
                                            zero_stage=pins.zero_stage)
    problems += rules.fsdp_hardware_problems(gpus, strategy=pins.fsdp_strategy, n_gpus=pins.n_gpus or gpus.total_gpus)
    split = batch_split_problem(instance.workload.global_batch, pins.pinned(), pins.n_gpus or gpus.total_gpus,
                                n_gpus_free=pins.n_gpus is None)
    if split:
        problems.append(split)
    if problems:
        raise InvalidConfigurationError(problems[0])
    check_pin_combination(pins)
