"""The model types of issue 13 (MoE with fused experts, MLA, sliding and chunked windows, NoPE
layers, composite models) held to the trace of their real transformers classes: the formula's
tensor peak within 1 % of the traced one, and its moment term by term where the trace peaked
outside a layer's backward (tests/helpers/trace_compare.py). The default run takes two points per family; `-m slow` the grid the
trace-accuracy benchmark reports (LoRA / full x checkpointing x SDPA / eager x two lengths)."""

import itertools

import pytest

pytest.importorskip("torch", reason="the trace oracle needs the [trace] extra: pip install 'fitplan[trace]'")
pytest.importorskip("transformers", reason="the trace oracle needs the [trace] extra")
pytest.importorskip("peft", reason="the trace oracle needs the [trace] extra")

from paths import TEST_DATA  # noqa: E402
from trace_compare import assert_formula_matches_trace  # noqa: E402

from fitplan.solver.oracle.small_models import MODERN_SMALL_MODELS  # noqa: E402
from fitplan.solver.problem.config import TrainConfig  # noqa: E402
from fitplan.solver.specs.hf_config import model_from_config_file  # noqa: E402

pytestmark = pytest.mark.trace

FAMILIES = sorted(MODERN_SMALL_MODELS)
QUICK = [("lora", False, "sdpa", 256), ("full", True, "eager", 256)]
GRID = [pytest.param(family, *point, id=f"{family}-{point[0]}-{'ckpt' if point[1] else 'nockpt'}-{point[2]}-s{point[3]}",
                     marks=() if point in QUICK else pytest.mark.slow)  # the default run: QUICK only
        for family in FAMILIES
        for point in itertools.product(["lora", "full"], [True, False], ["sdpa", "eager"], [256, 512])]


@pytest.mark.parametrize("family,method,ckpt,attn,seq", GRID)
def test_formula_matches_trace_per_family(family, method, ckpt, attn, seq):
    config = TrainConfig(method=method, grad_ckpt=ckpt, attn=attn, seq_len=seq)
    assert_formula_matches_trace(MODERN_SMALL_MODELS[family], config, backward_terms=False)


@pytest.mark.slow
@pytest.mark.parametrize("fixture", ["deepseek-v2-lite.json", "gpt-oss-20b.json", "qwen3-30b-a3b.json"])
def test_published_configs_at_full_size_match_the_trace(fixture):
    model = model_from_config_file(TEST_DATA / "configs" / fixture)
    assert_formula_matches_trace(model, TrainConfig(method="lora", seq_len=1024), backward_terms=False)


def test_llamafactory_all_adapts_no_routed_expert_in_the_traced_model():
    """The trace wraps what LLaMA-Factory's find_all_linear_modules names on the real class: its
    trainable count equals the formula's adapters (attention, shared expert and its gate)."""
    from fitplan.solver.memory.params import trainable_params
    from fitplan.solver.oracle.step import trace_training_step

    model = MODERN_SMALL_MODELS["qwen2_moe"]
    config = TrainConfig(method="lora", seq_len=64)
    assert trace_training_step(model, config).trainable_params == trainable_params(model, config)
