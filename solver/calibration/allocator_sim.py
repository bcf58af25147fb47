"""A replay model of PyTorch's CUDA caching allocator, to predict `max_memory_reserved()`.

Source: `c10/cuda/CUDACachingAllocator.cpp`, `DeviceCachingAllocator`, as in torch 2.1-2.3 (read
from a 2.2/2.3-era copy and checked against pytorch/pytorch@001074d2: the rules below are
unchanged), with the default `CUDAAllocatorConfig` (`c10/cuda/CUDAAllocatorConfig.cpp`):
max_split_size = SIZE_MAX, roundup_power2_divisions = 0, expandable_segments off, no
garbage_collection_threshold, no memory fraction. One device, one stream, no CUDA graphs and
no cross-stream `recordStream`, so no events delay a free.

Modelled, one method each:
- `round_size`, `get_pool` (on the rounded size), `get_allocation_size`.
- `get_free_block`: `pool.blocks.lower_bound(search_key)` on a set ordered by
  `BlockComparatorSize` (stream, size, ptr): the smallest free block that fits, lowest address
  on ties. Its two oversize checks only act when max_split_size is set, so none by default.
- `should_split` and `alloc_found_block`: the request takes the front of the block, the rest
  stays free in the same pool. A block that is not split is handed out whole, and
  `allocated_bytes` counts its whole size (`increase_stat(allocated_bytes, block->size)`).
- `free_block` / `try_merge_blocks`: a freed block absorbs its free neighbours in its segment.
- `malloc`'s fallback chain (`trigger_free_memory_callbacks` only frees CUDA IPC memory, skipped):
  `alloc_block` (cudaMalloc) -> `release_available_cached_blocks`
  (returns false when max_split_size is SIZE_MAX) -> `release_cached_blocks` (cudaFree every free
  block with no prev/next, i.e. each wholly free segment, in both pools) -> `alloc_block` again ->
  OutOfMemoryError. The release stays done even when the retry fails.
- `NativeCachingAllocator::allocate` never calls malloc for 0 bytes.

A cudaMalloc here fails when reserved + segment > `capacity_bytes`; on a real GPU it fails on the
driver's free memory, which also holds the CUDA context and other processes.
"""

from __future__ import annotations

from bisect import bisect_left, insort

K_MIN_BLOCK_SIZE = 512  # kMinBlockSize: all sizes are rounded to at least 512 bytes
K_SMALL_SIZE = 1_048_576  # kSmallSize: largest "small" allocation is 1 MiB
K_SMALL_BUFFER = 2_097_152  # kSmallBuffer: "small" allocations are packed in 2 MiB segments
K_MIN_LARGE_ALLOC = 10_485_760  # kMinLargeAlloc: allocations between 1 and 10 MiB ...
K_LARGE_BUFFER = 20_971_520  # kLargeBuffer: ... may use a 20 MiB segment
K_ROUND_LARGE = 2_097_152  # kRoundLarge: larger segments are rounded up to 2 MiB

# A free block's sort key is (size << _ADDR_BITS) | address: one int orders like the C++
# (size, ptr) comparator and compares faster than a tuple.
_ADDR_BITS = 64
_ADDR_MASK = (1 << _ADDR_BITS) - 1


class SimulatedOutOfMemory(RuntimeError):
    """A new segment would push reserved memory past `capacity_bytes`, even after every wholly
    free cached segment was released: the point where PyTorch raises `OutOfMemoryError`."""

    def __init__(self, segment_bytes: int, allocated_bytes: int, reserved_bytes: int,
                 capacity_bytes: int):
        self.segment_bytes = segment_bytes
        self.allocated_bytes = allocated_bytes
        self.reserved_bytes = reserved_bytes
        self.capacity_bytes = capacity_bytes
        super().__init__(
            f"simulated CUDA out of memory: tried to reserve a {segment_bytes} B segment with "
            f"{reserved_bytes} B of {capacity_bytes} B reserved ({allocated_bytes} B allocated, "
            f"the rest cached in partly used segments); reduce the peak or the fragmentation")


def round_size(nbytes: int) -> int:
    """`round_size`: below 512 B -> 512 B, else up to a multiple of 512 B (kMinBlockSize)."""
    if nbytes < K_MIN_BLOCK_SIZE:
        return K_MIN_BLOCK_SIZE
    return -(-nbytes // K_MIN_BLOCK_SIZE) * K_MIN_BLOCK_SIZE


def get_allocation_size(size: int) -> int:
    """`get_allocation_size`: the cudaMalloc size of a new segment for a rounded request."""
    if size <= K_SMALL_SIZE:
        return K_SMALL_BUFFER
    if size < K_MIN_LARGE_ALLOC:
        return K_LARGE_BUFFER
    return -(-size // K_ROUND_LARGE) * K_ROUND_LARGE


def should_split(block_bytes: int, size: int, small_pool: bool) -> bool:
    """`should_split`: small pool keeps any remainder >= 512 B; the large pool only one > 1 MiB
    (the `size < max_split_size` half is always true by default)."""
    remaining = block_bytes - size
    return remaining >= K_MIN_BLOCK_SIZE if small_pool else remaining > K_SMALL_SIZE


class _Block:
    """A `Block`: a range of one segment; prev/next link the blocks of the same segment."""

    __slots__ = ("addr", "size", "small", "prev", "next", "allocated")

    def __init__(self, addr: int, size: int, small: bool, prev: _Block | None = None,
                 next: _Block | None = None):
        self.addr = addr
        self.size = size
        self.small = small
        self.prev = prev
        self.next = next
        self.allocated = False


class CachingAllocatorSim:
    """Replays malloc/free calls through the caching allocator's rules; byte counters mirror
    `torch.cuda.memory_allocated()` / `memory_reserved()` and their `max_` peaks."""

    def __init__(self, capacity_bytes: int | None = None):
        self.capacity_bytes = capacity_bytes
        self.allocated_bytes = 0
        self.reserved_bytes = 0
        self.max_allocated_bytes = 0
        self.max_reserved_bytes = 0
        self._free_keys = {True: [], False: []}  # small pool, large pool: sorted block keys
        self._free_by_addr: dict[int, _Block] = {}
        self._live: dict[int, _Block | None] = {}
        self._next_handle = 0
        self._next_segment_addr = 0  # synthetic, never reused: no two segments overlap

    def malloc(self, nbytes: int) -> int:
        """Allocate `nbytes` (a tensor's storage); returns a handle for `free`."""
        if nbytes < 0:
            raise ValueError(f"cannot allocate a negative size: {nbytes} B")
        handle = self._next_handle
        self._next_handle += 1
        if nbytes == 0:
            self._live[handle] = None
            return handle
        size = round_size(nbytes)
        small = size <= K_SMALL_SIZE
        keys = self._free_keys[small]
        i = bisect_left(keys, size << _ADDR_BITS)
        if i < len(keys):
            block = self._free_by_addr.pop(keys.pop(i) & _ADDR_MASK)
        else:
            block = self._alloc_segment(size, small)
        if should_split(block.size, size, small):
            rest = _Block(block.addr + size, block.size - size, small, block, block.next)
            if block.next is not None:
                block.next.prev = rest
            block.next = rest
            block.size = size
            self._insert_free(rest)
        block.allocated = True
        self._live[handle] = block
        self.allocated_bytes += block.size
        if self.allocated_bytes > self.max_allocated_bytes:
            self.max_allocated_bytes = self.allocated_bytes
        return handle

    def free(self, handle: int) -> None:
        """Return a handle's block to its pool, merged with its free neighbours (`free_block`)."""
        try:
            block = self._live.pop(handle)
        except KeyError:
            raise ValueError(f"handle {handle} is not live (never allocated or freed twice)")
        if block is None:
            return
        self.allocated_bytes -= block.size
        block.allocated = False
        prev = block.prev
        if prev is not None and not prev.allocated:
            self._remove_free(prev)
            block.addr = prev.addr
            block.size += prev.size
            block.prev = prev.prev
            if block.prev is not None:
                block.prev.next = block
        nxt = block.next
        if nxt is not None and not nxt.allocated:
            self._remove_free(nxt)
            block.size += nxt.size
            block.next = nxt.next
            if block.next is not None:
                block.next.prev = block
        self._insert_free(block)

    def empty_cache(self) -> None:
        """`release_cached_blocks` (also `torch.cuda.empty_cache()`): cudaFree every wholly free
        segment; free blocks of partly used segments stay cached."""
        for small, keys in self._free_keys.items():
            kept = []
            for key in keys:
                block = self._free_by_addr[key & _ADDR_MASK]
                if block.prev is None and block.next is None:
                    del self._free_by_addr[block.addr]
                    self.reserved_bytes -= block.size
                else:
                    kept.append(key)
            self._free_keys[small] = kept

    def _alloc_segment(self, size: int, small: bool) -> _Block:
        segment_bytes = get_allocation_size(size)
        if self._over_capacity(segment_bytes):
            self.empty_cache()
            if self._over_capacity(segment_bytes):
                raise SimulatedOutOfMemory(segment_bytes, self.allocated_bytes,
                                           self.reserved_bytes, self.capacity_bytes)
        block = _Block(self._next_segment_addr, segment_bytes, small)
        self._next_segment_addr += segment_bytes
        self.reserved_bytes += segment_bytes
        if self.reserved_bytes > self.max_reserved_bytes:
            self.max_reserved_bytes = self.reserved_bytes
        return block

    def _over_capacity(self, segment_bytes: int) -> bool:
        return (self.capacity_bytes is not None
                and self.reserved_bytes + segment_bytes > self.capacity_bytes)

    def _insert_free(self, block: _Block) -> None:
        self._free_by_addr[block.addr] = block
        insort(self._free_keys[block.small], (block.size << _ADDR_BITS) | block.addr)

    def _remove_free(self, block: _Block) -> None:
        keys = self._free_keys[block.small]
        del keys[bisect_left(keys, (block.size << _ADDR_BITS) | block.addr)]
        del self._free_by_addr[block.addr]
