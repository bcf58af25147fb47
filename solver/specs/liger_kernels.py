"""Which Liger kernels LLaMA-Factory 0.9.5 applies to which model type (`enable_liger_kernel: true`).

Source: LLaMA-Factory 0.9.5 `model/model_utils/liger_kernel.py:39-100` (`apply_liger_kernel`),
called from `model/loader.py:142` before the model is built; for the `pt` and `sft` stages it
passes no arguments, so each `apply_liger_kernel_to_<type>` function's defaults decide the
kernels. Defaults read from liger-kernel 0.8.5 `transformers/monkey_patch.py` (the newest on
PyPI; LF 0.9.5 requires `liger-kernel>=0.6.3`), function by function:

| model types | rope | rms_norm | gated MLP | fused linear CE | line |
| llama, mistral, mixtral, qwen2, qwen3, qwen3_moe, phi3, olmo2, qwen2_5_vl | yes | yes | SwiGLU | yes | 259, 723, 834, 1750, 1817, 1876, 2371, 2435, 2113 |
| qwen2_vl, mllama (also layer_norm) | yes | yes | SwiGLU | yes | 2016, 560 |
| gemma, gemma2, gemma3_text, gemma3, paligemma | yes | yes (gemma casting) | GeGLU | yes | 1073, 1142, 1216, 1303, 1639 |
| glm, glm4, glm4v, qwen3_next, qwen3_5 | no | yes | SwiGLU | yes | 2570, 2639, 3117, 3219 |
| gpt_oss | yes | yes | no | yes | 1943 |
| granite | yes | yes | SwiGLU | no (Liger cross entropy on materialised logits) | 184 |
| llava | no | no | no | yes | 393 |

Every other model type (in fitplan's catalog: `qwen` = Qwen1, `baichuan`, `chatglm`) gets the
warning "Current model does not support liger kernel." and no kernel at all.

Liger's kernels are Triton kernels: they need an NVIDIA GPU Triton compiles for, compute
capability 7.0 or newer (Triton README, "Supported Hardware: NVIDIA GPUs (Compute Capability
7.0+)"; liger-kernel 0.8.5 METADATA `Requires-Dist: triton>=2.3.1`).
"""

from __future__ import annotations

from dataclasses import dataclass

LIGER_MIN_COMPUTE_CAPABILITY = (7, 0)


@dataclass(frozen=True)
class LigerKernels:
    """The kernels one model type gets."""

    rope: bool
    rms_norm: bool
    gated_mlp: bool  # LigerSwiGLUMLP / LigerGEGLUMLP (LigerSiLUMulFunction, LigerGELUMulFunction)
    fused_linear_cross_entropy: bool
    gemma_norm: bool = False  # casting_mode "gemma", offset 1.0; Gemma-2/3: in_place=False


_LLAMA_LIKE = LigerKernels(rope=True, rms_norm=True, gated_mlp=True, fused_linear_cross_entropy=True)
_GEMMA = LigerKernels(rope=True, rms_norm=True, gated_mlp=True, fused_linear_cross_entropy=True, gemma_norm=True)
_NO_ROPE = LigerKernels(rope=False, rms_norm=True, gated_mlp=True, fused_linear_cross_entropy=True)

LIGER_BY_MODEL_TYPE: dict[str, LigerKernels] = {
    **dict.fromkeys(("llama", "mistral", "mixtral", "qwen2", "qwen3", "qwen3_moe", "phi3", "olmo2", "qwen2_5_vl",
                     "qwen2_vl", "mllama"), _LLAMA_LIKE),
    **dict.fromkeys(("gemma", "gemma2", "gemma3", "gemma3_text", "paligemma"), _GEMMA),
    **dict.fromkeys(("glm", "glm4", "glm4v", "qwen3_next", "qwen3_5"), _NO_ROPE),
    "gpt_oss": LigerKernels(rope=True, rms_norm=True, gated_mlp=False, fused_linear_cross_entropy=True),
    "granite": LigerKernels(rope=True, rms_norm=True, gated_mlp=True, fused_linear_cross_entropy=False),
    "llava": LigerKernels(rope=False, rms_norm=False, gated_mlp=False, fused_linear_cross_entropy=True),
}


def liger_kernels(model_type: str) -> LigerKernels | None:
    """The kernels LLaMA-Factory 0.9.5 applies to this model type, None when it applies none."""
    return LIGER_BY_MODEL_TYPE.get(model_type)
