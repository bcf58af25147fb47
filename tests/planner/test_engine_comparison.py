"""The other sharding engines beside the chosen plan (issue 15: "on the 8 x P4 question,
explain in words why the chosen plan beats the other engine")."""

from __future__ import annotations

import fitplan
from fitplan.solver.planner.engine_comparison import compare_engines
from fitplan.solver.planner.recommend import recommend
from fitplan.solver.problem.knobs import Sharding
from fitplan.solver.problem.settings import SolverSettings


def _compared(model: str, gpus: str, seq_len: int, **pins):
    instance = fitplan.make_instance(model, gpus, seq_len=seq_len, **pins)
    return recommend(instance, SolverSettings(), other_engines=True)


def test_the_p4_plan_says_why_it_beats_each_other_engine():
    result = _compared("qwen2.5-7b", "8xP4", 1024)
    chosen = result.plan.sharding
    assert [a.sharding for a in result.other_engines] == [e for e in Sharding if e != chosen]
    for alternative in result.other_engines:
        assert alternative.line
        if alternative.plan is None:
            assert "nothing fits" in alternative.line or "ruled out" in alternative.line
            continue
        assert alternative.plan.sharding == alternative.sharding
        # the chosen plan is within the quality tolerance of the fastest of all engines
        assert result.tokens_per_s >= alternative.tokens_per_s * (1 - SolverSettings().quality_tolerance) - 1e-6
        assert "slower" in alternative.line or "ranks higher" in alternative.line


def test_a_pinned_engine_is_not_compared():
    assert _compared("qwen2.5-0.5b", "2xA10", 1024, sharding="fsdp").other_engines == []
    assert _compared("qwen2.5-0.5b", "2xA10", 1024, zero_stage=2).other_engines == []


def test_without_a_plan_there_is_nothing_to_compare():
    instance = fitplan.make_instance("qwen2.5-72b", "1xT4", seq_len=4096, method="full", offload="none")
    result = recommend(instance, SolverSettings(), explain_failure=False)
    assert compare_engines(instance, SolverSettings(), result) == []


def test_the_json_lists_the_other_engines():
    payload = _compared("qwen2.5-7b", "8xP4", 1024).to_json_dict()
    assert {a["sharding"] for a in payload["other_engines"]} | {payload["plan"]["sharding"]} == {e.value for e in Sharding}
