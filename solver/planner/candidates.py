"""The tables CP-SAT chooses from: every knob combination of the search space with its speed
per batch split (speed/step_time.py) and its memory per peak moment (memory/estimate.py, the
same function `estimate` uses), and the quality order that breaks near-ties.

Combinations are visited fastest-first. One whose best conceivable speed (memory ignored) is
below the tie-break band of the K-th fastest combination already known to fit cannot be chosen
or listed, so its memory is not evaluated: a bound, not a heuristic (the property test checks
the result against the whole space).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..memory.estimate import required_bytes_by_moment
from ..memory.peak import host_ram_bytes, micro_batch_key
from ..memory.states import optimizer_state_bytes_each
from ..memory.terms import Affine
from ..problem.config import TrainConfig
from ..problem.instance import Instance
from ..problem.knobs import BITSANDBYTES_OPTIMIZERS, FsdpStrategy, MemoryOptimizer, Method, Offload, Optimizer, Precision
from ..problem.settings import SolverSettings, host_ram_limit_bytes, memory_budget_bytes
from ..specs.gpu import GpuSet
from ..specs.model import ModelSpec
from ..speed.step_time import step_time
from .cpsat_model import KnobTable, SplitOption, speed_floor
from .search_space import BatchSplit, Knobs, SearchSpace, search_space

SPEED_SCALE = 1000  # speed_units = tokens/s x 1000, rounded down: integers for CP-SAT


# ---- the quality order -------------------------------------------------------------------------

_METHOD_QUALITY = {Method.full: 3, Method.lora: 2, Method.qlora: 2, Method.freeze: 1}
_OFFLOAD_QUALITY = {Offload.none: 2, Offload.optimizer: 1, Offload.all: 0}
# Plain AdamW, then the optimizer that keeps a full first moment, then the projections (GaLore's
# SVD basis before APOLLO's random one), then one block at a time.
_MEMORY_OPTIMIZER_QUALITY = {MemoryOptimizer.none: 6, MemoryOptimizer.adam_mini: 5, MemoryOptimizer.galore: 4,
                             MemoryOptimizer.galore_layerwise: 4, MemoryOptimizer.apollo: 3,
                             MemoryOptimizer.apollo_layerwise: 3, MemoryOptimizer.badam: 1}

# The stated tie-break order: among the plans within `quality_tolerance` of the fastest, the
# first of these on which two plans differ decides (larger is better); where none does, the
# faster plan wins. Every report that lists runners-up prints these words.
QUALITY_ORDER: tuple[tuple[str, str], ...] = (
    ("bits", "16-bit over 8 over 4-bit"),
    ("method", "full over LoRA over freeze"),
    ("memory_optimizer", "plain AdamW over Adam-mini over GaLore over APOLLO over BAdam"),
    ("lora_rank", "larger rank"),
    ("amp", "AMP over pure_bf16"),
    ("adamw", "32-bit AdamW"),
    ("offload", "less CPU offload (none, then optimizer states, then parameters too)"),
    ("zero_stage", "less sharding (lower ZeRO stage; FSDP shard_grad_op as ZeRO-2, full_shard as ZeRO-3)"),
    ("packing", "unpacked samples"),
    ("liger", "no Liger kernels"),
    ("headroom", "more headroom"),
)


def quality_values(knobs, headroom_bytes: int) -> tuple:
    """The QUALITY_ORDER values of a plan (a `Knobs` or a `TrainConfig`), larger is better."""
    rank = knobs.lora_rank if knobs.method in (Method.lora, Method.qlora) else 0
    return (knobs.bits, _METHOD_QUALITY[knobs.method], _MEMORY_OPTIMIZER_QUALITY[knobs.memory_optimizer], rank,
            knobs.precision != Precision.pure_bf16, knobs.optim == Optimizer.adamw, _OFFLOAD_QUALITY[knobs.offload],
            -shard_degree(knobs), not knobs.packing, not knobs.liger, headroom_bytes)


def quality_key(knobs: Knobs, split: BatchSplit, headroom_bytes: int, speed_units: int, order: int) -> tuple:
    """Larger is better: the stated QUALITY_ORDER, then faster; the last two entries only make the
    order total (earlier combination in the search order, smaller micro batch). Offload counts
    how much leaves the GPU, not only whether something does: parameter offload is never
    preferred to optimizer-only offload that is as fast (issue 12)."""
    return (*quality_values(knobs, headroom_bytes), speed_units, -order, -split.micro_batch)


# How much each engine shards, on ZeRO's scale: FSDP's SHARD_GRAD_OP shards what ZeRO-2 does,
# FULL_SHARD and HYBRID_SHARD (within a node) what ZeRO-3 does, NO_SHARD nothing.
_FSDP_DEGREE = {FsdpStrategy.no_shard: 0, FsdpStrategy.shard_grad_op: 2, FsdpStrategy.full_shard: 3,
                FsdpStrategy.hybrid_shard: 3}


def shard_degree(knobs: Knobs) -> int:
    return _FSDP_DEGREE[knobs.fsdp_strategy] if knobs.fsdp_strategy is not None else knobs.zero_stage


# ---- tables ------------------------------------------------------------------------------------

@dataclass
class Candidates:
    """What the solver sees for one query, and what the explanation needs."""

    space: SearchSpace
    tables: list[KnobTable]
    order: dict[Knobs, int]  # position of each combination in the search order
    budget_bytes: int
    host_ram_limit_bytes: int


def speed_units(tokens_per_s: float) -> int:
    return int(tokens_per_s * SPEED_SCALE)


def required_bytes(model: ModelSpec, gpus: GpuSet, config: TrainConfig) -> tuple[Affine, ...]:
    """Required bytes per GPU at each peak moment, affine in the micro batch (memory/estimate.py)."""
    return tuple(required for _, _, required in required_bytes_by_moment(model, gpus, config))


def fits(required: tuple[Affine, ...], micro_batch: int, budget: int) -> bool:
    return all(term.at(micro_batch) <= budget for term in required)


def build_candidates(instance: Instance, settings: SolverSettings, *, prune: bool = True,
                     with_memory_optimizers: bool = False) -> Candidates:
    """Knob tables for the solver, fastest combinations first, memory evaluated while it can
    still matter (see module docstring)."""
    model = instance.model
    gpus = instance.gpus
    space = search_space(instance, with_memory_optimizers)
    budget = memory_budget_bytes(gpus, settings.headroom_fraction, variable_length=not instance.workload.packing)
    host_limit = host_ram_limit_bytes(gpus, settings)
    combos = space.knob_combinations()
    order = {knobs: i for i, knobs in enumerate(combos)}
    # Tokens/s never falls as the micro batch grows at a fixed GPU count and global batch (per
    # micro-step costs are either per token or amortised over more tokens; solver/speed/step_time.py)
    # from micro batch 2 on, so the largest micro batch's speed bounds the combination's; micro batch
    # 1 of unpacked data of a known mean length has no padding (speed/levers.py data_shape) and is
    # bounded by itself.
    shape = dict(space.data_shape)
    unpadded_one = not shape.get("packing") and (shape.get("mean_sample_len") or space.seq_len) < space.seq_len
    tokens_per_s: dict[tuple[Knobs, BatchSplit], float] = {}  # the bound's speeds, asked again for the tables

    def speed_of(knobs: Knobs, split: BatchSplit) -> float:
        key = (knobs, split)
        if key not in tokens_per_s:
            tokens_per_s[key] = step_time(model, gpus, space.config(knobs, split)).tokens_per_s
        return tokens_per_s[key]

    speeds: list[tuple[int, Knobs]] = []
    for knobs in combos:
        allowed = space.splits_allowed(knobs)
        if allowed:
            ends = {max(allowed, key=lambda s: s.micro_batch)}
            if unpadded_one and not knobs.packing:
                ends.add(min(allowed, key=lambda s: s.micro_batch))
            best = max(speed_of(knobs, split) for split in ends)
            speeds.append((speed_units(best), knobs))
    speeds.sort(key=lambda item: (-item[0], order[item[1]]))

    memory: dict[tuple, tuple[tuple[Affine, ...], int]] = {}

    def memory_of(knobs: Knobs, accumulating, config: TrainConfig) -> tuple[tuple[Affine, ...], int]:
        # required_bytes_by_moment reads grad_accum only as "accumulating or not"
        # (memory/peak.py _gradients_during_forward) and the micro batch only through
        # micro_batch_key: one evaluation per group.
        key = (knobs, accumulating)
        if key not in memory:
            memory[key] = (required_bytes(model, gpus, config), host_ram_bytes(model, config, gpus.gpus_per_node))
        return memory[key]

    def groups(knobs: Knobs) -> list[tuple[tuple, list[BatchSplit]]]:
        splits = space.splits_allowed(knobs)
        keyed: dict[tuple, list[BatchSplit]] = {}
        varies = knobs.liger or dict(space.fixed_levers).get("unsloth_gc", False)
        for split in splits:  # accumulating or not, then what the micro batch changes beyond an affine term
            extra = micro_batch_key(model, space.config(knobs, split)) if varies else ()
            keyed.setdefault((split.grad_accum > 1, extra), []).append(split)
        return sorted(keyed.items(), key=lambda item: (item[0][0], item[1][0].micro_batch))

    def can_fit(knobs: Knobs) -> bool:
        """Whether any split of this combination fits (smallest micro batch of each group)."""
        for accumulating, splits in groups(knobs):
            smallest = min(splits, key=lambda s: s.micro_batch)
            required, host = memory_of(knobs, accumulating, space.config(knobs, smallest))
            if host <= host_limit and fits(required, smallest.micro_batch, budget):
                return True
        return False

    lean_optims = leanest_optimizers(space, model)  # leanest first
    tables: list[KnobTable] = []
    fitting_speeds: list[int] = []  # best fitting speed of each combination seen, descending
    for upper_bound, knobs in speeds:
        if prune and len(fitting_speeds) >= settings.top_k:
            if upper_bound < speed_floor(fitting_speeds[settings.top_k - 1], settings.quality_tolerance):
                break
        # Memory grows with the LoRA rank and the optimizer's state bytes (see questions.frugal_space): when the
        # leanest sibling cannot fit, this combination cannot either and needs no table.
        siblings = [replace(knobs, lora_rank=space.lora_ranks[0], optim=o) for o in lean_optims]
        lean = next((sibling for sibling in siblings if sibling in order), knobs)
        if prune and lean != knobs and not can_fit(lean):
            continue
        best_fitting = None
        for accumulating, splits in groups(knobs):
            group = []
            for split in splits:
                group.append((split, space.config(knobs, split), speed_units(speed_of(knobs, split))))
            required, host = memory_of(knobs, accumulating, group[0][1])
            tables.append(KnobTable(knobs=knobs, required=required, host_ram_bytes=host,
                                    options=tuple(SplitOption(split, units) for split, _, units in group)))
            if host <= host_limit:
                for split, _, units in group:
                    if fits(required, split.micro_batch, budget):
                        best_fitting = max(best_fitting or 0, units)
        if best_fitting is not None:
            fitting_speeds.append(best_fitting)
            fitting_speeds.sort(reverse=True)
    return Candidates(space=space, tables=_with_quality_ranks(tables, order, budget), order=order,
                      budget_bytes=budget, host_ram_limit_bytes=host_limit)


def _with_quality_ranks(tables: list[KnobTable], order: dict[Knobs, int], budget: int) -> list[KnobTable]:
    keyed = []
    for k, table in enumerate(tables):
        for j, option in enumerate(table.options):
            headroom = budget - max(term.at(option.split.micro_batch) for term in table.required)
            keyed.append((quality_key(table.knobs, option.split, headroom, option.speed_units, order[table.knobs]), k, j))
    keyed.sort()
    rank = {(k, j): position + 1 for position, (_, k, j) in enumerate(keyed)}
    return [KnobTable(knobs=t.knobs, required=t.required, host_ram_bytes=t.host_ram_bytes,
                      options=tuple(SplitOption(o.split, o.speed_units, rank[(k, j)]) for j, o in enumerate(t.options)))
            for k, t in enumerate(tables)]


def leanest_optimizers(space: SearchSpace, model: ModelSpec) -> tuple:
    """The candidate optimizer with the fewest state bytes per parameter (memory/states.py), and the
    leanest one DeepSpeed can offload: bitsandbytes' 8-bit optimizers cannot run under CPU offload
    (TrainConfig rejects them there), so the offloading plans need their own leanest optimizer."""
    combos = space.knob_combinations()
    if len(space.optims) == 1 or not combos:
        return space.optims[:1]
    probe = space.config(combos[0], space.splits_for(combos[0].n_gpus)[0])

    def leanest(optims):
        return min(optims, key=lambda o: (optimizer_state_bytes_each(model, probe.model_copy(update={"optim": o})),
                                          space.optims.index(o)))

    offloadable = [o for o in space.optims if o not in BITSANDBYTES_OPTIMIZERS]
    chosen = [leanest(space.optims)]
    if offloadable and leanest(offloadable) not in chosen:
        chosen.append(leanest(offloadable))
    return tuple(chosen)  # leanest first
