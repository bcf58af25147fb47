"""What the user asks: a model, a GPU set, a workload, and the knobs they pinned; and how pins
become a configuration (`config_for_estimate`) or are refused before any search (`check_pins`).

`estimate` fills every unpinned knob with LLaMA-Factory's default; `recommend` decides them."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ..errors import InvalidConfigurationError
from ..specs.gpu import GpuSet
from ..specs.model import ModelSpec
from . import rules
from .cautions import sdpa_drops_softcapping
from .config import TrainConfig, make_config
from .knobs import Attention, FsdpStrategy, MemoryOptimizer, Method, Offload, Optimizer, Precision, Sharding


class Pins(BaseModel):
    """Knobs fixed by the user; None = free (recommend) or LLaMA-Factory's default (estimate)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Method | None = None
    bits: int | None = None
    lora_rank: int | None = None
    lora_targets: tuple[str, ...] | None = None
    freeze_layers: int | None = None
    micro_batch: int | None = None
    grad_accum: int | None = None
    grad_ckpt: bool | None = None
    attn: Attention | None = None
    zero_stage: int | None = None
    offload: Offload | None = None
    optim: Optimizer | None = None
    precision: Precision | None = None
    n_gpus: int | None = None
    # the memory levers (issue 16); None = free for recommend where it searches them, else LF's default
    liger: bool | None = None
    unsloth_gc: bool | None = None
    reentrant_gc: bool | None = None
    dora: bool | None = None
    pissa: bool | None = None
    rslora: bool | None = None
    loraplus_lr_ratio: float | None = Field(default=None, gt=0)
    memory_optimizer: MemoryOptimizer | None = None
    projection_rank: int | None = Field(default=None, ge=1)
    upcast_layernorm: bool | None = None
    upcast_lmhead_output: bool | None = None
    # the sharding engine (docs/fsdp.md): --zero 1-3 implies deepspeed and --zero 0 none (plain
    # DDP), an FSDP strategy or version implies fsdp
    sharding: Sharding | None = None
    fsdp_strategy: FsdpStrategy | None = None
    fsdp_version: int | None = None

    def pinned(self) -> dict:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class Workload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    seq_len: int = Field(default=2048, ge=1)
    global_batch: int | None = Field(default=None, ge=1)  # samples per optimizer step, all GPUs
    packing: bool = False  # samples packed to exactly seq_len (LLaMA-Factory `packing`)
    mean_sample_len: int | None = Field(default=None, ge=1)  # None = unknown, taken as seq_len
    neat_packing: bool = False  # packed, each sample attending only to itself (LLaMA-Factory `neat_packing`)
    # The recommender may propose packing (a throughput lever that changes what a step trains on,
    # so never without the user's leave: --allow-packing).
    allow_packing: bool = False
    capacity_factor: float = Field(default=1.0, ge=1.0)  # MoE routing margin (TrainConfig.capacity_factor)
    moe_aux_loss_coef: float | None = Field(default=None, gt=0)  # LLaMA-Factory moe_aux_loss_coef, decided by the user

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


COMBINED_KNOBS = ("method", "bits", "zero_stage", "offload", "precision", "memory_optimizer", "dora", "pissa",
                  "rslora", "loraplus_lr_ratio", "sharding", "fsdp_strategy", "fsdp_version")


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
    if problems:
        raise InvalidConfigurationError(problems[0])
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
