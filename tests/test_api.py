"""The Python API (`import fitplan`) answers exactly what the command line answers, takes names
or objects, and fails with one actionable FitplanError."""

import json
import subprocess
import sys

import pytest

import fitplan
from fitplan.cli.main import main
from fitplan.solver.memory.estimate import estimate as solver_estimate
from fitplan.solver.problem.config import make_config
from fitplan.solver.specs.catalog import load_model, parse_gpu_set


def test_import_fitplan_loads_no_solver_and_no_torch():
    code = ("import sys, fitplan; heavy = [m for m in ('torch', 'ortools', 'pydantic', 'fitplan.solver.estimate') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_estimate_with_names_equals_cli_json(capsys):
    assert main(["estimate", "--model", "qwen2.5-7b", "--gpus", "1xA100-80G", "--seq-len", "2048",
                 "--method", "lora", "--lora-rank", "16", "--json"]) == 0
    cli_json = json.loads(capsys.readouterr().out)
    api = fitplan.estimate("qwen2.5-7b", "1xA100-80G", seq_len=2048, method="lora", lora_rank=16)
    assert api.to_json_dict() == cli_json


def test_estimate_with_objects_equals_solver_call():
    model, gpus = load_model("llama-2-7b"), parse_gpu_set("4xA10")
    api = fitplan.estimate(model, gpus, seq_len=1024, method="qlora", micro_batch=2)
    direct = solver_estimate(model, gpus, make_config(seq_len=1024, method="qlora", bits=4, micro_batch=2,
                                                      precision="bf16", n_gpus=4))
    assert api == direct


def test_string_knobs_are_read_like_the_flags():
    est = fitplan.estimate("qwen2.5-7b", "1xA100-80G", lora_targets="q_proj, v_proj", bits="4", zero_stage=0)
    assert est.config.lora_targets == ("q_proj", "v_proj")
    assert est.config.method.value == "qlora" and est.config.bits == 4


def test_unknown_knob_is_one_line_naming_the_knobs():
    with pytest.raises(fitplan.FitplanError) as info:
        fitplan.estimate("qwen2.5-7b", "1xA100-80G", lora_rnk=16)
    message = str(info.value)
    assert "lora_rnk" in message and "lora_rank" in message and "\n" not in message


@pytest.mark.parametrize("call", [
    lambda: fitplan.estimate("qwen2.5-7", "1xA100-80G"),
    lambda: fitplan.estimate("qwen2.5-7b", "8xP5"),
    lambda: fitplan.estimate("qwen2.5-7b", "1xA100-80G", seq_len=0),
    lambda: fitplan.estimate("qwen2.5-7b", "1xP4", precision="bf16"),
    lambda: fitplan.estimate("qwen2.5-7b", "1xA100-80G", method="lora2"),
])
def test_bad_input_raises_fitplan_error(call):
    with pytest.raises(fitplan.FitplanError) as info:
        call()
    assert "\n" not in str(info.value)


def test_reexported_loaders_are_the_catalog_loaders():
    assert fitplan.load_model is load_model and fitplan.parse_gpu_set is parse_gpu_set
    assert fitplan.parse_gpu_set("2x8xH100").total_gpus == 16


def test_recommend_with_names_equals_cli_json(capsys):
    argv = ["recommend", "--model", "qwen2.5-0.5b", "--gpus", "1xP4", "--seq-len", "512", "--method", "lora", "--json"]
    assert main(argv) == 0
    cli_json = json.loads(capsys.readouterr().out)
    api = fitplan.recommend("qwen2.5-0.5b", "1xP4", seq_len=512, method="lora", compare_engines=True)
    assert api.to_json_dict() == cli_json


def test_recommend_settings_pass_through():
    settings = fitplan.SolverSettings(top_k=2)
    rec = fitplan.recommend("qwen2.5-0.5b", "1xP4", seq_len=512, method="lora", settings=settings)
    assert rec.plan is not None and len(rec.runners_up) == 1
