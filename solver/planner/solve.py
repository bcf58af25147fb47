"""CP-SAT picks the plan of one query and its runners-up from the candidate tables; the plan is
re-evaluated by `estimate`, exactly as `fitplan estimate` would. No explanation here: when
nothing fits the answer is `infeasible` (planner/recommend.py adds the why)."""

from __future__ import annotations

from ..memory.estimate import estimate
from ..problem.answers import Recommendation, RunnerUp
from ..problem.instance import Instance, check_pins
from ..problem.settings import SolverSettings, min_free_bytes
from ..speed.step_time import step_time
from .candidates import Candidates, build_candidates
from .cpsat_model import PlanModel
from .search_space import memory_optimizers_may_help


def answer_with_candidates(instance: Instance, settings: SolverSettings | None = None
                           ) -> tuple[Recommendation, Candidates]:
    """The fastest configuration of `instance` that fits, with up to `top_k - 1` runners-up, and
    the candidate tables it was chosen from (which the explanation of an infeasible answer reads)."""
    settings = settings or SolverSettings()
    check_pins(instance)
    answer = _answer(instance, settings, build_candidates(instance, settings))
    if answer[0].plan is None and memory_optimizers_may_help(instance):
        # GaLore, APOLLO, BAdam, Adam-mini: proposed when plain AdamW full fine-tuning fits nowhere
        answer = _answer(instance, settings, build_candidates(instance, settings, with_memory_optimizers=True))
    return answer


def _answer(instance: Instance, settings: SolverSettings, candidates: Candidates) -> tuple[Recommendation, Candidates]:
    tables = candidates.tables
    common = dict(headroom_fraction=settings.headroom_fraction, memory_budget_bytes=candidates.budget_bytes,
                  min_free_bytes=min_free_bytes(not instance.workload.packing),
                  host_ram_limit_bytes=candidates.host_ram_limit_bytes, global_batch=candidates.space.global_batch,
                  speed_known=instance.gpus.gpu.rates_known)
    if instance.gpus.nodes > 1:  # the network between nodes the speed model assumed, shown with the plan
        common.update(inter_node_gbit_per_s=instance.gpus.network_gbit_per_s,
                      inter_node_source=instance.gpus.network_source())
    solve_args = dict(tolerance=settings.quality_tolerance, time_limit_s=settings.time_limit_s,
                      workers=settings.workers)
    plan_model = PlanModel(tables, candidates.budget_bytes, candidates.host_ram_limit_bytes) if tables else None
    solution = plan_model.solve(**solve_args) if plan_model else None
    if solution is None:
        return Recommendation(status="infeasible", **common), candidates

    table = tables[solution.table_index]
    plan = candidates.space.config(table.knobs, table.options[solution.option_index].split)
    timing = step_time(instance.model, instance.gpus, plan)
    runners = []
    last = table.knobs
    for _ in range(settings.top_k - 1):
        plan_model.exclude(last)
        runner = plan_model.solve(**solve_args)
        if runner is None:
            break
        t = tables[runner.table_index]
        config = candidates.space.config(t.knobs, t.options[runner.option_index].split)
        other = step_time(instance.model, instance.gpus, config)
        runners.append(RunnerUp(plan=config, tokens_per_s=other.tokens_per_s, step_time_s=other.step_time_s,
                                peak_bytes=max(term.at(config.micro_batch) for term in t.required)))
        last = t.knobs
    recommendation = Recommendation(
        status=solution.status,
        plan=plan,
        estimate=estimate(instance.model, instance.gpus, plan),
        # a VRAM budget's speed ranks its plans but is not a figure for that card (specs/budget.py)
        tokens_per_s=timing.tokens_per_s if instance.gpus.gpu.rates_known else None,
        step_time_s=timing.step_time_s if instance.gpus.gpu.rates_known else None,
        step_time_breakdown_s=timing.breakdown_s() if instance.gpus.gpu.rates_known else {},
        runners_up=runners,
        **common,
    )
    return recommendation, candidates


def solve(instance: Instance, settings: SolverSettings | None = None) -> Recommendation:
    """The fastest configuration that fits and its runners-up; `infeasible` without a why."""
    return answer_with_candidates(instance, settings)[0]
