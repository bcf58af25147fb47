"""The vocabulary of the memory model: named terms (`Term`, each with the words reports use),
bytes that grow linearly with the micro batch (`Affine`), and the moments of a step at which
memory can peak (`Moment`, a sum of terms).

`fixed_bytes + bytes_per_sample * micro_batch` is exactly what both consumers need: the plain
evaluator plugs in a micro batch, and the CP-SAT model uses the two integer coefficients in a
linear constraint. Writing every term in this shape is what keeps the two in agreement.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


@dataclass(frozen=True)
class Affine:
    fixed_bytes: int = 0
    bytes_per_sample: int = 0  # one sample = seq_len tokens

    def at(self, micro_batch: int) -> int:
        return self.fixed_bytes + self.bytes_per_sample * micro_batch

    def __add__(self, other: "Affine") -> "Affine":
        return Affine(self.fixed_bytes + other.fixed_bytes, self.bytes_per_sample + other.bytes_per_sample)


ZERO = Affine()


def fixed(nbytes: float) -> Affine:
    """A term that does not depend on the micro batch (rounded up to whole bytes)."""
    return Affine(fixed_bytes=int(-(-nbytes // 1)))


def per_token(bytes_per_token: float, seq_len: int) -> Affine:
    """A term proportional to the tokens of a micro batch (rounded up to whole bytes per sample)."""
    return Affine(bytes_per_sample=int(-(-(bytes_per_token * seq_len) // 1)))


class Term(str, Enum):
    """Every named part of a GPU's memory. The value is the key in `estimate --json`
    (`breakdown_gib`, `overhead_gib`) and in the trace's categories."""

    # tensors (what torch.cuda.max_memory_allocated sees; memory/states.py, activations.py, peak.py)
    weights = "weights"
    trainable_params = "trainable_params"
    gradients = "gradients"
    optimizer_states = "optimizer_states"
    activations = "activations"
    logits_loss = "logits_loss"
    autocast_weight_copies = "autocast_weight_copies"
    comm_buffers = "comm_buffers"
    zero3_gathered_layer = "zero3_gathered_layer"
    # FSDP (memory/fsdp.py): the names are the FSDP trace's categories (oracle/fsdp_step.py)
    unsharded_params = "unsharded_params"  # units gathered for compute (the root, current and prefetched unit)
    all_gather_buffers = "all_gather_buffers"  # FSDP2's flat all-gather output of a unit
    unsharded_grads = "unsharded_grads"  # gradients of gathered params before their reduce-scatter
    reduce_scatter_buffers = "reduce_scatter_buffers"  # flat reduce-scatter input kept for the next unit
    # short-lived tensors: four causes, reported together as `transient` (the trace cannot tell
    # them apart: it sees temporaries of backward and of the optimizer step)
    transient = "transient"
    dequant_buffer = "dequant_buffer"  # bitsandbytes' 16-bit copy of the weight being multiplied
    backward_working_set = "backward_working_set"  # one layer's recompute and backward temporaries
    embedding_gradient = "embedding_gradient"  # the embedding's gradient made last (full FT)
    optimizer_temporaries = "optimizer_temporaries"  # buffers alive inside optimizer.step()
    # beyond tensors (memory/overheads.py)
    allocator_reserve = "allocator_reserve"
    cuda_context = "cuda_context"
    kernel_workspaces = "kernel_workspaces"
    nccl_buffers = "nccl_buffers"

    @property
    def label(self) -> str:
        """The words every report prints for this term."""
        return _LABELS[self.reported_as]

    @property
    def reported_as(self) -> "Term":
        """The term this one is summed into in reports (itself, or `transient`)."""
        return Term.transient if self in _TRANSIENT_CAUSES else self


_TRANSIENT_CAUSES = frozenset({Term.dequant_buffer, Term.backward_working_set, Term.embedding_gradient,
                               Term.optimizer_temporaries})

_LABELS = {
    Term.weights: "base weights",
    Term.trainable_params: "trainable params",
    Term.gradients: "gradients",
    Term.optimizer_states: "optimizer states",
    Term.activations: "activations",
    Term.logits_loss: "logits + loss",
    Term.autocast_weight_copies: "autocast weight copies",
    Term.transient: "transient",
    Term.comm_buffers: "comm buffers",
    Term.zero3_gathered_layer: "ZeRO-3 gathered layer",
    Term.unsharded_params: "FSDP gathered params",
    Term.all_gather_buffers: "FSDP all-gather buffer",
    Term.unsharded_grads: "FSDP unsharded grads",
    Term.reduce_scatter_buffers: "FSDP reduce-scatter buffer",
    Term.allocator_reserve: "allocator reserve",
    Term.cuda_context: "CUDA context",
    Term.kernel_workspaces: "kernel workspaces",
    Term.nccl_buffers: "NCCL buffers",
}


def label_of(key: str) -> str:
    """The words for a report key (a `Term` value); an unknown key is shown as it is."""
    try:
        return Term(key).label
    except ValueError:
        return key


@dataclass(frozen=True)
class Moment:
    """One candidate for the step's peak: named terms, each `fixed + per_sample * micro_batch`."""

    name: str
    phase: str
    terms: dict[Term, Affine] = field(default_factory=dict)

    def total(self) -> Affine:
        result = ZERO
        for term in self.terms.values():
            result = result + term
        return result

    def bytes_at(self, micro_batch: int) -> dict[str, int]:
        """Bytes of each reported term (the four transient causes summed), in the moment's order."""
        reported: dict[str, int] = {}
        for term, value in self.terms.items():
            key = term.reported_as.value
            reported[key] = reported.get(key, 0) + value.at(micro_batch)
        return reported
