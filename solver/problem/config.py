"""One fully specified fine-tuning configuration (`TrainConfig`): every knob `estimate`
evaluates and `recommend` decides, validated by the rules of problem/rules.py, and the words
that describe it in every report."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import InvalidConfigurationError, validation_message
from ..specs.gpu import GpuSet
from ..specs.model import ModelSpec
from . import rules
from .knobs import (
    DEFAULT_FSDP_VERSION,
    LLAMAFACTORY_DEFAULT_FREEZE_LAYERS,
    LLAMAFACTORY_DEFAULT_LORA_RANK,
    LLAMAFACTORY_DEFAULT_PROJECTION_RANK,
    Attention,
    MemoryOptimizer,
    FsdpStrategy,
    Method,
    Offload,
    Optimizer,
    Precision,
    Sharding,
)


class TrainConfig(BaseModel):
    """The knobs of one run, per GPU. `lora_targets=["all"]` means every linear module of the
    decoder layers (LLaMA-Factory `lora_target: all`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Method = Method.lora
    bits: int = 16
    lora_rank: int = Field(default=LLAMAFACTORY_DEFAULT_LORA_RANK, ge=1)
    lora_targets: tuple[str, ...] = ("all",)
    freeze_layers: int = Field(default=LLAMAFACTORY_DEFAULT_FREEZE_LAYERS, ge=1)
    seq_len: int = Field(default=2048, ge=1)
    micro_batch: int = Field(default=1, ge=1)
    grad_accum: int = Field(default=1, ge=1)
    grad_ckpt: bool = True
    attn: Attention = Attention.sdpa
    zero_stage: int = Field(default=0, ge=0, le=3)
    offload: Offload = Offload.none
    optim: Optimizer = Optimizer.adamw
    precision: Precision = Precision.bf16
    n_gpus: int = Field(default=1, ge=1)  # GPUs used, all data-parallel
    # FSDP (accelerate's FSDP plugin) instead of DDP / DeepSpeed: its sharding strategy, None = no
    # FSDP, and accelerate's fsdp_version (docs/fsdp.md). `offload: all` is FSDP's
    # fsdp_offload_params (parameters, gradients and the optimizer step on the CPU).
    fsdp_strategy: FsdpStrategy | None = None
    fsdp_version: int = Field(default=DEFAULT_FSDP_VERSION, ge=1, le=2)
    # The data's shape, which decides the caching allocator's variable-length reserve
    # (memory/overheads.py): packed samples are all seq_len long; otherwise the mean sample length
    # (None = unknown, taken as seq_len: the conservative end).
    packing: bool = False
    mean_sample_len: int | None = Field(default=None, ge=1)
    # The memory levers of LLaMA-Factory 0.9.5 (issue 16; memory/liger.py, memory/levers.py,
    # memory/optimizers.py, speed/levers.py). Defaults are LLaMA-Factory's.
    liger: bool = False  # enable_liger_kernel
    unsloth_gc: bool = False  # use_unsloth_gc: checkpointed layer inputs live in host RAM
    reentrant_gc: bool = True  # use_reentrant_gc
    neat_packing: bool = False  # packed samples attend only to themselves (implies packing)
    dora: bool = False  # use_dora
    pissa: bool = False  # pissa_init
    rslora: bool = False  # use_rslora
    loraplus_lr_ratio: float | None = Field(default=None, gt=0)
    memory_optimizer: MemoryOptimizer = MemoryOptimizer.none  # use_galore / use_apollo / use_badam / use_adam_mini
    projection_rank: int = Field(default=LLAMAFACTORY_DEFAULT_PROJECTION_RANK, ge=1)  # galore_rank / apollo_rank
    upcast_layernorm: bool = False
    upcast_lmhead_output: bool = False
    # MoE (memory/moe.py): tokens routed to the busiest expert over the mean. transformers'
    # grouped_mm stores exactly tokens x top-k rows whatever the routing, so 1.0 is exact there;
    # a larger value is a margin the user states. LLaMA-Factory `moe_aux_loss_coef` (None = off).
    capacity_factor: float = Field(default=1.0, ge=1.0)
    moe_aux_loss_coef: float | None = Field(default=None, gt=0)

    @field_validator("bits")
    @classmethod
    def _bits(cls, value: int) -> int:
        problem = rules.bits_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="before")
    @classmethod
    def _neat_packing_packs(cls, data):
        """LLaMA-Factory `data_args.py:185-186`: `neat_packing` sets `packing = True`."""
        if isinstance(data, dict) and data.get("neat_packing"):
            data = {**data, "packing": True}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> "TrainConfig":
        problems = rules.combination_problems(method=self.method, bits=self.bits, zero_stage=self.zero_stage,
                                              offload=self.offload, optim=self.optim, precision=self.precision,
                                              fsdp_strategy=self.fsdp_strategy, fsdp_version=self.fsdp_version)
        shape = rules.data_shape_problem(self.seq_len, self.mean_sample_len)
        if shape:
            problems.append(shape)
        problems += rules.lever_problems(self)
        if problems:
            raise ValueError(problems[0])
        return self

    @property
    def sharding(self) -> Sharding:
        """The engine that shards the model states: FSDP, DeepSpeed (ZeRO 1-3) or none (DDP)."""
        if self.fsdp_strategy is not None:
            return Sharding.fsdp
        return Sharding.deepspeed if self.zero_stage else Sharding.none

    @property
    def uses_lora(self) -> bool:
        return self.method in (Method.lora, Method.qlora)

    @property
    def mean_length_fraction(self) -> float:
        """Mean tokens per sample / seq_len: 1 for packed data or when the mean is unknown."""
        if self.packing or self.mean_sample_len is None:
            return 1.0
        return self.mean_sample_len / self.seq_len

    @property
    def global_batch(self) -> int:
        return self.micro_batch * self.grad_accum * self.n_gpus


def make_config(**knobs) -> TrainConfig:
    """A TrainConfig, with pydantic's errors turned into one line a user can act on."""
    try:
        return TrainConfig(**knobs)
    except ValidationError as exc:
        raise InvalidConfigurationError(validation_message(exc)) from None


def violations(model: ModelSpec, gpus: GpuSet, config: TrainConfig) -> list[str]:
    """Every reason this configuration cannot run on these GPUs with this model (problem/rules.py),
    as lines a user can act on."""
    problems = rules.hardware_problems(gpus, precision=config.precision, attn=config.attn, bits=config.bits,
                                       n_gpus=config.n_gpus, liger=config.liger)
    problems += rules.fsdp_hardware_problems(gpus, strategy=config.fsdp_strategy, n_gpus=config.n_gpus)
    problems += rules.model_problems(
        model, method=config.method,
        lora_rank=config.lora_rank if config.uses_lora else None,
        lora_targets=config.lora_targets if config.uses_lora else None,
        freeze_layers=config.freeze_layers if config.method == Method.freeze else None,
        zero_stage=config.zero_stage, attn=config.attn, seq_len=config.seq_len, precision=config.precision, gpus=gpus)
    # FSDP shards like ZeRO-3, and LLaMA-Factory refuses both on PTQ-quantized models
    problems += rules.prequantized_problems(model, zero_stage=3 if config.fsdp_strategy else config.zero_stage)
    return problems


def check_runnable(model: ModelSpec, gpus: GpuSet, config: TrainConfig) -> None:
    """Raise the first reason the configuration cannot run at all (not about memory)."""
    problems = violations(model, gpus, config)
    if problems:
        raise InvalidConfigurationError(problems[0])


# ---- the words for a configuration (every report uses these) -------------------------------------


def _gpu_count(n_gpus: int) -> str:
    return f"{n_gpus} GPU{'s' if n_gpus > 1 else ''}"


def lever_words(config: TrainConfig) -> list[str]:
    """The memory levers that are on (issue 16), in the words every report uses."""
    c = config
    words = []
    if c.memory_optimizer != MemoryOptimizer.none:
        rank = f" r{c.projection_rank}" if c.memory_optimizer.value.startswith(("galore", "apollo")) else ""
        words.append(c.memory_optimizer.value.replace("_", " ") + rank)
    words += [word for flag, word in (("dora", "DoRA"), ("pissa", "PiSSA"), ("rslora", "rsLoRA")) if getattr(c, flag)]
    if c.loraplus_lr_ratio is not None:
        words.append(f"LoRA+ x{c.loraplus_lr_ratio:g}")
    words += [word for flag, word in (("liger", "Liger"), ("unsloth_gc", "offloaded ckpt")) if getattr(c, flag)]
    if c.packing:
        words.append("neat packing" if c.neat_packing else "packing")
    words += [word for flag, word in (("upcast_layernorm", "fp32 norms"), ("upcast_lmhead_output", "fp32 logits"))
              if getattr(c, flag)]
    return words


def describe_config(config: TrainConfig) -> str:
    """Every knob, as `estimate` and `check` print a configuration's first line."""
    c = config
    method = c.method.value
    if c.uses_lora:
        method += f" r{c.lora_rank}"
    if c.bits != 16:
        method += f" {c.bits}-bit"
    parts = [method, f"seq {c.seq_len}", f"micro-batch {c.micro_batch}", f"accum {c.grad_accum}",
             "ckpt" if c.grad_ckpt else "no ckpt", c.attn.value, c.precision.value, c.optim.value,
             describe_sharding(c) or "no ZeRO"]
    if c.offload != Offload.none:
        parts.append(f"offload {c.offload.value}")
    parts += lever_words(c)
    parts.append(_gpu_count(c.n_gpus))
    return ", ".join(parts)


def describe_plan(config: TrainConfig) -> str:
    """The knobs a plan decides, short, as explanations and suggestions name a plan."""
    method = config.method.value
    if config.bits != 16:
        method = f"{config.bits}-bit {method}"
    if config.uses_lora:
        method += f" r{config.lora_rank}"
    parts = [method, f"micro batch {config.micro_batch}", "ckpt" if config.grad_ckpt else "no ckpt",
             config.precision.value, config.optim.value]
    if config.zero_stage or config.fsdp_strategy:
        parts.append(describe_sharding(config))
    if config.offload != Offload.none:
        parts.append(f"offload {config.offload.value}")
    parts += lever_words(config)
    parts.append(_gpu_count(config.n_gpus))
    return ", ".join(parts)


def describe_sharding(config: TrainConfig) -> str:
    """`ZeRO-3`, `FSDP1 full_shard`, or "" without sharding."""
    if config.fsdp_strategy is not None:
        return f"FSDP{config.fsdp_version} {config.fsdp_strategy.value}"
    return f"ZeRO-{config.zero_stage}" if config.zero_stage else ""


def describe_launch(model: ModelSpec, gpus: GpuSet, config: TrainConfig) -> str:
    """One line for the head of an emitted launch script."""
    return (f"{model.name} on {gpus.label()}, {config.method.value}, micro-batch {config.micro_batch} x accum "
            f"{config.grad_accum} x {config.n_gpus} GPU(s), seq {config.seq_len}")
