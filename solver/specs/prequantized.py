"""A pre-quantized checkpoint (`quantization_config` in its config.json): which method, how many
bits, which group size, and the bytes its stored linear weights take.

What LLaMA-Factory 0.9.5 does with one (`model/model_utils/quantization.py` configure_quantization,
notes/llamafactory/facts.md B.5): a `quantization_config` makes it a PTQ model; `quantization_bit`
is then ignored ("`quantization_bit` will not affect on the PTQ-quantized models."); ZeRO-3 and
FSDP are refused except for mxfp4 and fp8, which it loads dequantized (`Mxfp4Config(dequantize=True)`,
`FineGrainedFP8Config(dequantize=True)`), i.e. as a plain 16-bit model; after loading only LoRA
or OFT may train it (`model/adapter.py`).

Storage, gptqmodel 7.7.0 (the backend transformers 5.6 loads GPTQ and AWQ with,
`gptqmodel/nn_modules/qlinear/__init__.py`), b bits, g group size, int32 packing:
- GPTQ (`_register_gptq_buffers`): qweight (ceil(in*b/32), out) int32, qzeros
  (ceil(in/g), ceil(out*b/32)) int32, scales (ceil(in/g), out) fp16, g_idx (in,) int32;
- AWQ GEMM (`AWQuantLinear`; autoawq 0.2.9 `awq/modules/linear/gemm.py` is the same layout):
  qweight (in, ceil(out*b/32)) int32, qzeros (in/g, ceil(out*b/32)) int32, scales (in/g, out) fp16.
Group size -1 (per-column) is one group over the whole input. Embeddings, norms, biases and the
lm_head stay 16-bit (transformers' quantizers convert the decoder linears only).
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

INT32_BYTES = 4
FP16_BYTES = 2

MODELLED_METHODS = ("gptq", "awq")
DEQUANTIZED_AT_LOAD = ("mxfp4", "fp8")  # LLaMA-Factory 0.9.5 loads these as bf16 models


class Prequantized(BaseModel):
    """The `quantization_config` of a checkpoint, as far as memory is concerned."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: str  # gptq, awq (modelled) or mxfp4, fp8 (dequantized to 16-bit at load)
    bits: int = Field(ge=1, le=16)
    group_size: int = -1  # -1: one group per output column over the whole input

    @property
    def dequantized_at_load(self) -> bool:
        return self.method in DEQUANTIZED_AT_LOAD

    @property
    def quantized_in_training(self) -> bool:
        """True when the frozen base trains in its quantized storage (GPTQ, AWQ)."""
        return not self.dequantized_at_load

    def describe(self) -> str:
        if self.dequantized_at_load:
            return f"{self.method.upper()} (dequantized to 16-bit when LLaMA-Factory loads it)"
        group = "per-column" if self.group_size == -1 else f"group size {self.group_size}"
        return f"{self.method.upper()} {self.bits}-bit, {group}"

    def linear_storage_bytes(self, in_features: int, out_features: int) -> int:
        """Bytes of one quantized linear's stored weight (qweight, qzeros, scales, g_idx; module docstring)."""
        groups = 1 if self.group_size == -1 else math.ceil(in_features / self.group_size)
        packed_out = math.ceil(out_features * self.bits / 32)
        zeros = groups * packed_out * INT32_BYTES
        scales = groups * out_features * FP16_BYTES
        if self.method == "gptq":
            qweight = math.ceil(in_features * self.bits / 32) * out_features * INT32_BYTES
            return qweight + zeros + scales + in_features * INT32_BYTES  # + g_idx
        return in_features * packed_out * INT32_BYTES + zeros + scales  # awq
