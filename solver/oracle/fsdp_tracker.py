"""The storage tracker (oracle/tracker.py) taught what an FSDP2 step does to memory.

Imports torch: only `oracle.fsdp_step` imports this module.

What FSDP2 (torch 2.13 `fully_shard`) needs beyond the dense tracker:
1. It frees and re-allocates every gathered parameter with `UntypedStorage.resize_`
   (`free_storage` / `alloc_storage`, torch/distributed/fsdp/_fully_shard/_fsdp_param.py), which is
   no aten op: the storage object never dies, so `resize_` is patched while tracking and the live
   bytes follow it (as torch's own MemTracker does, torch/distributed/_tools/mem_tracker.py).
2. DTensor: when a DTensor is among an op's types the mode returns NotImplemented, so DTensor
   runs the op and the mode sees the local-tensor ops it becomes
   (torch/distributed/_tools/fsdp2_mem_tracker.py does the same).
3. DTensor's sharding propagation runs ops under its own FakeTensorMode: those are skipped (the
   fake mode active at `__enter__` is the only one counted).
4. Under fake tensors `_c10d_functional.wait_tensor` would return a new tensor; eager returns its
   input, so the input is passed through.
5. Real `meta` tensors are not memory.
6. FSDP's buffers get their own categories (memory/terms.py): the flat all-gather output and the
   reduce-scatter input at their c10d ops, the gathered parameters and their gradients at FSDP's
   hooks (set by oracle/fsdp_step.py).
"""

from __future__ import annotations

import torch
from torch._guards import active_fake_mode
from torch.distributed.tensor import DTensor

from ..memory.terms import Term
from .tracker import ACTIVATIONS, StorageTracker, rounded_bytes

UNSHARDED_PARAMS = Term.unsharded_params.value
ALL_GATHER = Term.all_gather_buffers.value
UNSHARDED_GRADS = Term.unsharded_grads.value
REDUCE_SCATTER = Term.reduce_scatter_buffers.value
FSDP_CATEGORIES = (UNSHARDED_PARAMS, ALL_GATHER, UNSHARDED_GRADS, REDUCE_SCATTER)

_C10D = torch.ops.c10d


def local(tensor: torch.Tensor) -> torch.Tensor:
    """The rank's own tensor of a DTensor (the tensor itself otherwise)."""
    return tensor._local_tensor if isinstance(tensor, DTensor) else tensor


class FsdpStorageTracker(StorageTracker):
    def __init__(self) -> None:
        super().__init__()
        for category in FSDP_CATEGORIES:
            self.by_category[category] = 0
        self._original_resize = torch.UntypedStorage.resize_
        self._fake_on_entry = None
        self.collectives: list[tuple[int, str, str, str, int]] = []  # (step, phase, region, kind, bytes)

    # ---- storages that change size in place ----------------------------------------------------
    def track(self, tensor: torch.Tensor, category: str | None = None) -> None:
        if tensor.device.type == "meta":
            return
        super().track(tensor, category)

    def retag(self, tensor: torch.Tensor, category: str) -> None:
        super().retag(local(tensor), category)

    def _resized(self, storage) -> None:
        key = storage._cdata
        entry = self._live.get(key)
        if entry is None:
            if storage.nbytes():
                self.track_storage(storage)
            return
        size, category, _seq = entry
        new = rounded_bytes(storage.nbytes()) if storage.nbytes() else 0
        delta = new - size
        self._seq += 1
        self._live[key] = (new, category, self._seq)
        if category == ACTIVATIONS and key in self._region_of:
            self.activations_by_region[self._region_of[key]] += delta
        self.by_category[category] += delta
        self.live_bytes += delta
        if delta > 0:
            self._note_peak()

    # ---- the mode -----------------------------------------------------------------------------
    def __enter__(self):
        self._fake_on_entry = active_fake_mode()
        tracker, original = self, self._original_resize

        def resize_(storage, size):
            result = original(storage, size)
            tracker._resized(storage)
            return result

        torch.UntypedStorage.resize_ = resize_
        return super().__enter__()

    def __exit__(self, *args):
        torch.UntypedStorage.resize_ = self._original_resize
        return super().__exit__(*args)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if any(isinstance(t, type) and issubclass(t, DTensor) for t in types):
            return NotImplemented
        kwargs = kwargs or {}
        if func is torch.ops._c10d_functional.wait_tensor.default and active_fake_mode() is not None:
            return args[0]
        if active_fake_mode() is not self._fake_on_entry:  # DTensor's sharding propagation
            return func(*args, **kwargs)
        if func is _C10D._allgather_base_.default:
            self.track(args[0], ALL_GATHER)
            self._log("all_gather", args[0])
        elif func is _C10D._reduce_scatter_base_.default:
            self.track(args[1], REDUCE_SCATTER)
            self.track(args[0], REDUCE_SCATTER)
            self._log("reduce_scatter", args[1])
        elif func is _C10D.allreduce_.default:
            self._log("all_reduce", *args[0])
        return super().__torch_dispatch__(func, types, args, kwargs)

    def _log(self, kind: str, *tensors) -> None:
        if self.step >= self.record_from_step:
            self.collectives.append((self.step, self.phase, self.region, kind,
                                     sum(t.untyped_storage().nbytes() for t in tensors)))
