"""The model catalog: every entry validates, resolves by name or alias, and its architecture
reproduces the published parameter count."""

import re

import pytest

from fitplan.solver.errors import UnknownModelError
from fitplan.solver.specs.catalog import load_model, model_catalog
from fitplan.solver.specs.model import Family

REQUIRED_MODELS = [
    "qwen-7b", "qwen-14b", "qwen-72b", "qwen1.5-7b", "qwen1.5-14b", "qwen1.5-32b", "qwen1.5-72b",
    "qwen2.5-0.5b", "qwen2.5-1.5b", "qwen2.5-3b", "qwen2.5-7b", "qwen2.5-14b", "qwen2.5-32b",
    "qwen2.5-72b", "qwen3-8b", "llama-2-7b", "llama-2-13b", "llama-2-70b", "codellama-7b",
    "codellama-13b", "codellama-34b", "llama-3.1-8b", "llama-3.1-70b", "llama-3.2-1b", "llama-3.2-3b",
    "mistral-7b", "yi-6b", "yi-34b", "baichuan2-7b", "baichuan2-13b", "chatglm3-6b", "gemma-2-2b",
    "gemma-2-9b", "phi-3-mini", "qwen-1.8b",
]

# Within half a percent: enough to catch a wrong layer count, head width or tied/untied head.
PARAM_TOLERANCE = 0.005


def _key(name: str) -> str:
    return re.sub(r"[\s_]+", "-", name.strip().lower())


def test_catalog_holds_at_least_thirty_validated_models():
    assert len(model_catalog()) >= 30


@pytest.mark.parametrize("name", REQUIRED_MODELS)
def test_every_required_model_resolves_by_its_canonical_name(name):
    assert load_model(name).name == name


@pytest.mark.parametrize("name", REQUIRED_MODELS)
def test_every_required_model_resolves_by_an_alias_in_any_case(name):
    spec = model_catalog()[name]
    assert spec.aliases, f"{name} has no aliases"
    for alias in (spec.aliases[0], spec.aliases[0].upper(), spec.aliases[-1].lower()):
        assert load_model(alias).name == name


def test_hugging_face_ids_and_instruct_variants_resolve_to_the_base_architecture():
    assert load_model("Qwen/Qwen2.5-7B").name == "qwen2.5-7b"
    assert load_model("qwen2.5-7b-instruct").name == "qwen2.5-7b"
    assert load_model("Qwen2.5-7B-Instruct").name == "qwen2.5-7b"
    assert load_model("qwen-7b-chat").name == "qwen-7b"
    assert load_model("Qwen-1_8B-Chat").name == "qwen-1.8b"


@pytest.mark.parametrize("name", sorted(model_catalog()))
def test_every_catalog_model_matches_its_official_parameter_count(name):
    spec = model_catalog()[name]
    deviation = abs(spec.total_params() - spec.official_params) / spec.official_params
    assert deviation <= PARAM_TOLERANCE, (
        f"{name}: computed {spec.total_params():,} vs official {spec.official_params:,} "
        f"({deviation:.2%}) per {spec.official_params_source}"
    )


@pytest.mark.parametrize("name", sorted(model_catalog()))
def test_every_catalog_model_cites_its_sources(name):
    spec = model_catalog()[name]
    assert spec.source.strip() and spec.official_params_source.strip()


def test_aliases_are_unique_across_the_catalog():
    owner: dict[str, str] = {}
    for name, spec in model_catalog().items():
        for key in {_key(name), *(_key(a) for a in spec.aliases)}:
            assert key not in owner or owner[key] == name, f"'{key}' names both {owner[key]} and {name}"
            owner[key] = name


def test_unknown_model_name_raises_with_near_matches():
    with pytest.raises(UnknownModelError) as err:
        load_model("qwen2.5-8b")
    message = str(err.value)
    assert "qwen2.5" in message and "Did you mean" in message
    assert "\n" not in message


def test_family_traps_are_encoded_as_the_modelling_code_builds_them():
    catalog = model_catalog()
    assert catalog["qwen-7b"].intermediate_size == 11008  # half of config 22016 (w1 + w2)
    assert catalog["qwen-7b"].linear_module_names()[:2] == ["c_attn", "attn.c_proj"]
    assert catalog["chatglm3-6b"].num_kv_heads == 2 and catalog["chatglm3-6b"].qkv_bias
    assert catalog["baichuan2-13b"].family == Family.baichuan
    assert "W_pack" in catalog["baichuan2-7b"].linear_module_names()
    assert catalog["gemma-2-9b"].norms_per_layer == 4 and catalog["gemma-2-9b"].tie_word_embeddings
    assert catalog["qwen3-8b"].qk_norm and not catalog["qwen3-8b"].qkv_bias
    assert catalog["phi-3-mini"].linear_module_names() == ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]
    tied = {n for n, s in catalog.items() if s.tie_word_embeddings}
    assert {"qwen2.5-0.5b", "qwen2.5-1.5b", "qwen2.5-3b", "llama-3.2-1b", "llama-3.2-3b"} <= tied
    assert not catalog["qwen2.5-7b"].tie_word_embeddings
