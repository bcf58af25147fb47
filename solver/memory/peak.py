"""Where the peak happens: the moments of a training step at which memory can be highest, each
a sum of named terms, each term affine in the micro batch.

A step's peak is the largest of these moments (trace-notes Q6, "whole-step peak = max of three
candidates", re-checked by `fitplan trace`):
- `loss`: end of forward / start of backward. Every layer's saved tensors and the fp32 logits,
  log-softmax and their gradients are alive together.
- `backward_first_layer` / `backward_last_layer` (checkpointing): one layer is recomputed and runs
  backward while the checkpoints of the others (or the gradients built so far) are alive.
- `backward` (no checkpointing): the last layer's backward temporaries on top of all saved tensors.
- `optimizer`: gradients, optimizer states and step temporaries.
Gradients are alive during the forward pass when gradient accumulation keeps them between
micro-steps (HF Trainer zeroes them only after the optimizer step).
"""

from __future__ import annotations

from ..problem.config import TrainConfig
from ..problem.knobs import Method
from ..specs.model import ModelSpec
from ..units import FP32_BYTES, HALF_BYTES
from .activations import (
    LayerRole,
    autocast_copy_params,
    checkpoint_bytes_per_token,
    forward_end_extra_per_token,
    forward_end_logits_per_token,
    layer_backward_working_set_per_token,
    layer_roles,
    logits_loss_per_token,
    quantized_dequant_bytes,
    rope_cache_bytes,
    saved_activations_per_token,
)
from .fsdp import fsdp_model_states, fsdp_moments, uses_fsdp
from .params import trainable_params
from .states import ModelStates, model_states, optimizer_step_temporary_bytes, uses_deepspeed
from .terms import ZERO, Affine, Moment, Term, fixed, per_token

PHASE_FORWARD_END = "forward end / loss"
PHASE_BACKWARD = "backward"
PHASE_OPTIMIZER = "optimizer step"


def _resident_terms(states: ModelStates) -> dict[Term, Affine]:
    """What sits on the GPU for the whole step."""
    terms = {
        Term.weights: fixed(states.weights),
        Term.trainable_params: fixed(states.trainable_params),
        Term.optimizer_states: fixed(states.optimizer_states),
    }
    if states.comm_buffers:
        terms[Term.comm_buffers] = fixed(states.comm_buffers)
    if states.zero3_gathered:
        terms[Term.zero3_gathered_layer] = fixed(states.zero3_gathered)
    return terms


def _gradients_during_forward(states: ModelStates, config: TrainConfig) -> float:
    """DeepSpeed keeps its gradient partitions allocated; plain PyTorch only while accumulating."""
    if uses_deepspeed(config) or config.grad_accum > 1:
        return states.gradients
    return 0.0


def _autocast_weight_copies(model: ModelSpec, config: TrainConfig) -> float:
    """Autocast caches a 16-bit cast of every fp32 trainable weight a matmul reads for the whole
    forward pass (torch autocast weight cache: leaf tensors that require grad), so full
    fine-tuning under AMP holds 2 bytes per such parameter more until the forward ends.
    (Edited by the trace work, issue 3: linear weights and lm_head only, see
    memory/activations.py autocast_copy_params.)"""
    return HALF_BYTES * autocast_copy_params(model, config)


def _autocast_copies_after_forward(model: ModelSpec, config: TrainConfig) -> float:
    """After autocast exits, the copies survive only where a linear saved them for backward:
    all of them without checkpointing; with it only lm_head's (not checkpointed). Settled by
    the trace (issue 3): lora/freeze ckpt at the loss moment hold none."""
    if not config.grad_ckpt:
        return _autocast_weight_copies(model, config)
    return HALF_BYTES * (autocast_copy_params(model, config, layers=0))


def _lm_head_gradient_bytes(model: ModelSpec, config: TrainConfig, states: ModelStates) -> float:
    """Gradients produced before the decoder layers' backward: the untied lm_head's (full FT)."""
    if config.method != Method.full or model.tie_word_embeddings:
        return 0.0
    total = trainable_params(model, config)
    return states.gradients * model.lm_head_params() / total if total else 0.0


def step_moments(model: ModelSpec, config: TrainConfig, gpus_per_node: int = 1) -> list[Moment]:
    """Every peak candidate of one training step on one GPU."""
    states = (fsdp_model_states if uses_fsdp(config) else model_states)(model, config, gpus_per_node)
    seq = config.seq_len
    resident = _resident_terms(states)
    grads_fwd = _gradients_during_forward(states, config)
    dequant = quantized_dequant_bytes(model, config)
    activations = per_token(saved_activations_per_token(model, config), seq) + fixed(rope_cache_bytes(model, config))
    working_set = layer_backward_working_set_per_token(model, config)

    def moment(name: str, phase: str, **extra: Affine) -> Moment:
        terms = dict(resident)
        terms.update({Term(k): v for k, v in extra.items() if v != ZERO})
        return Moment(name=name, phase=phase, terms=terms)

    # Issue 3 (trace): the end of the forward (inside autocast, all weight copies cached,
    # 16-bit + fp32 logits + log_softmax output) is its own moment; it is the peak of full
    # fine-tuning with checkpointing.
    moments = [moment(
        "forward_end", PHASE_FORWARD_END,
        gradients=fixed(grads_fwd),
        activations=activations + per_token(forward_end_extra_per_token(model, config), seq),
        logits_loss=per_token(forward_end_logits_per_token(model), seq),
        autocast_weight_copies=fixed(_autocast_weight_copies(model, config)),
        dequant_buffer=fixed(dequant),
    ), moment(
        "loss", PHASE_FORWARD_END,
        gradients=fixed(grads_fwd),
        activations=activations,
        logits_loss=per_token(logits_loss_per_token(model), seq),
        autocast_weight_copies=fixed(_autocast_copies_after_forward(model, config)),
        dequant_buffer=fixed(dequant),
    )]
    lm_head_grads = _lm_head_gradient_bytes(model, config, states)
    roles = layer_roles(model, config)

    def layer_copies(role: LayerRole) -> Affine:
        if role not in (LayerRole.trainable, LayerRole.lora):
            return ZERO  # a frozen layer's weights are already 16-bit
        return fixed(HALF_BYTES * autocast_copy_params(model, config, layers=1, lm_head=False))
    if config.grad_ckpt:
        moments.append(moment(
            "backward_first_layer", PHASE_BACKWARD,
            gradients=fixed(max(grads_fwd, lm_head_grads)),
            activations=activations,
            autocast_weight_copies=layer_copies(roles[-1]),  # the recompute casts that layer again
            backward_working_set=per_token(working_set, seq),
            dequant_buffer=fixed(dequant),
        ))
        # Issue 3 (trace): when layer 0 runs backward, its own and the embedding's gradients
        # do not exist yet; they complete in `backward_end`.
        layer0_and_embedding = 0.0
        if config.method == Method.full:
            each = states.gradients / max(trainable_params(model, config), 1)
            layer0_and_embedding = each * (model.layer_params() + model.embedding_params())
        moments.append(moment(
            "backward_last_layer", PHASE_BACKWARD,
            gradients=fixed(states.gradients - layer0_and_embedding),
            activations=per_token(checkpoint_bytes_per_token(model, config), seq),
            autocast_weight_copies=layer_copies(roles[0]),
            backward_working_set=per_token(layer_backward_working_set_per_token(model, config, last=True), seq),
            dequant_buffer=fixed(dequant),
        ))
    else:
        # Issue 3 (trace): lm_head's backward has freed the logits and lm_head's weight copy.
        moments.append(moment(
            "backward", PHASE_BACKWARD,
            gradients=fixed(max(grads_fwd, lm_head_grads)),
            activations=activations,
            autocast_weight_copies=fixed(HALF_BYTES * autocast_copy_params(model, config, lm_head=False)),
            backward_working_set=per_token(working_set, seq),
            dequant_buffer=fixed(dequant),
        ))
    if config.method == Method.full:
        # Issue 3 (trace): the embedding's gradient is made last, with every other gradient
        # alive; with tied embeddings it is a new fp32 buffer added into the shared gradient.
        # Tied: lm_head's fp32 gradient waits in autograd's input buffer until the embedding's
        # arrives, then both are summed into a third buffer (trace, gemma2-shaped full: +2 x 4Vh).
        tied_temp = 2 * FP32_BYTES * model.embedding_params() if model.tie_word_embeddings else 0
        moments.append(moment(
            "backward_end", PHASE_BACKWARD,
            gradients=fixed(states.gradients),
            # + the embedding output's fp32 gradient (trace: 4h + 8 B/token)
            embedding_gradient=fixed(tied_temp) + per_token(FP32_BYTES * model.hidden_size, seq),
            dequant_buffer=fixed(dequant),
        ))
    moments.append(moment(
        "optimizer", PHASE_OPTIMIZER,
        gradients=fixed(states.gradients),
        optimizer_temporaries=fixed(optimizer_step_temporary_bytes(model, config)),
    ))
    if uses_fsdp(config):
        return fsdp_moments(model, config, moments, states, gpus_per_node)
    return moments


def host_ram_bytes(model: ModelSpec, config: TrainConfig, gpus_per_node: int) -> int:
    """Host RAM per node that CPU offload needs (DeepSpeed estimator, see memory/states.py; FSDP,
    memory/fsdp.py)."""
    return int((fsdp_model_states if uses_fsdp(config) else model_states)(model, config, gpus_per_node).host_ram)
