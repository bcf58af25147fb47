"""`fitplan check`: an existing LLaMA-Factory file, mapped onto the memory model.

The round trip is the specification: `check` on a file fitplan emitted must give the very
estimate of the plan it was emitted from."""

from __future__ import annotations

import json

import pytest
from emit_grid import full_grid, optimizer_grid

from fitplan.cli.emit_options import write_emit
from fitplan.cli.main import main
from fitplan.solver.memory.estimate import estimate
from fitplan.solver.problem.config import TrainConfig
from fitplan.solver.specs.catalog import load_model, parse_gpu_set


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def emit(tmp_path, model, gpus, config, name="plan"):
    out = tmp_path / name
    write_emit(model, gpus, config, emit="llamafactory", out=out)
    return out / "train.yaml"


def test_check_reproduces_the_estimate_of_every_emitted_plan(tmp_path, capsys):
    plans = full_grid()[::7] + full_grid("qwen2.5-0.5b", "2x4xP4")[::11] + optimizer_grid()
    model, gpus = load_model("qwen2.5-7b"), parse_gpu_set("8xA100-80G")
    plans += [(model, gpus, TrainConfig(n_gpus=8, packing=True)),
              (model, gpus, TrainConfig(n_gpus=8, mean_sample_len=300, micro_batch=4))]
    assert len(plans) > 100
    for index, (model, gpus, config) in enumerate(plans):
        path = emit(tmp_path, model, gpus, config, str(index))
        argv = ["check", str(path), "--gpus", gpus.label(), "--json", "--no-nearest"]
        if config.mean_sample_len:
            argv += ["--mean-sample-len", str(config.mean_sample_len)]
        code, out, err = run(capsys, *argv)
        expected = estimate(model, gpus, config).to_json_dict()
        got = json.loads(out)["estimate"]
        # knobs the method does not use (a LoRA rank under full fine-tuning) are not in the file
        for knob in ("lora_rank", "lora_targets", "freeze_layers"):
            got["config"].pop(knob), expected["config"].pop(knob)
        assert got == expected, (config, err)
        assert code == (0 if expected["fits"] else 3)


def test_a_config_that_fits_exits_0_and_shows_the_breakdown(tmp_path, capsys):
    model, gpus = load_model("qwen2.5-0.5b"), parse_gpu_set("1xA10")
    code, out, _ = run(capsys, "check", str(emit(tmp_path, model, gpus, TrainConfig())), "--gpus", "1xA10")
    assert code == 0 and "FITS" in out and "optimizer states" in out


def test_a_config_that_does_not_fit_says_what_ooms_first_and_the_nearest_fit(tmp_path, capsys):
    model, gpus = load_model("qwen2.5-0.5b"), parse_gpu_set("1xA10")
    config = TrainConfig(micro_batch=8, grad_accum=1, grad_ckpt=False)  # 12 B x 152k vocab x 16k tokens of loss buffers alone exceed 24 GB
    assert not estimate(model, gpus, config).fits
    path = emit(tmp_path, model, gpus, config)
    code, out, _ = run(capsys, "check", str(path), "--gpus", "1xA10")
    assert code == 3 and "DOES NOT FIT" in out
    assert "would run out of memory first" in out and "nearest fit (changes" in out
    code, out, _ = run(capsys, "check", str(path), "--gpus", "1xA10", "--json")
    payload = json.loads(out)
    assert payload["nearest_fit"]["estimate"]["fits"] is True
    nearest = payload["nearest_fit"]["estimate"]["config"]
    # the smallest change keeps what is trained: same method, sequence length and global batch
    assert (nearest["method"], nearest["lora_rank"], nearest["seq_len"]) == ("lora", 8, 2048)
    assert nearest["micro_batch"] * nearest["grad_accum"] == 8
    assert set(payload["nearest_fit"]["changed"]) <= {"liger", "micro_batch", "grad_ckpt", "attn", "zero_stage", "offload"}


def test_a_model_outside_the_catalog_needs_model(tmp_path, capsys):
    path = tmp_path / "train.yaml"
    path.write_text("model_name_or_path: someone/unknown-model\nfinetuning_type: lora\nbf16: true\nper_device_train_batch_size: 1\n")
    code, _, err = run(capsys, "check", str(path), "--gpus", "1xA100-80G")
    assert code == 2 and "--model" in err and err.count("\n") == 1
    code, out, _ = run(capsys, "check", str(path), "--gpus", "1xA100-80G", "--model", "qwen2.5-0.5b")
    assert code == 0


@pytest.mark.parametrize("text, needle", [
    ("a: [1, 2\n", "not valid YAML"),
    ("model_name_or_path: Qwen/Qwen2.5-0.5B\nlora_rank: abc\n", "lora_rank"),
])
def test_bad_files_are_one_line_and_exit_2(tmp_path, capsys, text, needle):
    path = tmp_path / "train.yaml"
    path.write_text(text)
    code, _, err = run(capsys, "check", str(path), "--gpus", "1xA10")
    assert code == 2 and needle in err and err.count("\n") == 1


def test_a_file_llamafactory_would_reject_exits_2_with_only_the_error_line(tmp_path, capsys):
    # issue 18: a file that cannot start gets its one error line on stderr and no estimate on stdout
    path = tmp_path / "train.yaml"
    path.write_text("model_name_or_path: Qwen/Qwen2.5-0.5B\nlora_rnak: 8\nbf16: true\nper_device_train_batch_size: 1\n")
    code, out, err = run(capsys, "check", str(path), "--gpus", "1xA10")
    assert code == 2 and out == "" and "lora_rnak" in err and err.count("\n") == 1


def test_a_missing_file_is_bad_input(tmp_path, capsys):
    code, _, err = run(capsys, "check", str(tmp_path / "nope.yaml"), "--gpus", "1xA10")
    assert code == 2 and "cannot read" in err


def test_bf16_on_a_p4_cannot_run_as_written(tmp_path, capsys):
    path = tmp_path / "train.yaml"
    path.write_text("model_name_or_path: Qwen/Qwen2.5-0.5B\nbf16: true\n")
    code, _, err = run(capsys, "check", str(path), "--gpus", "1xP4")
    assert code == 2 and "bf16" in err


def test_what_ooms_first_names_the_term_the_nearest_fit_moves_not_only_the_largest(tmp_path, capsys):
    # issue 12: a 14B LoRA at micro batch 4 on a 40 GB card; its largest term is the 16-bit base, which no
    # batch change moves; the nearest fit changes one knob (Liger's fused loss, or else a smaller micro
    # batch), which shrinks the logits
    path = tmp_path / "train.yaml"
    path.write_text("model_name_or_path: Qwen/Qwen2.5-14B\nstage: sft\ndo_train: true\nfinetuning_type: lora\n"
                    "lora_target: all\ncutoff_len: 2048\nper_device_train_batch_size: 4\nbf16: true\n")
    assert main(["check", str(path), "--gpus", "1xA100-40G", "--json"]) == 3
    payload = json.loads(capsys.readouterr().out)
    assert "largest term base weights" in payload["oom_first"]
    moved = payload["oom_first"].split("the smallest change that fits")[1]
    assert "logits + loss by" in moved and "base weights" not in moved
    assert len(payload["nearest_fit"]["changed"]) == 1 and payload["nearest_fit"]["changed"][0] in moved
