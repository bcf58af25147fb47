"""The DeepSpeed JSON of a plan: LLaMA-Factory's example structure, only field names DeepSpeed
0.19.8 knows (shared/reference/deepspeed-0.19.8-config-fields.json, or the catalog generated from
it), buckets that match what the memory model counts, and no "auto" in the `--emit deepspeed` form."""

from __future__ import annotations

import json

import pytest
from emit_grid import full_grid
from paths import SHARED_REFERENCE

from fitplan.solver.errors import InvalidConfigurationError
from fitplan.solver.llamafactory.read_yaml import deepspeed_fields
from fitplan.solver.llamafactory.write_deepspeed import deepspeed_config
from fitplan.solver.problem.config import TrainConfig
from fitplan.solver.problem.knobs import Method, Offload, Optimizer, Precision
from fitplan.solver.specs.catalog import load_model, parse_gpu_set

SHARED_DS = SHARED_REFERENCE / "deepspeed-0.19.8-config-fields.json"
DS_PLANS = [p for p in full_grid() + full_grid("qwen2.5-0.5b", "2x4xP4") if p[2].zero_stage > 0]


def block_fields() -> dict[str, set[str]]:
    if SHARED_DS.is_file():
        data = json.loads(SHARED_DS.read_text())
        return {block: set(fields) | {f["python_name"] for f in fields.values()}
                for block, fields in data.items() if block != "_meta"}
    return {block: set(names) for block, names in deepspeed_fields()["blocks"].items()}


def walk_auto(value) -> bool:
    if isinstance(value, dict):
        return any(walk_auto(v) for v in value.values())
    if isinstance(value, list):
        return any(walk_auto(v) for v in value)
    return value == "auto"


@pytest.mark.parametrize("fill_auto", [False, True])
def test_every_field_is_a_deepspeed_field(fill_auto):
    fields = block_fields()
    top_level = set(deepspeed_fields()["top_level"])
    assert DS_PLANS
    for model, gpus, config in DS_PLANS:
        ds = deepspeed_config(config, gpus, fill_auto=fill_auto, model=model)
        assert set(ds) <= top_level, set(ds) - top_level
        zero = ds["zero_optimization"]
        assert set(zero) <= fields["zero_optimization"], set(zero) - fields["zero_optimization"]
        for block in ("offload_optimizer", "offload_param"):
            if block in zero:
                assert set(zero[block]) <= fields[f"zero_optimization.{block}"]
        assert set(ds["fp16"]) <= fields["fp16"] and set(ds["bf16"]) <= fields["bf16"]


def test_the_structure_is_llamafactorys_example_structure():
    model, gpus = load_model("qwen2.5-7b"), parse_gpu_set("4xA100-80G")
    z2 = deepspeed_config(TrainConfig(zero_stage=2, n_gpus=4), gpus, fill_auto=False)
    # examples/deepspeed/ds_z2_config.json (schemas.md A.3), with "auto" buckets (see below)
    assert list(z2) == ["train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps",
                        "gradient_clipping", "zero_allow_untested_optimizer", "fp16", "bf16", "zero_optimization"]
    assert z2["fp16"] == {"enabled": "auto", "loss_scale": 0, "loss_scale_window": 1000, "initial_scale_power": 16,
                          "hysteresis": 2, "min_loss_scale": 1}
    z3 = deepspeed_config(TrainConfig(method=Method.full, zero_stage=3, offload=Offload.all, n_gpus=4), gpus,
                          fill_auto=False)["zero_optimization"]
    assert z3["offload_optimizer"] == z3["offload_param"] == {"device": "cpu", "pin_memory": True}
    assert z3["stage3_gather_16bit_weights_on_model_save"] is True


def test_buckets_are_auto_so_they_match_the_memory_model():
    # memory_states.model_states counts the reduce bucket as hidden_size^2 16-bit elements, which is
    # HF's "auto" (transformers integrations/deepspeed.py trainer_config_finalize).
    model, gpus = load_model("qwen2.5-7b"), parse_gpu_set("4xA100-80G")
    for stage in (1, 2, 3):
        zero = deepspeed_config(TrainConfig(zero_stage=stage, n_gpus=4), gpus, fill_auto=False)["zero_optimization"]
        assert zero["reduce_bucket_size"] == "auto"
    filled = deepspeed_config(TrainConfig(zero_stage=3, n_gpus=4), gpus, fill_auto=True, model=model)
    # schemas.md B.4 worked values for hidden 3584 (LF's ds_z3_fp8_config.json has the same three numbers)
    assert filled["zero_optimization"]["reduce_bucket_size"] == 12845056
    assert filled["zero_optimization"]["stage3_prefetch_bucket_size"] == 11560550
    assert filled["zero_optimization"]["stage3_param_persistence_threshold"] == 35840


def test_the_deepspeed_emit_has_no_auto_and_the_plans_batch_sizes():
    for model, gpus, config in DS_PLANS:
        ds = deepspeed_config(config, gpus, fill_auto=True, model=model)
        assert not walk_auto(ds), ds
        assert ds["train_batch_size"] == ds["train_micro_batch_size_per_gpu"] * ds["gradient_accumulation_steps"] * config.n_gpus
        assert ds["fp16"]["enabled"] == (config.precision == Precision.fp16)
        assert ds["bf16"]["enabled"] == (config.precision == Precision.bf16)
        assert not (ds["fp16"]["enabled"] and ds["bf16"]["enabled"])


def test_offloaded_adamw_gets_deepspeeds_cpu_adam_and_other_optimizers_are_allowed_on_cpu():
    # deepspeed 0.19.8 engine._configure_optimizer raises "You are using ZeRO-Offload with a client
    # provided optimizer" unless the optimizer is DeepSpeed's or zero_force_ds_cpu_optimizer is false.
    model, gpus = load_model("qwen2.5-0.5b"), parse_gpu_set("2xA100-80G")
    adamw = deepspeed_config(TrainConfig(zero_stage=2, offload=Offload.optimizer, n_gpus=2), gpus, fill_auto=False)
    assert adamw["optimizer"]["type"] == "AdamW" and "zero_force_ds_cpu_optimizer" not in adamw
    sgd = deepspeed_config(TrainConfig(zero_stage=2, offload=Offload.optimizer, optim=Optimizer.sgd, n_gpus=2), gpus,
                           fill_auto=False)
    assert sgd["zero_force_ds_cpu_optimizer"] is False and "optimizer" not in sgd
    plain = deepspeed_config(TrainConfig(zero_stage=2, n_gpus=2), gpus, fill_auto=False)
    assert "optimizer" not in plain  # the HF optimizer (adamw_torch_fused) runs on the GPU partition
    # bitsandbytes optimizers cannot be offloaded: TrainConfig itself refuses the combination.
    with pytest.raises(ValueError, match="bitsandbytes"):
        TrainConfig(zero_stage=2, offload=Offload.optimizer, optim=Optimizer.adamw_8bit, n_gpus=2)


def test_zero_stage_0_has_no_deepspeed_config():
    gpus = parse_gpu_set("2xA100-80G")
    with pytest.raises(InvalidConfigurationError, match="no DeepSpeed config"):
        deepspeed_config(TrainConfig(zero_stage=0, n_gpus=2), gpus, fill_auto=False)
