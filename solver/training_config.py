"""One fully specified fine-tuning configuration: every knob `estimate` evaluates and
`recommend` decides. Names and defaults follow LLaMA-Factory 0.9.5 (shared/reference/schemas.md)."""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .errors import InvalidConfigurationError, validation_message


class Method(str, Enum):
    full = "full"
    freeze = "freeze"  # LLaMA-Factory finetuning_type=freeze: the last `freeze_layers` layers train
    lora = "lora"
    qlora = "qlora"  # LoRA on a bitsandbytes-quantized base (quantization_bit 4 or 8)


class Attention(str, Enum):
    eager = "eager"  # LLaMA-Factory flash_attn: disabled
    sdpa = "sdpa"
    fa2 = "fa2"


class Offload(str, Enum):
    none = "none"
    optimizer = "optimizer"  # DeepSpeed offload_optimizer (ZeRO 1-3)
    all = "all"  # offload_optimizer + offload_param (ZeRO 3 only)


class Optimizer(str, Enum):
    adamw = "adamw"  # torch AdamW (HF adamw_torch_fused / adamw_torch)
    adamw_8bit = "adamw_8bit"  # bitsandbytes 8-bit AdamW
    paged_adamw_8bit = "paged_adamw_8bit"
    adafactor = "adafactor"
    sgd = "sgd"


class Precision(str, Enum):
    bf16 = "bf16"  # AMP: fp32 trainable params, bf16 autocast
    fp16 = "fp16"  # AMP with loss scaling: fp32 trainable params, fp16 autocast
    fp32 = "fp32"
    pure_bf16 = "pure_bf16"  # LLaMA-Factory pure_bf16: bf16 params and optimizer states, no AMP


LLAMAFACTORY_DEFAULT_LORA_RANK = 8  # FinetuningArguments.lora_rank
LLAMAFACTORY_DEFAULT_FREEZE_LAYERS = 2  # FinetuningArguments.freeze_trainable_layers


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
    # The data's shape, which decides the caching allocator's variable-length reserve
    # (solver/overhead.py): packed samples are all seq_len long; otherwise the mean sample length
    # (None = unknown, taken as seq_len: the conservative end).
    packing: bool = False
    mean_sample_len: int | None = Field(default=None, ge=1)

    @field_validator("bits")
    @classmethod
    def _bits(cls, value: int) -> int:
        if value not in (16, 8, 4):
            raise ValueError("bits must be 16, 8 or 4")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "TrainConfig":
        if self.method == Method.qlora and self.bits == 16:
            raise ValueError("qlora needs a quantized base: --bits 4 or 8")
        if self.method in (Method.full, Method.freeze, Method.lora) and self.bits != 16:
            if self.method == Method.lora:
                raise ValueError("a quantized base (--bits 4/8) is --method qlora")
            raise ValueError(
                "Quantization is only compatible with the LoRA or OFT method (LLaMA-Factory); "
                "use --method qlora or --bits 16"
            )
        if self.offload == Offload.optimizer and self.zero_stage == 0:
            raise ValueError("optimizer offload needs DeepSpeed ZeRO 1, 2 or 3 (--zero)")
        if self.offload != Offload.none and self.optim in (Optimizer.adamw_8bit, Optimizer.paged_adamw_8bit):
            raise ValueError("bitsandbytes 8-bit optimizers run on the GPU; DeepSpeed CPU offload uses its own CPU "
                             "Adam: use --optim adamw with --offload, or --offload none")
        if self.method == Method.qlora and self.bits == 8 and self.zero_stage == 3:
            raise ValueError("Only 4-bit quantized model can use fsdp+qlora (LLaMA-Factory): use --bits 4 or --zero 2")
        if self.offload == Offload.all and self.zero_stage != 3:
            raise ValueError("parameter offload (--offload all) needs ZeRO-3 (--zero 3)")
        if self.mean_sample_len is not None and self.mean_sample_len > self.seq_len:
            raise ValueError(f"mean_sample_len {self.mean_sample_len} exceeds seq_len {self.seq_len}")
        if self.precision == Precision.pure_bf16 and self.zero_stage == 3:
            raise ValueError("`pure_bf16` is incompatible with DeepSpeed ZeRO-3 (LLaMA-Factory)")
        return self

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
    from pydantic import ValidationError

    try:
        return TrainConfig(**knobs)
    except ValidationError as exc:
        raise InvalidConfigurationError(validation_message(exc)) from None
