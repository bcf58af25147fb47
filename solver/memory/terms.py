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
    dequantized_weights = "dequantized_weights"  # GPTQ kernels' fp16 weights kept for backward
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
    dora_weight_norm = "dora_weight_norm"  # DoRA's weight-norm recompute of one linear (memory/levers.py)
    # Liger's fused linear cross-entropy (memory/liger.py), reported together as `logits_loss`
    fused_loss_grad_input = "fused_loss_grad_input"
    fused_loss_logits_chunk = "fused_loss_logits_chunk"
    fused_loss_vectors = "fused_loss_vectors"
    fused_loss_weight_gradient = "fused_loss_weight_gradient"
    fused_loss_weight_cast = "fused_loss_weight_cast"
    # parts of the terms above that MoE and multimodal models bring (memory/moe.py): each is
    # reported inside its parent term and named on its own in `terms_gib` / the explanation
    expert_weights = "expert_weights"  # every routed expert's weights (part of weights)
    vision_weights = "vision_weights"  # the frozen vision tower and projector (part of weights)
    router_activations = "router_activations"  # router probabilities, top-k indices and weights
    routed_activations = "routed_activations"  # what the expert GEMMs save for the top-k rows
    shared_expert_activations = "shared_expert_activations"
    moe_backward_working_set = "moe_backward_working_set"  # one MoE block's backward temporaries
    aux_loss_logits = "aux_loss_logits"  # router logits kept for the load-balancing loss
    zero3_gathered_moe_block = "zero3_gathered_moe_block"  # ZeRO-3 gathers a whole MoE block (all experts)
    # the load, before step 1 (memory/load.py; FSDP's in memory/fsdp.py)
    weights_loaded_whole = "weights_loaded_whole"
    fsdp_unit_flattened = "fsdp_unit_flattened"  # the unit FSDP is wrapping, moved whole and flattened
    # beyond tensors (memory/overheads.py)
    allocator_reserve = "allocator_reserve"
    cuda_context = "cuda_context"
    kernel_workspaces = "kernel_workspaces"
    nccl_buffers = "nccl_buffers"

    @property
    def label(self) -> str:
        """The words every report prints for this term."""
        return _LABELS.get(self) or _LABELS[self.reported_as]

    @property
    def reported_as(self) -> "Term":
        """The term this one is summed into in reports (itself, `transient`, or its parent)."""
        if self in _TRANSIENT_CAUSES:
            return Term.transient
        return _PARTS.get(self, self)

    @property
    def detail_label(self) -> str:
        """The words for this term itself (a cause or part has its own)."""
        return _DETAIL_LABELS.get(self) or self.label

    @property
    def source(self) -> str:
        """Where the term's formula comes from (file and lines, paper), for reports that show it."""
        return _SOURCES.get(self, "")


_TRANSIENT_CAUSES = frozenset({Term.dequant_buffer, Term.backward_working_set, Term.embedding_gradient,
                               Term.optimizer_temporaries, Term.dora_weight_norm, Term.moe_backward_working_set})

# Parts reported inside their parent term. MoE and multimodal parts (memory/moe.py) are also
# shown on their own line under the parent (PART_TERMS); Liger's fused-loss parts (memory/liger.py)
# are shown by the lever report: the trace sees lm_head's gradient, once AccumulateGrad has it, as
# a gradient, and autocast's cast of lm_head's weight as a weight copy.
_MOE_PARTS = {Term.expert_weights: Term.weights, Term.vision_weights: Term.weights,
              Term.router_activations: Term.activations, Term.routed_activations: Term.activations,
              Term.shared_expert_activations: Term.activations, Term.aux_loss_logits: Term.logits_loss,
              Term.zero3_gathered_moe_block: Term.zero3_gathered_layer}
_FUSED_LOSS_PARTS = {Term.fused_loss_grad_input: Term.logits_loss, Term.fused_loss_logits_chunk: Term.logits_loss,
                     Term.fused_loss_vectors: Term.logits_loss, Term.fused_loss_weight_gradient: Term.gradients,
                     Term.fused_loss_weight_cast: Term.autocast_weight_copies}
_PARTS = {**_MOE_PARTS, **_FUSED_LOSS_PARTS}
PART_TERMS = frozenset(term.value for term in _MOE_PARTS)  # shown under their parent term in reports

LIGER_FLCE = "liger-kernel 0.8.5 ops/fused_linear_cross_entropy.py"
_DETAIL_LABELS = {
    Term.fused_loss_grad_input: "fused loss: grad_input",
    Term.fused_loss_logits_chunk: "fused loss: logits chunk",
    Term.fused_loss_vectors: "fused loss: per-token vectors",
    Term.fused_loss_weight_gradient: "fused loss: lm_head gradient",
    Term.fused_loss_weight_cast: "fused loss: lm_head 16-bit cast",
    Term.dora_weight_norm: "DoRA weight-norm recompute",
}
_SOURCES = {
    Term.fused_loss_grad_input: f"{LIGER_FLCE}:108 zeros_like(_input), tokens x hidden in the input dtype",
    Term.fused_loss_logits_chunk: f"{LIGER_FLCE}:99-106 chunk size, :147-167 one chunk x vocab logits "
                                  "(+ its casts, :318-348)",
    Term.fused_loss_vectors: f"{LIGER_FLCE}:125 loss_1d fp32, :131 target mask; transformers/model/loss_utils.py:87-88 "
                             "shifted int64 labels",
    Term.fused_loss_weight_gradient: f"{LIGER_FLCE}:114-116 zeros_like(weight) when lm_head trains, "
                                     ":370-375 legacy fp32 temporary below compute capability 8",
    Term.fused_loss_weight_cast: f"{LIGER_FLCE}:163 `_input_chunk @ weight.t()` under autocast: weight.t() is a "
                                 "view, which autocast does not cache (aten autocast_mode.cpp cached_cast), so "
                                 "each chunk's matmul casts lm_head's fp32 weight anew",
    Term.logits_loss: "transformers ForCausalLMLoss: 16-bit logits, fp32 upcast, log_softmax and grads "
                      "(shared/reference/trace-notes.md P6; memory/activations.py)",
    Term.activations: "memory/activations.py (transformers modelling code, held to the trace)",
}

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
    Term.dequantized_weights: "dequantized weights",
    Term.unsharded_params: "FSDP gathered params",
    Term.all_gather_buffers: "FSDP all-gather buffer",
    Term.unsharded_grads: "FSDP unsharded grads",
    Term.reduce_scatter_buffers: "FSDP reduce-scatter buffer",
    Term.allocator_reserve: "allocator reserve",
    Term.cuda_context: "CUDA context",
    Term.kernel_workspaces: "kernel workspaces",
    Term.nccl_buffers: "NCCL buffers",
    Term.expert_weights: "all experts' weights",
    Term.vision_weights: "frozen vision tower",
    Term.router_activations: "router probs + top-k",
    Term.routed_activations: "routed-expert activations",
    Term.shared_expert_activations: "shared-expert activations",
    Term.moe_backward_working_set: "MoE backward temporaries",
    Term.aux_loss_logits: "aux-loss router logits",
    Term.zero3_gathered_moe_block: "ZeRO-3 gathered MoE block",
    Term.weights_loaded_whole: "weights loaded whole",
    Term.fsdp_unit_flattened: "FSDP unit being wrapped (x2)",
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

    def term_bytes_at(self, micro_batch: int) -> dict[str, int]:
        """Bytes of every named term, causes and parts not summed into their parents, in the
        moment's order."""
        return {term.value: value.at(micro_batch) for term, value in self.terms.items()}

    def bytes_at(self, micro_batch: int) -> dict[str, int]:
        """Bytes of each reported term (the four transient causes summed), in the moment's order."""
        reported: dict[str, int] = {}
        for term, value in self.terms.items():
            key = term.reported_as.value
            reported[key] = reported.get(key, 0) + value.at(micro_batch)
        return reported
