"""PyTorch FSDP, as accelerate 1.11 applies it for LLaMA-Factory 0.9.5: the model states each GPU
keeps sharded, the units it gathers for compute at each moment of a step, the host RAM of CPU
offload, and what loading the model needs (docs/fsdp.md).

How accelerate wraps a Hugging Face model (`fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP`):
- one unit per decoder layer (`_no_split_modules`), and the root unit holding what no layer holds:
  the input embedding, the final norm and an untied lm_head (accelerate 1.11
  `utils/fsdp_utils.py:665-673` for FSDP2; FSDP1 `auto_wrap_policy`). Under FSDP1 with a PEFT
  model, transformers swaps in peft's `fsdp_auto_wrap_policy`: each LoRA A/B linear is a unit of
  its own inside its layer (transformers 5.6 `integrations/fsdp.py:73-92`); its bytes are counted
  with the layer's here.
- The root stays gathered from the start of the forward to the end of the backward: FSDP1 never
  reshards the root after forward (torch `fsdp/_runtime_utils.py:493-500`); under FSDP2 the root's
  forward spans the whole model and its pre-backward re-gathers it at the loss. For a large
  vocabulary this unit (2 x V x h in 16 bits, x2 untied) is FSDP's largest term.

Per-GPU bytes (Ns = GPUs in a shard group: all of them, or one node's for HYBRID_SHARD, 1 for
NO_SHARD and on one GPU, where FSDP1 falls back to NO_SHARD, `fsdp/_init_utils.py:427-438`):
- sharded: trainable parameters as an fp32 master shard, 4 T / Ns (accelerate upcasts trainable
  flat params after wrapping, FSDP1 `accelerator.py:1921-1962`; FSDP2 upcasts the whole model,
  `fsdp_utils.py:702-707`, so frozen weights are fp32 shards too); frozen weights in their load
  dtype (16-bit, or NF4 packed in `bnb_4bit_quant_storage`, which changes the dtype, not the
  bytes: bitsandbytes 0.50.2 `backends/cuda/ops.py:392`); AdamW states 8 T / Ns; after the backward
  fp32 sharded gradients 4 T / Ns. The NF4 block constants are a module attribute (`quant_state`),
  not a parameter: every GPU keeps all of them.
- gathered, in the 16-bit `param_dtype` of accelerate's mixed_precision (`set_mixed_precision`):
  the root, the unit computing and, in backward, the next unit prefetched (FSDP1 BACKWARD_PRE;
  FSDP2 `_backward_prefetch`, `_fsdp_param_group.py:795-831`). FSDP2 also keeps one flat
  all-gather output per unit until the next unit's copy-out (`_fsdp_param_group.py:429-432,
  478-487`); FSDP1 gathers straight into its flat parameter.
- reduce-scatter: one unit's flat 16-bit gradient input (FSDP2 keeps the last one until the next
  unit's post-backward, `reduce_scatter_max_input_buffers = 1`; FSDP1's is its flat gradient,
  built by `cat` while the per-parameter gradients are alive).
- SHARD_GRAD_OP keeps every unit gathered from its forward to its post-backward.
- Gradient accumulation: HF Trainer runs every micro-step but the last under `no_sync`
  (transformers 5.6 `trainer.py:1727-1737`), which keeps UNSHARDED 16-bit gradients of every
  trainable parameter (FSDP2 `_fsdp_param.py:802-821`; FSDP1 `_runtime_utils.py:743-746`).
- CPU offload (`fsdp_offload_params`): shards, gradients and the optimizer step live on the host;
  the GPU keeps what it gathers.

Held to an FSDP2 trace of the real model code on fake tensors under a fake process group
(`fitplan trace --sharding fsdp --fsdp-version 2`, tests/oracle/test_fsdp_trace_vs_formula.py);
the closed form matched every traced FSDP term to the byte in the research runs
(/work/notes/fsdp/findings.md section 4). FSDP1 differs only where its source says so (above).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..problem.config import TrainConfig
from ..problem.knobs import FsdpStrategy, Method, Offload
from ..specs.model import ModelSpec
from ..units import FP32_BYTES, HALF_BYTES
from .activations import (
    RMSNORM_SAVED_SCALAR_BYTES,
    LayerRole,
    checkpoint_bytes_per_token,
    layer_bytes_per_token,
    layer_roles,
    rope_cache_bytes,
)
from .load import PHASE_LOAD
from .params import frozen_params, lora_params_per_layer, trainable_params
from .states import ModelStates, nf4_constant_bytes, optimizer_state_bytes_each
from .terms import ZERO, Affine, Moment, Term, fixed, per_token


def uses_fsdp(config: TrainConfig) -> bool:
    return config.fsdp_strategy is not None


def shard_group_size(config: TrainConfig, gpus_per_node: int) -> int:
    """GPUs that share one copy of the model states."""
    if config.n_gpus == 1 or config.fsdp_strategy == FsdpStrategy.no_shard:
        return 1
    if config.fsdp_strategy == FsdpStrategy.hybrid_shard:
        return min(config.n_gpus, gpus_per_node)
    return config.n_gpus


def reshards_after_forward(config: TrainConfig) -> bool:
    """FULL_SHARD / HYBRID_SHARD free a unit after its forward; SHARD_GRAD_OP keeps it."""
    return config.fsdp_strategy != FsdpStrategy.shard_grad_op


def root_params(model: ModelSpec) -> int:
    """The root unit: input embedding, untied lm_head and the final norm."""
    return model.embedding_params() + model.lm_head_params() + model.norm_params_per_norm()


def _layer_linear_weights(model: ModelSpec) -> int:
    return sum(m.weight_params for m in model.linear_modules())


def layer_trainable_params(model: ModelSpec, config: TrainConfig, index: int) -> int:
    """Trainable parameters of decoder layer `index` (0 = first)."""
    if config.method == Method.full:
        return model.layer_params()
    if config.uses_lora:
        return lora_params_per_layer(model, config)
    trained = min(config.freeze_layers, model.num_layers)
    return model.layer_params() if index >= model.num_layers - trained else 0


def trainable_params_in_layers(model: ModelSpec, config: TrainConfig, layers: range) -> int:
    """Trainable parameters of these decoder layers, summed: every layer trains alike but under
    freeze, which trains the last `freeze_layers` (an integer closed form of the per-layer sum)."""
    layers = range(max(layers.start, 0), min(layers.stop, model.num_layers))
    if not layers:
        return 0
    if config.method != Method.freeze:
        return len(layers) * layer_trainable_params(model, config, layers.start)
    first_trained = model.num_layers - min(config.freeze_layers, model.num_layers)
    trained = len(range(max(layers.start, first_trained), layers.stop))
    return trained * layer_trainable_params(model, config, model.num_layers - 1)


def gathered_layers_bytes(model: ModelSpec, config: TrainConfig) -> float:
    """Every decoder layer as FSDP gathers it, summed first to last (speed/fsdp.py): a layer's bytes
    depend on its index only through whether freeze trains it, so two values are computed."""
    n_layers = model.num_layers
    first_trained = n_layers - min(config.freeze_layers, n_layers) if config.method == Method.freeze else 0
    frozen = gathered_layer_bytes(model, config, 0)
    trained = gathered_layer_bytes(model, config, n_layers - 1)
    return sum(trained if k >= first_trained else frozen for k in range(n_layers))


def _layer_frozen_bytes(model: ModelSpec, config: TrainConfig, index: int) -> float:
    """A layer's frozen base as stored (16-bit, or NF4 packed at 4 bits per weight)."""
    if layer_trainable_params(model, config, index) and not config.uses_lora:
        return 0.0  # a trained layer (full, freeze's last layers) has no frozen part
    if config.bits == 4:
        linear = _layer_linear_weights(model)
        return 0.5 * linear + HALF_BYTES * (model.layer_params() - linear)
    return HALF_BYTES * model.layer_params()


def _root_trainable(model: ModelSpec, config: TrainConfig) -> int:
    return root_params(model) if config.method == Method.full else 0


def gathered_layer_bytes(model: ModelSpec, config: TrainConfig, index: int) -> float:
    """One decoder layer as FSDP gathers it for compute: every parameter in the 16-bit param
    dtype (frozen NF4 stays packed). NO_SHARD gathers nothing; its mixed-precision copy of the
    trainable parameters is what it adds (FSDP1 `_mp_shard`, freed in `post_reshard`), unless
    offloaded."""
    trained = HALF_BYTES * layer_trainable_params(model, config, index)
    if config.fsdp_version == 1 and config.uses_lora and config.fsdp_strategy in (FsdpStrategy.full_shard,
                                                                                   FsdpStrategy.hybrid_shard):
        # each LoRA linear is a unit of its own (peft's wrap policy), gathered one at a time
        trained = HALF_BYTES * _largest_trainable_matrix(model, config)
    if _copies_only_trainable(config):
        return trained
    return _layer_frozen_bytes(model, config, index) + trained


def _copies_only_trainable(config: TrainConfig) -> bool:
    """NO_SHARD computes on the parameters in place, adding only the 16-bit copy of fp32 ones; with
    CPU offload every unit is copied to the GPU to compute (FSDP1 `_flat_param.py` NO_SHARD +
    CPU offloading), as a gathered unit."""
    return config.fsdp_strategy == FsdpStrategy.no_shard and config.offload != Offload.all


def gathered_root_bytes(model: ModelSpec, config: TrainConfig) -> float:
    if _copies_only_trainable(config):
        return HALF_BYTES * _root_trainable(model, config)
    return HALF_BYTES * root_params(model)


def _largest_gathered_layer(model: ModelSpec, config: TrainConfig) -> float:
    return max(gathered_layer_bytes(model, config, k) for k in (0, model.num_layers - 1))


# ---- sharded model states ----------------------------------------------------------------------

def _frozen_shard_bytes(model: ModelSpec, config: TrainConfig) -> tuple[float, float]:
    """(sharded frozen bytes before division by Ns, replicated NF4 constants)."""
    n_frozen = frozen_params(model, config)
    if n_frozen == 0:
        return 0.0, 0.0
    if config.fsdp_version == 2:
        # accelerate 1.11 casts the whole model to fp32 after fully_shard (fsdp_utils.py:702-707)
        return FP32_BYTES * n_frozen, 0.0
    if config.bits == 4:
        linear = model.num_layers * _layer_linear_weights(model)
        return 0.5 * linear + HALF_BYTES * (n_frozen - linear), nf4_constant_bytes(linear)
    return HALF_BYTES * n_frozen, 0.0


def fsdp_model_states(model: ModelSpec, config: TrainConfig, gpus_per_node: int) -> ModelStates:
    """Per-GPU model states under FSDP (module docstring). `gradients` is the fp32 sharded
    gradient the optimizer steps; `host_ram` is per node, with CPU offload."""
    ns = shard_group_size(config, gpus_per_node)
    t = trainable_params(model, config)
    frozen, constants = _frozen_shard_bytes(model, config)
    master = FP32_BYTES * t
    states = t * optimizer_state_bytes_each(model, config)
    grads = FP32_BYTES * t
    if config.offload == Offload.all:
        ranks_on_node = min(config.n_gpus, gpus_per_node)
        host = ranks_on_node * (frozen + master + grads + states) / ns
        return ModelStates(weights=constants, trainable_params=0.0, gradients=0.0, optimizer_states=0.0,
                           comm_buffers=0.0, zero3_gathered=0.0, host_ram=host)
    return ModelStates(weights=frozen / ns + constants, trainable_params=master / ns, gradients=grads / ns,
                       optimizer_states=states / ns, comm_buffers=0.0, zero3_gathered=0.0, host_ram=0.0)


# ---- what is gathered, moment by moment ------------------------------------------------------------

def _mlp_trainable_params(model: ModelSpec, config: TrainConfig, index: int) -> int:
    """Trainable parameters of a layer's MLP and its norm: the gradients that exist when the
    layer's MLP backward (the layer's peak, memory/activations.py) is running."""
    if not layer_trainable_params(model, config, index):
        return 0
    mlp = [m for m in model.linear_modules() if m.input_tensor in ("mlp_in", "mlp_mid")]
    if config.uses_lora:
        return sum(config.lora_rank * (m.in_features + m.out_features) * m.count
                   for m in model.modules_matching(config.lora_targets) if m in mlp)
    return sum(m.params for m in mlp) + model.norm_params_per_norm()


def _largest_trainable_matrix(model: ModelSpec, config: TrainConfig) -> int:
    """The largest single gradient autograd makes at once in a decoder layer."""
    if config.uses_lora:
        targets = model.modules_matching(config.lora_targets)
        return max(config.lora_rank * max(m.in_features, m.out_features) for m in targets)
    if not trainable_params_in_layers(model, config, range(model.num_layers)):
        return 0
    return max(m.in_features * m.out_features for m in model.linear_modules())


def _sharded_grad_bytes(model: ModelSpec, config: TrainConfig, layers: range, ns: int, *,
                        root: bool = False) -> float:
    """fp32 sharded gradients of these layers (and the root) after their reduce-scatter."""
    if config.offload == Offload.all:
        return 0.0  # copied to the host right after the reduce-scatter
    t = trainable_params_in_layers(model, config, layers)
    if root:
        t += _root_trainable(model, config)
    return FP32_BYTES * t / ns


def _output_projection_grad_bytes(model: ModelSpec, config: TrainConfig) -> float:
    """Full fine-tuning: the lm_head's 16-bit gradient (the embedding's, tied) exists from the
    lm_head's backward to the root's post-backward at the very end."""
    return HALF_BYTES * model.embedding_params() if config.method == Method.full else 0.0


# What the end of a decoder layer's backward holds besides the layer's gradients: the gradient
# flowing in, the input norm's backward temporaries (fp32 upcast, rsqrt and their gradients) and
# the layer input's gradient. Settled by the FSDP2 trace (llama-shaped full ckpt, 8 ranks, s16 b2:
# 213,504 B = 26.1 h per token at the end of layer 1's backward).
LAYER_END_BACKWARD_BYTES_PER_HIDDEN = 26
# The loss's saved tensors when the backward starts (before any of its gradients): the fp32
# log-softmax output. Settled by the FSDP2 trace (the root is re-gathered at that moment).
BACKWARD_START_LOGITS_BYTES_PER_VOCAB = 4


def fsdp_moments(model: ModelSpec, config: TrainConfig, dense: list[Moment], states: ModelStates,
                 gpus_per_node: int) -> list[Moment]:
    """The step's peak candidates under FSDP. The dense moments keep their activations, logits
    and working set and get FSDP's gathered units and gradients; FSDP adds its own:
    - forward_first_unit (FSDP2): layer 0's copy-out while the root's flat all-gather output is
      still referenced (`wait_for_unshard` holds the previous state in a local until it returns,
      _fsdp_param_group.py:429-432): the root twice and layer 0 twice;
    - forward_last_layer: the last layer's copy-out (FSDP2: the previous layer's flat buffer too);
    - backward_start (FSDP2, the root resharded after forward): the root re-gathered, flat buffer
      and parameters, while the loss's saved tensors wait for their gradients;
    - backward_layer_end: the end of layer L-2's backward: all its gradients, layer L-1's kept
      reduce-scatter input and sharded gradients, layer L-3 prefetched; FSDP1 then builds the
      unit's flat gradient (backward_layer_cat);
    - root_reduce (full fine-tuning): the root's gradients reduce-scattered last."""
    ns = shard_group_size(config, gpus_per_node)
    n_layers = model.num_layers
    last = n_layers - 1
    root = gathered_root_bytes(model, config)
    layer = _largest_gathered_layer(model, config)
    v2 = config.fsdp_version == 2
    reshard = reshards_after_forward(config)
    accumulating = config.grad_accum > 1
    # no_sync keeps every unsharded 16-bit gradient between micro-steps; under FSDP1 SHARD_GRAD_OP
    # also keeps every unit gathered then (`_should_free_in_backward`, _runtime_utils.py:811-827)
    accumulated = HALF_BYTES * trainable_params(model, config) if accumulating else 0.0
    output_grad = _output_projection_grad_bytes(model, config)
    root_grads = HALF_BYTES * _root_trainable(model, config)
    in_flight = HALF_BYTES * _largest_trainable_matrix(model, config)
    by_name = {m.name: m for m in dense}
    resident = {k: v for k, v in by_name["optimizer"].terms.items()
                if k in (Term.weights, Term.trainable_params, Term.optimizer_states)}

    def grads16(index: int, mlp_only: bool = False) -> float:
        if not 0 <= index < n_layers:
            return 0.0
        return HALF_BYTES * (_mlp_trainable_params(model, config, index) if mlp_only
                             else layer_trainable_params(model, config, index))

    # FSDP1 + LoRA: each adapter linear is its own unit, built and reduced on its own (at most one
    # adapter's flat gradient at a time); otherwise the layer is one unit
    leaf_units = not v2 and config.uses_lora and reshard

    def unit_grads16(index: int) -> float:
        return HALF_BYTES * _largest_trainable_matrix(model, config) if leaf_units else grads16(index)

    def shards_after(index: int) -> float:
        return _sharded_grad_bytes(model, config, range(index + 1, n_layers), ns)

    def gathered(units_in_layers: int, *, prefetch: float = 0.0, flat: float = 0.0, with_root: bool = True):
        """(unsharded params, all-gather buffers): FSDP2 keeps flat buffers apart, FSDP1 gathers into
        its flat parameters (a prefetched unit is gathered parameters there)."""
        params = (root if with_root else 0.0) + layer * units_in_layers
        if v2:
            return params, prefetch + flat
        return params + prefetch, 0.0

    def forward_units(units: int) -> int:
        """Layers gathered in the forward after the first: SHARD_GRAD_OP keeps each one gathered from
        its forward to its backward, so at the last layer they all are."""
        return n_layers if not reshard else units

    def backward_units(index: int) -> int:
        """Layers gathered while layer `index` runs backward: SHARD_GRAD_OP still holds 0..index."""
        if not reshard:
            return n_layers if (accumulating and not v2) else index + 1
        return 1

    def _last_micro_step(t: dict[Term, float], k: int) -> None:
        """The larger of a no_sync micro-step (every gradient kept whole) and the last one, where
        the layers after k have been reduced: their gradients are fp32 shards now, and (FSDP2) the
        reduce-scatter input of layer k+1 is kept."""
        reduced = HALF_BYTES * trainable_params_in_layers(model, config, range(k + 1, n_layers))
        kept_input = grads16(k + 1) if v2 else 0.0
        if shards_after(k) + kept_input > reduced:
            t[Term.unsharded_grads] -= reduced
            t[Term.gradients] = shards_after(k)
            t[Term.reduce_scatter_buffers] = kept_input

    # FSDP1 prefetches the unit that ran before this one in the forward; with LoRA that is the
    # previous layer's last LoRA linear, so the previous layer's base is only gathered by the time
    # this layer's backward ends (FSDP1 trace, llama-shaped LoRA, 8 ranks)
    mid_layer_prefetch = reshard and (v2 or not config.uses_lora)

    # FSDP2 peaks at the end of layer L-2's backward, with layer L-1's reduce-scatter input kept; FSDP1
    # keeps nothing of the previous unit, so at the end of the first layer's (more activations alive)
    layer_end_index = max(last - 1, 0) if v2 else last

    def fsdp_terms(name: str) -> dict[Term, float]:
        prefetch = layer if reshard else 0.0
        t = {Term.gradients: 0.0, Term.unsharded_grads: accumulated}
        if name == "forward_first_unit":
            up, ag = gathered(1, flat=root + layer)
        elif name == "forward_last_layer":
            up, ag = gathered(forward_units(1), flat=2 * layer)
        elif name == "forward_end":
            up, ag = gathered(forward_units(0), flat=layer)
        elif name == "backward_start":
            up, ag = gathered(forward_units(0), flat=root)
        elif name == "loss":
            up, ag = gathered(forward_units(0), prefetch=prefetch)
        elif name in ("backward_first_layer", "backward", "backward_layer_end", "backward_layer_cat",
                      "backward_next_layer_cat", "backward_last_layer"):
            k = {"backward_layer_end": layer_end_index, "backward_layer_cat": layer_end_index,
                 "backward_next_layer_cat": max(last - 1, 0), "backward_last_layer": 0}.get(name, last)
            at_end = name in ("backward_layer_end", "backward_layer_cat", "backward_next_layer_cat")
            prefetching = k > 0 and (at_end or (mid_layer_prefetch and name != "backward_last_layer"))
            up, ag = gathered(backward_units(k), prefetch=prefetch if prefetching else 0.0)
            if accumulating:
                # Under no_sync nothing is reduced; in the last micro-step the layers after k are: their
                # kept gradients become shards and a reduce-scatter input (_last_micro_step).
                if v2:  # each new gradient is added into the kept one: one matrix in flight; tied, the
                    # lm_head's waits for the embedding's
                    t[Term.unsharded_grads] += in_flight + (output_grad if model.tie_word_embeddings else 0.0)
                else:  # FSDP1 builds each new flat gradient by `cat` before adding it (and the root's
                    # waits for the embedding's): FSDP1 trace, llama-shaped full, 3 micro-steps
                    new = 2 * grads16(k) if at_end else grads16(k, mlp_only=True)
                    t[Term.unsharded_grads] += output_grad + new
                _last_micro_step(t, k)
            elif name in ("backward_first_layer", "backward", "backward_last_layer"):
                t[Term.unsharded_grads] += output_grad + grads16(k, mlp_only=True)  # the MLP's backward
                t[Term.reduce_scatter_buffers] = grads16(k + 1) if v2 else 0.0
                t[Term.gradients] = shards_after(k)
            else:  # the end of the layer's backward: all its gradients
                t[Term.unsharded_grads] += output_grad + unit_grads16(k)
                # FSDP2 keeps the previous unit's reduce-scatter input; FSDP1 builds this unit's flat
                # gradient by `cat` (backward_layer_cat), after the norm's temporaries are gone
                t[Term.reduce_scatter_buffers] = grads16(k + 1) if v2 else (
                    unit_grads16(k) if name != "backward_layer_end" else 0.0)
                t[Term.gradients] = shards_after(k)
        elif name == "backward_end":  # the embedding's gradient is being made
            up, ag = gathered(0)
            if accumulating:  # the new one is added into the kept one (_embedding_gradient)
                _last_micro_step(t, -1)
            else:
                t[Term.unsharded_grads] += root_grads
                # FSDP1 builds the root's flat gradient by `cat` while its per-parameter ones live;
                # tied, the cat comes after autograd's sum of the two (in _embedding_gradient) is freed
                flat_cat = 0.0 if model.tie_word_embeddings else root_grads
                t[Term.reduce_scatter_buffers] = grads16(0) if v2 else flat_cat
                t[Term.gradients] = shards_after(-1)
        elif name == "root_reduce":  # resharded, its gradients copied into the reduce-scatter input
            up, ag = 0.0, 0.0  # (the last micro-step: every layer's accumulated gradient is reduced by now)
            t[Term.unsharded_grads] = output_grad if v2 else 0.0
            t[Term.reduce_scatter_buffers] = root_grads * (1 + 1 / ns)
            t[Term.gradients] = shards_after(-1) + _sharded_grad_bytes(model, config, range(0), ns, root=True)
        else:  # optimizer
            return {Term.gradients: states.gradients}
        t[Term.unsharded_params], t[Term.all_gather_buffers] = up, ag
        return t

    def moment(name: str, phase: str, base: dict[Term, Affine]) -> Moment:
        terms = dict(base)
        for term, value in fsdp_terms(name).items():
            terms[term] = fixed(value)
        return Moment(name=name, phase=phase, terms={k: v for k, v in terms.items() if v != ZERO})

    loss = by_name["loss"]
    dequant = {Term.dequant_buffer: loss.terms[Term.dequant_buffer]} if Term.dequant_buffer in loss.terms else {}
    moments = []
    if v2:
        embedded = {Term.activations: per_token(HALF_BYTES * model.hidden_size, config.seq_len)
                    + fixed(rope_cache_bytes(model, config))}
        moments.append(moment("forward_first_unit", loss.phase, {**resident, **embedded}))
    inside = {k: v for k, v in loss.terms.items() if k != Term.logits_loss}
    moments.append(moment("forward_last_layer", loss.phase,
                          {**inside, Term.activations: _activations_before_layer(model, config, last)}))
    for m in dense:
        if m.name == "loss" and v2 and reshard:
            start = {**inside, Term.logits_loss: per_token(BACKWARD_START_LOGITS_BYTES_PER_VOCAB * model.vocab_size,
                                                           config.seq_len)}
            moments.append(moment("backward_start", m.phase, start))
        terms = dict(m.terms)
        if m.name == "backward_end":
            # accumulating, the new embedding gradient (tied: the sum) is added into the kept one
            added = fixed(output_grad if accumulating else 0)
            terms[Term.embedding_gradient] = _embedding_gradient(model, config) + added
        moments.append(moment(m.name, m.phase, terms))
        if m.name in ("backward_first_layer", "backward"):
            before = {**resident, **dequant,
                      Term.activations: _activations_before_layer(model, config, layer_end_index)}
            moments.append(moment("backward_layer_end", m.phase, {
                **before, Term.backward_working_set: per_token(LAYER_END_BACKWARD_BYTES_PER_HIDDEN * model.hidden_size,
                                                               config.seq_len)}))
            if not v2:  # FSDP1's flat `cat` comes after the input norm's backward has freed its temporaries;
                # at layer L-2 one layer's activations fewer but layer L-1's gradient shards more
                moments.append(moment("backward_layer_cat", m.phase, before))
                if n_layers > 1:
                    moments.append(moment("backward_next_layer_cat", m.phase, {
                        **before, Term.activations: _activations_before_layer(model, config, last - 1)}))
        if m.name == "backward_end":
            moments.append(moment("root_reduce", m.phase, {**resident, **dequant}))
    return moments


def _activations_before_layer(model: ModelSpec, config: TrainConfig, index: int) -> Affine:
    """What the forward saved for layers 0..index-1, plus layer `index`'s checkpointed input
    (still referenced until its backward ends) and the rotary cache."""
    roles = layer_roles(model, config)
    if config.grad_ckpt:
        saved = checkpoint_bytes_per_token(model, config)
        per = sum(saved for r in roles[:index + 1] if r != LayerRole.frozen_no_grad)
    else:
        # + layer `index`'s input norm, whose fp32 input and rsqrt its backward reads last (FSDP2
        # trace, llama-shaped full, no checkpointing, s48 b2: +4h + 2 per token)
        each = {r: layer_bytes_per_token(model, config, r) for r in set(roles[:index])}
        per = sum(each[r] for r in roles[:index])
        per += FP32_BYTES * model.hidden_size + RMSNORM_SAVED_SCALAR_BYTES
    return per_token(per, config.seq_len) + fixed(rope_cache_bytes(model, config))


def _embedding_gradient(model: ModelSpec, config: TrainConfig) -> Affine:
    """The embedding output's gradient (16-bit: FSDP computes in the param dtype) and, tied, the
    lm_head's gradient waiting in autograd's input buffer for the embedding's (16-bit)."""
    tied = 2 * HALF_BYTES * model.embedding_params() if model.tie_word_embeddings else 0
    return fixed(tied) + per_token(HALF_BYTES * model.hidden_size, config.seq_len)


# ---- loading -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FsdpLoad:
    """What loading and wrapping the model needs, per GPU and per node (docs/fsdp.md): the `load`
    moment before the first step, beside ZeRO-3's (memory/load.py)."""

    shard_bytes: float  # the sharded states built so far (all of them, at the last unit)
    unit_bytes: float  # the largest unit being wrapped, twice (moved whole + flattened by torch.cat)
    host_ram_bytes: float  # per node, while the checkpoint is read

    @property
    def gpu_bytes(self) -> float:
        return self.shard_bytes + self.unit_bytes


def fsdp_load(model: ModelSpec, config: TrainConfig, gpus_per_node: int, *,
              cpu_ram_efficient_loading: bool = True) -> FsdpLoad:
    """Derived from source, not traced:
    - host: with `fsdp_cpu_ram_efficient_loading` only each node's local rank 0 reads the
      checkpoint (transformers 5.6 `modeling_utils.py:4617-4624`: the other ranks skip it), taken
      at its 16-bit bytes; without it, every process of the node loads the whole model. (For an
      unquantized model transformers 5.6 still gives the other ranks `zeros_like` CPU copies of
      every parameter, same lines: the figure is then every rank's either way.)
    - GPU: FSDP1 wraps bottom-up; each unit is moved to the GPU whole (`_move_module_to_device`)
      and flattened by `torch.cat` into its flat parameter before it is sharded, so the largest
      unit (the root) is briefly there twice, on top of the shards already made (which CPU
      offload moves to the host as they are made)."""
    ranks = min(config.n_gpus, gpus_per_node)
    checkpoint = HALF_BYTES * model.total_params()
    one_reader = cpu_ram_efficient_loading and (config.bits != 16 or ranks == 1)
    host = checkpoint * (1 if one_reader else ranks)
    # with CPU offload each unit's shard moves to the host as soon as it is made
    states = fsdp_model_states(model, config, gpus_per_node)
    unit = max(HALF_BYTES * root_params(model), _largest_gathered_layer(model, config))
    return FsdpLoad(shard_bytes=states.weights + states.trainable_params, unit_bytes=2 * unit, host_ram_bytes=host)


def fsdp_load_moment(model: ModelSpec, config: TrainConfig, gpus_per_node: int) -> Moment:
    """The load as a peak candidate on the GPU (`fsdp_load`): derived from accelerate's and
    PyTorch's wrapping code, not traced, so it is constrained like training's moments rather than
    left to a note (an OOM while wrapping is as real as one in step 1)."""
    load = fsdp_load(model, config, gpus_per_node)
    return Moment(name="load", phase=PHASE_LOAD, terms={Term.weights: fixed(load.shard_bytes),
                                                        Term.fsdp_unit_flattened: fixed(load.unit_bytes)})
