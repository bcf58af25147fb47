"""Backward peak candidates that layers of different kinds add under gradient checkpointing
(memory/peak.py has those of the first and the last layer processed).

With every layer alike, the backward peak is at the first layer processed (the most
activations) or at the last (the most gradients). With kinds mixed (Llama-4's dense and MoE
layers, DeepSeek's dense first layers) a layer of a heavier kind in the middle can set it: its
recompute and backward working set with the gradients of every later layer alive. And a
trainable MoE layer 0 finishes its experts' (large, fp32) weight gradients before its attention
runs backward, so both are alive together. Settled by the trace (tiny llama4_text and mixtral
configs, full ckpt eager, s = 256 / 512 / 1024: the peak moved to layer 1 / to layer 0 after
its MoE block).
"""

from __future__ import annotations

from typing import Callable

from ..problem.config import TrainConfig
from ..problem.knobs import Attention, Method
from ..specs.model import ModelSpec
from . import attention
from .activations import (
    EAGER_SOFTMAX_BACKWARD_BYTES_PER_HEAD_KEY,
    LayerRole,
    autocast_copy_params,
    autocast_on,
    checkpoint_bytes_per_token,
    detached_input_gradient_per_token,
    effective_attention,
    layer_backward_working_set_per_token,
    layer_bytes_per_token,
    layer_roles,
    rope_cache_bytes,
    stream_bytes,
)
from .moe import experts_trainable
from .params import lora_params_per_layer, trainable_params
from .states import ModelStates
from .terms import ZERO, Moment, fixed, per_token
from ..units import HALF_BYTES

PHASE_BACKWARD = "backward"
# After layer 0's feed-forward backward: an MoE block's attention recompute keeps its own saved
# tensors less 8h (fitted at s = 256, tiny mixtral); under eager attention the softmax backward
# (12 x heads x s) plus 20h plus the q/k norm's recompute (fitted at s = 512 and 1024 on tiny
# mixtral, glm4_moe and qwen3_moe: exact).
AFTER_MOE_RECOMPUTE_LESS_PER_HIDDEN = 8
AFTER_MOE_SOFTMAX_EXTRA_PER_HIDDEN = 20


def _kinds_in_order(model: ModelSpec) -> list:
    return [run.kind for run in model.runs() for _ in range(run.count)]


def _layer_trainable_params(model: ModelSpec, config: TrainConfig, role: LayerRole, kind) -> int:
    if role == LayerRole.trainable:
        return model.layer_params(kind)
    if role == LayerRole.lora:
        return lora_params_per_layer(model, config, kind)
    return 0


def _gradient_share(model: ModelSpec, config: TrainConfig, states: ModelStates, params: float) -> float:
    total = trainable_params(model, config)
    return states.gradients * params / total if total else 0.0


def mixed_kind_moments(model: ModelSpec, config: TrainConfig, states: ModelStates,
                       moment: Callable[..., Moment]) -> list[Moment]:
    """The backward of the earliest layer of each kind (not the first or last layer processed),
    with the gradients of the layers after it and of the head alive."""
    if not config.grad_ckpt or len(model.layer_kinds()) < 2:
        return []
    seq = config.seq_len
    kinds, roles = _kinds_in_order(model), layer_roles(model, config)
    head = model.lm_head_params() + model.norm_params_per_norm() if config.method == Method.full else 0
    moments = []
    for kind, _ in model.layer_kinds():
        position = kinds.index(kind)
        if position in (0, model.num_layers - 1) or roles[position] == LayerRole.frozen_no_grad:
            continue
        later = head + sum(_layer_trainable_params(model, config, roles[i], kinds[i])
                           for i in range(position + 1, model.num_layers))
        working_set = layer_backward_working_set_per_token(model, config, position=position)
        copies = ZERO
        if roles[position] in (LayerRole.trainable, LayerRole.lora):  # the recompute casts its weights again
            copies = fixed(HALF_BYTES * autocast_copy_params(model, config, layers=1, lm_head=False, kind=kind))
        # the inputs of this layer and the ones before it, the masks and RoPE tables (the final
        # norm's tensors and the later layers' inputs are gone)
        masks = attention.checkpointed_mask_bytes(model, effective_attention(model, config), seq, stream_bytes(config),
                                                  kinds[:position + 1])
        kept = per_token((position + 1) * checkpoint_bytes_per_token(model, config) + masks, seq)
        moments.append(moment(
            f"backward_layer_{position}", PHASE_BACKWARD,
            gradients=fixed(_gradient_share(model, config, states, later)),
            activations=kept + fixed(rope_cache_bytes(model, config)),
            autocast_weight_copies=copies,
            backward_working_set=per_token(working_set, seq),
        ))
    return moments


def after_feed_forward_moment(model: ModelSpec, config: TrainConfig, states: ModelStates,
                              moment: Callable[..., Moment]) -> list[Moment]:
    """Full fine-tuning of an MoE model under checkpointing, in layer 0 once its feed-forward block
    (an MoE block, or a DeepSeek / Qwen dense first layer) has run backward: every gradient but
    its q/k/v projections' and the embedding's alive; its attention's recompute (MoE block only)
    or, eager, its softmax backward with the q/k norm's recompute; the layer inputs, RoPE tables
    and masks."""
    kind = model.first_layer_kind
    attn = effective_attention(model, config)
    # Dense layers too: a trainable dense layer 0 finishes its MLP's fp32 weight gradients before
    # its eager softmax runs backward (trace, llama-mha full ckpt eager s=512: the layer-0 peak
    # held 2.27 MiB of MLP gradients and 12 x heads x s^2 + 20h per token, as the MoE block's).
    if not (config.grad_ckpt and experts_trainable(config)):
        return []
    if not kind.moe and attn != Attention.eager:
        return []
    h, seq = model.hidden_size, config.seq_len
    inputs = ("attn_in", "q_latent", "kv_latent")
    not_yet = sum(m.params for m in model.linear_modules(kind) if m.input_tensor in inputs) + model.embedding_params()
    working_set = 0
    if kind.moe:
        own = layer_bytes_per_token(model, config, LayerRole.trainable, kind)
        working_set = own - AFTER_MOE_RECOMPUTE_LESS_PER_HIDDEN * h
    if attn == Attention.eager:
        qk_norm = attention.qk_norm_bytes(model, kind, HALF_BYTES, trainable=True)
        # reentrant checkpointing: the detached input's gradient and the residual gradient that
        # arrived from the feed-forward block, both alive in the softmax backward (trace, tiny
        # mixtral / qwen3_moe / deepseek_v2 / llama-mha full ckpt eager, s = 512 and 1024: +8h in
        # fp32 against non-reentrant, two of the vectors detached_input_gradient_per_token counts)
        softmax = (EAGER_SOFTMAX_BACKWARD_BYTES_PER_HEAD_KEY * model.num_attention_heads * seq
                   + AFTER_MOE_SOFTMAX_EXTRA_PER_HIDDEN * h + qk_norm
                   + 2 * detached_input_gradient_per_token(model, config))
        working_set = max(working_set, softmax)
    masks = attention.checkpointed_mask_bytes(model, attn, seq, stream_bytes(config), [kind])
    # autocast's 16-bit copies of the attention projections still to run backward (trace: 2 bytes x
    # q/k/v params at the layer-0 softmax peak, llama-mha 0.375 MiB, mixtral 0.25 MiB)
    attention_params = not_yet - model.embedding_params()
    copies = fixed(HALF_BYTES * attention_params) if autocast_on(config) else ZERO
    return [moment(
        "backward_after_feed_forward", PHASE_BACKWARD,
        gradients=fixed(states.gradients - _gradient_share(model, config, states, not_yet)),
        autocast_weight_copies=copies,
        activations=per_token(checkpoint_bytes_per_token(model, config) + masks, seq)
        + fixed(rope_cache_bytes(model, config)),
        backward_working_set=per_token(working_set, seq),
    )]
