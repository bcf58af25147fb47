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
from ..problem.knobs import MemoryOptimizer, Method
from ..specs.model import ModelSpec
from ..units import FP32_BYTES, HALF_BYTES
from .activations import (
    LayerRole,
    autocast_copy_params,
    checkpoint_bytes_per_token,
    forward_end_extra_per_token,
    dora_weight_norm_bytes,
    forward_end_logits_per_token,
    forward_layer_in_flight_per_token,
    fused_loss_buffers,
    layer_backward_working_set_per_token,
    layer_fixed_bytes,
    layer_roles,
    liger_final_norm_per_token,
    logits_loss_per_token,
    moe_activation_parts_per_token,
    quantized_dequant_bytes,
    saved_activations_fixed_bytes,
    saved_activations_per_token,
)
from . import levers, liger
from .layer_moments import after_feed_forward_moment, mixed_kind_moments
from .load import load_host_ram_bytes, load_moment
from .moe import aux_loss_bytes_per_token
from .fsdp import fsdp_load_moment, fsdp_model_states, fsdp_moments, uses_fsdp
from .params import trainable_params
from .prequantized import kept_dequantized_bytes
from .states import ModelStates, model_states, optimizer_step_temporary_bytes, uses_deepspeed
from .terms import ZERO, Affine, Moment, Term, fixed, per_token

PHASE_FORWARD_END = "forward end / loss"
PHASE_BACKWARD = "backward"
PHASE_OPTIMIZER = "optimizer step"


def _resident_terms(states: ModelStates, model: ModelSpec | None = None) -> dict[Term, Affine]:
    """What sits on the GPU for the whole step (the named parts of the weights on their own)."""
    parts = {term: fixed(value) for term, value in states.weight_parts.items() if value}
    terms = {
        Term.weights: fixed(states.weights - sum(states.weight_parts.values())),
        **parts,
        Term.trainable_params: fixed(states.trainable_params),
        Term.optimizer_states: fixed(states.optimizer_states),
    }
    if states.comm_buffers:
        terms[Term.comm_buffers] = fixed(states.comm_buffers)
    if states.zero3_gathered:
        gathered = Term.zero3_gathered_moe_block if model is not None and model.is_moe else Term.zero3_gathered_layer
        terms[gathered] = fixed(states.zero3_gathered)
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


def _autocast_copies_after_forward(model: ModelSpec, config: TrainConfig, fused_loss: bool = False) -> float:
    """After autocast exits, the copies survive only where a linear saved them for backward:
    all of them without checkpointing; with it only lm_head's (not checkpointed). Settled by
    the trace (issue 3): lora/freeze ckpt at the loss moment hold none. Liger's fused loss saves
    no copy of lm_head's weight (it keeps the gradients it made instead)."""
    if not config.grad_ckpt:
        return HALF_BYTES * autocast_copy_params(model, config, lm_head=not fused_loss)
    return HALF_BYTES * (autocast_copy_params(model, config, layers=0, lm_head=not fused_loss))


def _lm_head_gradient_bytes(model: ModelSpec, config: TrainConfig, states: ModelStates) -> float:
    """Gradients produced before the decoder layers' backward: the untied lm_head's (full FT)."""
    if config.method != Method.full or model.tie_word_embeddings:
        return 0.0
    total = trainable_params(model, config)
    return states.gradients * model.lm_head_params() / total if total else 0.0


def _loss_terms(model: ModelSpec, config: TrainConfig, compute_capability_major: int) -> tuple[dict, dict]:
    """(logits + loss terms at the end of the forward, at the start of backward), as Moment
    keywords. Liger's fused loss (memory/liger.py): the chunk loop's buffers, then grad_input
    (and lm_head's gradient, made in the forward) into the backward; else Hugging Face's
    materialised logits."""
    seq = config.seq_len
    if not liger.fused_loss(model, config):
        return ({"logits_loss": per_token(forward_end_logits_per_token(model, config), seq)},
                {"logits_loss": per_token(logits_loss_per_token(model), seq)})
    flce = fused_loss_buffers(model, config, compute_capability_major)
    grad_input = per_token(flce.after_loop_per_token, seq)
    loop = {"fused_loss_grad_input": grad_input,
            "fused_loss_logits_chunk": fixed(flce.chunk + flce.chunk_temporaries),
            "fused_loss_vectors": per_token(flce.per_token - flce.after_loop_per_token, seq),
            "fused_loss_weight_gradient": fixed(flce.weight_grad + flce.weight_grad_temporaries),
            "fused_loss_weight_cast": fixed(flce.weight_cast)}
    return loop, {"fused_loss_grad_input": grad_input, "fused_loss_weight_gradient": fixed(flce.weight_grad)}


def _activation_view(config: TrainConfig) -> TrainConfig:
    """The configuration the activation terms see. BAdam (layer mode) trains one decoder layer at a
    time with the embeddings and lm_head frozen: its activations are freeze's with one trainable
    layer, placed at layer 0 (memory/activations.py layer_roles), the worst place; its states
    come from the real configuration (memory/optimizers.py)."""
    if config.memory_optimizer == MemoryOptimizer.badam:
        return config.model_copy(update={"method": Method.freeze, "freeze_layers": 1})
    return config


def step_moments(model: ModelSpec, config: TrainConfig, gpus_per_node: int = 1,
                 compute_capability_major: int = 8) -> list[Moment]:
    """Every peak candidate of one training step on one GPU (`compute_capability_major` picks
    Liger's weight-gradient path)."""
    states = (fsdp_model_states if uses_fsdp(config) else model_states)(model, config, gpus_per_node)
    step_temporaries = optimizer_step_temporary_bytes(model, config)
    config = _activation_view(config)  # BAdam's activations are those of one trainable layer
    seq = config.seq_len
    resident = _resident_terms(states, model)
    grads_fwd = _gradients_during_forward(states, config)
    dequant = quantized_dequant_bytes(model, config)
    kept_all = fixed(kept_dequantized_bytes(model, config))  # GPTQ, no checkpointing (memory/prequantized.py)
    kept_one = fixed(kept_dequantized_bytes(model, config, layers=1))  # the layer being recomputed
    moe_parts = moe_activation_parts_per_token(model, config)
    dense_part = saved_activations_per_token(model, config) - sum(moe_parts.values())
    activations = per_token(dense_part, seq) + fixed(saved_activations_fixed_bytes(model, config))
    saved_parts = {term.value: per_token(value, seq) for term, value in moe_parts.items()}
    aux_loss = per_token(aux_loss_bytes_per_token(model, config), seq)
    working_set = layer_backward_working_set_per_token(model, config)
    loop_logits, loss_logits = _loss_terms(model, config, compute_capability_major)
    fused = liger.fused_loss(model, config)
    dora = fixed(dora_weight_norm_bytes(model, config))  # recomputed in each layer forward (and recompute)

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
        **saved_parts,
        **loop_logits,
        aux_loss_logits=aux_loss,
        autocast_weight_copies=fixed(_autocast_weight_copies(model, config)),
        dequant_buffer=fixed(dequant),
        dequantized_weights=kept_all,
    ), moment(
        "loss", PHASE_FORWARD_END,
        gradients=fixed(grads_fwd),
        activations=activations,
        **saved_parts,
        **loss_logits,
        aux_loss_logits=aux_loss,
        autocast_weight_copies=fixed(_autocast_copies_after_forward(model, config, fused)),
        dequant_buffer=fixed(dequant),
        dequantized_weights=kept_all,
    )]
    lm_head_grads = _lm_head_gradient_bytes(model, config, states)
    roles = layer_roles(model, config)
    backward_loss = {}  # what the fused loss leaves for the backward (memory/liger.py)
    if fused:
        # Liger (trace, solver/oracle/liger.py): the forward's last layer can peak when no logits
        # dominate; in backward grad_input is the gradient flowing down (LigerRMSNorm writes
        # dX into it) and the final norm has freed what it kept.
        final_norm = per_token(liger_final_norm_per_token(model, config), seq)
        before_norm = Affine(activations.fixed_bytes, activations.bytes_per_sample - final_norm.bytes_per_sample)
        moments.insert(0, moment(
            "forward_last_layer", PHASE_FORWARD_END,
            gradients=fixed(grads_fwd),
            activations=before_norm + per_token(forward_layer_in_flight_per_token(model, config), seq),
            dora_weight_norm=dora,
            autocast_weight_copies=fixed(_autocast_weight_copies(model, config)
                                         - HALF_BYTES * autocast_copy_params(model, config, layers=0)),
            dequant_buffer=fixed(dequant),
        ))
        activations = before_norm
        backward_loss = {"fused_loss_grad_input": loss_logits["fused_loss_grad_input"]}
    # With no logits to dominate (Liger), a layer's own weight gradients matter: its MLP's are
    # made before its attention backward runs (trace, llama/qwen3-shaped full and freeze eager
    # with --liger): the MLP's for the first layer processed, and all of layer 0's at the last.
    first_layer_grads = 0.0
    if fused and config.method in (Method.full, Method.freeze):
        mlp_params = sum(m.params for m in model.linear_modules() if m.input_tensor in ("mlp_in", "mlp_mid"))
        first_layer_grads = states.gradients / max(trainable_params(model, config), 1) * mlp_params

    def layer_copies(role: LayerRole, kind) -> Affine:
        if role not in (LayerRole.trainable, LayerRole.lora):
            return ZERO  # a frozen layer's weights are already 16-bit
        return fixed(HALF_BYTES * autocast_copy_params(model, config, layers=1, lm_head=False, kind=kind))
    if config.grad_ckpt:
        recomputed_fixed = fixed(layer_fixed_bytes(model, config, roles[-1], model.last_layer_kind))
        moments.append(moment(
            "backward_first_layer", PHASE_BACKWARD,
            gradients=fixed(max(grads_fwd, lm_head_grads + first_layer_grads)),
            activations=activations,
            autocast_weight_copies=layer_copies(roles[-1], model.last_layer_kind),  # the recompute casts it again
            backward_working_set=per_token(working_set, seq) + recomputed_fixed,
            dequant_buffer=fixed(dequant),
            dequantized_weights=kept_one,
            dora_weight_norm=dora,
            **backward_loss,
        ))
        n_train = min(config.freeze_layers, model.num_layers)
        if config.method == Method.freeze and 1 < n_train < model.num_layers:
            # freeze: the lowest trainable layer runs backward with the others' gradients made
            # (trace, llama-shaped freeze ckpt, small vocabulary: the peak is at that layer)
            moments.append(moment(
                "backward_lowest_trainable", PHASE_BACKWARD,
                gradients=fixed(max(grads_fwd, states.gradients * (n_train - 1) / n_train + first_layer_grads)),
                activations=activations,
                autocast_weight_copies=layer_copies(LayerRole.trainable, model.last_layer_kind),
                backward_working_set=per_token(working_set, seq),
                dequant_buffer=fixed(dequant),
                dora_weight_norm=dora,
                **backward_loss,
            ))
        # Issue 3 (trace): when layer 0 runs backward, its own and the embedding's gradients
        # do not exist yet; they complete in `backward_end`.
        layer0_and_embedding = 0.0
        if config.method == Method.full:
            each = states.gradients / max(trainable_params(model, config), 1)
            layer0_and_embedding = each * ((0 if fused else model.layer_params()) + model.embedding_params())
        moments.append(moment(
            "backward_last_layer", PHASE_BACKWARD,
            gradients=fixed(states.gradients - layer0_and_embedding),
            activations=per_token(checkpoint_bytes_per_token(model, config), seq),
            autocast_weight_copies=layer_copies(roles[0], model.first_layer_kind),
            backward_working_set=per_token(layer_backward_working_set_per_token(model, config, last=True), seq),
            dequant_buffer=fixed(dequant),
            dequantized_weights=kept_one,
            dora_weight_norm=dora,
            # grad_input reaches layer 0 as the residual gradient under LoRA; trainable layers
            # replace it on the way (trace, llama-shaped lora / freeze / full ckpt with --liger)
            **(backward_loss if config.uses_lora else {}),
        ))
        moments += mixed_kind_moments(model, config, states, moment)
        moments += after_feed_forward_moment(model, config, states, moment)
    else:
        # Issue 3 (trace): lm_head's backward has freed the logits and lm_head's weight copy.
        moments.append(moment(
            "backward", PHASE_BACKWARD,
            gradients=fixed(max(grads_fwd, lm_head_grads + first_layer_grads)),
            activations=activations,
            **saved_parts,
            autocast_weight_copies=fixed(HALF_BYTES * autocast_copy_params(model, config, lm_head=False)),
            backward_working_set=per_token(working_set, seq),
            dequant_buffer=fixed(dequant),
            dequantized_weights=kept_all,
            **backward_loss,
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
        optimizer_temporaries=fixed(step_temporaries),
    ))
    if uses_fsdp(config):
        moments = fsdp_moments(model, config, moments, states, gpus_per_node)
        moments.append(fsdp_load_moment(model, config, gpus_per_node))
    loading = load_moment(model, config)
    if loading is not None:
        moments.append(loading)
    return moments


def host_ram_bytes(model: ModelSpec, config: TrainConfig, gpus_per_node: int) -> int:
    """Host RAM per node: what CPU offload needs during training (DeepSpeed estimator, see
    memory/states.py; FSDP, memory/fsdp.py) with offloaded checkpoints (memory/levers.py) at the
    config's micro batch, or what loading takes before step 1 (memory/load.py), whichever is more."""
    states = (fsdp_model_states if uses_fsdp(config) else model_states)(model, config, gpus_per_node)
    offloaded = levers.checkpoint_host_bytes(model, config, checkpoint_bytes_per_token(model, config), gpus_per_node)
    return int(max(states.host_ram + offloaded, load_host_ram_bytes(model, config, gpus_per_node)))


def micro_batch_key(model: ModelSpec, config: TrainConfig) -> tuple:
    """What a configuration's figures depend on beyond an affine function of the micro batch:
    Liger's chunk rows (a power of two) and, with offloaded checkpoints, the host RAM. The
    planner keeps one memory table per value (planner/candidates.py)."""
    return (liger.chunk_rows(model, config), config.micro_batch if levers.offloads_checkpoints(config) else 0)
