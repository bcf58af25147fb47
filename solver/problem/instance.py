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
from .knobs import Attention, MemoryOptimizer, Method, Offload, Optimizer, Precision


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


def config_for_estimate(instance: Instance) -> TrainConfig:
    """A full configuration from the pins, LLaMA-Factory's defaults for the rest: LoRA rank 8 on
    all linear modules, checkpointing on, micro batch 1, SDPA (eager on Gemma-2), AdamW, bf16
    where the GPU has it (else fp16), no ZeRO, all GPUs."""
    pins = completed_pins(instance.pins.pinned())
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
                  "rslora", "loraplus_lr_ratio")


def check_pins(instance: Instance) -> None:
    """Pins the hardware or LLaMA-Factory rule out are bad input (exit 2), not 'nothing fits'."""
    pins, gpus = instance.pins, instance.gpus
    problems = rules.hardware_problems(gpus, precision=pins.precision, attn=pins.attn, bits=pins.bits,
                                       n_gpus=pins.n_gpus, liger=pins.liger)
    problems += rules.model_problems(instance.model, lora_rank=pins.lora_rank, zero_stage=pins.zero_stage,
                                     attn=pins.attn, seq_len=instance.workload.seq_len)
    problems += rules.prequantized_problems(instance.model, method=completed_pins(pins.pinned()).get("method"),
                                            zero_stage=pins.zero_stage)
    if problems:
        raise InvalidConfigurationError(problems[0])
    combined = completed_pins({k: v for k, v in pins.pinned().items() if k in COMBINED_KNOBS})
    if "zero_stage" not in combined and combined.get("offload", Offload.none) != Offload.none:
        # a free ZeRO stage will be the lowest that offloads it: 2 for the optimizer, 3 for all
        combined["zero_stage"] = 3 if combined["offload"] == Offload.all else 2
    make_config(**combined)  # LLaMA-Factory's rejections of the pinned knobs, as one line
    _refuse_undocumented(combined)
