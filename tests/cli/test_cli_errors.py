"""Bad input gets one clear line on stderr, exit code 2, and never a traceback."""

import json

import pytest

from fitplan.cli.main import main

BASE = ["estimate", "--model", "qwen2.5-7b", "--gpus", "1xA100-80G"]


def _one_line_error(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: ")
    return err


def test_unknown_model_names_near_matches(capsys):
    err = _one_line_error(capsys, ["estimate", "--model", "qwen2.5-7", "--gpus", "1xA100-80G"])
    assert "unknown model" in err and "qwen2.5-7b" in err


def test_unknown_gpu_names_near_matches(capsys):
    err = _one_line_error(capsys, ["estimate", "--model", "qwen2.5-7b", "--gpus", "8xP5"])
    assert "unknown GPU" in err and "P4" in err


@pytest.mark.parametrize("flag,value", [("--seq-len", "0"), ("--seq-len", "-5"), ("--micro-batch", "0"),
                                        ("--lora-rank", "0"), ("--gpus", "0xP4"), ("--bits", "3"),
                                        ("--method", "qlora2"), ("--zero", "4")])
def test_nonsense_numbers_are_rejected(capsys, flag, value):
    argv = list(BASE)
    if flag == "--gpus":
        argv[argv.index("--gpus") + 1] = value
    else:
        argv += [flag, value]
    _one_line_error(capsys, argv)


def test_rank_above_hidden_size_is_rejected(capsys):
    err = _one_line_error(capsys, ["estimate", "--model", "qwen2.5-0.5b", "--gpus", "1xA100-80G",
                                   "--lora-rank", "4096"])
    assert "hidden size" in err


def test_impossible_pins_are_rejected(capsys):
    err = _one_line_error(capsys, BASE + ["--offload", "all", "--zero", "2"])
    assert "ZeRO-3" in err
    err = _one_line_error(capsys, ["estimate", "--model", "qwen2.5-7b", "--gpus", "1xP4", "--precision", "bf16"])
    assert "fp16" in err


def test_broken_config_json_is_one_line(capsys, tmp_path):
    broken = tmp_path / "config.json"
    broken.write_text("{ not json")
    _one_line_error(capsys, ["estimate", "--model", str(broken), "--gpus", "1xA100-80G"])
    unknown = tmp_path / "other" / "config.json"
    unknown.parent.mkdir()
    unknown.write_text(json.dumps({"model_type": "bert", "hidden_size": 768}))
    err = _one_line_error(capsys, ["estimate", "--model", str(unknown), "--gpus", "1xA100-80G"])
    assert "llama" in err  # names the supported types


def test_missing_required_flag_is_one_line(capsys):
    _one_line_error(capsys, ["estimate", "--model", "qwen2.5-7b"])
