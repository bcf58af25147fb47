"""The memory formula held to the trace oracle: for every architecture family, method,
checkpointing and attention choice, the formula's tensor peak must be within 1 % of the traced
peak of the real Hugging Face training step, and the formula's moment for the place the trace
peaked must agree term by term within 3 % (terms under 1 MiB within 192 KiB)."""

import itertools

import pytest

pytest.importorskip("torch", reason="the trace oracle needs the [trace] extra: pip install 'fitplan[trace]'")
pytest.importorskip("transformers", reason="the trace oracle needs the [trace] extra")
pytest.importorskip("peft", reason="the trace oracle needs the [trace] extra")

from trace_compare import assert_formula_matches_trace  # noqa: E402

from fitplan.solver.oracle.small_models import SMALL_MODELS  # noqa: E402
from fitplan.solver.problem.config import TrainConfig  # noqa: E402
from fitplan.solver.specs.catalog import load_model  # noqa: E402

pytestmark = pytest.mark.trace

# Known, documented gaps (see the issue-3 report); the formula errs on the safe side in each.
KNOWN_GAPS = {
    # Phi-3 eager, micro batch > 1, MHA: v is a view of the fused qkv output at batch 1 (the whole
    # fused storage stays) but a copy above; the formula keeps the batch-1 (larger) figure so
    # the bytes stay affine in the micro batch.
    ("phi3", "full", False, "eager", 256, 2), ("phi3", "freeze", False, "eager", 256, 2),
    ("phi3", "lora", False, "eager", 256, 2),
    # Eager softmax-backward working set of a frozen layer 0 (freeze + checkpointing): fitted
    # within 4-6 % of the trace (peak within 0.3 %).
    ("mistral", "freeze", True, "eager", 128, 1), ("phi3", "freeze", True, "eager", 128, 1),
}


GRID = list(itertools.product(SMALL_MODELS, ["full", "freeze", "lora"], [True, False], ["eager", "sdpa"],
                              [(128, 1), (256, 2)]))


@pytest.mark.parametrize(
    "family,method,ckpt,attn,point", GRID,
    ids=[f"{f}-{m}-{'ckpt' if c else 'nockpt'}-{a}-s{p[0]}b{p[1]}" for f, m, c, a, p in GRID])
def test_formula_matches_trace_on_small_models(family, method, ckpt, attn, point):
    seq, mb = point
    if (family, method, ckpt, attn, seq, mb) in KNOWN_GAPS:
        pytest.xfail("known gap, documented in KNOWN_GAPS")
    config = TrainConfig(method=method, grad_ckpt=ckpt, attn=attn, seq_len=seq, micro_batch=mb)
    assert_formula_matches_trace(SMALL_MODELS[family], config)


@pytest.mark.parametrize("precision", ["pure_bf16", "fp32"])
@pytest.mark.parametrize("method", ["lora", "full"])
def test_formula_matches_trace_without_autocast(method, precision):
    config = TrainConfig(method=method, precision=precision, seq_len=256, micro_batch=2, grad_ckpt=False)
    assert_formula_matches_trace(SMALL_MODELS["qwen2-gqa"], config)


def test_formula_matches_trace_with_gradient_accumulation():
    config = TrainConfig(method="freeze", seq_len=256, micro_batch=2, grad_accum=2)
    assert_formula_matches_trace(SMALL_MODELS["llama-mha"], config)


def test_qwen2_5_7b_lora_rank_8_at_seq_2048_matches_the_trace():
    assert_formula_matches_trace(load_model("qwen2.5-7b"), TrainConfig(method="lora", seq_len=2048))


def test_llama_2_7b_lora_without_checkpointing_at_seq_1024_matches_the_trace():
    assert_formula_matches_trace(load_model("llama-2-7b"), TrainConfig(method="lora", seq_len=1024, grad_ckpt=False))


@pytest.mark.parametrize("reentrant", [True, False])
@pytest.mark.parametrize("family", ["llama-mha", "mistral"])
def test_full_finetuning_holds_layer0s_mlp_gradients_through_its_eager_softmax(family, reentrant):
    """At 512 tokens the eager softmax backward of layer 0 sets the peak of full fine-tuning with
    checkpointing, after layer 0's MLP made its fp32 gradients (memory/layer_moments.py); the grid
    above stops at 256 tokens, where the MLP backward is larger. Before this moment was applied to
    dense layers the formula was 4.7-5.7 % under the trace here."""
    config = TrainConfig(method="full", grad_ckpt=True, attn="eager", seq_len=512, reentrant_gc=reentrant)
    assert_formula_matches_trace(SMALL_MODELS[family], config)
