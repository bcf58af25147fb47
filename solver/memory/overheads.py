"""What a GPU holds beyond the tensors a trace sees: the CUDA context, the caching allocator's
reserve, kernel workspaces and communication library buffers.

Three figures come out of this module (solver/memory/estimate.py shows them):
- reserved = tensor peak + the allocator's steady reserve + allocator-side workspaces: what the
  caching allocator must hold;
- required = reserved + CUDA context + NCCL: what the GPU must hold (nvidia-smi). `fits` is
  decided on it; an OOM at "fits" is the worst thing fitplan can do;
- max reserved = reserved + the reclaimable variable-length segments below: what
  `torch.cuda.max_memory_reserved()` reports on unpacked data (the calibrated figure).

Constants and their sources. Fitted ones were fitted on published measurements
(shared/reference/measured-calibration.csv, copied to benchmarks/data/; fit and residuals in
docs/accuracy.md, reproduced by `python benchmarks/calibration.py`):
- CUDA context: driver state, loaded kernels, cuBLAS/cuDNN handles; "roughly 0.3-1 GB per
  process" (shared/reference/trace-notes.md section 4). Not counted by `max_memory_reserved`.
- Allocator reserve, steady part: `max_memory_reserved - max_memory_allocated` is "typically
  several % to 20 %" (trace-notes section 4). FITTED: 2 % of the tensor peak + 512 MiB.
  Weights and optimizer states are allocated once and never fragment, so the fraction is small;
  the pattern-dependent part is the next term.
- Allocator reserve, variable-length blocks (FITTED, the largest term the trace cannot see):
  with variable sample lengths (no packing) every micro-step allocates the vocabulary-sized loss
  buffers (fp32 logits, log-softmax and their gradients) at a different size. The caching
  allocator keeps the freed segments; a longer step cannot reuse the shorter steps' segments
  and cudaMallocs new ones. On the ms-swift sequence-length sweep (Qwen-1.8B and Qwen-7B LoRA,
  A100, max_memory_reserved) the excess over the traced tensor peak is the same for both models
  (same 151,936 vocabulary, different hidden sizes) and grows with the MEAN kept sample length,
  not the maximum: 3.85 x (the live loss buffers, 12 x vocab bytes per token) x mean length,
  +-8 % over 512..8192. `VARIABLE_LENGTH_BLOCK_FACTOR` below; the mean length is a fraction of
  seq_len that fitplan does not know for the user's data, so it takes 1 (every sample at
  seq_len), which is the conservative end. The reserve is reclaimable: at the memory limit the
  allocator frees its cache and retries before raising OOM (c10 CUDACachingAllocator:
  `release_available_cached_blocks`, then `release_cached_blocks`, then retry), which is why
  measured `max_memory_reserved` never exceeds the card. So it is reported (max reserved) but does
  not decide `fits` (lead's decision: it would turn working plans into false "does not fit").
- cuBLAS workspace: PyTorch sizes it by `CUBLAS_WORKSPACE_CONFIG`, default `:4096:8` (+`:16:8`),
  i.e. 8 x 4 MiB + 8 x 16 KiB per handle and stream (PyTorch docs, "Reproducibility");
  allocated through the caching allocator, so inside `max_memory_reserved`.
- FlashAttention backward keeps an fp32 dq accumulator and softmax_d for the layer being
  processed: about 4 * heads * head_dim + 4 * heads bytes per token (trace-notes section 4).
- NCCL: per peer and channel, NCCL_BUFFSIZE (4 MiB default) for each of the simple/LL/LL128
  protocols (NCCL docs, environment variables); cudaMalloc'd by NCCL, outside the allocator.
- DeepSpeed's reduce bucket, ZeRO-3 gathered layer and DDP buckets are tensors: they live in
  solver/memory/states.py, not here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..problem.config import TrainConfig
from ..problem.knobs import Attention
from ..specs.gpu import GpuSpec
from ..specs.model import ModelSpec
from ..units import MIB
from .activations import loss_bytes_per_token
from .terms import ZERO, Affine, Moment, Term, fixed, per_token

CUDA_CONTEXT_BYTES = 600 * MIB
ALLOCATOR_RESERVE_FRACTION = 0.02  # fitted, see module docstring and docs/accuracy.md
ALLOCATOR_RESERVE_FIXED_BYTES = 512 * MIB  # fitted, idem
VARIABLE_LENGTH_BLOCK_FACTOR = 3.85  # fitted, idem: cached loss-buffer segments per mean-length step
CUBLAS_WORKSPACE_BYTES = 8 * 4 * MIB + 8 * 16 * 1024
NCCL_BYTES_PER_PEER = 3 * 4 * MIB * 2  # three protocols x NCCL_BUFFSIZE x send+receive
NCCL_MAX_PEERS_COUNTED = 8

# Terms that are cudaMalloc'd outside PyTorch's caching allocator (not in max_memory_reserved).
OUTSIDE_ALLOCATOR_TERMS = frozenset({Term.cuda_context, Term.nccl_buffers})


@dataclass(frozen=True)
class Overheads:
    """Non-tensor memory, each term affine in the micro batch like the tensor terms."""

    allocator_reserve_fraction: float
    terms: dict[Term, Affine]
    variable_length_blocks: Affine = field(default=ZERO)  # part of the allocator reserve

    def allocator_side(self) -> Affine:
        """Terms allocated through the caching allocator (inside max_memory_reserved)."""
        total = ZERO
        for name, term in self.terms.items():
            if name not in OUTSIDE_ALLOCATOR_TERMS:
                total = total + term
        return total

    def outside_allocator(self) -> Affine:
        total = ZERO
        for name, term in self.terms.items():
            if name in OUTSIDE_ALLOCATOR_TERMS:
                total = total + term
        return total


def flash_backward_workspace(model: ModelSpec, config: TrainConfig) -> Affine:
    """fp32 dq accumulator + softmax_d of FlashAttention's backward for one layer."""
    if config.attn == Attention.eager:
        return Affine()
    return per_token(4 * model.q_dim + 4 * model.num_attention_heads, config.seq_len)


def variable_length_block_reserve(model: ModelSpec, config: TrainConfig,
                                  mean_length_fraction: float | None = None) -> Affine:
    """Cached segments of the vocabulary-sized loss buffers left by micro-steps of other lengths
    (fitted; module docstring). `mean_length_fraction` = mean sample length / seq_len of the
    data (default: the config's, 1 when unknown: conservative). Packed data has one length, so
    no segment is left behind (lead: packing removes the term)."""
    if config.packing:
        return ZERO
    if mean_length_fraction is None:
        mean_length_fraction = config.mean_length_fraction
    bytes_per_token = VARIABLE_LENGTH_BLOCK_FACTOR * loss_bytes_per_token(model, config) * mean_length_fraction
    return per_token(bytes_per_token, config.seq_len)


def overheads(model: ModelSpec, gpu: GpuSpec, config: TrainConfig,
              mean_length_fraction: float | None = None) -> Overheads:
    """Everything beyond tensor memory, per GPU."""
    terms = {
        Term.cuda_context: fixed(CUDA_CONTEXT_BYTES),
        Term.kernel_workspaces: fixed(CUBLAS_WORKSPACE_BYTES) + flash_backward_workspace(model, config),
    }
    if config.n_gpus > 1:
        peers = min(config.n_gpus - 1, NCCL_MAX_PEERS_COUNTED)
        terms[Term.nccl_buffers] = fixed(NCCL_BYTES_PER_PEER * peers)
    return Overheads(allocator_reserve_fraction=ALLOCATOR_RESERVE_FRACTION, terms=terms,
                     variable_length_blocks=variable_length_block_reserve(model, config, mean_length_fraction))


def variable_length_reserve_at(moment: Moment, blocks: Affine) -> Affine:
    """The variable-length segments a moment adds on top of its tensors. The optimizer step's
    temporaries are carved out of those cached free segments before the allocator asks the
    driver for more, so there only the part they do not fill counts (fitted on the ms-swift
    full fine-tuning rows at seq 512/1024, whose peak is the foreach AdamW step)."""
    if moment.name != "optimizer":
        return blocks
    temporaries = moment.terms.get(Term.optimizer_temporaries, ZERO)
    # Exact at micro batch 1, above the truth for larger ones (the reuse is taken off once).
    reused = min(temporaries.at(1), blocks.at(1))
    return Affine(blocks.fixed_bytes - reused, blocks.bytes_per_sample)


def allocator_reserve(tensor_bytes: Affine, fraction: float, variable_length_blocks: Affine = ZERO) -> Affine:
    """Caching-allocator reserve on top of the tensor peak: a steady fraction of it, a fixed
    slack, and the cached segments of variable-length blocks."""
    steady = Affine(int(tensor_bytes.fixed_bytes * fraction) + ALLOCATOR_RESERVE_FIXED_BYTES,
                    int(-(-tensor_bytes.bytes_per_sample * fraction // 1)))
    return steady + variable_length_blocks
