"""Nothing a hostile input can break (issue 18): every case of the battery
(tests/helpers/hostile_cases.py) is one `error: ...` line on stderr, nothing on stdout, exit 2,
within a second of CPU whatever its size; emitted files run only the planned commands; the API
raises FitplanError (one line) and nothing else. benchmarks/hostile_inputs.py runs the same
battery as real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from hostile_cases import CASES, LLAMA_CONFIG, Case, materialise

import fitplan
from fitplan.cli.main import main
from fitplan.solver.errors import FitplanError

CPU_SECONDS = 1.0  # the bound, on this process's CPU time (the machine is shared)


def _run_in_process(case: Case, tmp_path: Path, capsys, monkeypatch) -> tuple[int, str, str, float]:
    argv = materialise(case, tmp_path)
    monkeypatch.chdir(tmp_path)
    start = time.process_time()
    code = main(argv)
    seconds = time.process_time() - start
    captured = capsys.readouterr()
    return code, captured.out, captured.err, seconds


def _assert_one_error_line(code: int, out: str, err: str) -> str:
    lines = err.strip().splitlines()
    assert code == 2, (code, err[-300:])
    assert "Traceback" not in err and len(lines) == 1 and lines[0].startswith("error: "), err[-300:]
    assert len(lines[0]) < 600, len(lines[0])
    assert out.strip() == "", out[:300]
    return lines[0]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_hostile_input_is_one_error_line_and_exit_2_within_a_second(case, tmp_path, capsys, monkeypatch):
    code, out, err, seconds = _run_in_process(case, tmp_path, capsys, monkeypatch)
    _assert_one_error_line(code, out, err)
    assert seconds < CPU_SECONDS, f"{case.name} took {seconds:.2f} s of CPU"


SUBPROCESS_CASES = ("gpu_name_120000_chars", "config_deeply_nested_json", "check_dev_zero", "check_billion_laughs",
                    "recommend_global_batch_1e12")


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_hostile_inputs_as_real_processes_end_in_one_line(name, tmp_path):
    case = next(c for c in CASES if c.name == name)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hf-cache")}
    done = subprocess.run([sys.executable, "-m", "fitplan.cli.main", *materialise(case, tmp_path)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, env=env)
    _assert_one_error_line(done.returncode, done.stdout, done.stderr)


def test_a_100000_character_name_is_echoed_cut_short(tmp_path, capsys, monkeypatch):
    case = next(c for c in CASES if c.name == "model_name_100000_chars")
    code, out, err, _ = _run_in_process(case, tmp_path, capsys, monkeypatch)
    line = _assert_one_error_line(code, out, err)
    assert "x" * 81 not in line and "100,000 characters" in line


def test_mean_sample_len_above_seq_len_fails_before_the_csv_header(tmp_path, capsys, monkeypatch):
    case = next(c for c in CASES if c.name == "sweep_mean_sample_len_above_seq_len")
    code, out, err, _ = _run_in_process(case, tmp_path, capsys, monkeypatch)
    assert "--mean-sample-len 4096 is above --seq-len 512" in _assert_one_error_line(code, out, err)


@pytest.mark.parametrize("command", ["estimate", "recommend", "sweep"])
def test_impossible_pins_are_exit_2_in_every_command(command, tmp_path, capsys, monkeypatch):
    for label in ("paged_8bit_with_offload_all", "full_with_4_bits"):
        case = next(c for c in CASES if c.name == f"{command}_{label}")
        _assert_one_error_line(*_run_in_process(case, tmp_path, capsys, monkeypatch)[:3])


def test_a_pin_that_cannot_take_effect_names_both_pins(tmp_path, capsys, monkeypatch):
    for name, needles in (("recommend_full_with_lora_rank", ("--lora-rank 64", "--method full")),
                          ("estimate_batch_split_mismatch", ("--global-batch 64", "--micro-batch 1", "--grad-accum 1"))):
        case = next(c for c in CASES if c.name == name)
        line = _assert_one_error_line(*_run_in_process(case, tmp_path, capsys, monkeypatch)[:3])
        assert all(n in line for n in needles), line


def test_check_with_errors_prints_only_the_error_line(tmp_path, capsys, monkeypatch):
    case = next(c for c in CASES if c.name == "check_errors_only_on_stderr")
    line = _assert_one_error_line(*_run_in_process(case, tmp_path, capsys, monkeypatch)[:3])
    assert "no_such_key" in line


# ---- the catalog name and a folder of that name ----------------------------------------------------

def test_a_catalog_name_wins_over_a_folder_of_that_name(tmp_path, capsys, monkeypatch):
    (tmp_path / "qwen2.5-0.5b").mkdir()  # no config.json in it: before issue 18 this was an error
    monkeypatch.chdir(tmp_path)
    assert main(["estimate", "--model", "qwen2.5-0.5b", "--gpus", "1xA100-80G", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == "qwen2.5-0.5b"
    (tmp_path / "qwen2.5-0.5b" / "config.json").write_text(json.dumps(LLAMA_CONFIG))
    assert main(["estimate", "--model", "./qwen2.5-0.5b", "--gpus", "1xA100-80G", "--json"]) == 0  # ./ = the folder
    assert json.loads(capsys.readouterr().out)["model"] == LLAMA_CONFIG["_name_or_path"]


# ---- what reaches an emitted file ------------------------------------------------------------------

def _commands(script: str) -> list[str]:
    """launch.sh's lines that bash runs: neither blank nor comments."""
    return [line for line in script.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _emit(tmp_path: Path, folder: str, name_or_path: str, capsys) -> Path:
    model_dir = tmp_path / folder
    model_dir.mkdir()
    (model_dir / "config.json").write_text(json.dumps({**LLAMA_CONFIG, "_name_or_path": name_or_path}))
    out = tmp_path / f"plan-{len(list(tmp_path.iterdir()))}"
    code = main(["recommend", "--model", str(model_dir), "--gpus", "2xA100-80G", "--seq-len", "512",
                 "--time-limit", "5", "--zero", "2", "--emit", "llamafactory", "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    capsys.readouterr()
    return out


def test_launch_sh_from_a_config_with_line_breaks_runs_only_the_planned_commands(tmp_path, capsys):
    hostile = "evil\nrm -rf ~ #\r\u2028touch /tmp/pwned\n`id` $(id) \"'"
    clean = _emit(tmp_path, "clean", "llama-2-7b", capsys)
    evil = _emit(tmp_path, "evil\n$(touch pwned)", hostile, capsys)
    script = (evil / "launch.sh").read_text()
    assert subprocess.run(["bash", "-n", str(evil / "launch.sh")], capture_output=True).returncode == 0
    assert _commands(script) == _commands((clean / "launch.sh").read_text())
    # the YAML reads back as the planned keys, the hostile text a value inside them and nothing more
    evil_yaml = yaml.safe_load((evil / "train.yaml").read_text())
    clean_yaml = yaml.safe_load((clean / "train.yaml").read_text())
    assert set(evil_yaml) == set(clean_yaml)
    assert evil_yaml["model_name_or_path"].endswith("evil\n$(touch pwned)")
    assert "rm -rf ~" in evil_yaml["output_dir"] and "\n" not in evil_yaml["output_dir"]
    json.loads((evil / "ds_config.json").read_text())


def test_emit_refuses_a_folder_that_holds_files_unless_forced(tmp_path, capsys):
    out = tmp_path / "plan"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    argv = ["recommend", "--model", "qwen2.5-0.5b", "--gpus", "1xA100-80G", "--time-limit", "5",
            "--emit", "llamafactory", "-o", str(out)]
    code = main(argv)
    captured = capsys.readouterr()
    assert "--force" in _assert_one_error_line(code, captured.out, captured.err)
    assert main(argv + ["--force"]) == 0 and (out / "train.yaml").is_file() and (out / "notes.txt").is_file()
    capsys.readouterr()
    code = main(argv[:-1] + [""])
    captured = capsys.readouterr()
    assert "empty" in _assert_one_error_line(code, captured.out, captured.err)


# ---- trace -----------------------------------------------------------------------------------------

def test_trace_validates_the_input_before_looking_for_torch(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)
    code = main(["trace", "--model", "no-such-model"])
    assert "unknown model" in _assert_one_error_line(code, "", capsys.readouterr().err)
    code = main(["trace", "--model", "qwen2.5-0.5b"])
    assert "pip install" in _assert_one_error_line(code, "", capsys.readouterr().err)


# ---- the Python API ----------------------------------------------------------------------------------

API_CALLS = {
    "estimate_bits_float": lambda: fitplan.estimate("qwen2.5-0.5b", "1xA100-80G", bits=4.7),
    "estimate_bits_whole_float": lambda: fitplan.estimate("qwen2.5-0.5b", "1xA100-80G", bits=4.0),
    "estimate_bits_bool": lambda: fitplan.estimate("qwen2.5-0.5b", "1xA100-80G", bits=True),
    "estimate_bits_list": lambda: fitplan.estimate("qwen2.5-0.5b", "1xA100-80G", bits=[4]),
    "estimate_micro_batch_float": lambda: fitplan.estimate("qwen2.5-0.5b", "1xA100-80G", micro_batch=2.5),
    "estimate_micro_batch_bool": lambda: fitplan.estimate("qwen2.5-0.5b", "1xA100-80G", micro_batch=True),
    "estimate_lora_rank_str": lambda: fitplan.estimate("qwen2.5-0.5b", "1xA100-80G", lora_rank="8"),
    "estimate_n_gpus_float": lambda: fitplan.estimate("qwen2.5-0.5b", "2xA100-80G", n_gpus=1.0),
    "estimate_grad_ckpt_str": lambda: fitplan.estimate("qwen2.5-0.5b", "1xA100-80G", grad_ckpt="no"),
    "estimate_loraplus_nan": lambda: fitplan.estimate("qwen2.5-0.5b", "1xA100-80G", loraplus_lr_ratio=float("nan")),
    "estimate_seq_len_float": lambda: fitplan.estimate("qwen2.5-0.5b", "1xA100-80G", seq_len=1024.5),
    "estimate_seq_len_str": lambda: fitplan.estimate("qwen2.5-0.5b", "1xA100-80G", seq_len="1024"),
    "estimate_seq_len_huge": lambda: fitplan.estimate("qwen2.5-0.5b", "1xA100-80G", seq_len=10**12),
    "estimate_global_batch_zero": lambda: fitplan.estimate("qwen2.5-0.5b", "1xA100-80G", global_batch=0),
    "estimate_mean_above_seq": lambda: fitplan.estimate("qwen2.5-0.5b", "1xA100-80G", seq_len=512,
                                                        mean_sample_len=1024),
    "estimate_model_none": lambda: fitplan.estimate(None, "1xA100-80G"),
    "estimate_model_int": lambda: fitplan.estimate(7, "1xA100-80G"),
    "estimate_gpus_int": lambda: fitplan.estimate("qwen2.5-0.5b", 8),
    "estimate_gpus_list": lambda: fitplan.estimate("qwen2.5-0.5b", ["1xA100-80G"]),
    "estimate_unknown_knob": lambda: fitplan.estimate("qwen2.5-0.5b", "1xA100-80G", lora_rnak=8),
    "estimate_capacity_inf": lambda: fitplan.estimate("qwen2.5-0.5b", "1xA100-80G", capacity_factor=float("inf")),
    "recommend_settings_dict": lambda: fitplan.recommend("qwen2.5-0.5b", "1xA100-80G", settings={"top_k": 2}),
    "recommend_settings_str": lambda: fitplan.recommend("qwen2.5-0.5b", "1xA100-80G", settings="fast"),
    "recommend_inter_node_nan": lambda: fitplan.recommend("qwen2.5-0.5b", "2x8xH100", inter_node_gbps=float("nan")),
    "recommend_inter_node_str": lambda: fitplan.recommend("qwen2.5-0.5b", "2x8xH100", inter_node_gbps="fast"),
    "recommend_full_with_lora_rank": lambda: fitplan.recommend("qwen2.5-0.5b", "1xA100-80G", method="full",
                                                               lora_rank=64),
    "settings_negative_time": lambda: fitplan.SolverSettings(time_limit_s=-1),
    "settings_top_k_float": lambda: fitplan.SolverSettings(top_k=2.5),
    "settings_headroom_nan": lambda: fitplan.SolverSettings(headroom_fraction=float("nan")),
    "settings_unknown": lambda: fitplan.SolverSettings(timelimit=5),
    "load_model_none": lambda: fitplan.load_model(None),
    "load_model_bytes": lambda: fitplan.load_model(b"qwen2.5-7b"),
    "load_model_empty": lambda: fitplan.load_model(""),
    "parse_gpu_set_none": lambda: fitplan.parse_gpu_set(None),
    "sweep_models_str": lambda: fitplan.sweep("qwen2.5-0.5b", ["1xA100-80G"]),
    "sweep_models_empty": lambda: fitplan.sweep([], ["1xA100-80G"]),
    "sweep_gpus_empty": lambda: fitplan.sweep(["qwen2.5-0.5b"], []),
    "sweep_seq_lens_empty": lambda: fitplan.sweep(["qwen2.5-0.5b"], ["1xA100-80G"], seq_lens=[]),
    "sweep_seq_lens_float": lambda: fitplan.sweep(["qwen2.5-0.5b"], ["1xA100-80G"], seq_lens=[1024.5]),
    "sweep_seq_lens_int": lambda: fitplan.sweep(["qwen2.5-0.5b"], ["1xA100-80G"], seq_lens=1024),
    "sweep_seq_lens_none": lambda: fitplan.sweep(["qwen2.5-0.5b"], ["1xA100-80G"], seq_lens=None),
    "sweep_jobs_zero": lambda: fitplan.sweep(["qwen2.5-0.5b"], ["1xA100-80G"], jobs=0),
    "sweep_jobs_str": lambda: fitplan.sweep(["qwen2.5-0.5b"], ["1xA100-80G"], jobs="2"),
    "sweep_jobs_float": lambda: fitplan.sweep(["qwen2.5-0.5b"], ["1xA100-80G"], jobs=2.0),
    "sweep_global_batch_zero": lambda: fitplan.sweep(["qwen2.5-0.5b"], ["1xA100-80G"], global_batch=0),
    "sweep_settings_dict": lambda: fitplan.sweep(["qwen2.5-0.5b"], ["1xA100-80G"], settings={}),
    "sweep_impossible_pins": lambda: fitplan.sweep(["qwen2.5-0.5b"], ["1xA100-80G"], method="full", bits=4),
    "sweep_too_many_rows": lambda: fitplan.sweep(["qwen2.5-0.5b"] * 100, ["1xA100-80G"] * 100),
}


@pytest.mark.parametrize("name", sorted(API_CALLS))
def test_the_api_raises_one_line_fitplan_errors_and_nothing_else(name):
    with pytest.raises(FitplanError) as caught:
        API_CALLS[name]()
    message = str(caught.value)
    assert "\n" not in message and 0 < len(message) < 1000, message


def test_bits_4_7_is_refused_not_truncated_to_4():
    with pytest.raises(FitplanError, match="bits"):
        fitplan.estimate("qwen2.5-0.5b", "1xA100-80G", bits=4.7)
    assert fitplan.estimate("qwen2.5-0.5b", "1xA100-80G", bits="4").config.bits == 4  # the flag's spelling


def test_every_bound_in_limits_py_says_why_it_is_that_large():
    """solver/specs/limits.py: each MAX_ constant is preceded by a comment line giving its reason."""
    from fitplan.solver.specs import limits

    lines = Path(limits.__file__).read_text().splitlines()
    constants = [i for i, line in enumerate(lines) if line.startswith("MAX_")]
    assert len(constants) >= 30
    for index in constants:
        above = lines[index - 1]
        assert above.startswith("# ") or lines[index - 1].startswith("MAX_") and lines[index - 2].startswith("# "), \
            lines[index]
