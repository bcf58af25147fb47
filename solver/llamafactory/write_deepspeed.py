"""The DeepSpeed JSON of a plan, in the structure of LLaMA-Factory's
`examples/deepspeed/ds_z{0,2,3}[_offload]_config.json` (shared/reference/schemas.md A.3).

Two forms:
- `fill_auto=False`, for LLaMA-Factory / the HF Trainer: batch sizes, clipping, precision and
  bucket sizes are `"auto"`, which the HF integration fills from the training arguments and the
  model's hidden size (schemas.md B.4). A value that is not "auto" and disagrees with the YAML is
  an error there, so "auto" is the safe choice.
- `fill_auto=True`, for other trainers (`--emit deepspeed`): every "auto" replaced by the value
  HF would have put there, so plain `deepspeed.initialize` sees the same numbers.

Buckets: fitplan's memory model (`memory/states.model_states`) counts the ZeRO reduce bucket as
`hidden_size**2` elements, which is what HF's "auto" gives. LLaMA-Factory's stage 0/2 examples
write 5e8 instead (1 GB in 16-bit); we write "auto" so the emitted file and the estimate agree.

Offload: DeepSpeed refuses a client (HF-created) optimizer under ZeRO-Offload unless
`zero_force_ds_cpu_optimizer` is false (deepspeed 0.19.8 `runtime/engine.py`
`_configure_optimizer`: "You are using ZeRO-Offload with a client provided optimizer ..."). For
AdamW we therefore declare an `optimizer` block, which makes DeepSpeed build its CPU Adam
(the optimizer the memory model assumes for offload); its hyper-parameters stay "auto" so HF fills
them from the YAML (B.4). SGD and Adafactor have no DeepSpeed CPU kernel: they run as torch
optimizers on the CPU copy, which needs `zero_force_ds_cpu_optimizer: false`.
"""

from __future__ import annotations

from ..errors import InvalidConfigurationError
from ..problem.config import TrainConfig
from ..problem.knobs import Offload, Optimizer, Precision
from ..specs.gpu import GpuSet
from ..specs.model import ModelSpec

AUTO = "auto"

# LLaMA-Factory's examples/deepspeed/*.json fp16 block: dynamic loss scale starting at 2^16.
FP16_BLOCK = {"enabled": AUTO, "loss_scale": 0, "loss_scale_window": 1000, "initial_scale_power": 16,
              "hysteresis": 2, "min_loss_scale": 1}

# HF `TrainingArguments` defaults that the "auto"s resolve to (transformers 5.6.0, B.4).
HF_MAX_GRAD_NORM = 1.0
HF_ADAM_BETAS = [0.9, 0.999]
HF_ADAM_EPSILON = 1e-08
HF_WEIGHT_DECAY = 0.0

# LLaMA-Factory's ds_z0/ds_z2 value (5e8, written as an int). HF has no "auto" for it; stage 1/2
# all-gather the updated 16-bit partitions in place, so it allocates no buffer the model would miss.
ALLGATHER_BUCKET_SIZE = 500_000_000

# The ZeRO-3 values of LLaMA-Factory's ds_z3_config.json that are not "auto".
STAGE3_SUB_GROUP_SIZE = 1_000_000_000
STAGE3_MAX_LIVE_PARAMETERS = 1_000_000_000
STAGE3_MAX_REUSE_DISTANCE = 1_000_000_000


def _offload_block() -> dict:
    return {"device": "cpu", "pin_memory": True}


def zero_block(config: TrainConfig) -> dict:
    """`zero_optimization` for stage 1/2 (LF ds_z2 layout) or 3 (LF ds_z3 layout)."""
    stage = config.zero_stage
    if stage in (1, 2):
        block: dict = {"stage": stage}
        if config.offload != Offload.none:
            block["offload_optimizer"] = _offload_block()
        block.update({"allgather_partitions": True, "allgather_bucket_size": ALLGATHER_BUCKET_SIZE,
                      "overlap_comm": False,
                      "reduce_scatter": True, "reduce_bucket_size": AUTO, "contiguous_gradients": True,
                      "round_robin_gradients": True})
        return block
    block = {"stage": 3}
    if config.offload != Offload.none:
        block["offload_optimizer"] = _offload_block()
    if config.offload == Offload.all:
        block["offload_param"] = _offload_block()
    block.update({"overlap_comm": False, "contiguous_gradients": True, "sub_group_size": STAGE3_SUB_GROUP_SIZE,
                  "reduce_bucket_size": AUTO, "stage3_prefetch_bucket_size": AUTO,
                  "stage3_param_persistence_threshold": AUTO,
                  "stage3_max_live_parameters": STAGE3_MAX_LIVE_PARAMETERS,
                  "stage3_max_reuse_distance": STAGE3_MAX_REUSE_DISTANCE,
                  "stage3_gather_16bit_weights_on_model_save": True})
    return block


def _optimizer_for_offload(config: TrainConfig) -> tuple[dict | None, bool | None]:
    """(DeepSpeed `optimizer` block, `zero_force_ds_cpu_optimizer`) for an offloaded optimizer."""
    if config.offload == Offload.none:
        return None, None
    if config.optim == Optimizer.adamw:
        params = {"lr": AUTO, "betas": AUTO, "eps": AUTO, "weight_decay": AUTO}
        return {"type": "AdamW", "params": params}, None
    # SGD and Adafactor (bitsandbytes optimizers with offload are refused by problem/rules.py)
    return None, False


def builds_its_optimizer(config: TrainConfig) -> bool:
    """Whether the JSON declares an `optimizer` block, so DeepSpeed (not HF's `optim`) builds the
    optimizer that runs."""
    return bool(config.zero_stage) and _optimizer_for_offload(config)[0] is not None


def deepspeed_config(config: TrainConfig, gpus: GpuSet, *, fill_auto: bool, model: ModelSpec | None = None) -> dict:
    """The DeepSpeed JSON (as a dict) for a plan with ZeRO stage 1-3.

    `fill_auto=True` needs `model` for the hidden-size buckets. `gpus` is accepted so callers pass
    the plan's whole context; the world size comes from `config.n_gpus`."""
    del gpus  # the plan's n_gpus is the world size
    if config.fsdp_strategy is not None:
        raise InvalidConfigurationError(
            "this plan shards with FSDP, not DeepSpeed, so it has no DeepSpeed config: use --emit llamafactory "
            "(it writes fsdp_config.yaml), or pin --sharding deepspeed")
    if config.zero_stage == 0:
        raise InvalidConfigurationError(
            "this plan uses no ZeRO (plain DDP), so it has no DeepSpeed config: pin --zero 1, 2 or 3, "
            "or use --emit llamafactory"
        )
    optimizer, force_ds_cpu = _optimizer_for_offload(config)
    ds: dict = {"train_batch_size": AUTO, "train_micro_batch_size_per_gpu": AUTO,
                "gradient_accumulation_steps": AUTO, "gradient_clipping": AUTO,
                "zero_allow_untested_optimizer": True}
    if force_ds_cpu is not None:
        ds["zero_force_ds_cpu_optimizer"] = force_ds_cpu
    if optimizer is not None:
        ds["optimizer"] = optimizer
    ds["fp16"] = dict(FP16_BLOCK)
    ds["bf16"] = {"enabled": AUTO}
    ds["zero_optimization"] = zero_block(config)
    if fill_auto:
        if model is None:
            raise ValueError("fill_auto=True needs the model for the hidden-size buckets")
        ds = fill_auto_values(ds, config, hidden_size=model.hidden_size)
    return ds


def fill_auto_values(ds: dict, config: TrainConfig, *, hidden_size: int, learning_rate: float = 1e-4) -> dict:
    """Replace every "auto" the way the HF Trainer integration does (schemas.md B.4), for this plan."""
    filled = {k: (dict(v) if isinstance(v, dict) else v) for k, v in ds.items()}
    batch = {"train_micro_batch_size_per_gpu": config.micro_batch,
             "gradient_accumulation_steps": config.grad_accum,
             "train_batch_size": config.global_batch,
             "gradient_clipping": HF_MAX_GRAD_NORM}
    for key, value in batch.items():
        if filled.get(key) == AUTO:
            filled[key] = value
    if "fp16" in filled and filled["fp16"].get("enabled") == AUTO:
        filled["fp16"]["enabled"] = config.precision == Precision.fp16
    if "bf16" in filled and filled["bf16"].get("enabled") == AUTO:
        # pure_bf16 is not HF's `bf16` flag: HF leaves DeepSpeed's bf16 off and the module is bf16 already.
        filled["bf16"]["enabled"] = config.precision == Precision.bf16
    zero = dict(filled.get("zero_optimization", {}))
    square = hidden_size * hidden_size
    zero_auto = {"reduce_bucket_size": square,
                 "stage3_prefetch_bucket_size": int(0.9 * square),
                 "stage3_param_persistence_threshold": 10 * hidden_size}
    for key, value in zero_auto.items():
        if zero.get(key) == AUTO:
            zero[key] = value
    filled["zero_optimization"] = zero
    if "optimizer" in filled:
        params = dict(filled["optimizer"].get("params", {}))
        hf_values = {"lr": learning_rate, "betas": HF_ADAM_BETAS, "eps": HF_ADAM_EPSILON,
                     "weight_decay": HF_WEIGHT_DECAY}
        for key, value in hf_values.items():
            if params.get(key) == AUTO:
                params[key] = value
        filled["optimizer"] = {**filled["optimizer"], "params": params}
    return filled
