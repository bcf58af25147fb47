"""The caching-allocator replay against the rules of c10/cuda/CUDACachingAllocator.cpp
(torch 2.1-2.3, default settings). Each number is derived in the test from the function named."""

import random

import pytest

from fitplan.solver.calibration.allocator_sim import CachingAllocatorSim, SimulatedOutOfMemory

KiB = 1024
MiB = 1024 * KiB


def test_a_100_byte_tensor_reserves_one_2_mib_small_segment():
    # round_size: 100 B < kMinBlockSize -> 512 B; <= kSmallSize -> small pool;
    # get_allocation_size: kSmallBuffer = 2 MiB.
    sim = CachingAllocatorSim()
    sim.malloc(100)
    assert sim.allocated_bytes == 512
    assert sim.reserved_bytes == 2 * MiB


def test_sizes_round_up_to_512_bytes():
    # round_size: 513 B -> 2 * 512 B.
    sim = CachingAllocatorSim()
    sim.malloc(513)
    assert sim.allocated_bytes == 1024


def test_exactly_1_mib_is_small_but_one_byte_more_is_large():
    # get_pool: size <= kSmallSize (1 MiB) is small -> 2 MiB segment; 1 MiB + 1 B rounds to
    # 1 MiB + 512 B, large, < kMinLargeAlloc -> kLargeBuffer (20 MiB).
    sim = CachingAllocatorSim()
    sim.malloc(MiB)
    assert sim.reserved_bytes == 2 * MiB
    sim.malloc(MiB + 1)
    assert sim.reserved_bytes == 2 * MiB + 20 * MiB


def test_a_5_mib_tensor_reserves_a_20_mib_segment_and_the_rest_stays_cached():
    # get_allocation_size: 1 MiB < 5 MiB < kMinLargeAlloc (10 MiB) -> kLargeBuffer (20 MiB);
    # should_split: 15 MiB left > kSmallSize, so only 5 MiB is allocated.
    sim = CachingAllocatorSim()
    sim.malloc(5 * MiB)
    assert sim.reserved_bytes == 20 * MiB
    assert sim.allocated_bytes == 5 * MiB
    # get_free_block: the 15 MiB remainder serves the next 5 MiB requests, no new segment.
    sim.malloc(5 * MiB)
    sim.malloc(5 * MiB)
    assert sim.reserved_bytes == 20 * MiB


def test_an_11_mib_tensor_reserves_12_mib_and_counts_all_of_it_as_allocated():
    # get_allocation_size: >= kMinLargeAlloc -> rounded up to kRoundLarge (2 MiB): 12 MiB.
    # should_split: 1 MiB left is not > kSmallSize, so the block is handed out whole and
    # alloc_found_block counts block->size (12 MiB) in allocated_bytes, not the 11 MiB asked.
    sim = CachingAllocatorSim()
    sim.malloc(11 * MiB)
    assert sim.reserved_bytes == 12 * MiB
    assert sim.allocated_bytes == 12 * MiB


def test_zero_bytes_allocate_nothing():
    # NativeCachingAllocator::allocate only calls malloc when size != 0.
    sim = CachingAllocatorSim()
    sim.free(sim.malloc(0))
    assert sim.max_reserved_bytes == 0


def test_freeing_and_reallocating_the_same_size_reuses_the_segment():
    # free_block caches the block; get_free_block finds it for the same size.
    sim = CachingAllocatorSim()
    sim.free(sim.malloc(100 * MiB))
    assert sim.allocated_bytes == 0
    assert sim.reserved_bytes == 100 * MiB
    sim.malloc(100 * MiB)
    assert sim.reserved_bytes == 100 * MiB
    assert sim.max_reserved_bytes == 100 * MiB


def test_a_smaller_request_splits_a_cached_large_block():
    # should_split: 100 - 60 = 40 MiB left > kSmallSize -> split; the 40 MiB remainder then
    # fits a 40 MiB request exactly. One 100 MiB segment throughout.
    sim = CachingAllocatorSim()
    sim.free(sim.malloc(100 * MiB))
    sim.malloc(60 * MiB)
    assert sim.allocated_bytes == 60 * MiB
    sim.malloc(40 * MiB)
    assert sim.allocated_bytes == 100 * MiB
    assert sim.reserved_bytes == 100 * MiB


def test_a_large_block_with_at_most_1_mib_to_spare_is_used_whole():
    # should_split (large pool): 100 - 99 = 1 MiB left is not > kSmallSize -> no split; the
    # whole 100 MiB block is allocated.
    sim = CachingAllocatorSim()
    sim.free(sim.malloc(100 * MiB))
    sim.malloc(99 * MiB)
    assert sim.allocated_bytes == 100 * MiB
    assert sim.reserved_bytes == 100 * MiB


def test_best_fit_takes_the_smallest_cached_block_that_fits():
    # get_free_block: lower_bound on (size, address) -> the 30 MiB block, not the 50 MiB one;
    # 30 - 25 = 5 MiB left > kSmallSize, so it splits and 50 MiB stays whole for a later 50 MiB.
    sim = CachingAllocatorSim()
    big, small = sim.malloc(50 * MiB), sim.malloc(30 * MiB)
    sim.free(big)
    sim.free(small)
    sim.malloc(25 * MiB)
    sim.malloc(50 * MiB)
    assert sim.reserved_bytes == 80 * MiB


def test_small_requests_never_use_large_pool_blocks():
    # get_pool: a 512 KiB request searches only the small pool, so the cached 20 MiB large
    # segment does not serve it; a new kSmallBuffer (2 MiB) segment does.
    sim = CachingAllocatorSim()
    sim.free(sim.malloc(5 * MiB))
    sim.malloc(512 * KiB)
    assert sim.reserved_bytes == 20 * MiB + 2 * MiB


def test_freed_space_in_another_segment_cannot_serve_a_bigger_request():
    # The classic fragmentation case: A and B are separate 100 MiB segments; after freeing A
    # the 150 MiB request finds no free block >= 150 MiB (get_free_block) and blocks of
    # different segments never merge, so alloc_block cudaMallocs 150 MiB: 100 + 100 + 150.
    sim = CachingAllocatorSim()
    a = sim.malloc(100 * MiB)
    sim.malloc(100 * MiB)
    sim.free(a)
    sim.malloc(150 * MiB)
    assert sim.reserved_bytes == 350 * MiB
    assert sim.allocated_bytes == 250 * MiB
    assert sim.max_reserved_bytes - sim.max_allocated_bytes == 100 * MiB


def test_freed_neighbours_in_one_segment_merge_for_a_bigger_request():
    # A and B are carved from one cached 200 MiB segment (should_split: 100 MiB left); freeing
    # both merges them back (try_merge_blocks), so 150 MiB fits without a new segment.
    sim = CachingAllocatorSim()
    sim.free(sim.malloc(200 * MiB))
    a, b = sim.malloc(100 * MiB), sim.malloc(100 * MiB)
    assert sim.reserved_bytes == 200 * MiB
    sim.free(a)
    sim.free(b)
    sim.malloc(150 * MiB)
    assert sim.reserved_bytes == 200 * MiB


def test_a_freed_middle_block_merges_with_both_neighbours():
    # free_block tries prev and next: freeing B between free A and free C leaves one 300 MiB
    # block, which a 300 MiB request reuses whole.
    sim = CachingAllocatorSim()
    sim.free(sim.malloc(300 * MiB))
    a, b, c = (sim.malloc(100 * MiB) for _ in range(3))
    sim.free(a)
    sim.free(c)
    sim.free(b)
    sim.malloc(300 * MiB)
    assert sim.reserved_bytes == 300 * MiB


def test_four_512_kib_tensors_share_one_2_mib_small_segment_and_merge_back():
    # should_split (small pool): remainders 1.5 MiB, 1 MiB, 512 KiB are >= kMinBlockSize, the
    # last leaves 0 -> four blocks in one kSmallBuffer. Freed, they merge into 2 MiB again,
    # which a 1 MiB request reuses.
    sim = CachingAllocatorSim()
    handles = [sim.malloc(512 * KiB) for _ in range(4)]
    assert sim.reserved_bytes == 2 * MiB
    for handle in handles:
        sim.free(handle)
    sim.malloc(MiB)
    assert sim.reserved_bytes == 2 * MiB


def test_at_capacity_wholly_free_cached_segments_are_released_first():
    # alloc_block fails (200 + 250 > 300 MiB); release_available_cached_blocks does nothing by
    # default; release_cached_blocks cudaFrees the unsplit free 200 MiB segment; the retry fits.
    sim = CachingAllocatorSim(capacity_bytes=300 * MiB)
    sim.free(sim.malloc(200 * MiB))
    sim.malloc(250 * MiB)
    assert sim.reserved_bytes == 250 * MiB
    assert sim.max_reserved_bytes == 250 * MiB


def test_a_partly_used_segment_is_not_released_so_fragmentation_can_run_out_of_memory():
    # 50 MiB live in a 200 MiB segment: its free 150 MiB is split (prev != null), so
    # release_blocks keeps it; a 160 MiB segment does not fit 300 MiB -> OutOfMemoryError with
    # only 50 MiB live.
    sim = CachingAllocatorSim(capacity_bytes=300 * MiB)
    sim.free(sim.malloc(200 * MiB))
    sim.malloc(50 * MiB)
    with pytest.raises(SimulatedOutOfMemory) as oom:
        sim.malloc(160 * MiB)
    assert oom.value.allocated_bytes == 50 * MiB
    assert oom.value.reserved_bytes == 200 * MiB


def test_live_data_beyond_capacity_runs_out_of_memory():
    # 60 MiB live + a new 60 MiB segment > 100 MiB, and nothing cached can be released.
    sim = CachingAllocatorSim(capacity_bytes=100 * MiB)
    sim.malloc(60 * MiB)
    with pytest.raises(SimulatedOutOfMemory):
        sim.malloc(60 * MiB)
    assert sim.reserved_bytes == 60 * MiB


def test_empty_cache_keeps_partly_used_segments():
    # release_cached_blocks: the free 2 MiB small segment goes; the 20 MiB large segment holding
    # a live 5 MiB block stays.
    sim = CachingAllocatorSim()
    sim.free(sim.malloc(100))
    sim.malloc(5 * MiB)
    sim.empty_cache()
    assert sim.reserved_bytes == 20 * MiB


def test_freeing_an_unknown_handle_is_an_error():
    sim = CachingAllocatorSim()
    handle = sim.malloc(100)
    sim.free(handle)
    with pytest.raises(ValueError):
        sim.free(handle)


def test_random_replay_never_reserves_less_than_it_allocates_and_merges_back_fully():
    # Segments are only carved into blocks, so reserved >= allocated at every step. When all is
    # freed, every segment has merged back into one free block, which empty_cache releases.
    rng = random.Random(1234)
    sim = CachingAllocatorSim()
    live = []
    for _ in range(20_000):
        if live and rng.random() < 0.45:
            sim.free(live.pop(rng.randrange(len(live))))
        else:
            live.append(sim.malloc(rng.choice([rng.randrange(1, 2 * MiB),
                                               rng.randrange(1, 64 * MiB)])))
        assert sim.reserved_bytes >= sim.allocated_bytes
    assert sim.max_reserved_bytes >= sim.max_allocated_bytes
    for handle in live:
        sim.free(handle)
    assert sim.allocated_bytes == 0
    sim.empty_cache()
    assert sim.reserved_bytes == 0
