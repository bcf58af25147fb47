"""The memory levers held to the trace (issue 16): Liger's kernels (their allocation pattern
re-implemented on plain torch ops, solver/oracle/liger.py), LLaMA-Factory's offloaded and
reentrant checkpointing, DoRA (peft's own), and the two upcast flags, each traced through a real
Hugging Face training step on fake tensors and compared with the formula, peak and term by term
like tests/oracle/test_trace_vs_formula.py.

Liger runs with LoRA are held to the same 1 % / 3 % tolerances. Liger with full fine-tuning or
freeze is held to "never more than 1 % below the trace" and a stated over-estimate bound: the
backward of those runs has moments between the first and the last layer processed that the formula
does not separate, and it takes the larger side (the over-estimate is printed by the grid)."""

import itertools
import warnings

import pytest

# the same importorskips, tolerances and GPU as the formula-vs-trace grid (tests on the path by pytest)
from trace_compare import GPUS, MIB, PEAK_TOLERANCE, SMALL_TERM_ABS_BYTES, TERM_TOLERANCE  # noqa: E402

from fitplan.solver.memory.estimate import estimate  # noqa: E402
from fitplan.solver.memory.peak import step_moments  # noqa: E402
from fitplan.solver.oracle.small_models import SMALL_MODELS  # noqa: E402
from fitplan.solver.oracle.step import trace_training_step  # noqa: E402
from fitplan.solver.problem.config import TrainConfig  # noqa: E402

pytestmark = pytest.mark.trace

# Liger with full fine-tuning or freeze: the formula's over-estimate on the small models, at most
# (the slow grid below prints each; freeze without checkpointing is the largest, ~6-10 %).
TRAINABLE_OVER_ESTIMATE = 0.11
# Known, documented gaps: Gemma-2-shaped freeze with Liger and checkpointing peaks in the softmax
# backward of a layer between the first and the last processed (-2.0 % on the small model).
KNOWN_GAPS = {("gemma2", "freeze", True)}


def _moment_for(trace, model, config, moments):
    """The formula moment for the place the trace peaked, by phase and region."""
    if trace.peak_phase == "optimizer":
        return "optimizer"
    if trace.peak_phase == "forward":
        return "forward_end" if trace.peak_layer == "head" or "forward_last_layer" not in moments else "forward_last_layer"
    if trace.peak_layer == "head":
        return "loss"
    if not config.grad_ckpt:
        return "backward_end" if trace.peak_layer in ("layer 0", "embed") and "backward_end" in moments else "backward"
    if trace.peak_layer == f"layer {model.num_layers - 1}":
        return "backward_first_layer"
    if trace.peak_layer == "layer 0":
        return "backward_last_layer"
    return "backward_end" if "backward_end" in moments else "backward_last_layer"


def traced(model, config):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trace = trace_training_step(model, config)
    return trace, estimate(model, GPUS, config)


def term_problems(trace, model, config) -> list[str]:
    moments = {m.name: m for m in step_moments(model, config)}
    name = _moment_for(trace, model, config, moments)
    terms = moments[name].bytes_at(config.micro_batch)
    bad = []
    for term in sorted(set(terms) | set(trace.breakdown_bytes)):
        f, t = terms.get(term, 0), trace.breakdown_bytes.get(term, 0)
        ok = abs(f - t) <= (SMALL_TERM_ABS_BYTES if max(f, t) < MIB else TERM_TOLERANCE * max(t, 1))
        if not ok:
            bad.append(f"{term}: formula {f / MIB:.3f} MiB vs traced {t / MIB:.3f} MiB")
    return [f"formula moment {name} vs trace {trace.peak_phase}/{trace.peak_layer}: " + "; ".join(bad)] if bad else []


def assert_matches(model, config):
    trace, formula = traced(model, config)
    error = formula.tensor_peak_bytes / trace.traced_peak_bytes - 1
    assert abs(error) <= PEAK_TOLERANCE, (f"peak: formula {formula.tensor_peak_bytes / MIB:.2f} vs traced "
                                          f"{trace.traced_peak_bytes / MIB:.2f} MiB ({error:+.2%}) at "
                                          f"{trace.peak_phase}/{trace.peak_layer}")
    problems = term_problems(trace, model, config)
    assert not problems, problems[0]


def assert_safe(model, config):
    trace, formula = traced(model, config)
    error = formula.tensor_peak_bytes / trace.traced_peak_bytes - 1
    assert -PEAK_TOLERANCE <= error <= TRAINABLE_OVER_ESTIMATE, (
        f"peak: formula {formula.tensor_peak_bytes / MIB:.2f} vs traced {trace.traced_peak_bytes / MIB:.2f} MiB "
        f"({error:+.2%}) at {trace.peak_phase}/{trace.peak_layer}")


# ---- Liger ------------------------------------------------------------------------------------

@pytest.mark.parametrize("ckpt", [True, False], ids=["ckpt", "nockpt"])
@pytest.mark.parametrize("family", sorted(SMALL_MODELS))
def test_liger_lora_matches_the_trace(family, ckpt):
    config = TrainConfig(method="lora", liger=True, grad_ckpt=ckpt, seq_len=256, micro_batch=2)
    assert_matches(SMALL_MODELS[family], config)


@pytest.mark.parametrize("family", ["qwen2-gqa", "phi3"])
@pytest.mark.parametrize("point", [(256, 2), (128, 1), (1000, 1)], ids=["s256b2", "s128b1", "s1000b1"])
def test_liger_fused_loss_chunk_loop_matches_the_trace_term_by_term(family, point):
    """Full fine-tuning without checkpointing peaks inside the chunk loop: grad_input, the
    chunk (s1000, qwen2-shaped: 32 chunks of 32 rows, the last one 8), lm_head's fp32 gradient and autocast's two
    16-bit copies of lm_head, per term."""
    seq, mb = point
    config = TrainConfig(method="full", liger=True, grad_ckpt=False, seq_len=seq, micro_batch=mb)
    assert_matches(SMALL_MODELS[family], config)


@pytest.mark.parametrize("method,ckpt", [("full", True), ("freeze", True), ("freeze", False)])
def test_liger_with_trainable_layers_is_never_below_the_trace(method, ckpt):
    assert_safe(SMALL_MODELS["llama-mha"], TrainConfig(method=method, liger=True, grad_ckpt=ckpt, seq_len=256,
                                                       micro_batch=2))


def test_liger_without_autocast_matches_the_trace():
    """pure_bf16: the persistent mm(out=) logits buffer and the 16-bit weight-gradient addmm."""
    config = TrainConfig(method="full", liger=True, precision="pure_bf16", grad_ckpt=False, seq_len=256,
                         micro_batch=2)
    assert_safe(SMALL_MODELS["llama-mha"], config)


def test_liger_on_a_model_type_llamafactory_does_not_list_changes_nothing():
    qwen1 = SMALL_MODELS["llama-mha"].model_copy(update={"model_type": "chatglm", "name": "chatglm-shaped"})
    plain = estimate(qwen1, GPUS, TrainConfig(seq_len=256))
    liger = estimate(qwen1, GPUS, TrainConfig(seq_len=256, liger=True))
    assert liger.tensor_peak_bytes == plain.tensor_peak_bytes


SLOW_GRID = list(itertools.product(sorted(SMALL_MODELS), ["lora", "full", "freeze"], [True, False], ["sdpa", "eager"]))


@pytest.mark.slow
@pytest.mark.parametrize("family,method,ckpt,attn", SLOW_GRID,
                         ids=[f"{f}-{m}-{'ckpt' if c else 'nockpt'}-{a}" for f, m, c, a in SLOW_GRID])
def test_liger_grid_is_never_below_the_trace(family, method, ckpt, attn):
    if (family, method, ckpt) in KNOWN_GAPS:
        pytest.xfail("known gap, documented in KNOWN_GAPS")
    assert_safe(SMALL_MODELS[family], TrainConfig(method=method, liger=True, grad_ckpt=ckpt, attn=attn, seq_len=256,
                                                  micro_batch=2))


# ---- LLaMA-Factory's checkpointing, DoRA, the upcast flags -------------------------------------

@pytest.mark.parametrize("method", ["lora", "full", "freeze"])
def test_reentrant_checkpointing_holds_one_more_hidden_state_gradient(method):
    """LLaMA-Factory's default use_reentrant_gc=True (traced as set since issue 16) against
    non-reentrant: the traced difference at the backward peak (logits made small enough that the
    backward is the peak) is the formula's, one hidden-state gradient per token."""
    model = SMALL_MODELS["llama-mha"].model_copy(update={"vocab_size": 256, "name": "llama-mha-v256"})
    plain, reentrant = (TrainConfig(method=method, seq_len=256, micro_batch=2, reentrant_gc=r) for r in (False, True))
    (t0, f0), (t1, f1) = traced(model, plain), traced(model, reentrant)
    assert t1.peak_phase == "backward"
    assert t1.traced_peak_bytes - t0.traced_peak_bytes == f1.tensor_peak_bytes - f0.tensor_peak_bytes > 0


@pytest.mark.parametrize("extra", [{}, {"liger": True}], ids=["hf", "liger"])
@pytest.mark.parametrize("method", ["lora", "full"])
def test_offloaded_checkpoints_match_the_trace(method, extra):
    config = TrainConfig(method=method, seq_len=256, micro_batch=2, unsloth_gc=True, **extra)
    check = assert_matches if not extra else assert_safe
    check(SMALL_MODELS["qwen2-gqa"], config)


@pytest.mark.parametrize("extra", [{}, {"liger": True}], ids=["hf", "liger"])
@pytest.mark.parametrize("ckpt", [True, False], ids=["ckpt", "nockpt"])
def test_dora_matches_the_trace(ckpt, extra):
    """peft's own DoRA on fake tensors: the magnitudes, the base and adapter outputs it saves, and
    (with Liger, where the layers' moments are the peak) the weight-norm recompute."""
    config = TrainConfig(method="lora", dora=True, grad_ckpt=ckpt, seq_len=256, micro_batch=2, **extra)
    # peak only: the 63 small magnitude tensors' states round up to 512 B each, which no term counts
    trace, formula = traced(SMALL_MODELS["qwen2-gqa"], config)
    error = formula.tensor_peak_bytes / trace.traced_peak_bytes - 1
    assert -PEAK_TOLERANCE <= error <= (PEAK_TOLERANCE if not extra else TRAINABLE_OVER_ESTIMATE), error


@pytest.mark.parametrize("flag", ["upcast_layernorm", "upcast_lmhead_output"])
@pytest.mark.parametrize("method", ["lora", "full"])
def test_upcast_flags_match_the_trace(flag, method):
    assert_matches(SMALL_MODELS["qwen2-gqa"], TrainConfig(method=method, seq_len=256, micro_batch=2, **{flag: True}))
