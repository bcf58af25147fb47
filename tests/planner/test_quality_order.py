"""The fastest plan that fits wins, unless a stated tie-break applies within the tolerance.

Checked over the runners-up `recommend` lists on scenarios users ran (issue 12): a listed plan
faster than the one above it lost only on a criterion of `QUALITY_ORDER`, the words every
runners-up list prints, and only inside the speed band of the fastest plan."""

from __future__ import annotations

import pytest

import fitplan
from fitplan.cli.render import render_recommendation
from fitplan.solver.planner.candidates import QUALITY_ORDER, quality_values, speed_units
from fitplan.solver.planner.cpsat_model import speed_floor
from fitplan.solver.problem.knobs import Offload
from fitplan.solver.problem.settings import SolverSettings

SCENARIOS = [
    ("llama-3.1-70b", "2x8xH100", dict(method="full", seq_len=4096)),
    ("qwen2.5-14b", "1xT4", {}),
    ("qwen2.5-7b", "4xA10", dict(seq_len=1024)),
    ("llama-3.1-8b", "1xA100-80G", dict(method="full")),
    ("qwen2.5-7b", "8xP4", dict(seq_len=1024)),
]


def first_difference(a: tuple, b: tuple) -> tuple[str, bool] | None:
    """(criterion, a is better) for the first QUALITY_ORDER criterion on which a and b differ."""
    for (name, _), x, y in zip(QUALITY_ORDER, a, b):
        if x != y:
            return name, x > y
    return None


def listed(result) -> list[tuple]:
    """(config, tokens/s, QUALITY_ORDER values) of the plan and each runner-up, in listed order."""
    budget = result.memory_budget_bytes
    rows = [(result.plan, result.tokens_per_s, quality_values(result.plan, budget - result.estimate.peak_bytes))]
    rows += [(r.plan, r.tokens_per_s, quality_values(r.plan, budget - r.peak_bytes)) for r in result.runners_up]
    return rows


@pytest.mark.parametrize("model,gpus,pins", SCENARIOS, ids=lambda v: v if isinstance(v, str) else "")
def test_a_faster_runner_up_loses_only_by_a_stated_tie_break_within_the_tolerance(model, gpus, pins):
    settings = SolverSettings(top_k=4)
    result = fitplan.recommend(model, gpus, **pins, settings=settings)
    rows = listed(result)
    for i, (config, speed, quality) in enumerate(rows):
        remaining = rows[i:]  # each listed plan is the best of what is not listed above it
        floor = speed_floor(max(speed_units(s) for _, s, _ in remaining), settings.quality_tolerance)
        assert speed_units(speed) >= floor, (config, speed)
        for other, other_speed, other_quality in remaining[1:]:
            if speed_units(other_speed) <= speed_units(speed) or speed_units(other_speed) < floor:
                continue
            decided = first_difference(quality, other_quality)
            assert decided is not None and decided[1], (
                f"{other} is faster ({other_speed:.0f} > {speed:.0f} tokens/s) and no stated tie-break prefers "
                f"{config}")


def test_parameter_offload_never_beats_a_faster_optimizer_only_offload():
    # issue 12: ZeRO-3 offload of parameters + optimizer was chosen over optimizer-only offload,
    # which its own runner-up said was faster, because offload counted as yes/no and headroom decided
    result = fitplan.recommend("llama-3.1-70b", "2x8xH100", method="full", seq_len=4096,
                               settings=SolverSettings(top_k=2))
    assert result.plan.offload == Offload.optimizer, result.plan
    assert all(r.tokens_per_s <= result.tokens_per_s or r.plan.offload == Offload.none for r in result.runners_up)


def test_the_runners_up_list_prints_every_stated_tie_break():
    result = fitplan.recommend("qwen2.5-7b", "4xA10", seq_len=1024, settings=SolverSettings(top_k=3))
    text = render_recommendation(result, None)
    for _, words in QUALITY_ORDER:
        assert words in text
