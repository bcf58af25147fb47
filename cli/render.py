"""Text for people, for every command but `trace` and `sweep` (render_trace.py,
render_sweep.py): estimates, recommendations, `check` reports and the catalog listings.
Scripts use --json, which the answer types build (fitplan.solver.problem.answers)."""

from __future__ import annotations

from fitplan.solver.memory.terms import PART_TERMS, Term, label_of
from fitplan.solver.planner.candidates import QUALITY_ORDER
from fitplan.solver.planner.engine_comparison import engine_words
from fitplan.solver.planner.questions import terms_moved
from fitplan.solver.problem.answers import RANKING_BY_MEMORY, Estimate, Recommendation
from fitplan.solver.problem.config import describe_config
from fitplan.solver.problem.settings import SolverSettings
from fitplan.solver.specs.gpu import GpuSpec
from fitplan.solver.specs.model import ModelSpec
from fitplan.solver.units import GIB, format_gib


def gib(value: int) -> str:
    return format_gib(value, width=7)


def render_estimate(estimate: Estimate) -> str:
    params = f"trainable {estimate.trainable_params / 1e6:,.1f}M of {estimate.total_params / 1e9:.2f}B params"
    if estimate.active_params is not None and estimate.active_params != estimate.total_params:
        params += f" ({estimate.active_params / 1e9:.2f}B active per token; {estimate.layers})"
    lines = [f"{estimate.model} on {estimate.gpus}: {describe_config(estimate.config)}", params,
             "",
             f"per GPU at the peak ({estimate.peak_phase}):"]
    for name, value in estimate.breakdown_bytes.items():
        lines.append(f"  {label_of(name):<24}{gib(value)}")
        for part, part_value in estimate.term_bytes.items():  # MoE / multimodal parts of this term
            if part != name and part in PART_TERMS and Term(part).reported_as.value == name:
                lines.append(f"    of which {label_of(part)}: {format_gib(part_value)}")
    lines.append(f"  {'= tensors (allocated)':<24}{gib(estimate.tensor_peak_bytes)}")
    for name, value in estimate.overhead_bytes.items():
        lines.append(f"  {label_of(name):<24}{gib(value)}")
    lines.append(f"  {'= required':<24}{gib(estimate.peak_bytes)}   (reserved {gib(estimate.reserved_peak_bytes).strip()}, "
                 f"max_memory_reserved up to {gib(estimate.max_reserved_bytes).strip()})")
    lines.append(f"  {'capacity':<24}{gib(estimate.capacity_bytes)}")
    verdict = "FITS" if estimate.fits else "DOES NOT FIT"
    lines.append(f"  {'headroom':<24}{gib(estimate.headroom_bytes)}   {verdict}")
    if estimate.host_ram_bytes:
        lines.append(f"host RAM per node (offload, or the load): {gib(estimate.host_ram_bytes).strip()}")
    lines += render_levers(estimate)
    for note in estimate.notes:
        lines.append(f"note: {note}")
    return "\n".join(lines)


def render_levers(estimate: Estimate) -> list[str]:
    """Each memory lever that is on: what it changes, without -> with, and where each number comes from."""
    lines = []
    for effect in estimate.levers:
        lines.append(f"{effect.lever}: {effect.summary}")
        for row in effect.rows:
            label = ("    " if row.detail else "  ") + row.label
            figures = gib(row.with_bytes).strip()
            if row.without_bytes is not None:
                figures = f"{gib(row.without_bytes).strip()} -> {figures}"
            lines.append(f"{label:<44}{figures:>22}   [{row.source}]" if row.source else f"{label:<44}{figures:>22}")
    return lines


# ---- recommend ---------------------------------------------------------------------------------

def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def budget_policy(result: Recommendation) -> str:
    """The budget policy in words (solver/problem/settings.py)."""
    words = f"{result.headroom_fraction:.0%} headroom"
    if result.min_free_bytes:
        words += (f", at least {format_gib(result.min_free_bytes, digits=1)} free with variable-length samples; "
                  "cached variable-length segments are freed before an OOM and do not decide fits")
    return words


def render_recommendation(result: Recommendation, tokens: int | None) -> str:
    if result.plan is None:
        lines = ["nothing fits: " + (result.explanation.binding if result.explanation else "no candidate")]
        if result.explanation:
            lines += [f"  try: {s}" for s in result.explanation.suggestions]
        return "\n".join(lines)
    lines = [render_estimate(result.estimate), ""]
    if result.speed_known:
        lines.append(f"speed: {result.tokens_per_s:,.0f} tokens/s over {result.plan.n_gpus} GPU"
                     f"{'s' if result.plan.n_gpus > 1 else ''}, {result.step_time_s:.2f} s per optimizer step "
                     f"(global batch {result.plan.global_batch}, {result.status})")
        parts = [f"{name.replace('_', ' ')} {value:.3f} s" for name, value in result.step_time_breakdown_s.items() if value]
        lines.append("  step: " + ", ".join(parts))
    else:
        lines.append(f"speed: unknown (global batch {result.plan.global_batch}, {result.status}); ranked by "
                     + RANKING_BY_MEMORY)
    if result.plan_explanation is not None:
        lines.append(f"why this plan (MoE): {result.plan_explanation.line}")
    if tokens and result.speed_known:
        lines.append(f"time for {tokens:,} tokens: {duration(result.time_to_train_s(tokens))}")
    if result.inter_node_gbit_per_s is not None:
        lines.append(f"inter-node network: {result.inter_node_gbit_per_s:,.0f} Gb/s per node ({result.inter_node_source})")
    lines.append(f"memory budget per GPU: {format_gib(result.memory_budget_bytes)} ({budget_policy(result)}); "
                 f"host RAM assumed {format_gib(result.host_ram_limit_bytes, digits=0)} per node")
    if result.other_engines:
        lines.append(f"other sharding engines (each one's fastest plan; the plan above uses "
                     f"{engine_words(result.plan)}):")
        lines += [f"  {alternative.line}" for alternative in result.other_engines]
    if result.runners_up:
        order = ", ".join(words for _, words in QUALITY_ORDER)
        if result.speed_known:
            lines.append("runners-up (the plan above is the best quality among plans within "
                         f"{SolverSettings().quality_tolerance:.0%} of the fastest, the first difference deciding: "
                         f"{order}; else the faster):")
        else:
            lines.append(f"runners-up (speed unknown: the plan above is the best in the quality order: {order}):")
        for k, runner in enumerate(result.runners_up, start=2):
            speed = f"{runner.tokens_per_s:,.0f} tokens/s" if result.speed_known else "speed unknown"
            lines.append(f"  {k}. {speed}, peak {format_gib(runner.peak_bytes)}: {describe_config(runner.plan)}")
    return "\n".join(lines)


def render_answers(answers: dict[str, int | None]) -> str:
    """`--max-seq-len` / `--min-gpus` answers, one line each."""
    return "\n".join(f"{name.replace('_', ' ')}: {value if value is not None else 'nothing fits'}"
                     for name, value in answers.items())


# ---- check -------------------------------------------------------------------------------------

def oom_first(result: Estimate, nearest: tuple[Estimate, list[str]] | None = None) -> str:
    """Where the peak is, its largest term, and the terms the nearest fit's change moves: the
    term a user can act on is often not the largest (a batch-driven one beside the base weights)."""
    term, value = max(result.breakdown_bytes.items(), key=lambda kv: kv[1])
    text = f"peak at {result.peak_phase} ({result.peak_moment}); largest term {label_of(term)} {format_gib(value)}"
    if nearest is None:
        return text
    fit, changed = nearest
    moved = terms_moved(result, fit, at_least_bytes=GIB // 100)
    if not moved:
        return text
    def shown(config, name):
        value = getattr(config, name)
        return getattr(value, "value", value)
    changes = ", ".join(f"{name} {shown(result.config, name)} -> {shown(fit.config, name)}" for name in changed)
    shrinks = " and ".join(f"{label_of(t)} by {format_gib(b)}" for t, b in moved[:2])
    return f"{text}; the smallest change that fits ({changes}) shrinks {shrinks}"


def render_check(result: Estimate, nearest: tuple[Estimate, list[str]] | None, searched: bool,
                 warnings: list[str]) -> str:
    """The estimate of a LLaMA-Factory file, what runs out of memory first and the nearest fit."""
    lines = [render_estimate(result)]
    if not result.fits:
        lines.append(f"would run out of memory first: {oom_first(result, nearest if searched else None)}")
        if searched and nearest is None:
            lines.append("nearest fit: none at this cutoff_len and global batch on these GPUs; try `fitplan "
                         "recommend` for a shorter --seq-len or more GPUs")
        elif searched:
            fit, changed = nearest
            lines.append(f"nearest fit (changes {', '.join(changed)}): {describe_config(fit.config)}, "
                         f"{fit.peak_bytes / GIB:.2f} of {format_gib(fit.capacity_bytes)}")
    lines += [f"warning: {warning}" for warning in warnings]
    return "\n".join(lines)


# ---- catalogs ----------------------------------------------------------------------------------

def render_models(models: list[ModelSpec]) -> str:
    lines = [f"{'name':<30} {'params':>8} {'layers':>6} {'hidden':>6} {'heads/kv':>8} {'vocab':>7} {'template':<13} Hub id"]
    for m in models:
        lines.append(f"{m.name:<30} {m.total_params() / 1e9:>7.2f}B {m.num_layers:>6} {m.hidden_size:>6} "
                     f"{m.num_attention_heads:>4}/{m.num_kv_heads:<3} {m.vocab_size:>7} {m.template or '-':<13} {m.hf_id}")
    return "\n".join(lines)


def render_gpus(gpus: list[GpuSpec]) -> str:
    lines = [f"{'name':<16} {'GiB':>6} {'cc':>6} {'bf16':>4} {'FA2':>4} {'fp16 TF':>8} {'fp32 TF':>7} {'GB/s':>6} "
             f"{'net Gb/s':>8}  aliases"]
    for g in gpus:
        lines.append(f"{g.name:<16} {g.memory_bytes / GIB:>6.1f} {g.compute_capability:>6} "
                     f"{'yes' if g.bf16_hardware else 'no':>4} {'yes' if g.flash_attention_2 else 'no':>4} "
                     f"{g.fp16_tflops:>8.1f} {g.fp32_tflops:>7.1f} {g.memory_bandwidth_gbps:>6.0f} "
                     f"{g.inter_node_gbit_per_s_per_node:>8.0f}  {', '.join(g.aliases[:3])}")
    return "\n".join(lines)

