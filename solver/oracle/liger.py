"""Liger's kernels for the trace: their allocation pattern, re-implemented with plain torch ops
so a CPU trace on fake tensors sees what the Triton kernels would hold on a GPU. Triton cannot run
here; these are not the kernels, only what they allocate, save and free, read from liger-kernel
0.8.5 (memory/liger.py cites file and line for each):

- `FusedLinearCrossEntropy`: the chunk loop of `fused_linear_cross_entropy_forward`: the same
  chunk size, buffers and dtypes, the same branch between the persistent `mm(out=)` logits
  storage and the per-chunk matmul, the cross-entropy gradient written into the chunk in place
  (small per-row vectors aside, which the Triton kernel keeps in registers), gradients made in
  the forward and saved, an in-place scale in backward.
- `RMSNorm`: Y in the input dtype, an fp32 rstd per row; saves (X, W, rstd); dX written into dY
  (not for Gemma-2, `in_place=False`).
- `GatedProduct`: c = act(a) * b; saves (a, b) and writes da, db into them in backward.

`patch_model` puts them into a built Hugging Face model the way `apply_liger_kernel_to_<type>`
does (specs/liger_kernels.py says which a model type gets). RoPE is left as it is: Liger rotates
q and k in place, and Hugging Face saves no more than cos and sin either (memory/liger.py).

Imports torch: only oracle/build.py imports this module.
"""

from __future__ import annotations

import types

import torch
from torch import nn

from ..memory.liger import LEGACY_WEIGHT_GRAD_MIN_CC, chunking
from ..specs.liger_kernels import LigerKernels

IGNORE_INDEX = -100
A100_SM_COUNT = 108  # rms_norm backward's per-SM fp32 dW partials: (sm_count, hidden)
_LOW_PRECISION = (torch.float16, torch.bfloat16)


def _autocast_dtype():
    if torch.is_autocast_enabled("cpu"):
        return torch.get_autocast_dtype("cpu")
    return None


class FusedLinearCrossEntropy(torch.autograd.Function):
    """liger-kernel 0.8.5 LigerFusedLinearCrossEntropyFunction, reduction "mean"."""

    @staticmethod
    def forward(ctx, _input, weight, target, n_non_ignore: int, cc_major: int):
        bt, h = _input.shape
        v = weight.shape[0]
        chunk_size = chunking(bt, h, v).chunk_size
        weight_needs_grad = weight.requires_grad
        grad_input = torch.zeros_like(_input)
        grad_weight = torch.zeros_like(weight) if weight_needs_grad else None
        loss_1d = torch.zeros(bt, dtype=torch.float32)
        target_mask = target != IGNORE_INDEX  # noqa: F841 - alive until the forward returns, as in liger
        autocast = _autocast_dtype()
        # _can_use_mm_out: grad is disabled inside a Function's forward; "CUDA" is assumed.
        use_mm_out = (_input.dtype == weight.dtype and _input.dtype in (*_LOW_PRECISION, torch.float32)
                      and (autocast is None or autocast == _input.dtype))
        logits_storage = torch.empty((chunk_size, v), dtype=_input.dtype) if use_mm_out else None
        for start in range(0, bt, chunk_size):
            end = min(start + chunk_size, bt)
            input_chunk = _input[start:end]
            if logits_storage is not None:
                logits = logits_storage[: end - start]
                torch.mm(input_chunk, weight.t(), out=logits)
            else:
                logits = input_chunk @ weight.t()
            target_chunk = target[start:end]
            _cross_entropy_in_place(logits, target_chunk, loss_1d[start:end], n_non_ignore)
            grad_logits = logits
            del logits
            if use_mm_out and grad_logits.dtype == grad_input.dtype:
                torch.mm(grad_logits, weight, out=grad_input[start:end])
            else:
                grad_input[start:end] = grad_logits @ weight
            if grad_weight is not None:
                _accumulate_weight_grad(grad_weight, grad_logits, input_chunk, cc_major)
            del grad_logits, input_chunk, target_chunk
        del logits_storage
        loss = torch.sum(loss_1d)
        if grad_weight is not None:
            grad_weight = grad_weight.to(weight.dtype)
        ctx.save_for_backward(grad_input.detach(), grad_weight.detach() if grad_weight is not None else None)
        return loss

    @staticmethod
    def backward(ctx, grad_output):
        grad_input, grad_weight = ctx.saved_tensors
        # element_mul_kernel scales in place when grad_output != 1 (no allocation either way)
        grad_input.mul_(grad_output)
        if grad_weight is not None:
            grad_weight.mul_(grad_output)
        return grad_input, grad_weight, None, None, None


def _cross_entropy_in_place(logits, target, loss_slice, n_non_ignore: int) -> None:
    """liger_cross_entropy_kernel: the loss of each row into `loss_slice`, the softmax-minus-
    one-hot gradient / n into `logits` itself. The Triton kernel keeps its row statistics in
    registers; here they are (rows x 1) vectors, a few hundred bytes."""
    safe = target.clamp(min=0).unsqueeze(1)
    picked = logits.gather(1, safe)
    top = logits.amax(dim=1, keepdim=True)
    logits.sub_(top).exp_()
    total = logits.sum(dim=1, keepdim=True)
    valid = (target != IGNORE_INDEX).unsqueeze(1)
    loss_slice.copy_(((total.log() + top - picked) * valid).squeeze(1))
    logits.div_(total)
    logits.scatter_add_(1, safe, torch.full_like(picked, -1.0))
    logits.mul_(valid).div_(n_non_ignore)


def _accumulate_weight_grad(grad_weight, grad_logits, input_chunk, cc_major: int) -> None:
    """The three weight-gradient paths of `fused_linear_cross_entropy_forward` (:322-375)."""
    grad_logits_t = grad_logits.t()
    fast = cc_major >= LEGACY_WEIGHT_GRAD_MIN_CC and grad_logits_t.dtype in _LOW_PRECISION
    if fast and grad_weight.dtype == torch.float32:
        chunk = input_chunk if input_chunk.dtype == grad_logits_t.dtype else input_chunk.to(grad_logits_t.dtype)
        torch.addmm(grad_weight, grad_logits_t, chunk, out_dtype=torch.float32, out=grad_weight)
    elif fast and grad_weight.dtype == grad_logits_t.dtype:
        chunk = input_chunk if input_chunk.dtype == grad_logits_t.dtype else input_chunk.to(grad_logits_t.dtype)
        torch.addmm(grad_weight, grad_logits_t, chunk, out=grad_weight)
    else:
        grad_weight += torch.mm(grad_logits_t, input_chunk).float()


class FusedLossHead(nn.Module):
    """What Liger's `lce_forward` does after the decoder: shift the labels, flatten, and call the
    fused loss with lm_head's weight (lm_head itself never runs). A module, so the trace's
    region hook sees the head start; lm_head is held, not registered (no second parameter)."""

    def __init__(self, lm_head: nn.Module, cc_major: int) -> None:
        super().__init__()
        self._lm_head = [lm_head]
        self.cc_major = cc_major

    def forward(self, hidden_states, labels):
        weight = self._lm_head[0].weight
        padded = nn.functional.pad(labels, (0, 1), value=IGNORE_INDEX)  # loss_utils.py:87-88
        shift_labels = padded[..., 1:].contiguous()
        batch, seq = labels.shape
        hidden = hidden_states.reshape(-1, hidden_states.shape[-1])
        # mean over the tokens that have a next token: all but one per row (no padding here)
        return FusedLinearCrossEntropy.apply(hidden, weight, shift_labels.view(-1), batch * (seq - 1), self.cc_major)


class RMSNorm(torch.autograd.Function):
    """LigerRMSNormFunction (ops/rms_norm.py:629-676)."""

    @staticmethod
    def forward(ctx, x, weight, in_place: bool):
        shape = x.shape
        x = x.contiguous().view(-1, shape[-1])  # ensure_contiguous, X.view(-1, dim)
        y = torch.empty_like(x)
        rstd = torch.empty(x.shape[0], dtype=torch.float32)
        ctx.in_place = in_place
        ctx.shape = shape
        ctx.save_for_backward(x, weight, rstd)
        return y.view(shape)

    @staticmethod
    def backward(ctx, dy):
        x, weight, _rstd = ctx.saved_tensors
        dy = dy.contiguous().view(-1, ctx.shape[-1])
        dx = dy if ctx.in_place else torch.zeros_like(dy)
        dw = None
        if ctx.needs_input_grad[1]:
            partial = torch.empty((A100_SM_COUNT, x.shape[1]), dtype=torch.float32)
            dw = partial.sum(dim=0).to(weight.dtype)
        return dx.view(ctx.shape), dw, None


class GatedProduct(torch.autograd.Function):
    """LigerSiLUMulFunction / LigerGELUMulFunction: c = act(a) * b, saving (a, b)."""

    @staticmethod
    def forward(ctx, a, b):
        a, b = a.contiguous(), b.contiguous()  # ensure_contiguous
        ctx.save_for_backward(a, b)
        return torch.empty_like(a)

    @staticmethod
    def backward(ctx, dc):
        a, b = ctx.saved_tensors
        dc.contiguous()
        return a, b  # da and db written into a and b (swiglu_backward)


def _norm_forward(self, hidden_states):
    return RMSNorm.apply(hidden_states, self.weight, self._liger_in_place)


def _gated_forward(self, x):
    return self.down_proj(GatedProduct.apply(self.gate_proj(x), self.up_proj(x)))


def _fused_gated_forward(self, x):  # LigerPhi3SwiGLUMLP: gate_up_proj, then chunk
    gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
    return self.down_proj(GatedProduct.apply(gate, up))


def patch_model(model: nn.Module, kernels: LigerKernels, cc_major: int = 8) -> FusedLossHead | None:
    """Swap the Liger kernels into a built CausalLM (before peft wraps it), as
    `apply_liger_kernel_to_<type>` swaps the classes; returns the fused-loss head, if any."""
    for module in model.modules():
        name = type(module).__name__
        if kernels.rms_norm and name.endswith("RMSNorm"):
            module._liger_in_place = not (kernels.gemma_norm and "Gemma2" in name)
            module.forward = types.MethodType(_norm_forward, module)
        elif kernels.gated_mlp and name.endswith("MLP"):
            fused = hasattr(module, "gate_up_proj")
            module.forward = types.MethodType(_fused_gated_forward if fused else _gated_forward, module)
    if not kernels.fused_linear_cross_entropy:
        return None
    head = FusedLossHead(model.get_output_embeddings(), cc_major)
    object.__setattr__(model, "_liger_head", head)
    model.forward = types.MethodType(_fused_causal_lm_forward, model)
    return head


def _fused_causal_lm_forward(self, input_ids=None, attention_mask=None, labels=None, use_cache=None, **kwargs):
    """liger `lce_forward` in training with labels: the decoder, then the fused loss; no logits."""
    from transformers.modeling_outputs import CausalLMOutputWithPast

    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    outputs = self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=use_cache, **kwargs)
    loss = self._liger_head(outputs.last_hidden_state, labels) if labels is not None else None
    return CausalLMOutputWithPast(loss=loss, logits=None)
