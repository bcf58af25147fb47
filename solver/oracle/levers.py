"""The memory levers the trace runs besides Liger (oracle/liger.py): LLaMA-Factory 0.9.5's
offloaded checkpointing, reentrant checkpointing and its two upcast flags, applied to a built model
the way `model/model_utils/checkpointing.py` applies them. DoRA is peft's own (`use_dora=True`),
run as it is on fake tensors (oracle/build.py).

Imports torch: only oracle/build.py imports this module.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils._python_dispatch import _disable_current_modes

LAYERNORM_NAMES = ("norm", "ln")  # LLaMA-Factory extras/constants.py:54


def _host_copy(tensor: torch.Tensor) -> torch.Tensor:
    """`hidden_states.to("cpu", non_blocking=True)`: pinned host memory, which the GPU tracker
    must not count (the copy is made with the dispatch modes off, so it never sees it)."""
    with _disable_current_modes():
        return tensor.detach().clone()


class OffloadedCheckpoint(torch.autograd.Function):
    """LLaMA-Factory `checkpointing.py:43-77` UnslothGradientCheckpointing: the layer input to
    host RAM, the layer run without grad; in backward the input back on the GPU, the layer
    recomputed with grad and back-propagated."""

    @staticmethod
    def forward(ctx, forward_function, hidden_states, *args):
        saved = _host_copy(hidden_states)
        with torch.no_grad():
            outputs = forward_function(hidden_states, *args)
        ctx.save_for_backward(saved)
        ctx.forward_function = forward_function
        ctx.args = args
        return outputs

    @staticmethod
    def backward(ctx, grad_output):
        (hidden_states,) = ctx.saved_tensors
        hidden_states = hidden_states.clone().detach()  # .to("cuda", non_blocking=True): a new device tensor
        hidden_states.requires_grad_(True)
        with torch.enable_grad():
            outputs = ctx.forward_function(hidden_states, *ctx.args)
            output = outputs[0] if isinstance(outputs, tuple) else outputs
        torch.autograd.backward(output, grad_output)
        return (None, hidden_states.grad) + (None,) * len(ctx.args)


def offloaded_checkpoint(function, *args, **kwargs):
    """The `gradient_checkpointing_func` LLaMA-Factory installs with `use_unsloth_gc`
    (checkpointing.py:116-118), for layers with trainable parameters (:80-103)."""
    module = getattr(getattr(function, "func", function), "__self__", None)
    if module is not None and not any(p.requires_grad for p in module.parameters()):
        return function(*args, **kwargs)
    for arg in args:
        if torch.is_tensor(arg) and torch.is_floating_point(arg):
            arg.requires_grad_(True)
            break
    return OffloadedCheckpoint.apply(function, *args)


def upcast_layernorm(model: nn.Module) -> None:
    """`upcast_layernorm: true` (checkpointing.py:151-155): 1-D parameters whose name holds a
    LAYERNORM_NAMES entry become fp32."""
    for name, param in model.named_parameters():
        if param.ndim == 1 and any(ln in name for ln in LAYERNORM_NAMES):
            param.data = param.data.to(torch.float32)


def upcast_lmhead_output(model: nn.Module) -> None:
    """`upcast_lmhead_output: true` (checkpointing.py:137-140, 180-184): a forward hook casting
    lm_head's output to fp32, when lm_head is an nn.Linear that is not fp32."""
    head = model.get_output_embeddings()
    if isinstance(head, nn.Linear) and head.weight.dtype != torch.float32:
        head.register_forward_hook(lambda module, args, output: output.to(torch.float32))
