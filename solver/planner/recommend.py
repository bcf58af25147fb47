"""Public API of the recommender: the fastest configuration that fits, its runners-up, or why
nothing fits.

How a query runs (docs/architecture.md draws it):
1. `search_space` lists each knob's candidate values (pins, hardware rules) and the batch splits.
2. `candidates` tabulates every knob combination's speed per split (speed/step_time.py) and its
   memory per peak moment (memory/estimate.py, the same function `estimate` uses), fastest
   first, skipping what provably cannot be chosen.
3. CP-SAT (`cpsat_model`, run by `solve`) picks the plan: memory and host RAM constraints,
   fastest first, then the best quality within the tolerance (`candidates.QUALITY_ORDER`: 16-bit
   over 8 over 4, full over LoRA, larger rank, AMP over pure_bf16, 32-bit AdamW, less offload,
   lower ZeRO stage, more headroom; else the faster); the plan is
   re-evaluated by `estimate`, exactly as `fitplan estimate` would.
4. When nothing fits, `explain` names the binding constraint and the smallest changes that fit
   (`questions`: longest sequence, fewest GPUs, a pin dropped). For a mixture-of-experts plan,
   `plan_explanation` says which MoE term binds it.
5. Asked for (`other_engines=True`, as `fitplan recommend` does), `engine_comparison` puts each
   other sharding engine's fastest plan beside the chosen one, with why it loses.
"""

from __future__ import annotations

from ..problem.answers import Recommendation
from ..problem.instance import Instance
from ..problem.settings import SolverSettings
from .engine_comparison import compare_engines
from .explain import explain
from .plan_explanation import explain_plan
from .solve import answer_with_candidates


def recommend(instance: Instance, settings: SolverSettings | None = None, *,
              explain_failure: bool = True, other_engines: bool = False) -> Recommendation:
    """The fastest configuration of `instance` that fits (with runners-up), or why none does
    (`explain_failure=False` skips the explanation, for questions that only ask whether);
    `other_engines=True` adds the other sharding engines' fastest plans when the engine is free."""
    settings = settings or SolverSettings()
    answer, candidates = answer_with_candidates(instance, settings)
    if answer.plan is None and explain_failure:
        return answer.model_copy(update={"explanation": explain(instance, settings, candidates)})
    if answer.estimate is not None and instance.model.is_moe:
        answer = answer.model_copy(update={"plan_explanation": explain_plan(instance.model, answer.estimate)})
    if other_engines:
        answer = answer.model_copy(update={"other_engines": compare_engines(instance, settings, answer)})
    return answer
