"""The emitted `model_name_or_path` and `template` follow the model the user named (issue 12):
the chat variant's Hub id (`qwen-7b-chat` -> Qwen/Qwen-7B-Chat, not Qwen/Qwen-7B), the folder of
a config.json given by path, a Hub id the catalog does not know as it was typed; the template is
the one LLaMA-Factory 0.9.5 registers for that model (tests/specs/test_templates.py)."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from paths import TEST_DATA

from fitplan.solver.llamafactory.write_yaml import TRAIN_YAML, EmitPlaceholders, llamafactory_files
from fitplan.solver.problem.config import TrainConfig
from fitplan.solver.specs.catalog import load_model, parse_gpu_set

GPUS = parse_gpu_set("1xA100-80G")


def emitted(model) -> dict:
    return yaml.safe_load(llamafactory_files(model, GPUS, TrainConfig(method="lora"), EmitPlaceholders())[TRAIN_YAML])


@pytest.mark.parametrize("named, hub_id, template", [
    ("qwen-7b-chat", "Qwen/Qwen-7B-Chat", "qwen"),
    ("qwen-7b", "Qwen/Qwen-7B", "qwen"),
    ("Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-7B-Instruct", "qwen"),
    ("llama-3.1-8b-instruct", "meta-llama/Llama-3.1-8B-Instruct", "llama3"),
    ("deepseek-r1-distill-qwen-7b", "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", "deepseekr1"),
    ("deepseek-r1-distill-llama-8b", "deepseek-ai/DeepSeek-R1-Distill-Llama-8B", "deepseekr1"),
    ("qwen3-4b-instruct-2507", "Qwen/Qwen3-4B-Instruct-2507", "qwen3_nothink"),
    ("phi-4", "microsoft/phi-4", "phi4"),
    ("gemma-2-9b-it", "google/gemma-2-9b-it", "gemma2"),
    ("mistral-nemo-12b-instruct", "mistralai/Mistral-Nemo-Instruct-2407", "ministral"),
    ("baichuan2-7b-chat", "baichuan-inc/Baichuan2-7B-Chat", "default"),
])
def test_the_named_models_hub_id_and_template_are_emitted(named, hub_id, template):
    values = emitted(load_model(named))
    assert (values["model_name_or_path"], values["template"]) == (hub_id, template)


def test_a_config_json_given_by_path_keeps_its_folder_path(tmp_path):
    folder = tmp_path / "models" / "my-qwen3"
    folder.mkdir(parents=True)
    shutil.copyfile(TEST_DATA / "configs" / "qwen3-8b.json", folder / "config.json")
    for given in (folder / "config.json", folder):
        values = emitted(load_model(str(given)))
        assert values["model_name_or_path"] == str(folder.resolve())
        assert values["template"] == "qwen3"  # no catalog template: the family's


def test_a_hub_id_outside_the_catalog_keeps_that_hub_id(tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    snapshot = cache / "models--acme-lab--my-sft-8b" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text(json.dumps(json.loads((TEST_DATA / "configs" / "qwen3-8b.json").read_text())))
    (cache / "models--acme-lab--my-sft-8b" / "refs").mkdir()
    (cache / "models--acme-lab--my-sft-8b" / "refs" / "main").write_text("a" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    values = emitted(load_model("acme-lab/my-sft-8b"))
    assert values["model_name_or_path"] == "acme-lab/my-sft-8b"
