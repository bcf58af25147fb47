"""Questions built on the candidate tables: does anything fit at all, the longest sequence that
fits, the fewest GPUs of this kind that fit, and the nearest configuration to a given one that
fits (what `fitplan check` suggests)."""

from __future__ import annotations

from dataclasses import replace

from ..errors import FitplanError
from ..memory.peak import host_ram_bytes
from ..problem.answers import Estimate
from ..problem.config import TrainConfig
from ..problem.instance import Instance, Pins, Workload, check_pins
from ..problem.settings import SolverSettings, host_ram_limit_bytes, memory_budget_bytes
from ..specs.gpu import GpuSet
from ..specs.model import ModelSpec
from .candidates import fits, leanest_optimizers, required_bytes
from .search_space import SearchSpace, memory_optimizers_may_help, search_space
from .solve import solve


def frugal_space(space: SearchSpace, model: ModelSpec) -> SearchSpace:
    """The part of the space that decides whether anything fits at all: every per-GPU memory term
    and host RAM grow with the LoRA rank (more adapter parameters, larger adapter outputs) and
    with the optimizer's state bytes, so the smallest rank and the leanest optimizers fit whenever
    anything does; and only the smallest micro batch of each GPU count."""
    optims = leanest_optimizers(space, model)
    smallest = {}
    for split in space.splits:
        if split.n_gpus not in smallest or split.micro_batch < smallest[split.n_gpus].micro_batch:
            smallest[split.n_gpus] = split
    return replace(space, lora_ranks=space.lora_ranks[:1], optims=optims, splits=tuple(smallest.values()))


def fits_somewhere(instance: Instance, settings: SolverSettings | None = None) -> bool:
    """Whether any plan of the space fits (the same memory and host RAM limits as `recommend`),
    without ranking: stops at the first that fits."""
    settings = settings or SolverSettings()
    model = instance.model
    gpus = instance.gpus
    space = frugal_space(search_space(instance, memory_optimizers_may_help(instance)), model)
    budget = memory_budget_bytes(gpus, settings.headroom_fraction, variable_length=not instance.workload.packing)
    host_limit = host_ram_limit_bytes(gpus, settings)
    for knobs in space.knob_combinations():
        for split in space.splits_allowed(knobs):
            config = space.config(knobs, split)
            if host_ram_bytes(model, config, gpus.gpus_per_node) > host_limit:
                continue
            if fits(required_bytes(model, gpus, config), split.micro_batch, budget):
                return True
    return False


def max_seq_len(instance: Instance, settings: SolverSettings | None = None, *, granularity: int = 128,
                upper: int | None = None) -> int | None:
    """Longest sequence (a multiple of `granularity`, at most `upper`, default 4 x the model's
    positions) at which some plan fits; None if not even `granularity` tokens fit."""
    settings = settings or SolverSettings()
    check_pins(instance)  # a pin the GPU or LLaMA-Factory rules out is bad input (exit 2), not a length
    upper = upper or 4 * instance.model.max_position_embeddings

    def fits_at(seq: int) -> bool:
        workload = instance.workload.model_copy(update={"seq_len": seq, "mean_sample_len": None})
        return fits_somewhere(instance.model_copy(update={"workload": workload}), settings)

    if not fits_at(granularity):
        return None
    lo, hi = 1, max(1, upper // granularity)  # invariant: lo x granularity fits
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits_at(mid * granularity):
            lo = mid
        else:
            hi = mid - 1
    return lo * granularity


def min_gpus(instance: Instance, settings: SolverSettings | None = None, *, limit: int = 64,
             start: int = 1) -> int | None:
    """Fewest GPUs of this kind (at least `start`) on which some plan fits, ignoring a --n-gpus
    pin: 1..G on one node of the set's size G, then whole nodes. None if not within `limit`."""
    settings = settings or SolverSettings()
    check_pins(instance.model_copy(update={"pins": instance.pins.model_copy(update={"n_gpus": None})}))
    per_node = instance.gpus.gpus_per_node
    counts = list(range(1, per_node + 1)) + list(range(2 * per_node, limit + 1, per_node))
    counts = [count for count in counts if count >= start]
    pins = instance.pins.model_copy(update={"n_gpus": None})
    for count in counts:
        if count > limit:
            break
        nodes, on_node = (1, count) if count <= per_node else (count // per_node, per_node)
        gpus = instance.gpus.model_copy(update={"nodes": nodes, "gpus_per_node": on_node})
        trial = instance.model_copy(update={"gpus": gpus, "pins": pins.model_copy(update={"n_gpus": count})})
        if fits_somewhere(trial, settings):
            return count
    return None


# ---- the nearest configuration that fits (`fitplan check`) ------------------------------------

# Pins relaxed together, one group at a time, most harmless first: memory-only knobs, then the
# optimizer and precision, then the method (which changes what is trained).
_ENGINE = ("zero_stage", "offload", "sharding", "fsdp_strategy", "fsdp_version")
RELAX_GROUPS = (("liger",), ("micro_batch", "grad_accum"), ("grad_ckpt",), ("attn",), _ENGINE, ("offload",),
                ("optim",), ("precision",), ("method", "bits", "lora_rank", "lora_targets", "freeze_layers"),
                ("micro_batch", "grad_accum", "grad_ckpt", "attn") + _ENGINE,
                ("method", "bits", "lora_rank", "lora_targets", "freeze_layers", "micro_batch", "grad_accum",
                 "grad_ckpt", "attn") + _ENGINE + ("optim", "precision"))
NEAREST_FIT_TIME_LIMIT_S = 2.0


def changed_knobs(a: TrainConfig, b: TrainConfig) -> list[str]:
    """The knobs `b` sets differently from `a` (grad_accum follows the micro batch)."""
    return [k for k in type(a).model_fields if k != "grad_accum" and getattr(a, k) != getattr(b, k)]


def nearest_fit(model: ModelSpec, gpus: GpuSet, config: TrainConfig) -> tuple[Estimate, list[str]] | None:
    """The fitting configuration that changes the fewest knobs of `config`, the fastest among
    equals (the recommender with the file's knobs pinned but one group, for each group; global
    batch and sequence length stay); None if none fits."""
    pinned = {k: getattr(config, k) for k in Pins.model_fields}
    if config.fsdp_strategy is None:
        pinned["fsdp_version"] = None  # FSDP's version means nothing without FSDP
    settings = SolverSettings(time_limit_s=NEAREST_FIT_TIME_LIMIT_S)
    best = None
    for group in RELAX_GROUPS:
        pins = Pins(**{k: v for k, v in pinned.items() if k not in group})
        instance = Instance(model=model, gpus=gpus, workload=Workload(seq_len=config.seq_len,
                                                                      global_batch=config.global_batch), pins=pins)
        try:
            answer = solve(instance, settings)
        except FitplanError:
            continue
        if answer.plan is None or answer.estimate is None or not answer.estimate.fits:
            continue
        changed = changed_knobs(config, answer.plan)
        key = (len(changed), -(answer.tokens_per_s or 0.0))
        if best is None or key < best[0]:
            best = (key, answer.estimate, changed)
    return None if best is None else (best[1], best[2])


def terms_moved(before: Estimate, after: Estimate, *, at_least_bytes: int = 0) -> list[tuple[str, int]]:
    """The memory terms (`Term` values) that shrink from `before` to `after` at their peaks,
    largest decrease first, as (term, bytes saved): what a change such as the nearest fit's
    actually moves, which need not be the largest term (`fitplan check`'s explanation)."""
    old = {**before.breakdown_bytes, **before.overhead_bytes}
    new = {**after.breakdown_bytes, **after.overhead_bytes}
    saved = [(term, value - new.get(term, 0)) for term, value in old.items()]
    return sorted([(t, b) for t, b in saved if b > at_least_bytes], key=lambda item: -item[1])
