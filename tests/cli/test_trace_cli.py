"""`fitplan trace`: the traced peak beside the formula's, and one line when torch is missing."""

import json
import sys

import pytest

from fitplan.cli.main import main


def test_trace_without_torch_says_how_to_install_and_exits_2(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)
    code = main(["trace", "--model", "qwen2.5-0.5b"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "pip install 'fitplan[trace]'" in err[0]


@pytest.mark.trace
def test_trace_json_has_both_peaks_and_the_terms(capsys):
    pytest.importorskip("torch", reason="needs the [trace] extra")
    code = main(["trace", "--model", "qwen2.5-0.5b", "--seq-len", "256", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert data["traced_peak_bytes"] > 0 and data["formula_peak_bytes"] > 0
    assert abs(data["relative_error"]) < 0.01
    assert {"weights", "activations", "logits_loss"} <= set(data["terms"])
    assert any("CUDA context" in item for item in data["trace_cannot_see"])


def test_trace_of_an_fsdp_step_compares_the_fsdp_terms(capsys):
    code = main(["trace", "--model", "qwen2.5-0.5b", "--gpus", "2xA100-80G", "--sharding", "fsdp", "--fsdp-version",
                 "2", "--method", "lora", "--seq-len", "64", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["world_size"] == 2
    assert data["terms"]["unsharded_params"]["traced_bytes"] > 0
    assert abs(data["relative_error"]) <= 0.01


def test_an_fsdp_trace_refuses_cpu_offload_in_one_line(capsys):
    code = main(["trace", "--model", "qwen2.5-0.5b", "--gpus", "2xA100-80G", "--sharding", "fsdp", "--offload", "all"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "CPU offload cannot be traced" in err[0]
