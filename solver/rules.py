"""Which configurations can run at all: hardware limits and the combinations LLaMA-Factory
rejects. The same rules prune the recommender's choices and reject `estimate` inputs.

Sources: shared/reference/gpus.md (bf16 and FlashAttention-2 need compute capability >= 8.0,
FA2 README; P4/P40/V100/T4 have no bf16 although torch reports it by emulation);
shared/reference/schemas.md A.2 (LLaMA-Factory parser rejections).
"""

from __future__ import annotations

from .gpu_spec import GpuSet
from .memory_states import lora_targets
from .model_spec import ModelSpec
from .training_config import Attention, Method, Precision, TrainConfig


def precision_allowed(gpus: GpuSet, precision: Precision) -> bool:
    if precision in (Precision.bf16, Precision.pure_bf16):
        return gpus.gpu.bf16_hardware
    return True


def attention_allowed(gpus: GpuSet, attn: Attention) -> bool:
    return gpus.gpu.flash_attention_2 if attn == Attention.fa2 else True


def bits_allowed(gpus: GpuSet, bits: int) -> bool:
    return gpus.gpu.bitsandbytes_4bit if bits == 4 else True


def default_precision(gpus: GpuSet) -> Precision:
    """bf16 where the hardware has it, else fp16 mixed precision."""
    return Precision.bf16 if gpus.gpu.bf16_hardware else Precision.fp16


def violations(model: ModelSpec, gpus: GpuSet, config: TrainConfig) -> list[str]:
    """Every reason this configuration cannot run on these GPUs, as lines a user can act on."""
    gpu = gpus.gpu
    problems = []
    if not precision_allowed(gpus, config.precision):
        problems.append(
            f"{gpu.name} has no bf16 hardware (compute capability {gpu.compute_capability} < 8.0; torch only "
            "emulates it): use --precision fp16"
        )
    if not attention_allowed(gpus, config.attn):
        problems.append(
            f"FlashAttention-2 needs compute capability >= 8.0 and {gpu.name} has {gpu.compute_capability}: "
            "use --attn sdpa"
        )
    if not bits_allowed(gpus, config.bits):
        problems.append(f"bitsandbytes 4-bit does not run on {gpu.name}: use --bits 8 or 16")
    if config.n_gpus > gpus.total_gpus:
        problems.append(f"--n-gpus {config.n_gpus} is more than the {gpus.total_gpus} GPUs in {gpus.label()}")
    if config.uses_lora:
        if config.lora_rank > model.hidden_size:
            problems.append(f"LoRA rank {config.lora_rank} exceeds the hidden size {model.hidden_size} of {model.name}")
        if not lora_targets(model, config):
            names = ", ".join(model.linear_module_names())
            problems.append(
                f"no LoRA target of {model.name} matches {','.join(config.lora_targets)}: choose from all, {names}"
            )
    if config.method == Method.freeze and config.freeze_layers > model.num_layers:
        problems.append(f"--freeze-layers {config.freeze_layers} exceeds the {model.num_layers} layers of {model.name}")
    return problems
