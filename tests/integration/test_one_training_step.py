"""An emitted plan trains: LLaMA-Factory 0.9.5's own `llamafactory-cli train`, started by the
emitted launch.sh from another directory, runs ONE real optimizer step on CPU.

The plan is the recommender's for Qwen2.5-0.5B LoRA on one A10 (no DeepSpeed: DeepSpeed plans
keep the parser check in test_llamafactory_validation.py). Only what this machine cannot have is
swapped, through the emitter's own flags: the weights (`--model-path`, a random 2-layer qwen2
model saved with `save_pretrained`, built from a config: no download), the data (`--dataset`,
4 samples in LLaMA-Factory's alpaca format under `data/dataset_info.json`). On the command
line, as LLaMA-Factory's README overrides keys: `max_steps=1`, `use_cpu=true` (HF refuses
bf16 without a GPU unless told to use the CPU) and, when the plan has Liger, `enable_liger_kernel=false`
(Triton kernels: GPU only). `torchaudio` is a stand-in (lf_stubs/: LLaMA-Factory
imports it at module level and no release matches torch 2.13.0).

Needs .lfvenv (`.ci/llamafactory_env.sh`); about half a minute on 2 cores."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest
import yaml
from paths import REPO

from fitplan.cli.main import main as fitplan_main

LFVENV = REPO / ".lfvenv"
HERE = Path(__file__).parent
SETUP = HERE / "tiny_llamafactory_run.py"
STUBS = HERE / "lf_stubs"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not (LFVENV / "bin" / "llamafactory-cli").exists(),
                       reason=".lfvenv is absent: run .ci/llamafactory_env.sh to install LLaMA-Factory 0.9.5"),
]


@pytest.fixture(autouse=True)
def _only_when_selected(request):
    if "integration" not in (request.config.getoption("-m") or ""):
        pytest.skip("integration test: run with `pytest -m integration` (after .ci/llamafactory_env.sh)")


def lf_env(home: Path) -> dict:
    return {"PATH": f"{LFVENV / 'bin'}:/usr/bin:/bin", "HOME": str(home), "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(STUBS), "TOKENIZERS_PARALLELISM": "false"}


def test_an_emitted_plan_trains_one_step_with_llamafactory_cli(tmp_path, capsys):
    work = tmp_path / "work"  # where the user stands: data/ and saves/ are relative to it
    model_dir = tmp_path / "tiny-qwen2"
    subprocess.run([str(LFVENV / "bin" / "python"), str(SETUP), "qwen2", str(model_dir), str(work / "data"),
                    "tiny_sft"], check=True, env=lf_env(tmp_path), capture_output=True, timeout=600)

    plan = tmp_path / "plan"
    code = fitplan_main(["recommend", "--model", "qwen2.5-0.5b", "--gpus", "1xA10", "--method", "lora",
                         "--emit", "llamafactory", "-o", str(plan), "--model-path", str(model_dir),
                         "--dataset", "tiny_sft"])
    assert code == 0, capsys.readouterr().err
    values = yaml.safe_load((plan / "train.yaml").read_text())
    assert "deepspeed" not in values and values["dataset_dir"] == "data"

    # Liger's kernels are Triton, GPU only: on this CPU the plan's `enable_liger_kernel` is turned
    # off on the command line as the other CPU overrides are
    overrides = ["max_steps=1", "use_cpu=true"] + (["enable_liger_kernel=false"] if values.get("enable_liger_kernel") else [])
    done = subprocess.run(["bash", str(plan / "launch.sh"), *overrides], cwd=work,
                          env=lf_env(tmp_path), capture_output=True, text=True, timeout=900)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    saves = work / values["output_dir"]
    steps = [json.loads(line) for line in (saves / "trainer_log.jsonl").read_text().splitlines()]
    assert steps[-1]["current_steps"] == 1
    loss = json.loads((saves / "train_results.json").read_text())["train_loss"]
    assert math.isfinite(loss) and loss > 0
    assert (saves / "adapter_model.safetensors").is_file()  # the plan's LoRA adapters were trained and saved
    assert "Total optimization steps = 1" in log
    assert f"Gradient Accumulation steps = {values['gradient_accumulation_steps']}" in log
