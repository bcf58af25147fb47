"""Why a mixture-of-experts plan is what it is, in words: which of the MoE terms binds it, the
weights of all experts (on every GPU unless ZeRO-3 shards them), the routed activations, or the
load before step 1 (memory/moe.py, memory/load.py)."""

from __future__ import annotations

from ..memory.terms import Term
from ..problem.answers import Estimate, PlanExplanation
from ..problem.knobs import Method
from ..specs.model import ModelSpec
from ..units import format_gib

_ACTIVATION_PARTS = (Term.router_activations, Term.routed_activations, Term.shared_expert_activations)


def _expert_state_bytes(model: ModelSpec, estimate: Estimate) -> int:
    """All experts' bytes on one GPU at the peak: their frozen weights, or under full fine-tuning
    their share of the trainable parameters, gradients and optimizer states."""
    terms = estimate.term_bytes
    if estimate.config.method != Method.full:
        return terms.get(Term.expert_weights.value, 0)
    share = model.expert_params_total() / max(estimate.trainable_params, 1)
    states = sum(terms.get(t.value, 0) for t in (Term.trainable_params, Term.gradients, Term.optimizer_states))
    return int(states * share)


def explain_plan(model: ModelSpec, estimate: Estimate) -> PlanExplanation | None:
    """The binding MoE term of a plan's estimate (None for a dense model)."""
    if not model.is_moe:
        return None
    peak = format_gib(estimate.peak_bytes)
    experts = _expert_state_bytes(model, estimate)
    routed = sum(estimate.term_bytes.get(t.value, 0) for t in _ACTIVATION_PARTS)
    gathered = estimate.term_bytes.get(Term.zero3_gathered_moe_block.value, 0)
    compared = {"expert_weights": experts, "routed_activations": routed}
    sharding = (f"ZeRO-3 shards them {estimate.config.n_gpus} ways and gathers one MoE block "
                f"({format_gib(gathered)}) at a time" if estimate.config.zero_stage == 3
                else "every GPU holds all of them (LLaMA-Factory's HF backend has no expert parallelism)")
    if estimate.peak_moment == "load":
        loaded = estimate.term_bytes.get(Term.weights_loaded_whole.value, 0)
        compared["load"] = loaded
        line = (f"the load binds this plan: {format_gib(loaded)} of weights sit whole on each GPU before ZeRO-3 "
                f"shards them ({peak} required); training itself needs less")
        return PlanExplanation(binding="load", line=line, term_bytes=compared)
    ckpt = " (checkpointing keeps only the layer inputs)" if estimate.config.grad_ckpt else ""
    if experts >= routed:
        line = (f"all experts' weights bind this plan: {format_gib(experts)} of the {peak} per GPU; {sharding}; "
                f"routed-expert activations {format_gib(routed)}{ckpt}")
        return PlanExplanation(binding="expert_weights", line=line, term_bytes=compared)
    line = (f"the routed-expert activations bind this plan: {format_gib(routed)} of the {peak} per GPU at "
            f"{estimate.peak_moment} (top-{model.experts_run_per_token()} rows per token in every MoE layer); "
            f"all experts' weights {format_gib(experts)}, {sharding}")
    return PlanExplanation(binding="routed_activations", line=line, term_bytes=compared)
