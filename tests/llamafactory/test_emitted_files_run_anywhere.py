"""The emitted launch.sh runs from wherever the user stands: it never changes directory, finds
train.yaml and ds_config.json beside itself, leaves dataset_dir / output_dir relative to the
directory it is run from (as LLaMA-Factory opens them: data/parser.py, no chdir anywhere), and
nothing written into the files (names, paths, comments) can end a line and start a command.

`llamafactory-cli` is replaced by a stub on PATH that records what it was given; the real
command trains one step in tests/integration/test_one_training_step.py."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from fitplan.cli.emit_options import emit_placeholders, write_emit
from fitplan.cli.main import main as fitplan_main
from fitplan.solver.errors import InvalidConfigurationError
from fitplan.solver.llamafactory.write_yaml import (
    LAUNCH_SH,
    TRAIN_YAML,
    EmitPlaceholders,
    comment_text,
    llamafactory_files,
)
from fitplan.solver.problem.config import TrainConfig
from fitplan.solver.problem.knobs import Method, Offload
from fitplan.solver.specs.catalog import load_model, parse_gpu_set

BASH = shutil.which("bash")
pytestmark = pytest.mark.skipif(BASH is None, reason="needs bash")

STUB = """#!/usr/bin/env bash
{ echo "cwd=$(pwd)"; echo "alloc=${PYTORCH_CUDA_ALLOC_CONF:-}"; for a in "$@"; do echo "arg=$a"; done; } > "$STUB_LOG"
"""


def stub_path(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "llamafactory-cli"
    stub.write_text(STUB)
    stub.chmod(stub.stat().st_mode | stat.S_IEXEC)
    return bin_dir


def lf_checkout(tmp_path: Path) -> Path:
    """A directory laid out like LLaMA-Factory's checkout: data/dataset_info.json."""
    checkout = tmp_path / "LLaMA-Factory"
    (checkout / "data").mkdir(parents=True)
    (checkout / "data" / "dataset_info.json").write_text("{}")
    return checkout


def run_launch(script: Path, cwd: Path, tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    log = tmp_path / "stub.log"
    log.unlink(missing_ok=True)
    env = {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", "STUB_LOG": str(log), "NODE_RANK": "0",
           "MASTER_ADDR": "10.0.0.1"}
    done = subprocess.run([BASH, str(script), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    seen: dict = {"args": []}
    if log.exists():
        for line in log.read_text().splitlines():
            key, _, value = line.partition("=")
            if key == "arg":
                seen["args"].append(value)
            else:
                seen[key] = value
    return done, seen


def emit(tmp_path: Path, config: TrainConfig, gpus: str = "8xA100-80G", **placeholders) -> Path:
    model = load_model("qwen2.5-0.5b")
    out = tmp_path / "plans" / "run1"
    write_emit(model, parse_gpu_set(gpus), config, emit="llamafactory", out=out, **placeholders)
    return out


def test_launch_script_never_changes_directory_and_passes_its_files_by_absolute_path(tmp_path):
    stub_path(tmp_path)
    out = emit(tmp_path, TrainConfig(method=Method.full, zero_stage=3, offload=Offload.optimizer, n_gpus=8))
    script = (out / LAUNCH_SH).read_text()
    assert "cd " not in script.replace("$(cd \"$(dirname", "")  # only the subshell that finds the plan folder
    checkout = lf_checkout(tmp_path)
    done, seen = run_launch(out / LAUNCH_SH, checkout, tmp_path)
    assert done.returncode == 0, done.stderr
    assert seen["cwd"] == str(checkout)  # dataset_dir and output_dir stay relative to where the user stands
    command, yaml_path, *rest = seen["args"]
    assert command == "train" and Path(yaml_path) == (out / TRAIN_YAML).resolve()
    deepspeed = next(a for a in rest if a.startswith("deepspeed="))
    assert Path(deepspeed.removeprefix("deepspeed=")).is_file()
    assert yaml.safe_load((out / TRAIN_YAML).read_text())["dataset_dir"] == "data"


def test_launch_script_runs_by_relative_path_and_forwards_overrides(tmp_path):
    stub_path(tmp_path)
    out = emit(tmp_path, TrainConfig(n_gpus=1))
    checkout = lf_checkout(tmp_path)
    relative = os.path.relpath(out / LAUNCH_SH, checkout)
    done, seen = run_launch(Path(relative), checkout, tmp_path, "max_steps=1")
    assert done.returncode == 0, done.stderr
    assert Path(seen["args"][1]).is_file() and seen["args"][-1] == "max_steps=1"
    assert not any(a.startswith("deepspeed=") for a in seen["args"])  # no ZeRO: no DeepSpeed file


def test_launch_script_says_where_to_run_it_when_dataset_info_is_missing(tmp_path):
    stub_path(tmp_path)
    out = emit(tmp_path, TrainConfig(n_gpus=1))
    elsewhere = tmp_path / "home"
    elsewhere.mkdir()
    done, seen = run_launch(out / LAUNCH_SH, elsewhere, tmp_path)
    assert done.returncode == 2 and "data/dataset_info.json" in done.stderr and "LLaMA-Factory checkout" in done.stderr
    assert not seen["args"]  # llamafactory-cli never started
    # a dataset_dir given on the command line is the one checked (and passed on)
    data = lf_checkout(tmp_path) / "data"
    done, seen = run_launch(out / LAUNCH_SH, elsewhere, tmp_path, f"dataset_dir={data}")
    assert done.returncode == 0, done.stderr
    assert seen["args"][-1] == f"dataset_dir={data}"


def test_dataset_dir_flag_is_written_and_checked(tmp_path):
    stub_path(tmp_path)
    data = lf_checkout(tmp_path) / "data"
    out = emit(tmp_path, TrainConfig(n_gpus=1), dataset_dir=str(data), dataset="my_set")
    values = yaml.safe_load((out / TRAIN_YAML).read_text())
    assert values["dataset_dir"] == str(data) and values["dataset"] == "my_set"
    done, _ = run_launch(out / LAUNCH_SH, tmp_path, tmp_path)
    assert done.returncode == 0, done.stderr


def test_a_plan_folder_with_spaces_is_refused_at_launch(tmp_path):
    # llamafactory-cli's torchrun launcher joins its arguments with spaces and splits them again
    stub_path(tmp_path)
    model = load_model("qwen2.5-0.5b")
    out = tmp_path / "my plans"
    write_emit(model, parse_gpu_set("1xA10"), TrainConfig(), emit="llamafactory", out=out)
    done, seen = run_launch(out / LAUNCH_SH, lf_checkout(tmp_path), tmp_path)
    assert done.returncode == 2 and "without spaces" in done.stderr and not seen["args"]


def test_launch_sets_the_expandable_segments_allocator_and_says_why(tmp_path):
    stub_path(tmp_path)
    out = emit(tmp_path, TrainConfig(n_gpus=1))
    script = (out / LAUNCH_SH).read_text()
    assert "max_memory_reserved" in script and "fragmentation" in script
    _, seen = run_launch(out / LAUNCH_SH, lf_checkout(tmp_path), tmp_path)
    assert seen["alloc"] == "expandable_segments:True"


def test_multi_node_launch_names_the_nccl_environment_commented():
    model, gpus = load_model("qwen2.5-7b"), parse_gpu_set("2x8xH100")
    script = llamafactory_files(model, gpus, TrainConfig(method=Method.full, zero_stage=3, n_gpus=16),
                                EmitPlaceholders())[LAUNCH_SH]
    for variable in ("NCCL_SOCKET_IFNAME", "NCCL_IB_HCA", "NCCL_IB_DISABLE", "NCCL_DEBUG"):
        line = next(line for line in script.splitlines() if variable in line)
        assert line.startswith("#"), line  # the user's network decides them: shown, not set
    single = llamafactory_files(model, parse_gpu_set("8xH100"), TrainConfig(n_gpus=8), EmitPlaceholders())[LAUNCH_SH]
    assert "NCCL_SOCKET_IFNAME" not in single


# ---- nothing written into a file can start a command ---------------------------------------------

INJECTION = "x\ntouch PWNED\r\u2028#"


def test_a_name_with_a_line_break_cannot_start_a_command_in_any_emitted_file(tmp_path):
    stub_path(tmp_path)
    model = load_model("qwen2.5-0.5b").model_copy(update={"name": "evil" + INJECTION})
    out = tmp_path / "plan"
    write_emit(model, parse_gpu_set("1xA10"), TrainConfig(), emit="llamafactory", out=out,
               reasons={"micro_batch": "because" + INJECTION})
    for name in (TRAIN_YAML, LAUNCH_SH):
        text = (out / name).read_text()
        assert not [line for line in text.splitlines() if line.startswith("touch")], name
        assert "\u2028" not in text and "\r" not in text
    values = yaml.safe_load((out / TRAIN_YAML).read_text())
    assert values["output_dir"].startswith("saves/evil") and values["per_device_train_batch_size"] == 1
    checkout = lf_checkout(tmp_path)
    done, _ = run_launch(out / LAUNCH_SH, checkout, tmp_path)
    assert done.returncode == 0, done.stderr
    assert not (checkout / "PWNED").exists() and not (out / "PWNED").exists()


def test_comments_keep_their_text_as_escapes():
    assert comment_text("a\nb\tc") == "a\\nb\\tc"
    assert comment_text("plain words, 4.5 GiB") == "plain words, 4.5 GiB"


@pytest.mark.parametrize("field", ["dataset", "template", "model_path", "output_dir", "dataset_dir"])
def test_a_placeholder_with_a_line_break_is_refused(field):
    with pytest.raises(InvalidConfigurationError, match="line break"):
        emit_placeholders(**{field: "name" + INJECTION})


def test_the_cli_refuses_a_path_with_a_line_break_in_one_line(tmp_path, capsys):
    code = fitplan_main(["recommend", "--model", "qwen2.5-0.5b", "--gpus", "1xA10", "--emit", "llamafactory",
                         "-o", str(tmp_path / "o"), "--dataset-dir", "data\nrm -rf x"])
    err = capsys.readouterr().err
    assert code == 2 and "--dataset-dir" in err and "Traceback" not in err
    assert not (tmp_path / "o" / LAUNCH_SH).exists()
