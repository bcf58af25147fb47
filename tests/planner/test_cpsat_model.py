"""Each constraint group of the CP-SAT model on a tiny hand-made table: the numbers here are the
test's own inputs, not fitplan's memory or speed figures."""

from ortools.sat.python import cp_model

from fitplan.solver.memory.terms import Affine
from fitplan.solver.planner.cpsat_model import (
    KnobTable,
    SplitOption,
    add_host_ram_limit,
    add_memory_limits,
    add_one_plan,
    add_split_channeling,
    build_model,
    conflicting_assumptions,
    new_variables,
    solve_plan,
    speed_expression,
    speed_floor,
)
from fitplan.solver.planner.search_space import BatchSplit, Knobs
from fitplan.solver.problem.knobs import Attention, Method, Offload, Optimizer, Precision


def knobs(rank: int = 8, method: Method = Method.lora, bits: int = 16) -> Knobs:
    return Knobs(method, bits, rank, True, Attention.sdpa, 0, Offload.none, Optimizer.adamw, Precision.bf16, 1)


def table(required: list[Affine], speeds: dict[int, int], *, rank: int = 8, host: int = 0,
          quality: dict[int, int] | None = None, method: Method = Method.lora, bits: int = 16) -> KnobTable:
    quality = quality or {}
    options = tuple(SplitOption(BatchSplit(1, mb, 8 // mb), speed, quality.get(mb, 0)) for mb, speed in speeds.items())
    return KnobTable(knobs=knobs(rank, method, bits), required=tuple(required), host_ram_bytes=host, options=options)


def _solve_speed(tables, budget):
    model = cp_model.CpModel()
    v = new_variables(model, tables)
    add_one_plan(model, v)
    add_split_channeling(model, v, tables)
    add_memory_limits(model, v, tables, budget)
    model.Maximize(speed_expression(v, tables))
    solver = cp_model.CpSolver()
    status = solver.Solve(model)
    return status, solver, v


def test_memory_limit_caps_the_micro_batch_linearly():
    # 100 + 10 x micro_batch <= 130 allows micro batch 1 and 2, not 4
    tables = [table([Affine(100, 10)], {1: 10, 2: 20, 4: 40})]
    status, solver, v = _solve_speed(tables, budget=130)
    assert status == cp_model.OPTIMAL
    assert solver.Value(v.micro_batch) == 2


def test_every_moment_must_fit_not_just_the_largest_at_micro_batch_one():
    # moment A is larger at micro batch 1, moment B grows faster: B binds at micro batch 4
    tables = [table([Affine(120, 1), Affine(50, 25)], {1: 10, 2: 20, 4: 40})]
    status, solver, v = _solve_speed(tables, budget=130)
    assert solver.Value(v.micro_batch) == 2


def test_nothing_fits_is_infeasible():
    tables = [table([Affine(200, 1)], {1: 10})]
    status, _, _ = _solve_speed(tables, budget=130)
    assert status == cp_model.INFEASIBLE


def test_host_ram_limit_excludes_the_offloading_combination():
    tables = [table([Affine(0, 1)], {1: 100}, rank=8, host=500), table([Affine(0, 1)], {1: 50}, rank=16, host=0)]
    model = cp_model.CpModel()
    v = new_variables(model, tables)
    add_one_plan(model, v)
    add_split_channeling(model, v, tables)
    add_host_ram_limit(model, v, tables, host_ram_bytes=400)
    model.Maximize(speed_expression(v, tables))
    solver = cp_model.CpSolver()
    solver.Solve(model)
    assert solver.BooleanValue(v.choose[1]) and not solver.BooleanValue(v.choose[0])


def test_quality_breaks_ties_within_the_tolerance_only():
    fast = table([Affine(0, 1)], {1: 1000}, rank=8, quality={1: 1})
    close = table([Affine(0, 1)], {1: 995}, rank=64, quality={1: 2})
    slow = table([Affine(0, 1)], {1: 985}, rank=128, quality={1: 3})
    tables = [fast, close, slow]
    model, v = build_model(tables, budget_bytes=10, host_ram_bytes=0)
    solved = solve_plan(model, v, tables, tolerance=0.01, time_limit_s=5, workers=1)
    assert solved.table_index == 1  # 995 >= 990 = 1 % below 1000; 985 is not


def test_speed_floor_is_integer_and_inclusive():
    assert speed_floor(1000, 0.01) == 990
    assert speed_floor(1001, 0.01) == 991  # 990.99 rounds up: a plan must be at least that fast


def test_conflicting_pins_are_reported_by_sufficient_assumptions():
    tables = [table([Affine(200, 1)], {1: 10}, method=Method.full), table([Affine(0, 1)], {1: 5}, rank=8)]
    model, v = build_model(tables, budget_bytes=100, host_ram_bytes=0, knob_values=True)
    pins = [v.knob_value[("method", Method.full)]]
    assert conflicting_assumptions(model, pins, time_limit_s=5, workers=1) == [0]
    assert conflicting_assumptions(model, [v.knob_value[("method", Method.lora)]], time_limit_s=5, workers=1) is None
