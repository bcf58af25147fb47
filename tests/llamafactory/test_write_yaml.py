"""The emitted LLaMA-Factory files use only keys LLaMA-Factory 0.9.5 accepts, with values of the
right type and choice, and read back to the very plan they came from.

Key names, types and choices: shared/reference/llamafactory-0.9.5-train-args.json (introspected
from the installed package) when it is beside the checkout, else the catalog generated from it."""

from __future__ import annotations

import json

import pytest
import yaml
from emit_grid import full_grid, optimizer_grid
from paths import SHARED_REFERENCE

from fitplan.solver.errors import InvalidConfigurationError
from fitplan.solver.llamafactory.read_yaml import _type_problem, llamafactory_keys
from fitplan.solver.llamafactory.write_yaml import (
    DS_CONFIG_JSON,
    LAUNCH_SH,
    TRAIN_YAML,
    EmitPlaceholders,
    llamafactory_files,
    yaml_scalar,
)
from fitplan.solver.problem.config import TrainConfig
from fitplan.solver.problem.knobs import Attention, Method, Offload, Optimizer, Precision
from fitplan.solver.specs.catalog import load_model, parse_gpu_set

SHARED_LF_ARGS = SHARED_REFERENCE / "llamafactory-0.9.5-train-args.json"
GRID = full_grid()
P4_GRID = full_grid("qwen2.5-0.5b", "2x4xP4")


def lf_arguments() -> dict:
    if SHARED_LF_ARGS.is_file():
        return json.loads(SHARED_LF_ARGS.read_text())["fields"]
    return llamafactory_keys()


def emitted(model, gpus, config, **placeholders) -> tuple[dict, dict[str, str]]:
    files = llamafactory_files(model, gpus, config, EmitPlaceholders(**placeholders))
    return yaml.safe_load(files[TRAIN_YAML]), files


def test_the_grid_covers_every_choice():
    configs = [c for _, _, c in GRID]
    assert {c.method for c in configs} == set(Method)
    assert {c.zero_stage for c in configs} == {0, 1, 2, 3}
    assert {c.offload for c in configs} == set(Offload)
    assert {c.precision for c in configs} == set(Precision)
    assert {c.attn for c in configs} == set(Attention)
    assert {c.bits for c in configs} == {4, 8, 16}


@pytest.mark.parametrize("plans", [GRID, P4_GRID, optimizer_grid()], ids=["a100", "p4", "optimizers"])
def test_every_emitted_key_is_a_llamafactory_argument_of_the_right_type(plans):
    arguments = lf_arguments()
    for model, gpus, config in plans:
        values, _ = emitted(model, gpus, config)
        unknown = [k for k in values if k not in arguments]
        assert not unknown, (config, unknown)
        problems = [p for k, v in values.items() for p in [_type_problem(k, v, arguments[k])] if p]
        assert not problems, (config, problems)


def test_p4_plans_never_say_bf16():
    assert P4_GRID
    for model, gpus, config in P4_GRID:
        values, files = emitted(model, gpus, config)
        assert values.get("fp16") is True or config.precision == Precision.fp32
        assert "bf16" not in values and "pure_bf16" not in values
        assert values["flash_attn"] in ("sdpa", "disabled")


def test_a_bf16_plan_on_a_p4_is_refused():
    model, gpus = load_model("qwen2.5-0.5b"), parse_gpu_set("1xP4")
    with pytest.raises(InvalidConfigurationError, match="fp16"):
        llamafactory_files(model, gpus, TrainConfig(precision=Precision.bf16), EmitPlaceholders())


def test_each_knob_becomes_the_llamafactory_key_schemas_md_names():
    model, gpus = load_model("qwen2.5-7b"), parse_gpu_set("4xA100-80G")
    qlora = TrainConfig(method=Method.qlora, bits=4, grad_ckpt=False, attn=Attention.fa2, n_gpus=4,
                        micro_batch=3, grad_accum=5, seq_len=4096, lora_rank=32)
    values, files = emitted(model, gpus, qlora)
    assert values["quantization_bit"] == 4 and values["quantization_method"] == "bnb"
    assert values["double_quantization"] is True
    assert values["disable_gradient_checkpointing"] is True
    assert values["flash_attn"] == "fa2" and values["finetuning_type"] == "lora" and values["lora_rank"] == 32
    assert (values["per_device_train_batch_size"], values["gradient_accumulation_steps"], values["cutoff_len"]) == (3, 5, 4096)
    assert "deepspeed" not in values and DS_CONFIG_JSON not in files  # ZeRO 0 = plain DDP
    freeze = TrainConfig(method=Method.freeze, freeze_layers=4, precision=Precision.pure_bf16, zero_stage=2, n_gpus=4)
    values, files = emitted(model, gpus, freeze)
    assert values["freeze_trainable_layers"] == 4 and values["pure_bf16"] is True and "bf16" not in values
    assert values["deepspeed"] == DS_CONFIG_JSON and DS_CONFIG_JSON in files
    values, _ = emitted(model, gpus, TrainConfig(attn=Attention.eager))
    assert values["flash_attn"] == "disabled" and "disable_gradient_checkpointing" not in values


def test_adamw_is_the_fused_optimizer_the_memory_model_assumes():
    # memory/states.py optimizer_step_temporary_bytes counts no step temporaries: true for the fused
    # (in-place) AdamW, not for the foreach `adamw_torch` (trace-notes Q6).
    model, gpus = load_model("qwen2.5-0.5b"), parse_gpu_set("1xA10")
    values, _ = emitted(model, gpus, TrainConfig(optim=Optimizer.adamw))
    assert values["optim"] == "adamw_torch_fused"


def test_floats_read_back_as_floats_under_pyyaml():
    # PyYAML reads `1e-4` as a string (schemas.md A.2); the emitter writes `1.0e-4`.
    for value in (1e-4, 1e-5, 2.5e-7, 0.1, 3.0, 1.8e8):
        assert yaml.safe_load(f"x: {yaml_scalar(value)}")["x"] == pytest.approx(value)
        assert isinstance(yaml.safe_load(f"x: {yaml_scalar(value)}")["x"], float)
    model, gpus = load_model("qwen2.5-0.5b"), parse_gpu_set("1xA10")
    values, files = emitted(model, gpus, TrainConfig())
    assert "learning_rate: 1.0e-4" in files[TRAIN_YAML] and isinstance(values["learning_rate"], float)


def test_placeholders_are_marked_and_settable():
    model, gpus = load_model("llama-3.1-8b"), parse_gpu_set("1xA100-80G")
    values, files = emitted(model, gpus, TrainConfig())
    assert files[TRAIN_YAML].count("PLACEHOLDER") == 4
    assert values["model_name_or_path"] == "meta-llama/Llama-3.1-8B" and values["template"] == "llama3"
    values, files = emitted(model, gpus, TrainConfig(), dataset="my_data", template="llama3",
                            model_path="/models/l8b", output_dir="/ckpt/run1")
    assert "PLACEHOLDER" not in files[TRAIN_YAML]
    assert (values["dataset"], values["model_name_or_path"], values["output_dir"]) == ("my_data", "/models/l8b", "/ckpt/run1")


def test_every_chosen_value_has_a_comment_saying_why():
    model, gpus = load_model("qwen2.5-7b"), parse_gpu_set("4xA100-80G")
    _, files = emitted(model, gpus, TrainConfig(method=Method.qlora, bits=4, zero_stage=2, n_gpus=4, grad_ckpt=False))
    lines = {line.split(":")[0]: line for line in files[TRAIN_YAML].splitlines() if not line.startswith("#")}
    for key in ("quantization_bit", "flash_attn", "disable_gradient_checkpointing", "finetuning_type", "lora_rank",
                "deepspeed", "cutoff_len", "per_device_train_batch_size", "gradient_accumulation_steps", "optim",
                "bf16"):
        assert "  # " in lines[key], key
    custom = llamafactory_files(model, gpus, TrainConfig(), EmitPlaceholders(), reasons={"micro_batch": "fastest that fits"})
    assert "per_device_train_batch_size: 1  # fastest that fits" in custom[TRAIN_YAML]


def test_sections_follow_the_llamafactory_examples():
    model, gpus = load_model("qwen2.5-0.5b"), parse_gpu_set("1xA10")
    _, files = emitted(model, gpus, TrainConfig())
    sections = [line for line in files[TRAIN_YAML].splitlines() if line.startswith("###")]
    assert sections == ["### model", "### method", "### dataset", "### output", "### train"]


def test_single_node_launch_uses_torchrun_and_hides_unused_gpus():
    model, gpus = load_model("qwen2.5-0.5b"), parse_gpu_set("8xA100-80G")
    _, files = emitted(model, gpus, TrainConfig(n_gpus=8, zero_stage=2))
    assert "FORCE_TORCHRUN=1" in files[LAUNCH_SH] and 'llamafactory-cli train "$PLAN_DIR/train.yaml"' in files[LAUNCH_SH]
    assert "CUDA_VISIBLE_DEVICES" not in files[LAUNCH_SH] and "NNODES" not in files[LAUNCH_SH]
    _, files = emitted(model, gpus, TrainConfig(n_gpus=3))
    assert "export CUDA_VISIBLE_DEVICES=0,1,2" in files[LAUNCH_SH] and "NPROC_PER_NODE=3" in files[LAUNCH_SH]


def test_multi_node_launch_sets_the_torchrun_rendezvous_variables():
    model, gpus = load_model("qwen2.5-7b"), parse_gpu_set("2x8xH100")
    _, files = emitted(model, gpus, TrainConfig(method=Method.full, zero_stage=3, n_gpus=16))
    script = files[LAUNCH_SH]
    for needed in ("NNODES=2", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT", "NPROC_PER_NODE=8", "FORCE_TORCHRUN=1"):
        assert needed in script
    assert script.startswith("#!/usr/bin/env bash")


def test_packing_is_emitted_and_a_mean_sample_length_is_a_comment():
    model, gpus = load_model("qwen2.5-0.5b"), parse_gpu_set("1xA10")
    values, _ = emitted(model, gpus, TrainConfig(packing=True))
    assert values["packing"] is True
    values, files = emitted(model, gpus, TrainConfig(mean_sample_len=300))
    assert "packing" not in values and "samples of 300 tokens on average" in files[TRAIN_YAML]


def test_optim_says_what_runs_under_deepspeed_offload():
    # With an `optimizer` block HF ignores `optim` (transformers 5.6 integrations/deepspeed.py: DummyOptim)
    # and DeepSpeed builds DeepSpeedCPUAdam (facts B.1): the file must not claim a fused torch AdamW runs.
    model, gpus = load_model("qwen2.5-7b"), parse_gpu_set("4xA100-80G")
    for offload, stage in ((Offload.optimizer, 2), (Offload.optimizer, 3), (Offload.all, 3)):
        config = TrainConfig(method=Method.full, zero_stage=stage, offload=offload, n_gpus=4)
        values, files = emitted(model, gpus, config)
        ds = json.loads(files[DS_CONFIG_JSON])
        assert ds["optimizer"]["type"] == "AdamW"
        assert values["optim"] == "adamw_torch"
        line = next(line for line in files[TRAIN_YAML].splitlines() if line.startswith("optim:"))
        assert "DeepSpeedCPUAdam" in line and "fused" not in line
    # without the block, HF's optimizer is what runs: the fused one
    values, files = emitted(model, gpus, TrainConfig(method=Method.full, zero_stage=3, n_gpus=4))
    assert "optimizer" not in json.loads(files[DS_CONFIG_JSON]) and values["optim"] == "adamw_torch_fused"


def test_reading_an_offload_plan_back_warns_of_nothing_it_wrote(tmp_path):
    from fitplan.solver.llamafactory.read_yaml import read_llamafactory_config

    model, gpus = load_model("qwen2.5-7b"), parse_gpu_set("4xA100-80G")
    config = TrainConfig(method=Method.full, zero_stage=3, offload=Offload.optimizer, n_gpus=4)
    for name, text in llamafactory_files(model, gpus, config, EmitPlaceholders()).items():
        (tmp_path / name).write_text(text)
    run = read_llamafactory_config(tmp_path / TRAIN_YAML, n_gpus=4)
    assert run.config.optim == Optimizer.adamw and run.config.offload == Offload.optimizer
    assert not [w for w in run.warnings if "adamw_torch" in w], run.warnings
