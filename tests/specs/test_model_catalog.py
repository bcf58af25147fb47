"""The model catalog: every entry validates, resolves by name or alias, and its architecture
reproduces the published parameter count."""

import re

import pytest

from fitplan.solver.errors import UnknownModelError
from fitplan.solver.specs.catalog import load_model, model_catalog, named_models
from fitplan.solver.specs.model import Family

REQUIRED_MODELS = [
    "qwen-7b", "qwen-14b", "qwen-72b", "qwen1.5-7b", "qwen1.5-14b", "qwen1.5-32b", "qwen1.5-72b",
    "qwen2.5-0.5b", "qwen2.5-1.5b", "qwen2.5-3b", "qwen2.5-7b", "qwen2.5-14b", "qwen2.5-32b",
    "qwen2.5-72b", "qwen3-8b", "llama-2-7b", "llama-2-13b", "llama-2-70b", "codellama-7b",
    "codellama-13b", "codellama-34b", "llama-3.1-8b", "llama-3.1-70b", "llama-3.2-1b", "llama-3.2-3b",
    "mistral-7b", "yi-6b", "yi-34b", "baichuan2-7b", "baichuan2-13b", "chatglm3-6b", "gemma-2-2b",
    "gemma-2-9b", "phi-3-mini", "qwen-1.8b",
    # issue 14: the 2026 catalog (dense architectures whose readers exist)
    "qwen3-0.6b", "qwen3-1.7b", "qwen3-4b", "qwen3-14b", "qwen3-32b", "llama-3.3-70b", "llama-3.1-405b",
    "deepseek-r1-distill-qwen-1.5b", "deepseek-r1-distill-qwen-7b", "deepseek-r1-distill-qwen-14b",
    "deepseek-r1-distill-qwen-32b", "deepseek-r1-distill-llama-8b", "deepseek-r1-distill-llama-70b",
    "mistral-nemo-12b", "phi-4", "phi-4-mini",
    # issue 14 on issue 13's readers: MoE, MLA, sliding-window and multimodal layouts
    "qwen3-30b-a3b", "qwen3-235b-a22b", "gemma-3-1b", "gemma-3-4b", "gemma-3-12b", "gemma-3-27b", "gpt-oss-20b",
    "gpt-oss-120b", "deepseek-v2-lite", "mixtral-8x7b", "mixtral-8x22b", "olmo-2-7b", "olmo-2-13b",
    "llama-4-scout-17b-16e-instruct", "mistral-small-3.1-24b-instruct",
]

# Within half a percent: enough to catch a wrong layer count, head width or tied/untied head.
PARAM_TOLERANCE = 0.005


def _key(name: str) -> str:
    return re.sub(r"[\s_]+", "-", name.strip().lower())


def test_catalog_holds_at_least_75_validated_entries_and_more_named_models():
    assert len(model_catalog()) >= 75
    assert len(named_models()) > len(model_catalog())


@pytest.mark.parametrize("name", REQUIRED_MODELS)
def test_every_required_model_resolves_by_its_canonical_name(name):
    assert load_model(name).name == name


@pytest.mark.parametrize("name", REQUIRED_MODELS)
def test_every_required_model_resolves_by_an_alias_in_any_case(name):
    spec = model_catalog()[name]
    assert spec.aliases, f"{name} has no aliases"
    for alias in (spec.aliases[0], spec.aliases[0].upper(), spec.aliases[-1].lower()):
        assert load_model(alias).name == name


def _architecture(spec) -> dict:
    named = {"name", "aliases", "hf_id", "template", "lf_model", "template_note", "variants", "variant_of"}
    return {k: v for k, v in spec.model_dump().items() if k not in named}


def test_hugging_face_ids_and_instruct_variants_resolve_to_their_named_model_with_the_base_architecture():
    assert load_model("Qwen/Qwen2.5-7B").name == "qwen2.5-7b"
    for typed, name, entry, hf_id in [("qwen2.5-7b-instruct", "qwen2.5-7b-instruct", "qwen2.5-7b", "Qwen/Qwen2.5-7B-Instruct"),
                                      ("Qwen2.5-7B-Instruct", "qwen2.5-7b-instruct", "qwen2.5-7b", "Qwen/Qwen2.5-7B-Instruct"),
                                      ("qwen-7b-chat", "qwen-7b-chat", "qwen-7b", "Qwen/Qwen-7B-Chat"),
                                      ("Qwen-1_8B-Chat", "qwen-1.8b-chat", "qwen-1.8b", "Qwen/Qwen-1_8B-Chat"),
                                      ("Qwen/Qwen3-8B-Base", "qwen3-8b-base", "qwen3-8b", "Qwen/Qwen3-8B-Base")]:
        spec = load_model(typed)
        assert (spec.name, spec.variant_of, spec.hf_id) == (name, entry, hf_id), typed
        assert _architecture(spec) == _architecture(model_catalog()[entry])


def test_the_chat_variant_knows_it_was_asked_for():
    chat = load_model("qwen-7b-chat")
    assert chat.variant_of == "qwen-7b" and chat.model_name_or_path == "Qwen/Qwen-7B-Chat"
    assert load_model("qwen-7b").variant_of == "" and load_model("qwen-7b").model_name_or_path == "Qwen/Qwen-7B"


def test_every_named_model_has_a_hub_id_and_a_template():
    for name, spec in named_models().items():
        assert "/" in spec.hf_id, name
        assert spec.template, name


@pytest.mark.parametrize("name", sorted(model_catalog()))
def test_every_catalog_model_matches_its_official_parameter_count(name):
    spec = model_catalog()[name]
    deviation = abs(spec.total_params() - spec.official_params) / spec.official_params
    # A count published rounded ("3.8B") is met anywhere within its rounding.
    tolerance = max(PARAM_TOLERANCE, spec.official_params_rounded_to / 2 / spec.official_params)
    assert deviation <= tolerance, (
        f"{name}: computed {spec.total_params():,} vs official {spec.official_params:,} "
        f"({deviation:.2%}) per {spec.official_params_source}"
    )


@pytest.mark.parametrize("name", sorted(model_catalog()))
def test_every_catalog_model_cites_its_sources(name):
    spec = model_catalog()[name]
    assert spec.source.strip() and spec.official_params_source.strip()


def test_aliases_are_unique_across_the_catalog():
    owner: dict[str, str] = {}
    for name, spec in named_models().items():
        for key in {_key(name), _key(spec.hf_id), *(_key(a) for a in spec.aliases)}:
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


def test_the_2026_traps_are_encoded():
    catalog = model_catalog()
    assert catalog["qwen3-0.6b"].head_dim == 128 and catalog["qwen3-0.6b"].tie_word_embeddings
    assert catalog["qwen3-32b"].head_dim * catalog["qwen3-32b"].num_attention_heads == 8192  # q_dim > hidden 5120
    assert catalog["mistral-nemo-12b"].head_dim == 128  # not 5120 / 32 = 160
    assert not catalog["deepseek-r1-distill-qwen-1.5b"].tie_word_embeddings  # its base ties; the distill does not
    assert catalog["qwen2.5-math-1.5b"].tie_word_embeddings
    assert catalog["phi-4-mini"].tie_word_embeddings and catalog["phi-4-mini"].family == Family.phi3
    assert catalog["gemma-2-27b"].norms_per_layer == 4 and catalog["gemma-2-27b"].final_logit_softcapping == 30.0
