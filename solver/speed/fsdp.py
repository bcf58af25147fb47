"""What FSDP adds to a step's time: its collectives, the host copies of CPU offload and the
optimizer step on the CPU (speed/step_time.py calls these for FSDP plans).

Collectives per GPU (ring algorithms move (k-1)/k of the buffer over each of k GPUs' links):
- all-gather of every unit in the 16-bit param dtype (4-bit NF4 packed stays packed): in the
  forward and again in the backward under FULL_SHARD / HYBRID_SHARD; once per micro-step under
  SHARD_GRAD_OP (the unit stays gathered from forward to backward) and, under FSDP1, once per
  step while accumulating (no_sync keeps it gathered); none under NO_SHARD. FSDP1 keeps the root
  gathered from forward to backward (one gather per micro-step), accelerate 1.11 reshards the
  FSDP2 root after forward (two). Sources: memory/fsdp.py.
- reduce-scatter of the 16-bit gradients (accelerate sets reduce_dtype = param_dtype) at every
  micro-step that syncs: the last of each step (HF Trainer's no_sync, transformers 5.6
  trainer.py:1727-1737). NO_SHARD all-reduces them instead (2 (k-1)/k).
- HYBRID_SHARD: gathers and reduce-scatters inside the node; each shard's gradients are then
  all-reduced across the node replicas over the inter-node link (torch FSDP1 `_reduce_grad`).
- CPU offload (`fsdp_offload_params`): the shard is copied to the GPU before each all-gather and
  the sharded fp32 gradient back to the host; torch's AdamW steps on the CPU.
"""

from __future__ import annotations

from ..memory.fsdp import gathered_layers_bytes, gathered_root_bytes, reshards_after_forward, shard_group_size
from ..memory.params import frozen_params, trainable_params
from ..problem.config import TrainConfig
from ..problem.knobs import FsdpStrategy, Offload
from ..specs.gpu import GpuSet
from ..specs.model import ModelSpec
from ..units import FP32_BYTES, HALF_BYTES
from . import constants as K


def _gathers_per_step(config: TrainConfig) -> tuple[float, float]:
    """(all-gathers of each layer unit, of the root) per optimizer step."""
    accum = config.grad_accum
    if config.fsdp_strategy == FsdpStrategy.no_shard:
        return 0.0, 0.0
    if reshards_after_forward(config):
        return 2.0 * accum, (2.0 if config.fsdp_version == 2 else 1.0) * accum
    if config.fsdp_version == 1 and accum > 1:
        return 1.0, 1.0  # no_sync keeps SHARD_GRAD_OP units gathered between micro-steps
    return 1.0 * accum, 1.0 * accum


def fsdp_communication_s(model: ModelSpec, gpus: GpuSet, config: TrainConfig, link_bytes_per_s) -> float:
    """Seconds of FSDP collectives per optimizer step on one GPU; `link_bytes_per_s(k)` is the bus
    bandwidth of a collective over k GPUs (speed/step_time.collective_bytes_per_s)."""
    n = config.n_gpus
    if n == 1:
        return 0.0
    ns = shard_group_size(config, gpus.gpus_per_node)
    grads16 = HALF_BYTES * trainable_params(model, config)
    layer_gathers, root_gathers = _gathers_per_step(config)
    gathered = (layer_gathers * gathered_layers_bytes(model, config)
                + root_gathers * gathered_root_bytes(model, config))
    seconds = 0.0
    if ns > 1:
        ring = (ns - 1) / ns
        seconds += ring * (gathered + grads16) / link_bytes_per_s(ns)
    else:  # NO_SHARD: one all-reduce of the gradients per step
        seconds += 2 * (n - 1) / n * grads16 / link_bytes_per_s(n)
    replicas = n // ns
    if ns > 1 and replicas > 1:  # HYBRID_SHARD: each shard's gradients all-reduced across replicas
        seconds += 2 * (replicas - 1) / replicas * grads16 / ns / link_bytes_per_s(n)
    return seconds * (1 - K.COMM_OVERLAP_FRACTION)


def fsdp_offload_bytes(model: ModelSpec, gpus: GpuSet, config: TrainConfig) -> float:
    """Host <-> GPU bytes per optimizer step on one GPU under CPU offload."""
    if config.offload != Offload.all:
        return 0.0
    ns = shard_group_size(config, gpus.gpus_per_node)
    t = trainable_params(model, config)
    frozen_each = FP32_BYTES if config.fsdp_version == 2 else (0.5 if config.bits == 4 else HALF_BYTES)
    shard = (frozen_params(model, config) * frozen_each + FP32_BYTES * t) / ns
    layer_gathers, _ = _gathers_per_step(config)
    return max(layer_gathers, 1.0) * shard + FP32_BYTES * t / ns


def fsdp_cpu_optimizer_s(model: ModelSpec, gpus: GpuSet, config: TrainConfig) -> float:
    """torch AdamW on the host over each rank's shard; a node's ranks share its CPUs."""
    ns = shard_group_size(config, gpus.gpus_per_node)
    ranks_on_node = min(config.n_gpus, gpus.gpus_per_node)
    return trainable_params(model, config) / ns * ranks_on_node / K.TORCH_CPU_ADAMW_PARAMS_PER_S_PER_NODE
