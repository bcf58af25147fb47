"""Reading existing LLaMA-Factory files: what LF rejects is an error, what it accepts but fitplan
does not model is a warning, malformed files are one line. Example files are LLaMA-Factory's own
(examples/train_lora/qwen3_lora_sft.yaml, train_full/qwen3_full_sft.yaml, deepspeed/ds_z*_config.json
at v0.9.5, as recorded in shared/reference/schemas.md A.3)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from emit_grid import full_grid

from fitplan.solver.errors import ConfigFileError
from fitplan.solver.llamafactory.read_yaml import read_llamafactory_config
from fitplan.solver.llamafactory.write_yaml import EmitPlaceholders, llamafactory_files
from fitplan.solver.problem.knobs import Attention, Method, Offload, Precision

LF_QWEN3_LORA_SFT = """\
### model
model_name_or_path: Qwen/Qwen3-4B-Instruct-2507
trust_remote_code: true
### method
stage: sft
do_train: true
finetuning_type: lora
lora_rank: 8
lora_target: all
### dataset
dataset: identity,alpaca_en_demo
template: qwen3_nothink
cutoff_len: 2048
max_samples: 1000
preprocessing_num_workers: 16
dataloader_num_workers: 4
### output
output_dir: saves/qwen3-4b/lora/sft
logging_steps: 10
save_steps: 500
plot_loss: true
overwrite_output_dir: true
save_only_model: false
report_to: none  # choices: [none, wandb, tensorboard, swanlab, mlflow]
### train
per_device_train_batch_size: 1
gradient_accumulation_steps: 8
learning_rate: 1.0e-4
num_train_epochs: 3.0
lr_scheduler_type: cosine
warmup_ratio: 0.1
bf16: true
ddp_timeout: 180000000
resume_from_checkpoint: null
"""
LF_DS_Z2 = {"train_batch_size": "auto", "train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": "auto",
            "gradient_clipping": "auto", "zero_allow_untested_optimizer": True,
            "fp16": {"enabled": "auto", "loss_scale": 0, "loss_scale_window": 1000, "initial_scale_power": 16,
                     "hysteresis": 2, "min_loss_scale": 1},
            "bf16": {"enabled": "auto"},
            "zero_optimization": {"stage": 2, "allgather_partitions": True, "allgather_bucket_size": 5e8,
                                  "overlap_comm": False, "reduce_scatter": True, "reduce_bucket_size": 5e8,
                                  "contiguous_gradients": True, "round_robin_gradients": True}}
LF_DS_Z3_OFFLOAD_ZERO = {"stage": 3, "offload_optimizer": {"device": "cpu", "pin_memory": True},
                         "offload_param": {"device": "cpu", "pin_memory": True}, "overlap_comm": False,
                         "contiguous_gradients": True, "sub_group_size": 1e9, "reduce_bucket_size": "auto",
                         "stage3_prefetch_bucket_size": "auto", "stage3_param_persistence_threshold": "auto",
                         "stage3_max_live_parameters": 1e9, "stage3_max_reuse_distance": 1e9,
                         "stage3_gather_16bit_weights_on_model_save": True}


def write(tmp_path: Path, text: str, name: str = "train.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_llamafactorys_lora_example_reads_as_its_plan(tmp_path):
    run = read_llamafactory_config(write(tmp_path, LF_QWEN3_LORA_SFT), n_gpus=2)
    c = run.config
    assert run.model_name_or_path == "Qwen/Qwen3-4B-Instruct-2507"
    assert (c.method, c.lora_rank, c.lora_targets, c.seq_len, c.micro_batch, c.grad_accum) == (
        Method.lora, 8, ("all",), 2048, 1, 8)
    assert (c.precision, c.attn, c.grad_ckpt, c.zero_stage, c.n_gpus) == (Precision.bf16, Attention.sdpa, True, 0, 2)
    assert run.errors == [] and run.warnings == []


def test_llamafactorys_full_example_with_each_deepspeed_file(tmp_path):
    text = LF_QWEN3_LORA_SFT.replace("finetuning_type: lora", "finetuning_type: full\ndeepspeed: ds.json")
    (tmp_path / "ds.json").write_text(json.dumps(LF_DS_Z2))
    run = read_llamafactory_config(write(tmp_path, text), n_gpus=4)
    assert (run.config.method, run.config.zero_stage, run.config.offload) == (Method.full, 2, Offload.none)
    assert run.errors == []
    assert any("reduce_bucket_size=500000000.0" in w for w in run.warnings)  # LF's 5e8 is bigger than "auto"
    (tmp_path / "ds.json").write_text(json.dumps({**LF_DS_Z2, "zero_optimization": LF_DS_Z3_OFFLOAD_ZERO}))
    run = read_llamafactory_config(write(tmp_path, text), n_gpus=4)
    assert (run.config.zero_stage, run.config.offload) == (3, Offload.all) and run.errors == [] and run.warnings == []


def test_the_deepspeed_path_is_found_relative_to_the_yaml(tmp_path, monkeypatch):
    sub = tmp_path / "cfg"
    sub.mkdir()
    (sub / "ds.json").write_text(json.dumps(LF_DS_Z2))
    path = write(sub, LF_QWEN3_LORA_SFT + "deepspeed: ds.json\n")
    monkeypatch.chdir(tmp_path)
    assert read_llamafactory_config(path, n_gpus=2).config.zero_stage == 2
    path = write(sub, LF_QWEN3_LORA_SFT + "deepspeed: missing.json\n")
    with pytest.raises(ConfigFileError, match="missing.json.*not found"):
        read_llamafactory_config(path, n_gpus=2)


def test_unknown_keys_are_errors_not_ignored(tmp_path):
    run = read_llamafactory_config(write(tmp_path, LF_QWEN3_LORA_SFT + "lora_rnak: 8\n"), n_gpus=1)
    assert any("lora_rnak" in e for e in run.errors)


@pytest.mark.parametrize("line, message", [
    ("lora_rank: abc", "must be an integer"),
    ("flash_attn: flash_attention_2", "is not one of auto, disabled, sdpa, fa2, fa3"),
    ("per_device_train_batch_size: '2'", "must be an integer"),
])
def test_type_and_choice_errors_in_planned_keys_stop_the_read(tmp_path, line, message):
    # LLaMA-Factory's YAML path accepts all of these (schemas.md A.2 layer 1) and fails later.
    with pytest.raises(ConfigFileError, match=message):
        read_llamafactory_config(write(tmp_path, LF_QWEN3_LORA_SFT + line + "\n"), n_gpus=1)


def test_other_type_errors_are_reported(tmp_path):
    text = LF_QWEN3_LORA_SFT.replace("learning_rate: 1.0e-4", "learning_rate: '1e-4'") + "stage: grpo\n"
    text = text.replace("stage: sft\n", "")
    run = read_llamafactory_config(write(tmp_path, text), n_gpus=1)
    assert any("learning_rate" in e for e in run.errors) and any("grpo" in e for e in run.errors)


def test_an_unquoted_1e_minus_4_is_a_float_as_llamafactory_reads_it(tmp_path):
    # llamafactory-cli reads the YAML with OmegaConf, which reads 1e-4 as 0.0001 (schemas.md A.2).
    text = LF_QWEN3_LORA_SFT.replace("learning_rate: 1.0e-4", "learning_rate: 1e-4")
    assert read_llamafactory_config(write(tmp_path, text), n_gpus=1).errors == []


def test_unsupported_features_are_warnings(tmp_path):
    text = LF_QWEN3_LORA_SFT + "use_unsloth: true\nuse_muon: true\nlora_dropout: 0.05\n"
    warnings = read_llamafactory_config(write(tmp_path, text), n_gpus=1).warnings
    assert any("use_unsloth" in w for w in warnings)
    assert any("use_muon" in w for w in warnings)
    assert any("lora_dropout" in w for w in warnings)


def test_the_memory_levers_are_read_not_warned_about(tmp_path):
    text = LF_QWEN3_LORA_SFT + "enable_liger_kernel: true\nuse_unsloth_gc: true\nuse_dora: true\nuse_rslora: true\n"
    run = read_llamafactory_config(write(tmp_path, text), n_gpus=1)
    assert (run.config.liger, run.config.unsloth_gc, run.config.dora, run.config.rslora) == (True, True, True, True)
    assert not [w for w in run.warnings if any(k in w for k in ("liger", "unsloth_gc", "dora", "rslora"))]


def test_deepspeed_typos_and_batch_mismatches_are_errors(tmp_path):
    bad = json.loads(json.dumps(LF_DS_Z2))
    bad["zero_optimization"]["overlap_com"] = False
    bad["gradient_accumulation_steps"] = 4
    (tmp_path / "ds.json").write_text(json.dumps(bad))
    run = read_llamafactory_config(write(tmp_path, LF_QWEN3_LORA_SFT + "deepspeed: ds.json\n"), n_gpus=2)
    assert any("overlap_com" in e for e in run.errors)
    assert any("gradient_accumulation_steps=4 mismatches" in e for e in run.errors)


@pytest.mark.parametrize("text", ["a: [1, 2\n", "- just\n- a list\n", "key: value\n  bad indent: 1\n"])
def test_malformed_yaml_is_one_line(tmp_path, text):
    with pytest.raises(ConfigFileError) as info:
        read_llamafactory_config(write(tmp_path, text), n_gpus=1)
    assert "\n" not in str(info.value)


def test_malformed_json_is_one_line(tmp_path):
    (tmp_path / "ds.json").write_text('{"zero_optimization": {"stage": 2,}}')
    with pytest.raises(ConfigFileError, match="not valid JSON") as info:
        read_llamafactory_config(write(tmp_path, LF_QWEN3_LORA_SFT + "deepspeed: ds.json\n"), n_gpus=1)
    assert "\n" not in str(info.value)


def test_quantization_with_full_is_rejected_as_llamafactory_does(tmp_path):
    text = LF_QWEN3_LORA_SFT.replace("finetuning_type: lora", "finetuning_type: full") + "quantization_bit: 4\n"
    with pytest.raises(ConfigFileError, match="Quantization is only compatible"):
        read_llamafactory_config(write(tmp_path, text), n_gpus=1)


def test_every_emitted_plan_reads_back_to_the_same_plan(tmp_path):
    for index, (model, gpus, config) in enumerate(full_grid()):
        directory = tmp_path / str(index)
        directory.mkdir()
        for name, content in llamafactory_files(model, gpus, config, EmitPlaceholders()).items():
            (directory / name).write_text(content)
        run = read_llamafactory_config(directory / "train.yaml", n_gpus=config.n_gpus, model_type=model.model_type)
        assert run.errors == [] and run.warnings == (
            ["neither bf16 nor fp16: estimated in fp32 (LLaMA-Factory may load the checkpoint's 16-bit dtype "
             "instead, which needs less)"] if config.precision == Precision.fp32 else [])
        expected = config.model_copy(update={
            "lora_rank": config.lora_rank if config.uses_lora else run.config.lora_rank,
            "lora_targets": config.lora_targets if config.uses_lora else run.config.lora_targets,
            "freeze_layers": config.freeze_layers if config.method == Method.freeze else run.config.freeze_layers})
        assert run.config == expected
