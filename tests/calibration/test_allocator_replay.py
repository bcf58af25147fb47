"""Replaying a traced step's allocation order through the caching-allocator model: the template
is exact in the sequence length, and the replay shows the mechanism behind fitplan's fitted
variable-length reserve (solver/overhead.py): micro-steps of varying length leave cached
segments that micro-steps of one length do not."""

import random

import pytest

from fitplan.solver.calibration.allocator_replay import StepTemplate, replay, template_from_traces
from fitplan.solver.calibration.allocator_sim import CachingAllocatorSim
from fitplan.solver.units import MIB


def _trace(length: int, free_order: tuple[int, int] = (3, 4)) -> list[tuple]:
    """A toy log in the tracer's format: a weight, then per micro-step a saved activation and a
    vocabulary-sized buffer proportional to the length, freed together."""
    events = [("alloc", 1, 64 * MIB)]
    for step in (1, 2):
        for micro in (0, 1):
            events.append(("mark", 0, 0, f"step {step} micro {micro}"))
            events += [("alloc", 3, 1000 * length), ("alloc", 4, 5000 * length + 512)]
            events += [("free", free_order[0], 0), ("free", free_order[1], 0)]
        events.append(("mark", 0, 0, f"step {step} optimizer"))
    return events


def test_template_sizes_are_affine_in_the_length():
    template = template_from_traces(_trace(1000), 1000, _trace(3000), 3000)
    buffer = template.segments["step 2 micro 1"][1]
    assert (buffer.fixed_bytes, buffer.bytes_per_token) == (512, 5000)
    assert buffer.nbytes(2048) == 5000 * 2048 + 512


def test_storages_that_die_together_may_be_logged_in_any_order():
    # their order does not change the allocator's state, so it must not stop the pairing
    template_from_traces(_trace(1000, free_order=(3, 4)), 1000, _trace(3000, free_order=(4, 3)), 3000)


def test_a_size_that_is_not_affine_is_refused():
    quadratic = [e if e[:2] != ("alloc", 4) else ("alloc", 4, 7) for e in _trace(3000)]
    with pytest.raises(ValueError, match="not affine|differs"):
        template_from_traces(_trace(1000), 1000, quadratic, 3000)


def _toy_template() -> StepTemplate:
    return template_from_traces(_trace(1000), 1000, _trace(3000), 3000)


def test_one_length_reuses_its_segments():
    result = replay(_toy_template(), [2048] * 64, grad_accum=4)
    allocator = CachingAllocatorSim()
    for nbytes in (64 * MIB, 1000 * 2048, 5000 * 2048 + 512):  # the weight and one micro-step
        allocator.malloc(nbytes)
    # the first micro-step's segments serve every later one: reserved = one micro-step's worth
    assert result.max_reserved_bytes == allocator.max_reserved_bytes


def test_varying_lengths_leave_cached_segments_behind():
    rng = random.Random(0)
    lengths = [rng.randint(200, 2048) for _ in range(64)]
    steady = replay(_toy_template(), [max(lengths)] * 64, grad_accum=4)
    varying = replay(_toy_template(), lengths, grad_accum=4)
    assert varying.max_allocated_bytes == steady.max_allocated_bytes  # same longest micro-step
    assert varying.max_reserved_bytes > steady.max_reserved_bytes


@pytest.mark.trace
def test_a_real_trace_is_exactly_affine_in_the_length():
    pytest.importorskip("torch", reason="needs the [trace] extra")
    pytest.importorskip("transformers", reason="needs the [trace] extra")
    pytest.importorskip("peft", reason="needs the [trace] extra")
    from fitplan.solver.calibration.allocator_replay import check_template, trace_events
    from fitplan.solver.oracle.small_models import small_model
    from fitplan.solver.problem.config import TrainConfig

    model = small_model("tiny-llama", hidden_size=64, num_layers=2, num_attention_heads=4, num_kv_heads=2,
                        head_dim=16, intermediate_size=176, vocab_size=256)
    config = TrainConfig(method="lora", seq_len=64, micro_batch=1, attn="fa2")
    template = template_from_traces(trace_events(model, config, 48, "fused"), 48,
                                    trace_events(model, config, 96, "fused"), 96)
    check_template(template, trace_events(model, config, 80, "fused"), 80)  # raises on a mismatch
    constant = replay(template, [64] * 8, grad_accum=2)
    assert constant.max_reserved_bytes >= constant.max_allocated_bytes
