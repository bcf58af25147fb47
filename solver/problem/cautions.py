"""Configurations that run but that an expert would run knowingly: numerics known to overflow,
kernels known to be slow, attention that drops part of the model. Each caution is one line with
its source; `estimate` prints them as notes (so `recommend` and `check` do too), and the search
space consults the same tables so that the recommender does not choose them when it has a choice
(planner/search_space.py).

What cannot run at all is in rules.py; this module is for what runs, worse than it looks.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..specs.gpu import GpuSet
from ..specs.model import ModelSpec
from .config import TrainConfig
from .knobs import Attention, Precision


@dataclass(frozen=True)
class Fp16Overflow:
    """A model family known to overflow fp16's range (65504) in training or inference."""

    family: str
    source: str
    unusable: bool  # True: fp16 is broken outright, so fp32 on cards without bf16; False: it may NaN


# config.json model_type -> what is known. Gemma (1) and Gemma-2: no statement found
# (notes/llamafactory/facts.md B.4; searched transformers/unsloth issues for gemma2 fp16): none here.
FP16_OVERFLOW: dict[str, Fp16Overflow] = {
    "qwen2": Fp16Overflow(
        "Qwen2/2.5", "QwenLM/Qwen3 #670 and #868: trained in bf16; \"If Inf or NaN is countered, you will probably "
        "need to finetune it in bf16 or fp32\"", unusable=False),
    "gemma3": Fp16Overflow(
        "Gemma-3", "huggingface/transformers #36822 \"Gemma 3 is broken with fp16\", #37226: activations beyond "
        "fp16's range; Unsloth forces float32 for gemma3 (FORCE_FLOAT32)", unusable=True),
    "gemma3_text": Fp16Overflow(
        "Gemma-3", "huggingface/transformers #36822 \"Gemma 3 is broken with fp16\"; Unsloth forces float32 for "
        "gemma3_text (FORCE_FLOAT32)", unusable=True),
}

# bitsandbytes LLM.int8 uses int8 tensor cores from compute capability 7.5 (bitsandbytes 0.50.2
# `cuda_specs.py` has_imma: >= (7, 5)); below, `diagnostics/cuda.py` warns "Only slow 8-bit matmul
# is supported for your GPU!" and `backends/cuda/ops.py` falls back to fp32 matmuls. Its README's
# hardware table: LLM.int8() "SM60+ minimum, SM75+ recommended". So 8-bit runs on P4/P40/V100
# (LLaMA-Factory needs bitsandbytes >= 0.37.0 for it, `model_utils/quantization.py`; 0.37.0 is
# the release from which "all GPUs architectures should support int8 matrix multiplication",
# transformers PR #21487), slowly; the speed model assumes the int8 kernels.
INT8_TENSOR_CORE_MIN_CC = (7, 5)


def fp16_overflow(model: ModelSpec) -> Fp16Overflow | None:
    return FP16_OVERFLOW.get(model.model_type)


def slow_int8(gpus: GpuSet, bits: int) -> bool:
    """Whether bitsandbytes LLM.int8 would run its slow fallback on these GPUs (NVIDIA below 7.5;
    AMD and VRAM budgets have no compute capability to compare)."""
    cc = gpus.gpu.cc_at_least
    return bits == 8 and cc is not None and cc < INT8_TENSOR_CORE_MIN_CC


def sdpa_drops_softcapping(model: ModelSpec, attn: Attention) -> bool:
    """Gemma-2 soft-caps its attention logits (`attn_logit_softcapping`, transformers 5.6
    modeling_gemma2.py); SDPA ignores the cap (integrations/sdpa_attention.py has no softcap),
    eager and FA2 apply it. LLaMA-Factory 0.9.5 only warns (`model_utils/attention.py`) and, with
    `flash_attn: auto`, runs FA2 if installed, else eager."""
    return model.model_type == "gemma2" and attn == Attention.sdpa


def cautions(model: ModelSpec, gpus: GpuSet, config: TrainConfig) -> list[str]:
    """One line per caution that applies to this run, each with its source."""
    lines = []
    overflow = fp16_overflow(model)
    if overflow and config.precision == Precision.fp16:
        if gpus.gpu.bf16_hardware:
            remedy = "use --precision bf16"
        elif overflow.unusable:
            remedy = f"use --precision fp32 ({gpus.gpu.name} has no bf16)"
        else:
            remedy = (f"{gpus.gpu.name} has no bf16, so fp16 mixed precision (fp32 master weights, loss scaling) "
                      "is the fast choice; if the loss turns NaN, rerun with --precision fp32")
        lines.append(f"{overflow.family} is known to overflow in fp16 ({overflow.source}): {remedy}")
    if slow_int8(gpus, config.bits):
        cc = gpus.gpu.compute_capability
        lines.append(f"bitsandbytes 8-bit on {gpus.gpu.name} (compute capability {cc} < 7.5) has no int8 tensor "
                     "cores: it runs a slow fp32 fallback (bitsandbytes 0.50.2: \"Only slow 8-bit matmul is supported "
                     "for your GPU!\"; README: SM60+ minimum, SM75+ recommended); the speed shown assumes the fast "
                     "kernels: prefer --bits 4")
    if sdpa_drops_softcapping(model, config.attn):
        lines.append("Gemma-2 should use soft-capping attention, while the SDPA attention does not support it "
                     "(LLaMA-Factory model_utils/attention.py): use --attn fa2 where the GPU has it, else --attn eager")
    return lines
