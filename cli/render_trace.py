"""Text and JSON of `fitplan trace`: the traced peak beside the formula's, term by term."""

from __future__ import annotations

from fitplan.solver.memory.terms import Term, label_of
from fitplan.solver.units import GIB, MIB, format_gib

TERM_ORDER = tuple(term.value for term in (Term.weights, Term.trainable_params, Term.gradients, Term.optimizer_states,
                                            Term.activations, Term.logits_loss, Term.autocast_weight_copies,
                                            Term.transient, Term.unsharded_params, Term.all_gather_buffers,
                                            Term.unsharded_grads, Term.reduce_scatter_buffers))


def _gib(value: int) -> str:
    return f"{value / GIB:9.3f}"


def _diff(formula: int, traced: int) -> str:
    delta = formula - traced
    if abs(delta) < MIB and max(formula, traced) < 64 * MIB:
        return f"{delta / MIB:+9.2f} MiB"
    return f"{delta / GIB:+9.3f} GiB" + (f" ({delta / traced:+.1%})" if traced else "")


def comparison(traced, formula) -> dict:
    """The --json object: both peaks, term by term (tensor memory only, bytes)."""
    terms = [t for t in TERM_ORDER if traced.breakdown_bytes.get(t) or formula.breakdown_bytes.get(t)]
    extra = [t for t in formula.breakdown_bytes if t not in TERM_ORDER]
    return {
        "model": traced.model,
        "config": traced.config,
        "traced_peak_bytes": traced.traced_peak_bytes,
        "formula_peak_bytes": formula.tensor_peak_bytes,
        "difference_bytes": formula.tensor_peak_bytes - traced.traced_peak_bytes,
        "relative_error": (formula.tensor_peak_bytes - traced.traced_peak_bytes) / traced.traced_peak_bytes,
        "traced_peak": {"phase": traced.peak_phase, "op": traced.peak_op, "layer": traced.peak_layer},
        "formula_peak": {"moment": formula.peak_moment, "phase": formula.peak_phase},
        "terms": {t: {"traced_bytes": traced.breakdown_bytes.get(t, 0),
                      "formula_bytes": formula.breakdown_bytes.get(t, 0)} for t in terms + extra},
        "traced_phase_peaks_bytes": traced.phase_peaks_bytes,
        "hf_class": traced.hf_class,
        "attn_implementation": traced.attn_implementation,
        "optimizer_impl": traced.optimizer_impl,
        "trace_seconds": traced.elapsed_s,
        "world_size": traced.world_size,
        "notes": traced.notes,
        "trace_cannot_see": traced.cannot_see,
    }


def render(data: dict) -> str:
    ranks = f", rank 0 of {data['world_size']}" if data.get("world_size", 1) > 1 else ""
    lines = [f"{data['model']}: traced one steady-state training step ({data['hf_class']}, "
             f"attention {data['attn_implementation']}, AdamW {data['optimizer_impl']}{ranks}) in "
             f"{data['trace_seconds']:.1f} s",
             "",
             f"{'tensor memory (GiB)':<26}{'formula':>9} {'traced':>9}   formula - traced"]
    for term, row in data["terms"].items():
        label = label_of(term)
        lines.append(f"  {label:<24}{_gib(row['formula_bytes'])} {_gib(row['traced_bytes'])}   "
                     f"{_diff(row['formula_bytes'], row['traced_bytes'])}")
    f, t = data["formula_peak_bytes"], data["traced_peak_bytes"]
    lines.append(f"  {'= peak (allocated)':<24}{_gib(f)} {_gib(t)}   {_diff(f, t)}")
    tp = data["traced_peak"]
    where = ", ".join(x for x in (tp["phase"], tp["layer"], f"op {tp['op']}") if x)
    lines.append(f"formula peak: {data['formula_peak']['moment']} ({data['formula_peak']['phase']}); "
                 f"traced peak: {where}")
    lines.append("traced phase peaks: " + ", ".join(
        f"{phase} {format_gib(v, digits=3)}" for phase, v in data["traced_phase_peaks_bytes"].items()))
    for note in data["notes"]:
        lines.append(f"note: {note}")
    lines.append("")
    lines.append("Both columns are tensor memory (torch.cuda.max_memory_allocated). A trace cannot see:")
    lines.extend(f"  - {item}" for item in data["trace_cannot_see"])
    lines.append("`fitplan estimate` adds its modelled overheads for these.")
    return "\n".join(lines)
