"""Reading a Hugging Face config.json: published configs give the catalog's numbers, and bad
files give one actionable line."""

import json
from pathlib import Path

import pytest
from paths import TEST_DATA

from fitplan.solver.errors import ConfigFileError
from fitplan.solver.specs.catalog import load_model, model_catalog
from fitplan.solver.specs.hf_config import model_from_config_file

CONFIGS = TEST_DATA / "configs"

ARCHITECTURE_FIELDS = (
    "model_type", "family", "hidden_size", "num_layers", "num_attention_heads", "num_kv_heads",
    "head_dim", "intermediate_size", "vocab_size", "tie_word_embeddings", "qkv_bias", "o_bias",
    "mlp_bias", "norm_type", "norms_per_layer", "qk_norm", "mlp_kind", "num_experts",
)

FIXTURE_TO_CATALOG = {
    "llama-2-7b.json": "llama-2-7b",
    "llama-2-7b-gptq.json": "llama-2-7b",  # + quantization_config (tests/memory/test_prequantized.py)
    "llama-2-7b-awq.json": "llama-2-7b",
    "qwen1.5-7b-chat.json": "qwen1.5-7b",
    "qwen2.5-32b.json": "qwen2.5-32b",
    "qwen3-8b.json": "qwen3-8b",
    "mistral-7b-v0.3.json": "mistral-7b-v0.3",
    "gemma-2-2b.json": "gemma-2-2b",
    "phi-3-mini-4k-instruct.json": "phi-3-mini",
    "baichuan2-7b-base.json": "baichuan2-7b",
    "chatglm3-6b.json": "chatglm3-6b",
    "qwen-7b.json": "qwen-7b",
}


@pytest.mark.parametrize("fixture, catalog_name", sorted(FIXTURE_TO_CATALOG.items()))
def test_published_config_parses_to_the_catalog_architecture(fixture, catalog_name):
    parsed = model_from_config_file(CONFIGS / fixture)
    expected = model_catalog()[catalog_name]
    for field in ARCHITECTURE_FIELDS:
        assert getattr(parsed, field) == getattr(expected, field), field
    assert parsed.total_params() == expected.total_params()
    assert parsed.official_params == parsed.total_params()
    assert parsed.official_params_source == "computed from config.json"


def test_every_fixture_is_listed_in_the_readme():
    readme = (CONFIGS / "README.md").read_text()
    for fixture in CONFIGS.glob("*.json"):
        assert f"`{fixture.name}`" in readme
    for fixture in FIXTURE_TO_CATALOG:
        assert (CONFIGS / fixture).is_file()


def test_a_directory_holding_config_json_is_read_and_named_after_the_directory(tmp_path):
    model_dir = tmp_path / "my-finetune"
    model_dir.mkdir()
    (model_dir / "config.json").write_text((CONFIGS / "qwen2.5-32b.json").read_text())
    spec = model_from_config_file(model_dir)
    assert spec.name == "my-finetune" and spec.hidden_size == 5120


def test_name_comes_from_name_or_path_when_present():
    assert model_from_config_file(CONFIGS / "chatglm3-6b.json").name == "THUDM/chatglm3-6b"


def test_load_model_accepts_a_config_json_path():
    assert load_model(str(CONFIGS / "gemma-2-2b.json")).norms_per_layer == 4


def test_qwen1_config_intermediate_size_is_halved_to_one_branch():
    assert model_from_config_file(CONFIGS / "qwen-7b.json").intermediate_size == 22016 // 2


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.json"
    path.write_text(text)
    return path


def _one_line_error(path: Path) -> str:
    with pytest.raises(ConfigFileError) as err:
        model_from_config_file(path)
    message = str(err.value)
    assert message and "\n" not in message
    return message


def test_unknown_model_type_names_the_supported_types(tmp_path):
    message = _one_line_error(_write(tmp_path, json.dumps({"model_type": "falcon"})))
    assert "'falcon'" in message and "llama" in message and "chatglm" in message


def test_a_dense_config_relabelled_as_moe_names_the_missing_expert_count(tmp_path):
    config = json.loads((CONFIGS / "mistral-7b-v0.3.json").read_text()) | {"model_type": "mixtral"}
    assert "'num_experts' or 'num_local_experts'" in _one_line_error(_write(tmp_path, json.dumps(config)))


def test_malformed_json_says_where_it_broke(tmp_path):
    message = _one_line_error(_write(tmp_path, '{"model_type": "llama",'))
    assert "not valid JSON" in message and "line" in message


def test_missing_required_key_is_named(tmp_path):
    config = json.loads((CONFIGS / "llama-2-7b.json").read_text())
    del config["num_hidden_layers"]
    assert "'num_hidden_layers'" in _one_line_error(_write(tmp_path, json.dumps(config)))


def test_missing_file_says_what_to_pass(tmp_path):
    assert "no config.json" in _one_line_error(tmp_path / "nowhere" / "config.json")


def test_json_that_is_not_an_object_is_rejected(tmp_path):
    assert "object" in _one_line_error(_write(tmp_path, "[1, 2, 3]"))


def test_impossible_numbers_give_a_config_error_not_a_traceback(tmp_path):
    config = json.loads((CONFIGS / "llama-2-7b.json").read_text()) | {"num_key_value_heads": 5}
    assert "multiple" in _one_line_error(_write(tmp_path, json.dumps(config)))
