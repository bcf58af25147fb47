"""`fitplan check` prices the memory levers a LLaMA-Factory file turns on (issue 16), and reads back
every lever fitplan emits to the very estimate of the plan it was emitted from."""

from __future__ import annotations

import json

from emit_grid import lever_grid

from fitplan.cli.emit_options import write_emit
from fitplan.cli.main import main
from fitplan.solver.memory.estimate import estimate

# Qwen3-8B LoRA rank 16 on all linears at cutoff 4096, micro batch 1 x accumulation 8, bf16, with
# Liger. Before issue 16 `fitplan check qwen3_lora_liger.yaml --gpus 1xRTX4090 --model qwen3-8b`
# (main at f781796) printed "= required 25.71 GiB ... DOES NOT FIT" and the warning
# "enable_liger_kernel: Liger kernels (fused cross-entropy) use less memory than estimated": it
# priced the 6.96 GiB of fp32 logits the fused loss never makes.
QWEN3_LORA_LIGER = """\
model_name_or_path: Qwen/Qwen3-8B
trust_remote_code: true
enable_liger_kernel: true
stage: sft
do_train: true
finetuning_type: lora
lora_rank: 16
lora_target: all
dataset: identity,alpaca_en_demo
template: qwen3
cutoff_len: 4096
output_dir: saves/qwen3-8b/lora/sft
per_device_train_batch_size: 1
gradient_accumulation_steps: 8
learning_rate: 1.0e-4
num_train_epochs: 3.0
bf16: true
"""


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_liger_file_that_was_called_does_not_fit_is_priced(tmp_path, capsys):
    path = tmp_path / "qwen3_lora_liger.yaml"
    path.write_text(QWEN3_LORA_LIGER)
    code, out, _ = run(capsys, "check", str(path), "--gpus", "1xRTX4090", "--model", "qwen3-8b", "--json")
    payload = json.loads(out)
    assert code == 0 and payload["estimate"]["fits"] and payload["estimate"]["config"]["liger"]
    assert payload["estimate"]["peak_gib_per_gpu"] < 20.5  # was 25.71 GiB: the 6.96 GiB of fp32 logits are gone
    assert not [w for w in payload["warnings"] if "liger" in w]
    without = QWEN3_LORA_LIGER.replace("enable_liger_kernel: true\n", "")
    path.write_text(without)
    code, out, _ = run(capsys, "check", str(path), "--gpus", "1xRTX4090", "--model", "qwen3-8b")
    assert code == 3 and "25.71 GiB" in out and "nearest fit (changes liger)" in out


def test_check_reads_every_emitted_lever_back_to_its_estimate(tmp_path, capsys):
    for index, (model, gpus, config) in enumerate(lever_grid()):
        out = tmp_path / f"plan{index}"
        write_emit(model, gpus, config, emit="llamafactory", out=out)
        code, text, err = run(capsys, "check", str(out / "train.yaml"), "--gpus", gpus.label(), "--n-gpus",
                              str(config.n_gpus), "--json", "--no-nearest")
        payload = json.loads(text)
        expected = estimate(model, gpus, config).to_json_dict()
        got = payload["estimate"]
        for knob in ("lora_rank", "lora_targets", "freeze_layers"):
            got["config"].pop(knob), expected["config"].pop(knob)
        assert got == expected, (config, err, payload["warnings"])
        assert not payload["errors"], payload["errors"]


def test_llamafactorys_galore_optim_pitfall_is_an_error(tmp_path, capsys):
    path = tmp_path / "galore.yaml"
    path.write_text("model_name_or_path: Qwen/Qwen2.5-0.5B\nfinetuning_type: full\nuse_galore: true\n"
                    "galore_layerwise: true\npure_bf16: true\nper_device_train_batch_size: 1\n")
    code, _, err = run(capsys, "check", str(path), "--gpus", "1xA100-80G")
    assert code == 2 and "set optim: adamw_torch" in err


def test_estimate_prints_the_fused_loss_term_by_term(capsys):
    code, out, _ = run(capsys, "estimate", "--model", "qwen2.5-7b", "--gpus", "1xA100-80G", "--seq-len", "4096",
                       "--liger")
    assert code == 0
    assert "logits + loss at the loss (start of backward)  6.96 GiB -> 0.03 GiB" in out
    assert "fused loss: logits chunk 128 x 152064" in out and "ops/fused_linear_cross_entropy.py:99-106" in out
