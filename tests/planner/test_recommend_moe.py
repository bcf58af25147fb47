"""recommend on the MoE targets of issue 13, from their published config.json (the catalog
entries come with issue 14): a plan at 2,048 tokens, explained by the MoE term that binds it,
and never a combination LLaMA-Factory 0.9.5 cannot run."""

import json

import pytest
from paths import TEST_DATA

from fitplan.cli.main import main

CONFIGS = TEST_DATA / "configs"
TARGETS = [("qwen3-30b-a3b.json", "8xH100"), ("mixtral-8x7b-v0.1.json", "8xA100-80G"),
           ("gpt-oss-20b.json", "2xH100"), ("deepseek-v2-lite.json", "2xA100-80G")]


def _recommend(capsys, *args):
    code = main(["recommend", *args, "--json"])
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("fixture,gpus", TARGETS)
def test_recommend_finds_a_plan_for_the_moe_targets(capsys, fixture, gpus):
    code, data = _recommend(capsys, "--model", str(CONFIGS / fixture), "--gpus", gpus, "--seq-len", "2048")
    assert code == 0 and data["status"] in ("optimal", "feasible")
    assert data["estimate"]["fits"]
    explanation = data["plan_explanation"]
    assert explanation["binding"] in ("expert_weights", "routed_activations", "load")
    assert explanation["line"].split(" ")[0] in ("all", "the")


def test_deepseek_v2_is_never_planned_under_zero3(capsys):
    code, data = _recommend(capsys, "--model", str(CONFIGS / "deepseek-v2-lite.json"), "--gpus", "4xA100-40G",
                            "--top", "5")
    assert code == 0
    assert all(plan["zero_stage"] != 3 for plan in [data["plan"]] + [r["plan"] for r in data["runners_up"]])


def test_pinning_zero3_for_deepseek_v2_is_bad_input_with_one_line(capsys):
    code = main(["recommend", "--model", str(CONFIGS / "deepseek-v2-lite.json"), "--gpus", "2xA100-80G",
                 "--zero", "3"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "DeepseekV2MoE" in err and "--zero 2" in err


def test_the_plan_explanation_is_printed(capsys):
    main(["recommend", "--model", str(CONFIGS / "gpt-oss-20b.json"), "--gpus", "2xH100"])
    assert "why this plan (MoE): " in capsys.readouterr().out


def test_dense_plans_carry_no_moe_explanation(capsys):
    code, data = _recommend(capsys, "--model", "qwen2.5-7b", "--gpus", "1xA100-80G")
    assert code == 0 and data["plan_explanation"] is None
