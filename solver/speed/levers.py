"""What the memory levers cost or save in time (issue 16), beside speed/step_time.py's terms.
Every constant is in speed/constants.py with its source.

- Liger (`enable_liger_kernel`): the fused kernels remove memory-bound DRAM traffic (the loss's
  fp32 logits passes, RMSNorm's and SwiGLU's eager op chains); the matmul FLOPs are unchanged (the
  fused loss computes the same logits and gradients, in chunks). Counted as time saved at the
  GPU's effective DRAM bandwidth. The fitted matmul efficiency absorbed Hugging Face's
  elementwise time, so this is the upper end of the saving (benchmarks/liger.py).
- Offloaded checkpoints (`use_unsloth_gc`): each checkpointed layer input goes to pinned host
  RAM in the forward and comes back in that layer's backward with no prefetch
  (LLaMA-Factory `checkpointing.py:55, 67`): two PCIe copies per layer per micro-step, counted
  as not hidden (like COMM_OVERLAP_FRACTION: the conservative end).
- DoRA: the weight-norm recompute of every adapted linear in every forward pass.
- GaLore / APOLLO: the projector's SVD every GALORE_UPDATE_INTERVAL steps, amortised (APOLLO's
  random projection needs none).
- Packing and the data's mean sample length: how many tokens a micro-step computes, how many of
  them are real, and how long each attention span is (`data_shape`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..memory.activations import stream_bytes
from ..memory.liger import applied as liger_applied
from ..memory.params import lora_targets
from ..problem.config import TrainConfig
from ..problem.knobs import MemoryOptimizer
from ..specs.gpu import GpuSpec
from ..specs.model import MlpKind, ModelSpec
from . import constants as K


def _dram_bytes_per_s(gpu: GpuSpec) -> float:
    return gpu.memory_bandwidth_gbps * 1e9 * K.DRAM_EFFICIENCY


def _passes(config: TrainConfig) -> int:
    return 2 if config.grad_ckpt else 1  # forward passes per micro-step (the recompute is one more)


def liger_saved_s_per_micro_step(model: ModelSpec, gpu: GpuSpec, config: TrainConfig, tokens: int) -> float:
    """Seconds of DRAM traffic the applied Liger kernels remove from one micro-step of `tokens`."""
    kernels = liger_applied(model, config)
    if kernels is None:
        return 0.0
    saved = 0.0
    if kernels.fused_linear_cross_entropy:
        saved += K.LIGER_LOSS_BYTES_SAVED_PER_VOCAB * model.vocab_size
    if kernels.rms_norm:
        norms = model.num_layers * model.norms_per_layer + 1
        saved += norms * model.hidden_size * (_passes(config) * K.LIGER_NORM_FORWARD_BYTES_SAVED
                                              + K.LIGER_NORM_BACKWARD_BYTES_SAVED)
    if kernels.gated_mlp and model.mlp_kind == MlpKind.gated:
        saved += model.num_layers * model.intermediate_size * (_passes(config) * K.LIGER_GATED_FORWARD_BYTES_SAVED
                                                               + K.LIGER_GATED_BACKWARD_BYTES_SAVED)
    return saved * tokens / _dram_bytes_per_s(gpu)


def checkpoint_offload_bytes_per_micro_step(model: ModelSpec, config: TrainConfig, tokens: int) -> float:
    """Bytes `use_unsloth_gc` moves over PCIe in one micro-step: every layer's input out and back."""
    if not config.unsloth_gc:
        return 0.0
    return 2.0 * model.num_layers * tokens * model.hidden_size * stream_bytes(config)


def dora_s_per_micro_step(model: ModelSpec, gpu: GpuSpec, config: TrainConfig, matmul_flops_per_s: float) -> float:
    """The weight norms DoRA recomputes in every forward pass (forward, and the recompute)."""
    if not (config.dora and config.uses_lora):
        return 0.0
    r = config.lora_rank
    flops = bytes_moved = 0.0
    for m in lora_targets(model, config):
        flops += 2.0 * r * m.in_features * (m.in_features + m.out_features) * m.count
        bytes_moved += K.DORA_WEIGHT_NORM_BYTES_PER_WEIGHT * m.in_features * m.out_features * m.count
    per_pass = model.num_layers * (flops / matmul_flops_per_s + bytes_moved / _dram_bytes_per_s(gpu))
    return _passes(config) * per_pass


def projector_s_per_step(model: ModelSpec, gpu: GpuSpec, config: TrainConfig) -> float:
    """GaLore's SVD of every projected matrix, amortised over the update interval."""
    if config.memory_optimizer not in (MemoryOptimizer.galore, MemoryOptimizer.galore_layerwise):
        return 0.0
    flops = 0.0
    for m in model.linear_modules():
        k = min(m.in_features, m.out_features)
        flops += (4.0 * m.in_features * m.out_features * k + 8.0 * k ** 3) * m.count
    rate = gpu.fp32_tflops * 1e12 * K.MATMUL_EFFICIENCY_MAX
    return model.num_layers * flops / rate / K.GALORE_UPDATE_INTERVAL


@dataclass(frozen=True)
class DataShape:
    """Per row of a micro batch: tokens computed, real (non-padding) tokens, attention span."""

    computed_tokens: int
    real_tokens: int
    attention_span: int


def data_shape(config: TrainConfig) -> DataShape:
    """How the data fills a micro-step (LLaMA-Factory 0.9.5 `data/processor/supervised.py`,
    `data/collator.py`; /work/notes/llamafactory/facts.md D.3):
    - packed (`packing`): every row is cutoff_len tokens of samples (greedy knapsack fill, taken
      as full); plain packing lets a row's samples attend to each other (span = the row),
      `neat_packing` isolates them (span = the mean sample length when known);
    - unpacked, micro batch 1: a row is one sample, no padding (its mean length, when known);
    - unpacked, micro batch > 1: rows are padded to the longest sample of the micro batch, taken
      at cutoff_len (the length distribution is unknown: the slow end).
    Unknown mean length = cutoff_len: every figure is what fitplan assumed before."""
    seq = config.seq_len
    mean = config.mean_sample_len or seq
    if config.packing:
        return DataShape(seq, seq, mean if config.neat_packing else seq)
    if config.micro_batch == 1:
        return DataShape(mean, mean, mean)
    return DataShape(seq, mean, seq)
