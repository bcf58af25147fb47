"""Replay a traced training step's allocation order through the caching-allocator model
(solver/allocator_sim.py) at the sample lengths a run sees, to predict `max_memory_reserved`:
the fragmentation that variable-length micro-steps leave behind, which a trace of one length
cannot show (solver/overhead.py's variable-length reserve is the closed form fitted to it).

A fake-tensor trace (oracle/step.py, record_events=True) logs every storage allocation
and death in order. Two traces at different sequence lengths give, for each event, its size as
an affine function of the length (`check_template` verifies it to the byte at a third length).
A run is then replayed event by event: setup, the first optimizer step, then steady optimizer
steps of `grad_accum` micro-steps, each at its own padded length.

torch is imported only by `trace_events` / `build_template` (the [trace] extra).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..problem.config import TrainConfig
from ..specs.model import ModelSpec
from .allocator_sim import CachingAllocatorSim
from .framework_profiles import LengthDistribution

TRACE_LENGTHS = (1024, 1536)  # two lengths give each event's size as an affine function
CHECK_LENGTH = 1280  # a third one checks that the sizes are exactly affine

SEGMENTS = ("setup", "step 1 micro 0", "step 1 micro 1", "step 1 optimizer",
            "step 2 micro 0", "step 2 micro 1", "step 2 optimizer")


@dataclass(frozen=True)
class Event:
    kind: str  # "alloc" | "free"
    trace_id: int
    fixed_bytes: int = 0
    bytes_per_token: int = 0  # per token of the micro-step's padded sequence length

    def nbytes(self, length: int) -> int:
        return self.fixed_bytes + self.bytes_per_token * length


@dataclass(frozen=True)
class StepTemplate:
    """The traced allocation order of one configuration, by segment, sizes affine in length."""

    segments: dict[str, list[Event]]


def _canonical_free_order(events: list[tuple]) -> list[tuple]:
    """Sorts each run of consecutive frees by id. Storages that die together (a graph node or a
    checkpoint frame released) are finalized in an order that varies between traces; the
    allocator's state after a run of frees does not depend on their order (merging neighbours
    is commutative), so the canonical order loses nothing."""
    result: list[tuple] = []
    run: list[tuple] = []
    for event in events + [("end", 0, 0)]:
        if event[0] == "free":
            run.append(event)
            continue
        result.extend(sorted(run, key=lambda e: e[1]))
        run = []
        if event[0] != "end":
            result.append(event)
    return result


def _split(events: list[tuple]) -> dict[str, list[tuple]]:
    segments: dict[str, list[tuple]] = {"setup": []}
    current = "setup"
    for event in _canonical_free_order(events):
        if event[0] == "mark":
            current = event[3]
            segments[current] = []
        else:
            segments[current].append(event)
    if tuple(segments) != SEGMENTS:
        raise ValueError(f"trace segments {tuple(segments)} are not {SEGMENTS}: trace with grad_accum=2")
    return segments


def template_from_traces(events_a: list[tuple], length_a: int, events_b: list[tuple], length_b: int) -> StepTemplate:
    """Pairs the two traces event by event; the op order must not depend on the length."""
    a, b = _split(events_a), _split(events_b)
    segments = {}
    for name in SEGMENTS:
        if [e[:2] for e in a[name]] != [e[:2] for e in b[name]]:
            raise ValueError(f"segment {name!r}: the allocation order differs between lengths")
        paired = []
        for ea, eb in zip(a[name], b[name]):
            slope, rest = divmod(eb[2] - ea[2], length_b - length_a)
            if rest:
                raise ValueError(f"segment {name!r}: a size is not affine in the length ({ea[2]} -> {eb[2]})")
            paired.append(Event(ea[0], ea[1], ea[2] - slope * length_a, slope))
        segments[name] = paired
    return StepTemplate(segments)


def check_template(template: StepTemplate, events: list[tuple], length: int) -> None:
    """Raises unless the template reproduces a trace at another length to the byte."""
    for name, traced in _split(events).items():
        for event, row in zip(template.segments[name], traced):
            if event.kind == "alloc" and event.nbytes(length) != row[2]:
                raise ValueError(f"segment {name!r}: predicted {event.nbytes(length)} B, traced {row[2]} B")


def trace_events(model: ModelSpec, config: TrainConfig, length: int, optimizer_impl: str) -> list[tuple]:
    from ..oracle.step import trace_training_step

    traced_config = config.model_copy(update={"seq_len": length, "grad_accum": 2})
    return trace_training_step(model, traced_config, optimizer_impl=optimizer_impl, record_events=True).events


def build_template(model: ModelSpec, config: TrainConfig, optimizer_impl: str) -> StepTemplate:
    (la, lb), lc = TRACE_LENGTHS, CHECK_LENGTH
    template = template_from_traces(trace_events(model, config, la, optimizer_impl), la,
                                    trace_events(model, config, lb, optimizer_impl), lb)
    check_template(template, trace_events(model, config, lc, optimizer_impl), lc)
    return template


@dataclass
class ReplayResult:
    max_allocated_bytes: int
    max_reserved_bytes: int
    micro_steps: int


class _Replayer:
    def __init__(self, template: StepTemplate, capacity_bytes: int | None) -> None:
        self.template = template
        self.allocator = CachingAllocatorSim(capacity_bytes=capacity_bytes)
        self.live: dict[int, int] = {}  # trace id -> allocator handle

    def run(self, segment: str, length: int) -> None:
        for event in self.template.segments[segment]:
            if event.kind == "alloc":
                if event.trace_id in self.live:
                    raise ValueError(f"segment {segment!r} reallocates trace id {event.trace_id} still alive")
                self.live[event.trace_id] = self.allocator.malloc(max(1, event.nbytes(length)))
            else:
                handle = self.live.pop(event.trace_id, None)
                if handle is not None:
                    self.allocator.free(handle)


def replay(template: StepTemplate, lengths: list[int], grad_accum: int,
           capacity_bytes: int | None = None) -> ReplayResult:
    """Runs the micro-steps at `lengths` (padded tokens per sample) through the allocator model:
    an optimizer step after every `grad_accum` micro-steps and after the last one (HF Trainer)."""
    r = _Replayer(template, capacity_bytes)
    r.run("setup", lengths[0])
    first_step = True
    for start in range(0, len(lengths), grad_accum):
        chunk = lengths[start:start + grad_accum]
        step = "step 1" if first_step else "step 2"
        for k, length in enumerate(chunk):
            r.run(f"{step} micro {0 if k == 0 else 1}", length)
        r.run(f"{step} optimizer", chunk[-1])
        first_step = False
    a = r.allocator
    return ReplayResult(a.max_allocated_bytes, a.max_reserved_bytes, len(lengths))


def sample_lengths(lengths: LengthDistribution, max_length: int, samples: int, micro_batch: int,
                   rng) -> list[int]:
    """Padded length of each micro-step of one epoch over `samples` dataset samples: draws from the
    log-normal, drops what the over-length rule deletes, pads each micro batch to its longest."""
    kept = [t for t in (lengths.draw_kept_tokens(rng, max_length) for _ in range(samples)) if t is not None]
    return [max(kept[i:i + micro_batch]) for i in range(0, len(kept), micro_batch)]
