"""Public API of the recommender: the fastest configuration that fits, its runners-up, or why
nothing fits; and two questions built on it, the longest sequence and the fewest GPUs.

How a query runs:
1. `search_space` lists each knob's candidate values (pins, hardware rules) and the batch splits.
2. Every knob combination gets its speed per split (solver/speed.py); combinations are visited
   fastest-first and get their memory terms from `required_bytes_by_moment`, the same function
   `estimate` uses. A combination whose best conceivable speed (memory ignored) is below the
   tie-break band of the K-th fastest combination already known to fit cannot be chosen or
   listed, so its memory is not evaluated: a bound, not a heuristic (the property test checks
   the result against the whole space).
3. CP-SAT (solver/cpsat_model.py) picks the plan: memory and host RAM constraints, fastest first,
   then the best quality within the tolerance (16-bit over 8 over 4, full over LoRA, larger rank,
   AMP over pure_bf16, 32-bit AdamW over 8-bit, more headroom).
4. The plan is re-evaluated by `estimate`, exactly as `fitplan estimate` would.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .affine import Affine
from .cpsat_model import KnobTable, SplitOption, build_model, solve_plan, speed_floor
from .errors import InvalidConfigurationError
from .estimate import Estimate, estimate, required_bytes_by_moment
from .gpu_spec import GIB, GpuSet, to_gib
from .instance import Instance
from .memory_peak import host_ram_bytes
from .model_spec import ModelSpec
from .rules import attention_allowed, bits_allowed, precision_allowed
from .search_space import BatchSplit, Knobs, SearchSpace, search_space
from .speed import StepTime, step_time
from .training_config import Method, Offload, Optimizer, Precision, TrainConfig, make_config

SPEED_SCALE = 1000  # speed_units = tokens/s x 1000, rounded down: integers for CP-SAT

# Host RAM per node when the user does not say (--host-ram-gib): twice the node's GPU memory, at
# least 64 GiB. NVIDIA's DGX systems ship 1.6x (DGX A100: 1 TB for 8 x 80 GB) to 3.2x (DGX H100:
# 2 TB for 8 x 80 GB) their GPU memory as system memory (DGX user guides, hardware overview).
HOST_RAM_PER_GPU_MEMORY = 2
HOST_RAM_MIN_BYTES = 64 * GIB


class SolverSettings(BaseModel):
    """How to search: time limit, determinism, the headroom kept free, how many plans."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    time_limit_s: float = Field(default=10.0, gt=0)
    workers: int = Field(default=1, ge=1)  # 1 = deterministic search
    headroom_fraction: float = Field(default=0.05, ge=0, lt=1)  # of each GPU's memory, kept free
    top_k: int = Field(default=1, ge=1)  # plans returned: the best and top_k - 1 runners-up
    quality_tolerance: float = Field(default=0.01, ge=0, lt=1)  # speed band of the quality tie-break
    host_ram_bytes: int | None = Field(default=None, gt=0)  # per node; None = default_host_ram_bytes


class RunnerUp(BaseModel):
    model_config = ConfigDict(frozen=True)

    plan: TrainConfig
    tokens_per_s: float
    step_time_s: float
    peak_bytes: int


class Recommendation(BaseModel):
    """What `recommend` answers. `plan` is None when nothing fits; `explanation` then says why."""

    model_config = ConfigDict(frozen=True)

    status: Literal["optimal", "feasible", "infeasible"]
    plan: TrainConfig | None = None
    estimate: Estimate | None = None
    tokens_per_s: float | None = None
    step_time_s: float | None = None
    step_time_breakdown_s: dict[str, float] = Field(default_factory=dict)
    global_batch: int | None = None
    runners_up: list[RunnerUp] = Field(default_factory=list)
    explanation: "Explanation | None" = None
    headroom_fraction: float
    memory_budget_bytes: int
    host_ram_limit_bytes: int

    def time_to_train_s(self, tokens: int) -> float | None:
        """Seconds to train on `tokens` tokens at the plan's speed."""
        return tokens / self.tokens_per_s if self.tokens_per_s else None

    def to_json_dict(self) -> dict:
        """The stable `recommend --json` object."""
        plan = None
        if self.plan is not None:
            p = self.plan
            plan = {"method": p.method.value, "bits": p.bits, "lora_rank": p.lora_rank if p.uses_lora else None,
                    "micro_batch": p.micro_batch, "grad_accum": p.grad_accum, "grad_ckpt": p.grad_ckpt,
                    "attn": p.attn.value, "zero_stage": p.zero_stage, "offload": p.offload.value,
                    "optim": p.optim.value, "precision": p.precision.value, "n_gpus": p.n_gpus,
                    "seq_len": p.seq_len, "global_batch": p.global_batch}
        return {
            "status": self.status,
            "plan": plan,
            "estimate": self.estimate.to_json_dict() if self.estimate else None,
            "tokens_per_s": round(self.tokens_per_s, 1) if self.tokens_per_s is not None else None,
            "step_time_s": round(self.step_time_s, 4) if self.step_time_s is not None else None,
            "step_time_breakdown_s": {k: round(v, 4) for k, v in self.step_time_breakdown_s.items()},
            "headroom_fraction": self.headroom_fraction,
            "memory_budget_gib": to_gib(self.memory_budget_bytes),
            "host_ram_limit_gib": to_gib(self.host_ram_limit_bytes),
            "runners_up": [{"plan": r.plan.model_dump(mode="json"), "tokens_per_s": round(r.tokens_per_s, 1),
                            "step_time_s": round(r.step_time_s, 4), "peak_gib": to_gib(r.peak_bytes)}
                           for r in self.runners_up],
            "explanation": self.explanation.to_json_dict() if self.explanation else None,
        }


from .explain import Explanation, explain  # noqa: E402  (explain imports the tables defined here)

Recommendation.model_rebuild()


# ---- budgets -----------------------------------------------------------------------------------

def memory_budget_bytes(gpus: GpuSet, headroom_fraction: float) -> int:
    """Bytes a plan may require per GPU: the capacity less the headroom, rounded down."""
    return int(gpus.gpu.memory_bytes * (1 - headroom_fraction))


def default_host_ram_bytes(gpus: GpuSet) -> int:
    return max(HOST_RAM_MIN_BYTES, HOST_RAM_PER_GPU_MEMORY * gpus.gpus_per_node * gpus.gpu.memory_bytes)


def host_ram_limit_bytes(gpus: GpuSet, settings: SolverSettings) -> int:
    return settings.host_ram_bytes if settings.host_ram_bytes is not None else default_host_ram_bytes(gpus)


# ---- the quality order -------------------------------------------------------------------------

_METHOD_QUALITY = {Method.full: 3, Method.lora: 2, Method.qlora: 2, Method.freeze: 1}


def quality_key(knobs: Knobs, split: BatchSplit, headroom_bytes: int, speed_units: int, order: int) -> tuple:
    """Larger is better: 16-bit over 8 over 4, full over LoRA over freeze, larger rank, AMP over
    pure_bf16, 32-bit AdamW over the rest, then the simpler setup (no CPU offload, the lower ZeRO
    stage: fewer moving parts for the same speed), more headroom, then faster; the last two
    entries only make the order total (earlier combination in the search order, smaller micro
    batch)."""
    rank = knobs.lora_rank if knobs.method in (Method.lora, Method.qlora) else 0
    return (knobs.bits, _METHOD_QUALITY[knobs.method], rank, knobs.precision != Precision.pure_bf16,
            knobs.optim == Optimizer.adamw, knobs.offload == Offload.none, -knobs.zero_stage,
            headroom_bytes, speed_units, -order, -split.micro_batch)


# ---- tables ------------------------------------------------------------------------------------

@dataclass
class Candidates:
    """What the solver sees for one query, and what the explanation needs."""

    space: SearchSpace
    tables: list[KnobTable]
    order: dict[Knobs, int]  # position of each combination in the search order
    budget_bytes: int
    host_ram_limit_bytes: int


def _speed_units(tokens_per_s: float) -> int:
    return int(tokens_per_s * SPEED_SCALE)


def _required(model: ModelSpec, gpus: GpuSet, config: TrainConfig) -> tuple[Affine, ...]:
    return tuple(required for _, _, required in required_bytes_by_moment(model, gpus, config))


def _fits(required: tuple[Affine, ...], micro_batch: int, budget: int) -> bool:
    return all(term.at(micro_batch) <= budget for term in required)


def build_candidates(instance: Instance, settings: SolverSettings, *, prune: bool = True) -> Candidates:
    """Knob tables for the solver, fastest combinations first, memory evaluated while it can
    still matter (see module docstring)."""
    model = instance.model
    gpus = instance.gpus
    space = search_space(instance)
    budget = memory_budget_bytes(gpus, settings.headroom_fraction)
    host_limit = host_ram_limit_bytes(gpus, settings)
    combos = space.knob_combinations()
    order = {knobs: i for i, knobs in enumerate(combos)}
    # Tokens/s never falls as the micro batch grows at a fixed GPU count and global batch (per
    # micro-step costs are either per token or amortised over more tokens; solver/speed.py), so
    # the largest micro batch's speed bounds the combination's.
    largest: dict[int, BatchSplit] = {}
    for split in space.splits:
        if split.n_gpus not in largest or split.micro_batch > largest[split.n_gpus].micro_batch:
            largest[split.n_gpus] = split
    speeds: list[tuple[int, Knobs]] = []
    for knobs in combos:
        split = largest.get(knobs.n_gpus)
        if split is not None:
            speeds.append((_speed_units(step_time(model, gpus, space.config(knobs, split)).tokens_per_s), knobs))
    speeds.sort(key=lambda item: (-item[0], order[item[1]]))

    memory: dict[tuple[Knobs, bool], tuple[tuple[Affine, ...], int]] = {}

    def memory_of(knobs: Knobs, accumulating: bool, config: TrainConfig) -> tuple[tuple[Affine, ...], int]:
        # required_bytes_by_moment reads grad_accum only as "accumulating or not"
        # (memory_peak._gradients_during_forward): one evaluation per group.
        key = (knobs, accumulating)
        if key not in memory:
            memory[key] = (_required(model, gpus, config), host_ram_bytes(model, config, gpus.gpus_per_node))
        return memory[key]

    def groups(knobs: Knobs) -> list[tuple[bool, list[BatchSplit]]]:
        splits = space.splits_for(knobs.n_gpus)
        return [(acc, [s for s in splits if (s.grad_accum > 1) == acc]) for acc in (False, True)
                if any((s.grad_accum > 1) == acc for s in splits)]

    def can_fit(knobs: Knobs) -> bool:
        """Whether any split of this combination fits (smallest micro batch of each group)."""
        for accumulating, splits in groups(knobs):
            smallest = min(splits, key=lambda s: s.micro_batch)
            required, host = memory_of(knobs, accumulating, space.config(knobs, smallest))
            if host <= host_limit and _fits(required, smallest.micro_batch, budget):
                return True
        return False

    lean_optims = _leanest_optimizers(space, model)  # leanest first
    tables: list[KnobTable] = []
    fitting_speeds: list[int] = []  # best fitting speed of each combination seen, descending
    for upper_bound, knobs in speeds:
        if prune and len(fitting_speeds) >= settings.top_k:
            if upper_bound < speed_floor(fitting_speeds[settings.top_k - 1], settings.quality_tolerance):
                break
        # Memory grows with the LoRA rank and the optimizer's state bytes (see _frugal): when the
        # leanest sibling cannot fit, this combination cannot either and needs no table.
        siblings = [replace(knobs, lora_rank=space.lora_ranks[0], optim=o) for o in lean_optims]
        lean = next((sibling for sibling in siblings if sibling in order), knobs)
        if prune and lean != knobs and not can_fit(lean):
            continue
        best_fitting = None
        for accumulating, splits in groups(knobs):
            group = []
            for split in splits:
                config = space.config(knobs, split)
                group.append((split, config, _speed_units(step_time(model, gpus, config).tokens_per_s)))
            required, host = memory_of(knobs, accumulating, group[0][1])
            tables.append(KnobTable(knobs=knobs, required=required, host_ram_bytes=host,
                                    options=tuple(SplitOption(split, units) for split, _, units in group)))
            if host <= host_limit:
                for split, _, units in group:
                    if _fits(required, split.micro_batch, budget):
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


# ---- input checks ------------------------------------------------------------------------------

def check_pins(instance: Instance) -> None:
    """Pins the hardware or LLaMA-Factory rule out are bad input (exit 2), not 'nothing fits'."""
    pins, gpus, model = instance.pins, instance.gpus, instance.model
    gpu = gpus.gpu
    if pins.precision is not None and not precision_allowed(gpus, pins.precision):
        raise InvalidConfigurationError(
            f"{gpu.name} has no bf16 hardware (compute capability {gpu.compute_capability} < 8.0): "
            "use --precision fp16 or leave it to the recommender")
    if pins.attn is not None and not attention_allowed(gpus, pins.attn):
        raise InvalidConfigurationError(
            f"FlashAttention-2 needs compute capability >= 8.0 and {gpu.name} has {gpu.compute_capability}: "
            "use --attn sdpa or leave it to the recommender")
    if pins.bits is not None and not bits_allowed(gpus, pins.bits):
        raise InvalidConfigurationError(f"bitsandbytes 4-bit does not run on {gpu.name}: use --bits 8 or 16")
    if pins.n_gpus is not None and pins.n_gpus > gpus.total_gpus:
        raise InvalidConfigurationError(f"--n-gpus {pins.n_gpus} is more than the {gpus.total_gpus} GPUs in {gpus.label()}")
    if pins.lora_rank is not None and pins.lora_rank > model.hidden_size:
        raise InvalidConfigurationError(
            f"LoRA rank {pins.lora_rank} exceeds the hidden size {model.hidden_size} of {model.name}")
    combined = {k: v for k, v in pins.pinned().items() if k in ("method", "bits", "zero_stage", "offload", "precision")}
    if combined.get("bits", 16) != 16:
        combined.setdefault("method", Method.qlora)
    if combined.get("method") == Method.qlora:
        combined.setdefault("bits", 4)
    if combined.get("offload", Offload.none) != Offload.none:  # a free ZeRO stage adapts to the offload
        combined.setdefault("zero_stage", 3 if combined["offload"] == Offload.all else 2)
    make_config(**combined)  # LLaMA-Factory's rejections of the pinned knobs, as one line


# ---- the answer --------------------------------------------------------------------------------

def _plan_numbers(instance: Instance, config: TrainConfig) -> StepTime:
    return step_time(instance.model, instance.gpus, config)


def recommend(instance: Instance, settings: SolverSettings | None = None, *,
              explain_failure: bool = True) -> Recommendation:
    """The fastest configuration of `instance` that fits (with runners-up), or why none does
    (`explain_failure=False` skips the explanation, for questions that only ask whether)."""
    settings = settings or SolverSettings()
    check_pins(instance)
    candidates = build_candidates(instance, settings)
    tables = candidates.tables
    common = dict(headroom_fraction=settings.headroom_fraction, memory_budget_bytes=candidates.budget_bytes,
                  host_ram_limit_bytes=candidates.host_ram_limit_bytes, global_batch=candidates.space.global_batch)
    solved = None
    if tables:
        model, v = build_model(tables, candidates.budget_bytes, candidates.host_ram_limit_bytes)
        solved = solve_plan(model, v, tables, tolerance=settings.quality_tolerance,
                            time_limit_s=settings.time_limit_s, workers=settings.workers)
    if solved is None:
        explanation = explain(instance, settings, candidates) if explain_failure else None
        return Recommendation(status="infeasible", explanation=explanation, **common)

    table = tables[solved.table_index]
    split = table.options[solved.option_index].split
    plan = candidates.space.config(table.knobs, split)
    timing = _plan_numbers(instance, plan)
    runners = []
    excluded = [table.knobs]
    for _ in range(settings.top_k - 1):
        for k, t in enumerate(tables):
            if t.knobs == excluded[-1]:
                model.Add(v.choose[k] == 0)
        nxt = solve_plan(model, v, tables, tolerance=settings.quality_tolerance,
                         time_limit_s=settings.time_limit_s, workers=settings.workers)
        if nxt is None:
            break
        t = tables[nxt.table_index]
        config = candidates.space.config(t.knobs, t.options[nxt.option_index].split)
        other = _plan_numbers(instance, config)
        runners.append(RunnerUp(plan=config, tokens_per_s=other.tokens_per_s, step_time_s=other.step_time_s,
                                peak_bytes=max(term.at(config.micro_batch) for term in t.required)))
        excluded.append(t.knobs)
    return Recommendation(
        status="optimal" if solved.optimal else "feasible",
        plan=plan,
        estimate=estimate(instance.model, instance.gpus, plan),
        tokens_per_s=timing.tokens_per_s,
        step_time_s=timing.step_time_s,
        step_time_breakdown_s={"compute": timing.compute_s, "launch_overhead": timing.overhead_s,
                               "dequantisation": timing.dequant_s, "adapters": timing.adapters_s,
                               "communication": timing.communication_s,
                               "offload": timing.offload_s, "optimizer": timing.optimizer_s},
        runners_up=runners,
        **common,
    )


# ---- questions built on recommend -------------------------------------------------------------

def _leanest_optimizers(space: SearchSpace, model: ModelSpec) -> tuple:
    """The candidate optimizer with the fewest state bytes per parameter (memory_states), and the
    leanest one DeepSpeed can offload: bitsandbytes' 8-bit optimizers cannot run under CPU offload
    (TrainConfig rejects them there), so the offloading plans need their own leanest optimizer."""
    from .memory_states import optimizer_state_bytes_each

    combos = space.knob_combinations()
    if len(space.optims) == 1 or not combos:
        return space.optims[:1]
    probe = space.config(combos[0], space.splits_for(combos[0].n_gpus)[0])

    def leanest(optims):
        return min(optims, key=lambda o: (optimizer_state_bytes_each(model, probe.model_copy(update={"optim": o})),
                                          space.optims.index(o)))

    offloadable = [o for o in space.optims if o not in (Optimizer.adamw_8bit, Optimizer.paged_adamw_8bit)]
    chosen = [leanest(space.optims)]
    if offloadable and leanest(offloadable) not in chosen:
        chosen.append(leanest(offloadable))
    return tuple(chosen)  # leanest first


def _frugal(space: SearchSpace, model: ModelSpec) -> SearchSpace:
    """The part of the space that decides whether anything fits at all: every per-GPU memory term
    and host RAM grow with the LoRA rank (more adapter parameters, larger adapter outputs) and
    with the optimizer's state bytes, so the smallest rank and the leanest optimizers fit whenever
    anything does; and only the smallest micro batch of each GPU count."""
    optims = _leanest_optimizers(space, model)
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
    space = _frugal(search_space(instance), model)
    budget = memory_budget_bytes(gpus, settings.headroom_fraction)
    host_limit = host_ram_limit_bytes(gpus, settings)
    for knobs in space.knob_combinations():
        for split in space.splits_for(knobs.n_gpus):
            config = space.config(knobs, split)
            if host_ram_bytes(model, config, gpus.gpus_per_node) > host_limit:
                continue
            if _fits(_required(model, gpus, config), split.micro_batch, budget):
                return True
    return False


def max_seq_len(instance: Instance, settings: SolverSettings | None = None, *, granularity: int = 128,
                upper: int | None = None) -> int | None:
    """Longest sequence (a multiple of `granularity`, at most `upper`, default 4 x the model's
    positions) at which some plan fits; None if not even `granularity` tokens fit."""
    settings = settings or SolverSettings()
    upper = upper or 4 * instance.model.max_position_embeddings

    def fits(seq: int) -> bool:
        workload = instance.workload.model_copy(update={"seq_len": seq, "mean_sample_len": None})
        return fits_somewhere(instance.model_copy(update={"workload": workload}), settings)

    if not fits(granularity):
        return None
    lo, hi = 1, max(1, upper // granularity)  # invariant: lo x granularity fits
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid * granularity):
            lo = mid
        else:
            hi = mid - 1
    return lo * granularity


def min_gpus(instance: Instance, settings: SolverSettings | None = None, *, limit: int = 64,
             start: int = 1) -> int | None:
    """Fewest GPUs of this kind (at least `start`) on which some plan fits, ignoring a --n-gpus
    pin: 1..G on one node of the set's size G, then whole nodes. None if not within `limit`."""
    settings = settings or SolverSettings()
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
