"""Liger kernels (`enable_liger_kernel: true`): what they keep on the GPU instead of Hugging Face's
modelling code. Which kernels a model type gets: specs/liger_kernels.py (LLaMA-Factory 0.9.5
`model/model_utils/liger_kernel.py`); a model type LLaMA-Factory does not list gets none, so
`--liger` changes nothing for it (estimate says so in a note).

Sources, liger-kernel 0.8.5 (the newest on PyPI; LLaMA-Factory 0.9.5 asks `liger-kernel>=0.6.3`),
read from the wheel, file:line:
- Fused linear cross-entropy, `ops/fused_linear_cross_entropy.py`:
  - chunking (:99-106): `inc_factor = cdiv(V, chunk_mem_const * H)` with `_CHUNK_MEM_CONST = 1`
    (:27), `chunk_size = min(next_power_of_2(cdiv(BT, inc_factor)), BT)`,
    `num_chunks = cdiv(BT, chunk_size)`; BT = micro batch x seq_len (the hidden states are
    flattened, `transformers/model/loss_utils.py:91`);
  - buffers made before the loop: `grad_input = zeros_like(_input)` (BT x H, input dtype, :108),
    `grad_weight = zeros_like(weight)` only when lm_head trains (V x H, weight dtype, :116),
    `loss_1d` (BT fp32, :125), `target_mask` (BT bool, :131); the shifted labels (BT int64,
    `loss_utils.py:87-88`);
  - logits: one (chunk_size x V) chunk at a time. On CUDA with grad disabled (inside the
    autograd Function), input dtype == weight dtype and autocast off or of that dtype
    (`_can_use_mm_out`, :31-46) it is one persistent `logits_storage` written with `mm(out=)`
    (:147-153, :159-160); otherwise `_input_chunk @ weight.t()` per chunk (:163), in the autocast
    dtype under AMP, with autocast's 16-bit copy of the input chunk. The cross-entropy kernel
    writes the logits gradient into the chunk itself (:250): no fp32 logits, no second buffer;
  - per chunk: `grad_input[chunk] = grad_logits @ weight` (an mm(out=) on the mm_out path, else
    a chunk x H temporary, :318-322); the weight gradient by `addmm(out=grad_weight)` on compute
    capability >= 8 (fp32 accumulator: the input chunk cast to 16 bits, :326-348; 16-bit
    accumulator :349-368), else the legacy `grad_weight += mm(grad_logits.t(), input).float()`,
    a V x H temporary in the matmul dtype plus its fp32 copy (:370-375);
  - gradients are computed in the forward and saved (:574-578); the backward only scales them
    in place when grad_output != 1 (`element_mul_kernel`, :410-446). So no BT x V tensor ever
    exists, and grad_input and grad_weight live from the loss into the backward.
- RMSNorm, `ops/rms_norm.py:449-466, 629-676`: output Y in the input's dtype, RSTD (n_rows fp32
  in llama and gemma casting modes); saves (X, W, RSTD): the input itself, not an fp32 copy, and
  not the normalised tensor a trainable weight needs in Hugging Face's code; dX is written into
  dY (`in_place=True`, not for Gemma-2/3).
- SwiGLU / GeGLU, `ops/swiglu.py:240-274`, `ops/geglu.py`: `c = act(a) * b` in one kernel saves
  (a, b) and recomputes act(a) in backward, writing da, db into a and b: Hugging Face keeps a,
  act(a) and b.
- RoPE, `ops/rope.py:135-190`: rotates q and k in place (their storage is the projection's
  output); Hugging Face saves only cos and sin too, so no activation changes.
The CPU re-implementation of the chunk loop and of these Functions that the trace runs is
solver/oracle/liger.py (tests/oracle/test_trace_levers.py holds this module to it per term).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..problem.config import TrainConfig
from ..problem.knobs import Method
from ..specs.liger_kernels import LigerKernels, liger_kernels
from ..specs.model import ModelSpec
from ..units import FP32_BYTES

CHUNK_MEM_CONST = 1  # _CHUNK_MEM_CONST, ops/fused_linear_cross_entropy.py:27
LABEL_BYTES = 8  # shifted labels, int64 (loss_utils.py:87-88)
TARGET_MASK_BYTES = 1  # target != ignore_index, bool (:131)
LOSS_1D_BYTES = 4  # loss_1d fp32 (:125)
# The legacy weight-gradient path (compute capability < 8 or an fp32 matmul): the V x H matmul
# result plus its `.float()` copy, alive together during the cast (:370-375).
LEGACY_WEIGHT_GRAD_MIN_CC = 8


def applied(model: ModelSpec, config: TrainConfig) -> LigerKernels | None:
    """The Liger kernels this run gets: None without `liger` or for a model type LLaMA-Factory
    0.9.5 applies none to."""
    if not config.liger:
        return None
    return liger_kernels(model.model_type)


def fused_loss(model: ModelSpec, config: TrainConfig) -> bool:
    kernels = applied(model, config)
    return kernels is not None and kernels.fused_linear_cross_entropy


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _next_power_of_2(n: int) -> int:
    """triton.next_power_of_2: the smallest power of two >= n (1 for n <= 1)."""
    return 1 << max(n - 1, 0).bit_length()


@dataclass(frozen=True)
class Chunking:
    inc_factor: int
    chunk_size: int  # rows of logits per chunk
    num_chunks: int


def chunking(tokens: int, hidden: int, vocab: int) -> Chunking:
    """liger-kernel 0.8.5 `fused_linear_cross_entropy_forward`, lines 99-106, exactly."""
    inc_factor = _cdiv(vocab, CHUNK_MEM_CONST * hidden)
    chunk_size = min(_next_power_of_2(_cdiv(tokens, inc_factor)), tokens)
    return Chunking(inc_factor, chunk_size, _cdiv(tokens, chunk_size))


def chunk_rows(model: ModelSpec, config: TrainConfig) -> int:
    """Logit rows of one chunk at the config's micro batch (0 without the fused loss). Not
    linear in the micro batch (a power of two), so the planner keeps one memory table per value
    (planner/candidates.py)."""
    if not fused_loss(model, config):
        return 0
    return chunking(config.micro_batch * config.seq_len, model.hidden_size, model.vocab_size).chunk_size


@dataclass(frozen=True)
class FusedLossBuffers:
    """What the fused loss holds, in bytes: per token (affine in the micro batch) or at the
    config's micro batch (the chunk, not linear in it)."""

    per_token: int  # grad_input + loss_1d + target mask + shifted labels
    chunk: int  # one logits chunk (chunk_size x V)
    chunk_temporaries: int  # per-chunk casts and matmul results beside the chunk
    weight_grad: int  # lm_head's gradient, made in the forward (full fine-tuning)
    weight_grad_temporaries: int  # the legacy path's V x H temporaries
    weight_cast: int = 0  # autocast's uncached 16-bit cast of weight.t() for each chunk's logits

    @property
    def during_loop_per_token(self) -> int:
        return self.per_token

    @property
    def after_loop_per_token(self) -> int:
        """grad_input only: loss_1d, the mask and the labels die with the forward."""
        return self.per_token - LOSS_1D_BYTES - TARGET_MASK_BYTES - LABEL_BYTES


def fused_loss_buffers(model: ModelSpec, config: TrainConfig, *, input_bytes: int, weight_bytes: int,
                       autocast: bool, matmul_bytes: int, compute_capability_major: int = 8) -> FusedLossBuffers:
    """The fused linear cross-entropy's buffers (module docstring). `input_bytes`: the final
    norm's output dtype; `weight_bytes`: lm_head's; `matmul_bytes`: the autocast dtype (used when
    autocast is on); `compute_capability_major` picks the weight-gradient path."""
    h, v = model.hidden_size, model.vocab_size
    rows = chunk_rows(model, config)
    weight_trains = config.method == Method.full
    mm_out = input_bytes == weight_bytes and (not autocast or matmul_bytes == input_bytes)
    logits_bytes = input_bytes if mm_out else (matmul_bytes if autocast else max(input_bytes, weight_bytes))
    chunk = rows * v * logits_bytes
    temporaries = 0
    if not mm_out:
        if autocast and input_bytes != matmul_bytes:
            temporaries += rows * h * matmul_bytes  # autocast's copy of the input chunk for the logits matmul
        temporaries = max(temporaries, rows * h * logits_bytes)  # grad_logits @ weight, then copied into grad_input
    weight_grad = v * h * weight_bytes if weight_trains else 0
    weight_temporaries = 0
    if weight_trains:
        fast = compute_capability_major >= LEGACY_WEIGHT_GRAD_MIN_CC and logits_bytes < FP32_BYTES
        if fast and input_bytes != logits_bytes:
            temporaries = max(temporaries, rows * h * logits_bytes)  # the input chunk cast for addmm
        if not fast:
            product = v * h * logits_bytes  # mm(grad_logits.t(), input) in the matmul dtype
            weight_temporaries = product + (v * h * FP32_BYTES if logits_bytes != FP32_BYTES else 0)
    # `_input_chunk @ weight.t()` (:163) under autocast casts the fp32 weight through a view, which
    # autocast never caches (aten/src/ATen/autocast_mode.cpp `cached_cast`: `!arg.is_view()`), so
    # every chunk's logits matmul holds a fresh 16-bit copy beside the cached one that
    # `grad_logits @ weight` uses (counted with the autocast weight copies). Seen by the trace.
    weight_cast = v * h * matmul_bytes if (not mm_out and autocast and weight_bytes != matmul_bytes) else 0
    per_token = h * input_bytes + LOSS_1D_BYTES + TARGET_MASK_BYTES + LABEL_BYTES
    return FusedLossBuffers(per_token=per_token, chunk=chunk, chunk_temporaries=temporaries,
                            weight_grad=weight_grad, weight_grad_temporaries=weight_temporaries,
                            weight_cast=weight_cast)


# ---- activations the fused kernels change (memory/activations.py asks these) -------------------

def norm_saved_bytes(hidden: int, input_bytes: int) -> int:
    """LigerRMSNorm keeps its input (the tensor itself) and an fp32 rstd per row."""
    return input_bytes * hidden + FP32_BYTES


def gated_mlp_saved_bytes(intermediate: int, compute_bytes: int) -> int:
    """LigerSiLUMulFunction / LigerGELUMulFunction keep a and b, not act(a)."""
    return 2 * compute_bytes * intermediate
