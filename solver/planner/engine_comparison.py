"""The sharding engines the chosen plan does not use, beside it: each engine's fastest plan and,
in words, why the chosen plan beats it (issue 15: "on the 8 x P4 question, explain in words why
the chosen plan beats the other engine").

Each alternative is the same query with `--sharding` pinned to that engine, solved by the same
candidate tables and CP-SAT model, so a line says nothing the solver did not decide: the
alternative is slower (which step-time part costs it the most, per token), or as fast but lower
in the quality order (`candidates.QUALITY_ORDER`, the first difference), or nothing fits with
that engine (the binding memory term, `explain.binding_sentence`)."""

from __future__ import annotations

from ..errors import InvalidConfigurationError
from ..problem.answers import EngineAlternative, Recommendation
from ..problem.config import TrainConfig, describe_plan, describe_sharding
from ..problem.instance import Instance, pinned_sharding
from ..problem.knobs import Sharding
from ..problem.settings import SolverSettings
from .candidates import QUALITY_ORDER, quality_values
from .explain import binding_sentence
from .solve import answer_with_candidates

ENGINE_WORDS = {Sharding.none: "plain DDP", Sharding.deepspeed: "DeepSpeed ZeRO", Sharding.fsdp: "FSDP"}


def engine_words(config: TrainConfig) -> str:
    """The engine of a plan in words: `plain DDP`, `DeepSpeed ZeRO-3`, `FSDP1 full_shard`."""
    if config.sharding == Sharding.deepspeed:
        return f"DeepSpeed {describe_sharding(config)}"
    return describe_sharding(config) or ENGINE_WORDS[Sharding.none]


def engine_is_free(instance: Instance) -> bool:
    """No pin decides the engine (--sharding, --zero, --fsdp-strategy, --fsdp-version)."""
    return pinned_sharding(instance.pins.pinned()) is None


def _seconds_per_million_tokens(answer: Recommendation) -> dict[str, float]:
    """Each step-time part per million trained tokens: plans of different global batches compare."""
    tokens = answer.plan.global_batch * answer.plan.seq_len
    return {part: seconds * 1e6 / tokens for part, seconds in answer.step_time_breakdown_s.items()}


def _costliest_part(chosen: Recommendation, other: Recommendation) -> str:
    """The step-time part that costs the alternative the most over the chosen plan, per token."""
    mine, theirs = _seconds_per_million_tokens(chosen), _seconds_per_million_tokens(other)
    part = max(theirs, key=lambda name: theirs[name] - mine.get(name, 0.0))
    return (f"{part.replace('_', ' ')} {theirs[part]:,.1f} s per million tokens against "
            f"{mine.get(part, 0.0):,.1f} s")


def _first_quality_difference(chosen: TrainConfig, other: TrainConfig) -> str:
    """The first QUALITY_ORDER entry on which the chosen plan ranks above the alternative."""
    for (name, words), mine, theirs in zip(QUALITY_ORDER, quality_values(chosen, 0), quality_values(other, 0)):
        if mine != theirs:
            return words
    return "speed (the faster plan wins where quality ties)"


def _line(engine: Sharding, chosen: Recommendation, other: Recommendation, tolerance: float) -> str:
    words = ENGINE_WORDS[engine]
    plan = describe_plan(other.plan)
    ranks_higher = f"the plan above ranks higher on {_first_quality_difference(chosen.plan, other.plan)}"
    if not chosen.speed_known:
        return f"{words}: {plan} fits; {ranks_higher}"
    ratio = other.tokens_per_s / chosen.tokens_per_s
    speed = f"{other.tokens_per_s:,.0f} tokens/s"
    if ratio < 1 - tolerance:  # outside the quality tie-break's band: speed decided
        return f"{words}: {plan}, {speed} ({1 - ratio:.0%} slower): {_costliest_part(chosen, other)}"
    return f"{words}: {plan}, {speed} (within {tolerance:.0%} of the plan above): {ranks_higher}"


def _alternative(instance: Instance, settings: SolverSettings, chosen: Recommendation,
                 engine: Sharding) -> EngineAlternative:
    pinned = instance.model_copy(update={"pins": instance.pins.model_copy(update={"sharding": engine})})
    try:
        other, candidates = answer_with_candidates(pinned, settings)
    except InvalidConfigurationError as refusal:  # the engine cannot run these pins here
        return EngineAlternative(sharding=engine, line=f"{ENGINE_WORDS[engine]}: ruled out: {refusal}")
    if other.plan is None:
        return EngineAlternative(sharding=engine, line=(f"{ENGINE_WORDS[engine]}: nothing fits: "
                                                        f"{binding_sentence(pinned, settings, candidates)}"))
    return EngineAlternative(sharding=engine, plan=other.plan, tokens_per_s=other.tokens_per_s,
                             peak_bytes=other.estimate.peak_bytes, line=_line(engine, chosen, other, settings.quality_tolerance))


def compare_engines(instance: Instance, settings: SolverSettings, chosen: Recommendation) -> list[EngineAlternative]:
    """The other engines' fastest plans beside `chosen`, when the engine was free and a plan was chosen."""
    if chosen.plan is None or not engine_is_free(instance):
        return []
    single = settings.model_copy(update={"top_k": 1})
    return [_alternative(instance, single, chosen, engine) for engine in Sharding if engine != chosen.plan.sharding]
