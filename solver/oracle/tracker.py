"""Storage-level accounting of the tensor memory a traced training step holds, the way the CUDA
caching allocator's `max_memory_allocated` would see it.

Imports torch: only `oracle.step` imports this module, and only when a trace is asked for.

Every aten op output is inspected under a `TorchDispatchMode`; its untyped storage is counted
once (views and in-place results share it), rounded up to 512 B like the CUDA caching allocator,
and subtracted when the storage dies (storage PyObjects are preserved by torch, so their
finalization is the death of the `StorageImpl`). Works the same for real and fake tensors, which
is what lets a real CPU run check a fake trace to the byte.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from ..memory.terms import Term

ALLOCATOR_ROUNDING_BYTES = 512  # CUDA caching allocator: every block is a multiple of 512 B

# The formula's term names (memory/terms.py `Term`, the keys of estimate's breakdown_bytes).
WEIGHTS = Term.weights.value  # frozen base parameters (and buffers)
TRAINABLE = Term.trainable_params.value
GRADIENTS = Term.gradients.value
OPTIMIZER_STATES = Term.optimizer_states.value
ACTIVATIONS = Term.activations.value  # made by the forward inside the decoder layers (and the embedding output)
LOGITS_LOSS = Term.logits_loss.value  # final norm, lm_head output, fp32 upcast, log-softmax and their grads
TRANSIENT = Term.transient.value  # backward/optimizer temporaries, recompute, inputs
# Under AMP, autocast casts each fp32 trainable weight to bf16 once per forward and caches the
# copy until autocast exits; linear's backward keeps it until that layer's backward. Not per
# token, so it is kept apart from `activations`.
AUTOCAST_COPIES = Term.autocast_weight_copies.value
CATEGORIES = (WEIGHTS, TRAINABLE, GRADIENTS, OPTIMIZER_STATES, ACTIVATIONS, LOGITS_LOSS, TRANSIENT,
              AUTOCAST_COPIES)


def rounded_bytes(nbytes: int) -> int:
    return -(-nbytes // ALLOCATOR_ROUNDING_BYTES) * ALLOCATOR_ROUNDING_BYTES


@dataclass
class PeakRecord:
    bytes: int = 0
    seq: int = 0  # allocation counter at the peak
    phase: str = ""
    op: str = ""
    layer: str = ""
    step: int = 0
    breakdown: dict[str, int] = field(default_factory=dict)
    activations_by_region: dict[str, int] = field(default_factory=dict)  # "layer 3" -> saved bytes


class StorageTracker(TorchDispatchMode):
    """Live tensor bytes by category, with the overall peak and per-phase peaks.

    The driver sets `phase` (forward / backward / optimizer), `region` (where in the model the
    current op runs: "embed", "layer 3", "head") and `step`; categories follow from them at
    allocation time, and `retag` moves a storage to another category (grads, optimizer state).
    """

    def __init__(self) -> None:
        super().__init__()
        self._live: dict[int, tuple[int, str, int]] = {}  # StorageImpl address -> (bytes, category, seq)
        self._region_of: dict[int, str] = {}  # activations only: the region that made them
        self.activations_by_region: dict[str, int] = {}
        self._seq = 0
        self._finalizers: dict[int, weakref.finalize] = {}
        self.by_category: dict[str, int] = dict.fromkeys(CATEGORIES, 0)
        self.live_bytes = 0
        self.phase = "setup"
        self.region = ""
        self.step = 0
        self.record_from_step = 0  # peaks are only recorded from this step on
        self.param_shapes: set[tuple[tuple[int, ...], torch.dtype]] = set()  # trainable (shape, dtype)
        self.peak = PeakRecord()
        # With `record_events()`, every allocation and death in order, for replaying the step
        # through a caching-allocator model (solver/calibration/allocator_sim.py): ("alloc", id, raw nbytes),
        # ("free", id, 0) and ("mark", 0, 0, label) rows; ids are the allocation counter.
        self.events: list[tuple] | None = None
        self.phase_peaks: dict[str, int] = {}
        self.region_peaks: dict[str, int] = {}  # "backward/layer 3" -> peak bytes while there

    # ---- bookkeeping --------------------------------------------------------------------
    def _category_for_new(self) -> str:
        if self.phase == "forward":
            if self.region == "head":
                return LOGITS_LOSS
            return ACTIVATIONS  # the embedding output and everything a decoder layer keeps
        if self.phase == "backward" and self.region == "head":
            return LOGITS_LOSS
        return TRANSIENT

    def category_of(self, tensor: torch.Tensor) -> str | None:
        entry = self._live.get(tensor.untyped_storage()._cdata)
        return entry[1] if entry else None

    def track(self, tensor: torch.Tensor, category: str | None = None) -> None:
        """Count `tensor`'s storage if it is new; with `category`, (re)label it."""
        self.track_storage(tensor.untyped_storage(), category)

    def track_storage(self, storage, category: str | None = None) -> None:
        """`track` for a storage (FSDP re-allocates storages with no tensor op: oracle/fsdp_tracker.py)."""
        key = storage._cdata
        entry = self._live.get(key)
        if entry is not None:
            if category is not None and entry[1] != category:
                self._move(key, category)
            return
        size = rounded_bytes(storage.nbytes())
        cat = category or self._category_for_new()
        self._seq += 1
        if self.events is not None:
            self.events.append(("alloc", self._seq, storage.nbytes()))
        self._live[key] = (size, cat, self._seq)
        if cat == ACTIVATIONS:
            self._region_of[key] = self.region
            self.activations_by_region[self.region] = self.activations_by_region.get(self.region, 0) + size
        self.by_category[cat] += size
        self.live_bytes += size
        self._finalizers[key] = weakref.finalize(storage, self._release, key)
        self._note_peak()

    def retag(self, tensor: torch.Tensor, category: str) -> None:
        """Relabel a storage by what it turned out to be (a gradient once AccumulateGrad has it,
        optimizer state after `step`). If it was already alive at the recorded peak, the peak's
        breakdown is relabelled too: a weight gradient made by the op that set the peak is a
        gradient, not a backward temporary."""
        self.track(tensor, category)

    def record_events(self) -> None:
        self.events = []

    def mark(self, label: str) -> None:
        """A boundary in the event log (a micro-step or optimizer step starts)."""
        if self.events is not None:
            self.events.append(("mark", 0, 0, label))

    def _move(self, key: int, category: str) -> None:
        size, old, seq = self._live[key]
        self._forget_region(key, size)
        self.by_category[old] -= size
        self.by_category[category] += size
        self._live[key] = (size, category, seq)
        if self.peak.breakdown and seq <= self.peak.seq and self.peak.step == self.step:
            self.peak.breakdown[old] -= size
            self.peak.breakdown[category] += size

    def _forget_region(self, key: int, size: int) -> None:
        region = self._region_of.pop(key, None)
        if region is not None:
            self.activations_by_region[region] -= size

    def _release(self, key: int) -> None:
        entry = self._live.pop(key, None)
        self._finalizers.pop(key, None)
        if entry is None:
            return
        size, cat, seq = entry
        if self.events is not None:
            self.events.append(("free", seq, 0))
        self._forget_region(key, size)
        self.by_category[cat] -= size
        self.live_bytes -= size

    def _note_peak(self, op: str = "") -> None:
        if self.step < self.record_from_step:
            return
        if self.live_bytes > self.phase_peaks.get(self.phase, -1):
            self.phase_peaks[self.phase] = self.live_bytes
        where = f"{self.phase}/{self.region}" if self.region else self.phase
        if self.live_bytes > self.region_peaks.get(where, -1):
            self.region_peaks[where] = self.live_bytes
        if self.live_bytes > self.peak.bytes:
            self.peak = PeakRecord(bytes=self.live_bytes, seq=self._seq, phase=self.phase, op=self._current_op,
                                   layer=self.region, step=self.step, breakdown=dict(self.by_category),
                                   activations_by_region={k: v for k, v in self.activations_by_region.items() if v})

    def detach_all(self) -> None:
        """Stop listening for storage deaths (the tracker is done; its numbers stay)."""
        for fin in list(self._finalizers.values()):
            fin.detach()
        self._finalizers.clear()

    # ---- dispatch -----------------------------------------------------------------------
    _current_op = ""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self._current_op = str(func.overloadpacket.__name__)
        category = None
        if (func is torch.ops.aten._to_copy.default and self.phase in ("forward", "backward")
                and isinstance(args[0], torch.Tensor) and self.category_of(args[0]) == TRAINABLE):
            category = AUTOCAST_COPIES  # autocast's cached cast of a trainable weight
        for leaf in tree_leaves(out):
            if isinstance(leaf, torch.Tensor):
                if (category is None and self.phase == "backward"
                        and leaf.untyped_storage()._cdata not in self._live
                        and (tuple(leaf.shape), leaf.dtype) in self.param_shapes):
                    # a weight gradient on its way to AccumulateGrad (retagged when it lands;
                    # a tied weight's first half waits in autograd's input buffer meanwhile)
                    self.track(leaf, TRANSIENT)
                else:
                    self.track(leaf, category)
        return out
