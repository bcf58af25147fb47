"""What a GPU holds beyond the tensors a trace sees: the CUDA context, the caching allocator's
reserve, kernel workspaces and communication library buffers.

Decisions are made on `required = reserve(tensor peak) + context + workspaces`, never on the
tensor peak alone: an OOM at "fits" is the worst thing fitplan can do.

Constants and their sources (refined against published measurements in
benchmarks/calibration.py; see docs/accuracy.md):
- CUDA context: driver state, loaded kernels, cuBLAS/cuDNN handles; "roughly 0.3-1 GB per
  process" (shared/reference/trace-notes.md section 4). Not counted by
  `torch.cuda.max_memory_reserved()`, counted by nvidia-smi.
- Allocator reserve: `max_memory_reserved - max_memory_allocated`, "typically several % to 20 %"
  (trace-notes section 4): block rounding, split blocks and fragmentation of the caching allocator.
- cuBLAS workspace: PyTorch sizes it by `CUBLAS_WORKSPACE_CONFIG`, default `:4096:8` (+`:16:8`),
  i.e. 8 x 4 MiB + 8 x 16 KiB per handle and stream (PyTorch docs, "Reproducibility").
- NCCL: per peer and channel, NCCL_BUFFSIZE (4 MiB default) for each of the simple/LL/LL128
  protocols (NCCL docs, environment variables).
- FlashAttention backward keeps an fp32 dq accumulator and softmax_d for the layer being
  processed: about 4 * heads * head_dim + 4 * heads bytes per token (trace-notes section 4).
"""

from __future__ import annotations

from dataclasses import dataclass

from .affine import Affine, fixed, per_token
from .gpu_spec import MIB, GpuSpec
from .model_spec import ModelSpec
from .training_config import Attention, TrainConfig

CUDA_CONTEXT_BYTES = 600 * MIB
ALLOCATOR_RESERVE_FRACTION = 0.08
ALLOCATOR_RESERVE_FIXED_BYTES = 128 * MIB
CUBLAS_WORKSPACE_BYTES = 8 * 4 * MIB + 8 * 16 * 1024
NCCL_BYTES_PER_PEER = 3 * 4 * MIB * 2  # three protocols x NCCL_BUFFSIZE x send+receive
NCCL_MAX_PEERS_COUNTED = 8


@dataclass(frozen=True)
class Overheads:
    """Non-tensor memory, each term affine in the micro batch like the tensor terms."""

    allocator_reserve_fraction: float
    terms: dict[str, Affine]


def flash_backward_workspace(model: ModelSpec, config: TrainConfig) -> Affine:
    """fp32 dq accumulator + softmax_d of FlashAttention's backward for one layer."""
    if config.attn == Attention.eager:
        return Affine()
    return per_token(4 * model.q_dim + 4 * model.num_attention_heads, config.seq_len)


def overheads(model: ModelSpec, gpu: GpuSpec, config: TrainConfig) -> Overheads:
    """Everything beyond tensor memory, per GPU."""
    terms = {
        "cuda_context": fixed(CUDA_CONTEXT_BYTES),
        "kernel_workspaces": fixed(CUBLAS_WORKSPACE_BYTES) + flash_backward_workspace(model, config),
    }
    if config.n_gpus > 1:
        peers = min(config.n_gpus - 1, NCCL_MAX_PEERS_COUNTED)
        terms["nccl_buffers"] = fixed(NCCL_BYTES_PER_PEER * peers)
    return Overheads(allocator_reserve_fraction=ALLOCATOR_RESERVE_FRACTION, terms=terms)


def allocator_reserve(tensor_bytes: Affine, fraction: float) -> Affine:
    """Caching-allocator reserve on top of the tensor peak (grows with it)."""
    return Affine(int(tensor_bytes.fixed_bytes * fraction) + ALLOCATOR_RESERVE_FIXED_BYTES,
                  int(-(-tensor_bytes.bytes_per_sample * fraction // 1)))
