"""The formula held to the trace oracle, term by term: what tests/oracle/ share."""

import warnings

from fitplan.solver.memory.estimate import tensor_peak
from fitplan.solver.memory.peak import step_moments
from fitplan.solver.oracle.step import trace_training_step
from fitplan.solver.specs.catalog import parse_gpu_set

GPUS = parse_gpu_set("1xA100-80G")
MIB = 2**20
PEAK_TOLERANCE = 0.01
TERM_TOLERANCE = 0.03
SMALL_TERM_ABS_BYTES = 192 * 1024


def _matching_moment(trace, model, config):
    """The formula moment for the place the trace peaked (nearest total among candidates)."""
    moments = {m.name: m for m in step_moments(model, config)}
    mb = config.micro_batch
    if trace.peak_phase == "optimizer":
        names = ["optimizer"]
    elif trace.peak_phase == "forward":
        # Liger runs add the last decoder layer's forward as a moment (memory/peak.py)
        in_layers = trace.peak_layer.startswith("layer") and "forward_last_layer" in moments
        names = ["forward_last_layer"] if in_layers else ["forward_end"]
    elif trace.peak_layer == "head":
        names = ["loss"]
    else:
        names = [n for n in moments if n.startswith("backward")]
    best = min(names, key=lambda n: abs(moments[n].total().at(mb) - trace.traced_peak_bytes))
    return best, moments[best].bytes_at(mb)


def assert_formula_matches_trace(model, config, backward_terms=True):
    """The peak within 1 %, and the matching moment term by term. `backward_terms=False` checks
    the terms only where the trace peaked outside a decoder layer's backward: the split of a
    layer's backward moment into gradients / transient / activations is fitted as a whole (its
    total is what the peak check holds), not tensor by tensor."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trace = trace_training_step(model, config)
    formula_peak, formula_moment = tensor_peak(model, GPUS, config)
    error = formula_peak / trace.traced_peak_bytes - 1
    where = f"trace peak {trace.peak_phase}/{trace.peak_layer} ({trace.peak_op})"
    assert abs(error) <= PEAK_TOLERANCE, (
        f"peak: formula {formula_peak / MIB:.2f} MiB vs traced {trace.traced_peak_bytes / MIB:.2f} MiB "
        f"({error:+.2%}); formula peak {formula_moment}, {where}")
    if not backward_terms and trace.peak_phase == "backward" and trace.peak_layer.startswith("layer"):
        return
    moment, terms = _matching_moment(trace, model, config)
    bad = []
    for term in sorted(set(terms) | set(trace.breakdown_bytes)):
        f, t = terms.get(term, 0), trace.breakdown_bytes.get(term, 0)
        if max(f, t) < MIB:
            ok = abs(f - t) <= SMALL_TERM_ABS_BYTES
        else:
            ok = abs(f - t) <= TERM_TOLERANCE * max(t, 1)
        if not ok:
            bad.append(f"{term}: formula {f / MIB:.3f} MiB vs traced {t / MIB:.3f} MiB")
    assert not bad, f"formula moment {moment} vs {where}: " + "; ".join(bad)
