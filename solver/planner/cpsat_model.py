"""The CP-SAT model that picks one plan: which knob combination, which batch split.

Built from small named pieces, each testable on a tiny table:
- `new_variables`: one literal per knob combination (`choose`), one per (combination, batch
  split) (`pick`), the micro batch as an integer;
- `add_one_plan`, `add_split_channeling`: exactly one combination, exactly one of its splits,
  and the micro batch that split sets;
- `add_memory_limits`: for every peak moment of the chosen combination,
  `fixed_bytes + bytes_per_sample * micro_batch <= budget`, the coefficients taken from
  `memory.estimate.required_bytes_by_moment` (the one source of memory truth), integer bytes;
- `add_host_ram_limit`: offload's host RAM per node within what the node has;
- `add_knob_values` (asked for, not built by default): one literal per knob value, equal to the
  OR of the combinations having that value, for questions that assume a value;
- `speed_expression` / `quality_expression`: the objective terms, tabulated per (combination,
  split) by the caller from speed/step_time.py and the quality order.

`solve_plan` optimises lexicographically: highest tokens/s first, then, among plans within the
tolerance of that speed, the best quality rank (unique, so the answer is unique). Both stages
state what they restrict as assumptions (options below the speed band, excluded combinations),
so the model itself is built once and never changes: `PlanModel` keeps it with the exclusions
of the runners-up found so far.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from ..memory.terms import Affine
from .search_space import BatchSplit, Knobs

if TYPE_CHECKING:
    from ortools.sat.python import cp_model

log = logging.getLogger(__name__)


def ortools_cp_model():
    """OR-Tools' CP-SAT module, imported when a model is first built: it takes 0.4 s and pulls in
    numpy and pandas, which commands that never solve (--help, estimate, models) need not pay."""
    from ortools.sat.python import cp_model

    return cp_model

KNOB_FIELDS = ("method", "bits", "lora_rank", "grad_ckpt", "attn", "zero_stage", "offload", "optim", "precision",
               "n_gpus")


@dataclass(frozen=True)
class SplitOption:
    """One batch split of a combination with its tabulated objective terms."""

    split: BatchSplit
    speed_units: int  # tokens/s over all GPUs x SPEED_SCALE, rounded down
    quality_rank: int = 0  # position in the quality order over all options (higher = better)


@dataclass(frozen=True)
class KnobTable:
    """Everything the model needs about one knob combination."""

    knobs: Knobs
    required: tuple[Affine, ...]  # required bytes per GPU at each peak moment, affine in micro batch
    host_ram_bytes: int  # host RAM per node (offload)
    options: tuple[SplitOption, ...]


@dataclass
class Variables:
    choose: list[cp_model.IntVar] = field(default_factory=list)
    pick: list[list[cp_model.IntVar]] = field(default_factory=list)
    micro_batch: cp_model.IntVar | None = None
    knob_value: dict[tuple[str, object], cp_model.IntVar] = field(default_factory=dict)


def new_variables(model: cp_model.CpModel, tables: list[KnobTable]) -> Variables:
    cp_model = ortools_cp_model()
    v = Variables()
    micro_batches = sorted({o.split.micro_batch for t in tables for o in t.options}) or [1]
    v.micro_batch = model.NewIntVarFromDomain(cp_model.Domain.FromValues(micro_batches), "micro_batch")
    for k, table in enumerate(tables):
        v.choose.append(model.NewBoolVar(f"choose_{k}"))
        v.pick.append([model.NewBoolVar(f"pick_{k}_{j}") for j in range(len(table.options))])
    return v


def _values(tables: list[KnobTable], name: str) -> list:
    seen = []
    for table in tables:
        value = getattr(table.knobs, name)
        if value not in seen:
            seen.append(value)
    return seen


def add_one_plan(model: cp_model.CpModel, v: Variables) -> None:
    model.AddExactlyOne(v.choose)


def add_split_channeling(model: cp_model.CpModel, v: Variables, tables: list[KnobTable]) -> None:
    """A chosen combination picks exactly one of its splits; the split sets the micro batch."""
    for k, table in enumerate(tables):
        model.Add(sum(v.pick[k]) == v.choose[k])
        for j, option in enumerate(table.options):
            model.Add(v.micro_batch == option.split.micro_batch).OnlyEnforceIf(v.pick[k][j])


def add_memory_limits(model: cp_model.CpModel, v: Variables, tables: list[KnobTable], budget_bytes: int) -> None:
    """Every peak moment of the chosen combination fits the per-GPU budget at the chosen micro batch."""
    for k, table in enumerate(tables):
        for term in table.required:
            if term.bytes_per_sample == 0:
                if term.fixed_bytes > budget_bytes:
                    model.Add(v.choose[k] == 0)
                continue
            model.Add(term.fixed_bytes + term.bytes_per_sample * v.micro_batch <= budget_bytes).OnlyEnforceIf(v.choose[k])


def add_host_ram_limit(model: cp_model.CpModel, v: Variables, tables: list[KnobTable], host_ram_bytes: int) -> None:
    for k, table in enumerate(tables):
        if table.host_ram_bytes > host_ram_bytes:
            model.Add(v.choose[k] == 0)


def add_knob_values(model: cp_model.CpModel, v: Variables, tables: list[KnobTable]) -> None:
    """knob_value[(name, value)] <=> the chosen combination has that value."""
    for name in KNOB_FIELDS:
        for value in _values(tables, name):
            literal = model.NewBoolVar(f"{name}={getattr(value, 'value', value)}")
            v.knob_value[(name, value)] = literal
            members = [v.choose[k] for k, t in enumerate(tables) if getattr(t.knobs, name) == value]
            model.Add(sum(members) == literal)


def speed_expression(v: Variables, tables: list[KnobTable]) -> cp_model.LinearExpr:
    cp_model = ortools_cp_model()
    return cp_model.LinearExpr.WeightedSum(
        [v.pick[k][j] for k, t in enumerate(tables) for j in range(len(t.options))],
        [o.speed_units for t in tables for o in t.options])


def quality_expression(v: Variables, tables: list[KnobTable]) -> cp_model.LinearExpr:
    cp_model = ortools_cp_model()
    return cp_model.LinearExpr.WeightedSum(
        [v.pick[k][j] for k, t in enumerate(tables) for j in range(len(t.options))],
        [o.quality_rank for t in tables for o in t.options])


def build_model(tables: list[KnobTable], budget_bytes: int, host_ram_bytes: int, *,
                knob_values: bool = False) -> tuple[cp_model.CpModel, Variables]:
    """The whole model without an objective (`knob_values`: also the knob-value literals)."""
    cp_model = ortools_cp_model()
    model = cp_model.CpModel()
    v = new_variables(model, tables)
    add_one_plan(model, v)
    add_split_channeling(model, v, tables)
    add_memory_limits(model, v, tables, budget_bytes)
    add_host_ram_limit(model, v, tables, host_ram_bytes)
    if knob_values:
        add_knob_values(model, v, tables)
    log.debug("cp-sat model: %d combinations, %d options", len(tables), sum(len(t.options) for t in tables))
    return model, v


class Solution(BaseModel):
    """The plan CP-SAT picked: indices into the tables, whether both stages were proved optimal,
    its speed and the proved upper bound on any plan's speed (integer speed units)."""

    model_config = ConfigDict(frozen=True)

    table_index: int
    option_index: int
    optimal: bool
    speed_units: int
    speed_bound_units: int

    @property
    def status(self) -> str:
        return "optimal" if self.optimal else "feasible"


def new_solver(time_limit_s: float, workers: int) -> cp_model.CpSolver:
    cp_model = ortools_cp_model()
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit_s
    solver.parameters.num_workers = workers
    solver.parameters.random_seed = 0
    return solver


def _chosen(solver: cp_model.CpSolver, v: Variables) -> tuple[int, int]:
    for k, row in enumerate(v.pick):
        for j, literal in enumerate(row):
            if solver.BooleanValue(literal):
                return k, j
    raise AssertionError("a solution without a picked option")


def _solve(model: cp_model.CpModel, solver: cp_model.CpSolver, assumptions: list) -> int:
    model.ClearAssumptions()
    model.AddAssumptions(assumptions)
    status = solver.Solve(model)
    model.ClearAssumptions()
    return status


def solve_plan(model: cp_model.CpModel, v: Variables, tables: list[KnobTable], *, tolerance: float,
               time_limit_s: float, workers: int, excluded: tuple[int, ...] = ()) -> Solution | None:
    """Fastest plan, then the best quality within `tolerance` of that speed, leaving out the
    combinations (table indices) in `excluded`. None if infeasible."""
    cp_model = ortools_cp_model()
    leave_out = [v.choose[k].Not() for k in excluded]
    solver = new_solver(time_limit_s, workers)
    model.Maximize(speed_expression(v, tables))
    status = _solve(model, solver, leave_out)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    best_speed = int(solver.ObjectiveValue())
    bound = int(solver.BestObjectiveBound())
    optimal = status == cp_model.OPTIMAL
    floor = speed_floor(best_speed, tolerance)
    too_slow = [v.pick[k][j].Not() for k, t in enumerate(tables) for j, o in enumerate(t.options)
                if o.speed_units < floor]
    model.Maximize(quality_expression(v, tables))
    status = _solve(model, solver, leave_out + too_slow)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):  # pragma: no cover - stage 1's plan is feasible
        return None
    k, j = _chosen(solver, v)
    return Solution(table_index=k, option_index=j, optimal=optimal and status == cp_model.OPTIMAL,
                    speed_units=tables[k].options[j].speed_units, speed_bound_units=bound)


def speed_floor(best_speed_units: int, tolerance: float) -> int:
    """Lowest speed (integer units) still inside the tie-break band of the best."""
    tolerance_ppm = round(tolerance * 1_000_000)
    return -(-(best_speed_units * (1_000_000 - tolerance_ppm)) // 1_000_000)


class PlanModel:
    """The model of one query, built once, and the combinations left out so far: the best plan
    is `solve()`; each runner-up is `exclude(...)` of the last answer, then `solve()` again."""

    def __init__(self, tables: list[KnobTable], budget_bytes: int, host_ram_bytes: int) -> None:
        self.tables = tables
        self.model, self.variables = build_model(tables, budget_bytes, host_ram_bytes)
        self.excluded: list[int] = []

    def exclude(self, knobs: Knobs) -> None:
        """Leave out every table of this knob combination from later solves."""
        self.excluded += [k for k, t in enumerate(self.tables) if t.knobs == knobs and k not in self.excluded]

    def solve(self, *, tolerance: float, time_limit_s: float, workers: int) -> Solution | None:
        return solve_plan(self.model, self.variables, self.tables, tolerance=tolerance, time_limit_s=time_limit_s,
                          workers=workers, excluded=tuple(self.excluded))


def conflicting_assumptions(model: cp_model.CpModel, assumptions: list, time_limit_s: float,
                            workers: int) -> list[int] | None:
    """Indices of a subset of the assumption literals that cannot hold together (CP-SAT's
    sufficient assumptions for infeasibility); None when they can, or nothing was proved."""
    cp_model = ortools_cp_model()
    model.ClearObjective()
    solver = new_solver(time_limit_s, workers)
    status = _solve(model, solver, assumptions)
    if status != cp_model.INFEASIBLE:
        return None
    core = set(solver.SufficientAssumptionsForInfeasibility())
    return [i for i, literal in enumerate(assumptions) if literal.Index() in core]
