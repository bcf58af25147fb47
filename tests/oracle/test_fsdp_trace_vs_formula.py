"""The FSDP memory formula (solver/memory/fsdp.py) held to the FSDP trace: one FSDP2 or FSDP1 step of
the real Hugging Face model code on fake tensors, as rank 0 of PyTorch's fake process group
(solver/oracle/fsdp_step.py). As the dense trace is held (test_trace_vs_formula.py): the formula's
tensor peak within 1 % of the traced peak, and its moment for the place the trace peaked term by
term within 3 % (terms under 1 MiB within 192 KiB).

Sequence 16 puts the peak where FSDP's own buffers decide it (the gathered root and layers, the
flat all-gather and reduce-scatter buffers, the gradients at a layer's end); 128 where the logits do."""

import warnings

import pytest

pytest.importorskip("torch", reason="the trace oracle needs the [trace] extra: pip install 'fitplan[trace]'")
pytest.importorskip("transformers", reason="the trace oracle needs the [trace] extra")
pytest.importorskip("peft", reason="the trace oracle needs the [trace] extra")

from fitplan.solver.memory.load import PHASE_LOAD  # noqa: E402
from fitplan.solver.memory.peak import step_moments  # noqa: E402
from fitplan.solver.oracle.fsdp_step import trace_fsdp_step  # noqa: E402
from fitplan.solver.oracle.small_models import SMALL_MODELS, small_model  # noqa: E402
from fitplan.solver.problem.config import TrainConfig  # noqa: E402

pytestmark = pytest.mark.trace

MIB = 2**20
PEAK_TOLERANCE = 0.01
TERM_TOLERANCE = 0.03
SMALL_TERM_ABS_BYTES = 192 * 1024
GPUS_PER_NODE = 8
FORWARD_MOMENTS = ("forward_first_unit", "forward_last_layer", "forward_end")

FAMILIES = {
    "llama": SMALL_MODELS["llama-mha"],  # untied embeddings
    "qwen2": SMALL_MODELS["qwen2-gqa"],  # GQA, q/k/v biases
    "qwen2-tied": small_model("qwen2-tied", model_type="qwen2", num_kv_heads=2, qkv_bias=True,
                              intermediate_size=1352, vocab_size=8192, tie_word_embeddings=True),
}


HEAD_MOMENTS = ("loss", "backward_start")
FIRST_LAYER_0_MOMENTS = ("backward_last_layer", "backward_end", "root_reduce")


def _matching_moment(trace, moments: dict, micro_batch: int) -> str:
    """The formula moment for the place the trace peaked: the nearest total among the moments of
    the traced phase and region (the backward of layer 0 and what follows it, of another layer, or
    the loss head)."""
    if trace.peak_phase == "optimizer":
        names = ["optimizer"]
    elif trace.peak_phase == "forward":
        names = [n for n in FORWARD_MOMENTS if n in moments]
    elif trace.peak_layer == "head":
        names = [n for n in HEAD_MOMENTS if n in moments]
    else:
        names = [n for n in moments if n != "optimizer" and n not in FORWARD_MOMENTS + HEAD_MOMENTS]
        if trace.peak_layer != "layer 0":
            names = [n for n in names if n not in FIRST_LAYER_0_MOMENTS]
    return min(names, key=lambda n: abs(moments[n].total().at(micro_batch) - trace.traced_peak_bytes))


def assert_fsdp_formula_matches_trace(model, config, *, merge_in_flight: bool = False):
    """`merge_in_flight`: FSDP1's per-parameter gradients waiting for its flat `cat` are new
    tensors of a parameter's shape, which the tracker files as transient; the formula names them
    FSDP unsharded gradients. Compared as one sum there."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trace = trace_fsdp_step(model, config, gpus_per_node=GPUS_PER_NODE)
    mb = config.micro_batch
    # the trace is one training step: the load moment (before step 1, memory/fsdp.py) is not in it
    moments = {m.name: m for m in step_moments(model, config, GPUS_PER_NODE) if m.phase != PHASE_LOAD}
    peak = max(m.total().at(mb) for m in moments.values())
    error = peak / trace.traced_peak_bytes - 1
    where = f"trace peak {trace.peak_phase}/{trace.peak_layer} ({trace.peak_op})"
    assert abs(error) <= PEAK_TOLERANCE, (
        f"peak: formula {peak / MIB:.3f} MiB vs traced {trace.traced_peak_bytes / MIB:.3f} MiB ({error:+.2%}); {where}")
    name = _matching_moment(trace, moments, mb)
    formula, traced = dict(moments[name].bytes_at(mb)), dict(trace.breakdown_bytes)
    if merge_in_flight:
        for side in (formula, traced):
            side["transient"] = side.get("transient", 0) + side.pop("unsharded_grads", 0)
    bad = []
    for term in sorted(set(formula) | set(traced)):
        f, t = formula.get(term, 0), traced.get(term, 0)
        ok = abs(f - t) <= (SMALL_TERM_ABS_BYTES if max(f, t) < MIB else TERM_TOLERANCE * max(t, 1))
        if not ok:
            bad.append(f"{term}: formula {f / MIB:.3f} MiB vs traced {t / MIB:.3f} MiB")
    assert not bad, f"formula moment {name} vs {where}: " + "; ".join(bad)


FSDP2_GRID = [(family, method, world, seq) for family in FAMILIES for method in ("lora", "full")
              for world in (2, 8) for seq in (16, 128)]


@pytest.mark.parametrize("family,method,world,seq", FSDP2_GRID,
                         ids=[f"{f}-{m}-w{w}-s{s}" for f, m, w, s in FSDP2_GRID])
def test_fsdp2_full_shard_formula_matches_the_trace(family, method, world, seq):
    config = TrainConfig(method=method, n_gpus=world, fsdp_strategy="full_shard", fsdp_version=2, seq_len=seq,
                         micro_batch=2)
    assert_fsdp_formula_matches_trace(FAMILIES[family], config)


@pytest.mark.parametrize("knobs", [
    dict(method="lora", grad_ckpt=False), dict(method="full", grad_ckpt=False),
    dict(method="full", fsdp_strategy="shard_grad_op"), dict(method="lora", fsdp_strategy="shard_grad_op"),
    dict(method="full", grad_accum=3), dict(method="lora", grad_accum=3),
], ids=["lora-nockpt", "full-nockpt", "full-shard_grad_op", "lora-shard_grad_op", "full-accum3", "lora-accum3"])
def test_fsdp2_variants_match_the_trace(knobs):
    config = TrainConfig(**{"n_gpus": 8, "fsdp_strategy": "full_shard", "fsdp_version": 2, "seq_len": 16,
                            "micro_batch": 2, **knobs})
    assert_fsdp_formula_matches_trace(FAMILIES["llama"], config)


def test_fsdp2_tied_full_fine_tuning_with_accumulation_matches_the_trace():
    config = TrainConfig(method="full", n_gpus=2, fsdp_strategy="full_shard", fsdp_version=2, seq_len=16,
                         micro_batch=2, grad_accum=3)
    assert_fsdp_formula_matches_trace(FAMILIES["qwen2-tied"], config)


FSDP1_GRID = [("llama", "lora", "full_shard"), ("llama", "full", "full_shard"), ("qwen2-tied", "lora", "full_shard"),
              ("qwen2-tied", "full", "full_shard"), ("llama", "full", "shard_grad_op"),
              ("qwen2-tied", "full", "hybrid_shard")]


@pytest.mark.parametrize("family,method,strategy", FSDP1_GRID, ids=[f"{f}-{m}-{s}" for f, m, s in FSDP1_GRID])
def test_fsdp1_peak_matches_the_trace(family, method, strategy):
    """FSDP1 (accelerate's default, what LLaMA-Factory's FSDP examples run): the peak within 1 %
    and the terms as FSDP2's, in-flight gradients merged. HYBRID_SHARD on 2 nodes of 4."""
    config = TrainConfig(method=method, n_gpus=8, fsdp_strategy=strategy, fsdp_version=1, seq_len=16, micro_batch=2)
    global GPUS_PER_NODE
    saved, GPUS_PER_NODE = GPUS_PER_NODE, (4 if strategy == "hybrid_shard" else 8)
    try:
        assert_fsdp_formula_matches_trace(FAMILIES[family], config, merge_in_flight=True)
    finally:
        GPUS_PER_NODE = saved


TINY = dict(hidden_size=64, num_layers=2, num_attention_heads=4, num_kv_heads=2, head_dim=16,
            intermediate_size=176, vocab_size=256)


@pytest.mark.parametrize("version,method", [(2, "lora"), (2, "full"), (1, "full")])
def test_fake_fsdp_trace_equals_a_real_cpu_run_to_the_byte(version, method):
    """The tracker on real CPU tensors under the same fake process group: the same bytes."""
    model = small_model("tiny-llama", **TINY)
    config = TrainConfig(method=method, n_gpus=4, fsdp_strategy="full_shard", fsdp_version=version, seq_len=16,
                         micro_batch=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fake = trace_fsdp_step(model, config)
        real = trace_fsdp_step(model, config, fake=False)
    assert fake.traced_peak_bytes == real.traced_peak_bytes
    for phase in ("forward", "backward"):
        assert fake.phase_peaks_bytes[phase] == real.phase_peaks_bytes[phase]
    # FSDP2's fused AdamW makes one 512-B scalar block differently on fakes (its step count)
    assert abs(fake.phase_peaks_bytes["optimizer"] - real.phase_peaks_bytes["optimizer"]) <= 512
