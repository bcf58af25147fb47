"""FSDP plans as files: accelerate's `fsdp_config.yaml` in the key order and layout of
LLaMA-Factory 0.9.5's examples/accelerate/fsdp_config.yaml (fsdp2_config.yaml for FSDP2), a
train.yaml without `deepspeed:`, a launch.sh running `accelerate launch`; and reading them back
(llamafactory/read_accelerate.py) to the same plan. accelerate's own loader and LLaMA-Factory's
parser check them in tests/integration/."""

from __future__ import annotations

import pytest
import yaml
from emit_grid import fsdp_grid

from fitplan.solver.errors import ConfigFileError, InvalidConfigurationError
from fitplan.solver.llamafactory.read_accelerate import (
    accelerate_fsdp_keys,
    fsdp_from_accelerate_mapping,
    fsdp_from_training_args,
)
from fitplan.solver.llamafactory.read_yaml import config_from_mapping
from fitplan.solver.llamafactory.write_accelerate import FSDP_CONFIG_YAML
from fitplan.solver.llamafactory.write_deepspeed import deepspeed_config
from fitplan.solver.llamafactory.write_yaml import (
    DS_CONFIG_JSON,
    LAUNCH_SH,
    TRAIN_YAML,
    EmitPlaceholders,
    llamafactory_files,
)
from fitplan.solver.problem.config import TrainConfig
from fitplan.solver.problem.knobs import FsdpStrategy, Offload, Precision
from fitplan.solver.specs.catalog import load_model, parse_gpu_set

GRID = fsdp_grid()
# LLaMA-Factory v0.9.5 examples/accelerate/fsdp_config.yaml, its keys in order (fsdp_config nested)
EXAMPLE_TOP = ["compute_environment", "debug", "distributed_type", "downcast_bf16", "fsdp_config", "machine_rank",
               "main_training_function", "mixed_precision", "num_machines", "num_processes", "rdzv_backend",
               "same_network", "tpu_env", "tpu_use_cluster", "tpu_use_sudo", "use_cpu"]
EXAMPLE_FSDP1 = ["fsdp_auto_wrap_policy", "fsdp_backward_prefetch", "fsdp_forward_prefetch",
                 "fsdp_cpu_ram_efficient_loading", "fsdp_offload_params", "fsdp_sharding_strategy",
                 "fsdp_state_dict_type", "fsdp_sync_module_states", "fsdp_use_orig_params"]
# examples/accelerate/fsdp2_config.yaml
EXAMPLE_FSDP2 = ["fsdp_auto_wrap_policy", "fsdp_cpu_ram_efficient_loading", "fsdp_offload_params",
                 "fsdp_reshard_after_forward", "fsdp_state_dict_type", "fsdp_version"]


def files_of(model, gpus, config) -> dict[str, str]:
    return llamafactory_files(model, gpus, config, EmitPlaceholders())


@pytest.mark.parametrize("model,gpus,config", GRID[::7])
def test_fsdp_files_have_the_examples_layout_and_read_back_to_the_plan(model, gpus, config):
    files = files_of(model, gpus, config)
    assert set(files) == {TRAIN_YAML, FSDP_CONFIG_YAML, LAUNCH_SH}
    accelerate = yaml.safe_load(files[FSDP_CONFIG_YAML])
    assert list(accelerate) == EXAMPLE_TOP
    assert list(accelerate["fsdp_config"]) == (EXAMPLE_FSDP2 if config.fsdp_version == 2 else EXAMPLE_FSDP1)
    assert set(accelerate) <= set(accelerate_fsdp_keys()["top_level"])
    assert set(accelerate["fsdp_config"]) <= set(accelerate_fsdp_keys()["fsdp_keys"])
    assert accelerate["mixed_precision"] == config.precision.value
    assert (accelerate["num_processes"], accelerate["num_machines"]) == (config.n_gpus, gpus.nodes)
    train = yaml.safe_load(files[TRAIN_YAML])
    assert "deepspeed" not in train
    fsdp = fsdp_from_accelerate_mapping(accelerate, source=FSDP_CONFIG_YAML)
    assert fsdp.errors == [] and fsdp.num_processes == config.n_gpus
    run = config_from_mapping(train, source=TRAIN_YAML, n_gpus=config.n_gpus, fsdp=fsdp)
    assert run.errors == []
    unused = {} if config.uses_lora else {"lora_rank": run.config.lora_rank}  # not written for full/freeze
    if config.method.value != "freeze":
        unused["freeze_layers"] = run.config.freeze_layers
    assert run.config == config.model_copy(update=unused)


def test_p4_plans_run_fsdp_in_fp16():
    model, gpus = load_model("qwen2.5-7b"), parse_gpu_set("8xP4")
    config = TrainConfig(method="qlora", bits=4, precision=Precision.fp16, fsdp_strategy=FsdpStrategy.full_shard,
                         n_gpus=8, seq_len=1024)
    files = files_of(model, gpus, config)
    assert yaml.safe_load(files[FSDP_CONFIG_YAML])["mixed_precision"] == "fp16"
    assert yaml.safe_load(files[TRAIN_YAML])["fp16"] is True
    assert "# FSDP: sharding" in files[TRAIN_YAML]


def test_the_launch_runs_llamafactory_under_accelerate_on_every_node():
    model, gpus = load_model("qwen2.5-0.5b"), parse_gpu_set("2x4xP4")
    config = TrainConfig(fsdp_strategy=FsdpStrategy.hybrid_shard, precision=Precision.fp16, n_gpus=8)
    launch = files_of(model, gpus, config)[LAUNCH_SH]
    assert ("accelerate launch --config_file \"$PLAN_DIR/fsdp_config.yaml\" --machine_rank \"$NODE_RANK\" "
            "--main_process_ip \"$MASTER_ADDR\" --main_process_port \"$MASTER_PORT\" -m llamafactory.launcher "
            "\"$PLAN_DIR/train.yaml\" \"$@\"") in launch
    assert "NCCL_SOCKET_IFNAME" in launch and "expandable_segments:True" in launch and 'cd "$(dirname "$0")"' not in launch
    assert "llamafactory-cli" not in launch.split("\n")[-2]
    single = files_of(model, parse_gpu_set("4xA100-80G"), TrainConfig(fsdp_strategy=FsdpStrategy.full_shard,
                                                                       n_gpus=2))[LAUNCH_SH]
    assert "export CUDA_VISIBLE_DEVICES=0,1" in single and "--machine_rank" not in single


def test_an_fsdp_plan_has_no_deepspeed_config():
    config = TrainConfig(fsdp_strategy=FsdpStrategy.full_shard, n_gpus=4)
    with pytest.raises(InvalidConfigurationError, match="shards with FSDP, not DeepSpeed"):
        deepspeed_config(config, parse_gpu_set("4xA100-80G"), fill_auto=False)
    assert DS_CONFIG_JSON not in files_of(load_model("qwen2.5-0.5b"), parse_gpu_set("4xA100-80G"), config)


def _example(**fsdp_config) -> dict:
    base = {"compute_environment": "LOCAL_MACHINE", "debug": False, "distributed_type": "FSDP", "downcast_bf16": "no",
            "fsdp_config": {"fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP", "fsdp_backward_prefetch": "BACKWARD_PRE",
                            "fsdp_forward_prefetch": False, "fsdp_cpu_ram_efficient_loading": True,
                            "fsdp_offload_params": False, "fsdp_sharding_strategy": "FULL_SHARD",
                            "fsdp_state_dict_type": "FULL_STATE_DICT", "fsdp_sync_module_states": True,
                            "fsdp_use_orig_params": True},
            "machine_rank": 0, "main_training_function": "main", "mixed_precision": "bf16", "num_machines": 1,
            "num_processes": 2, "rdzv_backend": "static", "same_network": True, "tpu_env": [],
            "tpu_use_cluster": False, "tpu_use_sudo": False, "use_cpu": False}
    base["fsdp_config"].update(fsdp_config)
    return base


def test_llamafactorys_example_configs_read_as_documented():
    run = fsdp_from_accelerate_mapping(_example(), source="fsdp_config.yaml")
    assert (run.strategy, run.version, run.offload, run.num_processes) == (FsdpStrategy.full_shard, 1, Offload.none, 2)
    offload = fsdp_from_accelerate_mapping(_example(fsdp_offload_params=True), source="fsdp_config_offload.yaml")
    assert offload.offload == Offload.all


def test_a_typo_inside_fsdp_config_is_an_error_although_accelerates_loader_passes_it():
    run = fsdp_from_accelerate_mapping(_example(fsdp_offload_param=True), source="x.yaml")
    assert any("fsdp_offload_param is not an FSDP setting" in e for e in run.errors)


@pytest.mark.parametrize("change,words", [
    ({"num_gpus": 2}, "unknown keys"),
    ({"distributed_type": "DEEPSPEED"}, "fitplan reads DeepSpeed runs from train.yaml"),
    ({"fsdp_config": {"fsdp_auto_wrap_policy": "NO_WRAP"}}, "NO_WRAP"),
    ({"fsdp_config": {"fsdp_sharding_strategy": "HYBRID_SHARD_ZERO2"}}, "HYBRID_SHARD_ZERO2"),
])
def test_configs_accelerate_refuses_or_fitplan_cannot_model_are_one_line_errors(change, words):
    raw = _example()
    if "fsdp_config" in change:
        raw["fsdp_config"].update(change["fsdp_config"])
    else:
        raw.update(change)
    with pytest.raises(ConfigFileError, match=words):
        fsdp_from_accelerate_mapping(raw, source="x.yaml")


@pytest.mark.parametrize("fsdp_config,words", [
    ({"fsdp_cpu_ram_efficient_loading": True, "fsdp_sync_module_states": False}, "set `--fsdp_sync_module_states`"),
    ({"fsdp_sharding_strategy": "QUARTER_SHARD"}, "is not one of"),
])
def test_what_accelerate_launch_raises_on_is_an_error(fsdp_config, words):
    run = fsdp_from_accelerate_mapping(_example(**fsdp_config), source="x.yaml")
    assert any(words in e for e in run.errors)


def test_forward_prefetch_is_ignored_under_fsdp2_as_accelerate_ignores_it():
    run = fsdp_from_accelerate_mapping(_example(fsdp_version=2, fsdp_forward_prefetch=True), source="x.yaml")
    assert run.errors == [] and any("ignored under fsdp_version 2" in w for w in run.warnings)


def test_a_multi_gpu_config_is_plain_ddp():
    raw = _example()
    raw["distributed_type"] = "MULTI_GPU"
    assert fsdp_from_accelerate_mapping(raw, source="x.yaml") is None


def test_hf_trainers_own_fsdp_keys_in_the_training_yaml_are_read():
    run = fsdp_from_training_args({"fsdp": "shard_grad_op auto_wrap offload", "fsdp_config": {"version": 1}},
                                  source="train.yaml")
    assert (run.strategy, run.offload, run.version) == (FsdpStrategy.shard_grad_op, Offload.all, 1)
    raw = {"fsdp": ["full_shard", "auto_wrap"], "fsdp_config": {"version": 2, "reshard_after_forward": False}}
    v2 = fsdp_from_training_args(raw, source="train.yaml")
    assert (v2.strategy, v2.version) == (FsdpStrategy.shard_grad_op, 2)
    assert fsdp_from_training_args({}, source="train.yaml") is None
    with pytest.raises(ConfigFileError, match="auto_wrap"):
        fsdp_from_training_args({"fsdp": "full_shard"}, source="train.yaml")
