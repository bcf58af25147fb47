"""The catalog entries of the 2025 model types (issue 14 on top of issue 13's readers): each one is
the reader's output on its published config.json copy, field for field, so the catalog and a user's
`--model path/to/config.json` can never disagree; each family has a trace test; a Hub id gives the
same estimate as the catalog name."""

import pytest
from paths import TEST_DATA

from fitplan.cli.main import main
from fitplan.solver.oracle.small_models import MODERN_SMALL_MODELS
from fitplan.solver.specs.catalog import load_model, model_catalog
from fitplan.solver.specs.hf_config import model_from_config_file

CONFIGS = TEST_DATA / "configs"

# catalog entry -> its config.json copy (provenance: tests/data/configs/README.md)
ENTRY_CONFIGS = {
    "qwen3-30b-a3b": "qwen3-30b-a3b.json",
    "qwen3-235b-a22b": "qwen3-235b-a22b.json",
    "mixtral-8x7b": "mixtral-8x7b-v0.1.json",
    "mixtral-8x22b": "mixtral-8x22b-v0.1.json",
    "gpt-oss-20b": "gpt-oss-20b.json",
    "gpt-oss-120b": "gpt-oss-120b.json",
    "deepseek-v2-lite": "deepseek-v2-lite.json",
    "deepseek-v3": "deepseek-v3.json",
    "gemma-3-1b": "gemma-3-1b-it.json",
    "gemma-3-4b": "gemma-3-4b-it.reconstructed.json",
    "gemma-3-12b": "gemma-3-12b-it.reconstructed.json",
    "gemma-3-27b": "gemma-3-27b-it.reconstructed.json",
    "olmo-2-7b": "olmo-2-1124-7b.json",
    "olmo-2-13b": "olmo-2-1124-13b.json",
    "llama-4-scout-17b-16e-instruct": "llama-4-scout-17b-16e-instruct.json",
    "mistral-small-3.1-24b-instruct": "mistral-small-3.1-24b-instruct-2503.json",
}
# The trace family of a model type: a composite model traces as its text model plus its vision tower as a
# frozen block (oracle/families.py), so Llama-4's composite type is held to its text family's trace, and
# test_the_llama4_composite_matches_the_trace below holds the composite itself.
TRACE_FAMILY = {"llama4": "llama4_text"}

# What names a model and where its numbers come from: everything else is architecture.
_NOT_ARCHITECTURE = {"name", "aliases", "hf_id", "template", "lf_model", "template_note", "variants", "variant_of",
                     "local_dir", "revision", "official_params", "official_params_rounded_to",
                     "official_params_source", "source"}


def architecture(spec) -> dict:
    return {k: v for k, v in spec.model_dump().items() if k not in _NOT_ARCHITECTURE}


@pytest.mark.parametrize("name, fixture", sorted(ENTRY_CONFIGS.items()))
def test_each_entry_is_the_readers_output_on_its_config_copy(name, fixture):
    entry = model_catalog()[name]
    parsed = model_from_config_file(CONFIGS / fixture)
    assert architecture(entry) == architecture(parsed)
    assert entry.total_params() == parsed.total_params()


def test_every_entry_of_a_2025_type_has_its_config_copy_and_a_traced_family():
    """Issue 14: no entry without its reader and a trace test (tests/oracle/test_trace_modern.py runs
    every MODERN_SMALL_MODELS family)."""
    modern = {name for name, spec in model_catalog().items() if spec.model_type in MODERN_SMALL_MODELS
              or spec.is_moe or spec.is_mla or spec.layer_runs or spec.vision_params}
    assert modern == set(ENTRY_CONFIGS)
    for name in modern:
        model_type = model_catalog()[name].model_type
        assert TRACE_FAMILY.get(model_type, model_type) in MODERN_SMALL_MODELS, name


def test_the_2025_traps_are_encoded():
    catalog = model_catalog()
    assert catalog["qwen3-235b-a22b"].num_experts == 128 and catalog["qwen3-235b-a22b"].experts_per_token == 8
    assert catalog["mixtral-8x22b"].routing_weights_fp32 and catalog["mixtral-8x22b"].vocab_size == 32000
    assert catalog["gpt-oss-120b"].checkpoint_quantization == "mxfp4" and catalog["gpt-oss-120b"].attention_sinks
    assert catalog["deepseek-v3"].checkpoint_quantization == "fp8" and catalog["deepseek-v3"].q_lora_rank == 1536
    lite = catalog["deepseek-v2-lite"]
    assert lite.is_mla and not lite.q_lora_rank and [(k.moe, n) for k, n in lite.layer_kinds()] == [(False, 1), (True, 26)]
    assert catalog["gemma-3-1b"].vision_params == 0 and catalog["gemma-3-27b"].vision_params > 0
    assert catalog["gemma-3-27b"].head_dim == 128 and catalog["gemma-3-27b"].sliding_window == 1024
    assert catalog["olmo-2-13b"].post_norms_only and not catalog["olmo-2-13b"].is_moe
    small = catalog["mistral-small-3.1-24b-instruct"]
    assert not small.tie_word_embeddings and small.vision_params == 438_958_080 and small.sliding_window is None
    scout = catalog["llama-4-scout-17b-16e-instruct"]
    assert scout.shared_expert_intermediate_size == 8192 and scout.intermediate_size == 16384
    assert dict((kind.rope, n) for kind, n in scout.layer_kinds()) == {True: 36, False: 12}
    assert scout.vision_params == 871_932_416  # Scout's own tower (hidden 1408, 336 px), not the class default


@pytest.mark.trace
def test_the_llama4_composite_matches_the_trace():
    """Llama-4 as its catalog entry reads it (model_type llama4: text_config + a vision tower), at the
    tiny shapes of oracle/small_models.py's llama4_text: the formula's peak within 1 % of the trace."""
    pytest.importorskip("torch", reason="the trace oracle needs the [trace] extra")
    pytest.importorskip("transformers", reason="the trace oracle needs the [trace] extra")
    pytest.importorskip("peft", reason="the trace oracle needs the [trace] extra")
    from trace_compare import assert_formula_matches_trace

    from fitplan.solver.oracle.small_models import _TINY_CONFIGS
    from fitplan.solver.problem.config import TrainConfig
    from fitplan.solver.specs.hf_config import model_from_config

    config = {"model_type": "llama4", "text_config": dict(_TINY_CONFIGS["llama4_text"], model_type="llama4_text"),
              "vision_config": dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, image_size=56,
                                    patch_size=14, vision_output_dim=256, projector_input_dim=128,
                                    projector_output_dim=128)}
    model = model_from_config(config, name="tiny-llama4", source="test: tiny Llama-4 composite")
    assert model.vision_params > 0
    for method, ckpt, attn in [("lora", False, "sdpa"), ("full", True, "eager")]:
        assert_formula_matches_trace(model, TrainConfig(method=method, grad_ckpt=ckpt, attn=attn, seq_len=256),
                                     backward_terms=False)


@pytest.mark.parametrize("typed, name", [
    ("Qwen/Qwen3-30B-A3B", "qwen3-30b-a3b"), ("Qwen3-30B-A3B-Base", "qwen3-30b-a3b-base"),
    ("mistralai/Mixtral-8x7B-Instruct-v0.1", "mixtral-8x7b-instruct"), ("openai/gpt-oss-20b", "gpt-oss-20b"),
    ("deepseek-ai/DeepSeek-V2-Lite-Chat", "deepseek-v2-lite-chat"), ("google/gemma-3-27b-it", "gemma-3-27b-it"),
    ("meta-llama/Llama-4-Scout-17B-16E-Instruct", "llama-4-scout-17b-16e-instruct"),
])
def test_hub_ids_and_variants_resolve_to_the_entry_architecture(typed, name):
    spec = load_model(typed)
    assert spec.name == name
    entry = model_catalog()[spec.variant_of or spec.name]
    assert architecture(spec) == architecture(entry)


def _estimate_output(capsys, model: str) -> str:
    code = main(["estimate", "--model", model, "--gpus", "8xH100", "--seq-len", "2048", "--method", "lora"])
    assert code == 0
    return capsys.readouterr().out


def test_a_moe_estimate_by_hub_id_is_byte_identical_to_the_one_by_catalog_name(capsys):
    by_name = _estimate_output(capsys, "qwen3-30b-a3b")
    assert "qwen3-30b-a3b" in by_name
    assert _estimate_output(capsys, "Qwen/Qwen3-30B-A3B") == by_name
