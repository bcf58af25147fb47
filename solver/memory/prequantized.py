"""The memory of a pre-quantized base (GPTQ, AWQ; specs/prequantized.py): its stored weights and
its kernels' working memory in training. Dequantized-at-load checkpoints (mxfp4, fp8) are plain
16-bit models here.

Kernel working memory, gptqmodel 7.7.0 (what transformers 5.6 trains GPTQ/AWQ checkpoints
with; which of its backends it selects for training was not traced, so the one that keeps the
most is taken, notes/llamafactory/facts.md B.5):
- GPTQ, torch kernel (`nn_modules/qlinear/torch.py` forward): `weights = self.dequantize_weight()`
  then `torch.matmul(x, weights)`: the full fp16 weight of the module is materialised per forward,
  and autograd keeps it for backward (the operand of a matmul whose input needs a gradient). So
  without gradient checkpointing every layer's dequantized linear weights stay alive until their
  backward; with it (LLaMA-Factory's reentrant checkpointing runs the forward without saving),
  only the layer being recomputed keeps them.
- AWQ (`nn_modules/qlinear/gemm_awq.py` `AwqGemmFn`): saves only qweight, qzeros and scales and
  dequantizes again in backward: one module's fp16 weight at a time, kept by nobody.
Both dequantize one module's weight at a time: the same transient as bitsandbytes'
(memory/activations.py `quantized_dequant_bytes`).
"""

from __future__ import annotations

from ..problem.config import TrainConfig
from ..specs.model import ModelSpec
from ..units import HALF_BYTES


def quantized_in_training(model: ModelSpec) -> bool:
    return model.prequantized is not None and model.prequantized.quantized_in_training


def prequantized_base_bytes(model: ModelSpec, n_frozen: int, dense_bytes: int) -> float:
    """The frozen base of a GPTQ/AWQ checkpoint: quantized decoder linears + the rest in 16-bit."""
    quant = model.prequantized
    modules = model.linear_modules()
    linear_weights = model.num_layers * sum(m.weight_params for m in modules)
    stored = model.num_layers * sum(m.count * quant.linear_storage_bytes(m.in_features, m.out_features)
                                    for m in modules)
    return stored + (n_frozen - linear_weights) * dense_bytes


def largest_dequantized_module_bytes(model: ModelSpec) -> int:
    """One module's fp16 weight, dequantized for its matmul (forward and backward)."""
    return HALF_BYTES * max(m.in_features * m.out_features for m in model.linear_modules())


def kept_dequantized_bytes(model: ModelSpec, config: TrainConfig, *, layers: int | None = None) -> int:
    """Dequantized fp16 weights autograd keeps for backward (GPTQ torch kernel) in `layers`
    decoder layers (default: all of them without checkpointing, none with it)."""
    if not quantized_in_training(model) or model.prequantized.method != "gptq":
        return 0
    if layers is None:
        layers = 0 if config.grad_ckpt else model.num_layers
    return layers * HALF_BYTES * sum(m.weight_params for m in model.linear_modules())


def prequantized_notes(model: ModelSpec, config: TrainConfig) -> list[str]:
    quant = model.prequantized
    if quant is None:
        return []
    if quant.dequantized_at_load:
        return [f"{quant.describe()}: estimated as a 16-bit model (LLaMA-Factory model_utils/quantization.py)"]
    kept = ("the dequantized fp16 weights of every layer are kept for backward without checkpointing"
            if quant.method == "gptq" and not config.grad_ckpt else
            "one layer's dequantized fp16 weights are kept while it recomputes" if quant.method == "gptq" else
            "one module's weight is dequantized at a time")
    return [f"base weights stored as {quant.describe()} (gptqmodel layout: packed int32 weights and zeros, fp16 "
            f"scales); {kept} (gptqmodel kernels); the speed of these kernels is not modelled"]
