"""Every named model's LLaMA-Factory chat template, checked against LLaMA-Factory 0.9.5's own
registry (catalogs/llamafactory_0.9.5_templates.yaml, generated from the installed package by
scripts/generate_llamafactory_templates.py)."""

from __future__ import annotations

import pytest

from fitplan.solver.specs.catalog import llamafactory_templates, named_models

REGISTRY = llamafactory_templates()
TEMPLATES = set(REGISTRY["templates"])
LF_MODELS = REGISTRY["models"]
LF_BY_HUB_ID = {row["hf_id"].lower(): name for name, row in LF_MODELS.items() if row["hf_id"]}


def test_the_registry_is_llamafactory_0_9_5s():
    # 121 register_template calls in data/template.py (notes: llamafactory/facts.md A.3);
    # `baichuan2` was removed before 0.9.5 (commit 5cccaeec8).
    assert REGISTRY["generated_by"] == "scripts/generate_llamafactory_templates.py"
    assert len(TEMPLATES) == 121
    assert {"deepseekr1", "qwen3", "qwen3_nothink", "phi4", "phi4_mini", "gemma2", "llama3", "ministral"} <= TEMPLATES
    assert "baichuan2" not in TEMPLATES


@pytest.mark.parametrize("name", sorted(named_models()))
def test_every_named_models_template_is_the_one_llamafactory_registers_for_it(name):
    spec = named_models()[name]
    assert spec.template in TEMPLATES, f"{name}: template {spec.template} does not exist in LLaMA-Factory 0.9.5"
    keys = {spec.hf_id.lower(), *(a.lower() for a in spec.aliases)}
    registered = sorted({LF_BY_HUB_ID[k] for k in keys if k in LF_BY_HUB_ID})
    if spec.lf_model:
        row = LF_MODELS[spec.lf_model]
        assert spec.template == row["template"], f"{name}: {spec.template} but LLaMA-Factory says {row['template']}"
        assert row["hf_id"].lower() in keys, f"{name}: LLaMA-Factory's {spec.lf_model} is {row['hf_id']}, not one of ours"
    else:
        assert not registered, f"{name}: LLaMA-Factory registers it as {registered}: set lf_model"
        assert spec.template_note, f"{name}: no LLaMA-Factory entry, so template_note must say why {spec.template}"


@pytest.mark.parametrize("name, template", [
    ("deepseek-r1-distill-qwen-7b", "deepseekr1"), ("deepseek-r1-distill-llama-70b", "deepseekr1"),
    ("qwen3-8b", "qwen3"), ("qwen3-4b-instruct-2507", "qwen3_nothink"), ("phi-4", "phi4"), ("phi-4-mini", "phi4_mini"),
    ("gemma-2-27b-it", "gemma2"), ("llama-3.3-70b", "llama3"), ("mistral-nemo-12b", "ministral"),
    ("baichuan2-7b-chat", "default"), ("codellama-7b-instruct", "llama2"), ("qwen-7b-chat", "qwen"),
])
def test_templates_follow_the_model(name, template):
    assert named_models()[name].template == template


@pytest.mark.integration
def test_the_registry_file_is_what_the_installed_llamafactory_generates():
    import subprocess

    from paths import REPO

    lf_python = REPO / ".lfvenv" / "bin" / "python"
    if not lf_python.exists():
        pytest.fail(f"{lf_python} not found: link the LLaMA-Factory venv (.ci/run)")
    catalog = REPO / "catalogs" / "llamafactory_0.9.5_templates.yaml"
    before = catalog.read_text()
    subprocess.run([str(lf_python), str(REPO / "scripts" / "generate_llamafactory_templates.py")], check=True,
                   capture_output=True)
    assert catalog.read_text() == before, "regenerated registry differs: commit the new file"
