"""GaLore, APOLLO, BAdam and Adam-mini: full-parameter training with less optimizer memory than
AdamW (issue 16). LLaMA-Factory 0.9.5 builds them in `train/trainer_utils.py` (GaLore :200-285,
APOLLO :288-369, BAdam :412-470, Adam-mini :473-495); the states below are read from the
optimizers' own code (galore-torch 1.0, apollo-torch 1.0.3, badam 1.4, adam-mini 1.1.1, wheels
from PyPI; /work/notes/llamafactory/facts.md D.5 cites each line).

- GaLore (`galore_target: all` = every decoder-layer Linear, lm_head excluded, `model_utils/
  misc.py:28-52`): per projected m x n weight (out x in) the projector `ortho_matrix` (r x n
  when m >= n, else m x r; the parameter's dtype, `galore_projector.py:12-40, 84-101`) and
  exp_avg / exp_avg_sq of the projected gradient (m x r or r x n, `adamw.py:92-105`); the other
  parameters (embeddings, lm_head, norms) keep AdamW's two full states. Every
  `galore_update_interval` steps an fp32 SVD of the gradient: an fp32 copy plus U and Vh
  (`get_orthogonal_matrix`, `torch.linalg.svd(full_matrices=False)`). The step allocates, per
  parameter in turn, the back-projected update and its scaled copy (m x n each, :116-127); for a
  non-projected parameter `exp_avg_sq.sqrt()` and `exp_avg / denom` (full size each).
- APOLLO: the same projected state shapes, a random projector (`random_projector.py:82-116`, no
  SVD), a scalar norm; the step's `p.grad * grad_scaling_factor` is full size (`apollo.py:175`).
- `*_layerwise`: one optimizer per parameter stepped from its post-accumulate-grad hook
  (trainer_utils.py:253-270), so only the gradient being made exists (the largest parameter's).
- BAdam (layer mode): only the active block (one decoder layer; embeddings and lm_head are never
  blocks, `block_optim.py:148-175` with LLaMA-Factory's defaults) requires grad; the model stays
  16-bit (LLaMA-Factory `model/adapter.py:317-318`); the block gets an fp32 copy as the optimizer's
  parameter, its gradient copied to fp32 (`block_optim.py:284, 515-516`) and AdamW states on it,
  reset at each switch. The planner takes the active block at layer 0, the worst place (every
  layer above it passes gradients).
- Adam-mini: one full first moment `m` per parameter (its dtype) and one second moment per head
  or output row (`adam_mini.py:235-303`): 1 state per parameter instead of 2; the step makes
  `grad * grad` and `m * stepsize` full size for each parameter in turn.
"""

from __future__ import annotations

from ..problem.config import TrainConfig
from ..problem.knobs import LAYERWISE_OPTIMIZERS, PROJECTED_OPTIMIZERS, MemoryOptimizer
from ..specs.model import ModelSpec
from ..units import FP32_BYTES, HALF_BYTES

SOURCE = ("LLaMA-Factory 0.9.5 train/trainer_utils.py; galore-torch 1.0 adamw.py, galore_projector.py; "
          "apollo-torch 1.0.3 apollo.py; badam 1.4 block_optim.py; adam-mini 1.1.1 adam_mini.py (memory/optimizers.py)")
ADAM_STATES = 2

_LF_KEY = {MemoryOptimizer.galore: "use_galore", MemoryOptimizer.galore_layerwise: "use_galore",
           MemoryOptimizer.apollo: "use_apollo", MemoryOptimizer.apollo_layerwise: "use_apollo",
           MemoryOptimizer.badam: "use_badam", MemoryOptimizer.adam_mini: "use_adam_mini"}


def lf_key(memory_optimizer: MemoryOptimizer) -> str:
    return _LF_KEY[memory_optimizer]


def _projected_weights(model: ModelSpec) -> list[tuple[int, int, int]]:
    """(out, in, copies) of every projected weight: the decoder layers' linear weights."""
    return [(m.out_features, m.in_features, m.count * model.num_layers) for m in model.linear_modules()]


def _largest_param(model: ModelSpec) -> int:
    layer_largest = max(m.in_features * m.out_features for m in model.linear_modules())
    return max(layer_largest, model.embedding_params(), model.lm_head_params())


def badam_block_params(model: ModelSpec) -> int:
    """BAdam's active block: one decoder layer."""
    return model.layer_params()


def projected_state_bytes(model: ModelSpec, config: TrainConfig, param_bytes: int) -> float:
    """GaLore / APOLLO states of the whole model: the projected weights' low-rank moments and
    projectors, AdamW's two full states for the rest (embeddings, lm_head, norms, biases)."""
    r = config.projection_rank
    projected_params = 0
    states = 0.0
    for out_f, in_f, copies in _projected_weights(model):
        rank = min(r, out_f, in_f)
        states += copies * (ADAM_STATES * rank * max(out_f, in_f) + rank * min(out_f, in_f))
        projected_params += copies * out_f * in_f
    rest = model.total_params() - projected_params
    return (states + ADAM_STATES * rest) * param_bytes


def state_bytes(model: ModelSpec, config: TrainConfig, trainable: int, param_bytes: int) -> float:
    """Optimizer states (BAdam: with its fp32 parameter copy) for `trainable` parameters."""
    m = config.memory_optimizer
    if m in PROJECTED_OPTIMIZERS:
        return projected_state_bytes(model, config, param_bytes)
    if m == MemoryOptimizer.badam:
        return trainable * (FP32_BYTES + ADAM_STATES * FP32_BYTES)  # fp32 master copy + AdamW on it
    if m == MemoryOptimizer.adam_mini:
        return trainable * param_bytes  # m only; v per head / row is negligible
    raise ValueError(m)


def gradient_bytes(model: ModelSpec, config: TrainConfig, trainable: int, param_bytes: int) -> float:
    """Gradients as they sit before the step (layerwise: only the one being made)."""
    m = config.memory_optimizer
    if m in LAYERWISE_OPTIMIZERS:
        return _largest_param(model) * param_bytes
    if m == MemoryOptimizer.badam:
        return trainable * FP32_BYTES  # the fp32 copies of the block's 16-bit gradients
    return trainable * param_bytes


def step_temporary_bytes(model: ModelSpec, config: TrainConfig, param_bytes: int) -> float:
    """The largest buffers alive inside the step (module docstring), for one parameter at a time."""
    m = config.memory_optimizer
    largest = _largest_param(model)
    if m in PROJECTED_OPTIMIZERS:
        step = 2 * largest * param_bytes  # back-projected update and its scaled copy / denom and ratio
        if m in (MemoryOptimizer.galore, MemoryOptimizer.galore_layerwise):
            svd = max(FP32_BYTES * (o * i + o * min(o, i) + min(o, i) * i) for o, i, _ in _projected_weights(model))
            step = max(step, svd)
        return step
    if m == MemoryOptimizer.badam:
        return HALF_BYTES * max(mod.in_features * mod.out_features for mod in model.linear_modules())
    if m == MemoryOptimizer.adam_mini:
        return 2 * largest * param_bytes
    return 0.0


def summary(model: ModelSpec, config: TrainConfig) -> str:
    m = config.memory_optimizer
    if m in PROJECTED_OPTIMIZERS:
        name = "GaLore" if m.value.startswith("galore") else "APOLLO"
        wise = "layer-wise (one gradient at a time, no accumulation, one GPU)" if m in LAYERWISE_OPTIMIZERS \
            else "whole-model step"
        return (f"{name} rank {config.projection_rank}, {wise}: the decoder layers' linear weights keep rank-"
                f"{config.projection_rank} moments and a projector, embeddings, lm_head and norms keep AdamW's "
                "(LLaMA-Factory sets no `optim` default for it: fitplan writes adamw_torch)")
    if m == MemoryOptimizer.badam:
        return (f"BAdam, layer mode: one decoder layer ({badam_block_params(model) / 1e6:,.1f}M params) trains at a "
                "time with an fp32 copy and AdamW states; the model stays 16-bit; switch every 50 steps (LLaMA-Factory "
                "badam_switch_interval default)")
    return "Adam-mini: one full moment per parameter, one second moment per head or output row"
