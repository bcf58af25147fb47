"""How fitplan's knob values are spelled in LLaMA-Factory 0.9.5 / HF Trainer files, both ways:
the writers emit the first spelling of each row, the reader accepts every spelling listed.

Sources: LLaMA-Factory 0.9.5 `hparams/model_args.py` (`flash_attn`: auto, disabled, sdpa, fa2,
fa3), transformers 5.6 `training_args.OptimizerNames` (adamw_torch_fused, adamw_torch,
adamw_8bit / adamw_bnb_8bit, paged_adamw_8bit, adafactor, sgd); shared/reference/schemas.md A.1.
"""

from __future__ import annotations

from ..problem.knobs import Attention, FsdpStrategy, Optimizer, Precision

# fitplan value -> (the spelling written, other spellings read as the same value)
HF_OPTIM_SPELLINGS: dict[Optimizer, tuple[str, ...]] = {
    # adamw_torch_fused: the in-place fused step memory/states.py assumes (no foreach temporaries)
    Optimizer.adamw: ("adamw_torch_fused", "adamw_torch"),
    Optimizer.adamw_8bit: ("adamw_8bit", "adamw_bnb_8bit"),
    Optimizer.paged_adamw_8bit: ("paged_adamw_8bit",),
    Optimizer.adafactor: ("adafactor",),
    Optimizer.sgd: ("sgd",),
}
LF_FLASH_ATTN_SPELLINGS: dict[Attention, tuple[str, ...]] = {
    Attention.fa2: ("fa2",),
    Attention.sdpa: ("sdpa",),
    Attention.eager: ("disabled",),
}


# accelerate 1.11 `fsdp_sharding_strategy` names (utils/constants.py:38 FSDP_SHARDING_STRATEGY)
ACCELERATE_SHARDING_STRATEGY_SPELLINGS: dict[FsdpStrategy, tuple[str, ...]] = {
    FsdpStrategy.full_shard: ("FULL_SHARD", "1"),
    FsdpStrategy.shard_grad_op: ("SHARD_GRAD_OP", "2"),
    FsdpStrategy.no_shard: ("NO_SHARD", "3"),
    FsdpStrategy.hybrid_shard: ("HYBRID_SHARD", "4"),
}
# accelerate `mixed_precision` (commands/config/config_args.py); fitplan plans FSDP with these two
ACCELERATE_MIXED_PRECISION_SPELLINGS: dict[Precision, tuple[str, ...]] = {
    Precision.bf16: ("bf16",),
    Precision.fp16: ("fp16",),
}


def _written(table: dict) -> dict:
    return {value: spellings[0] for value, spellings in table.items()}


def _read(table: dict) -> dict:
    return {spelling: value for value, spellings in table.items() for spelling in spellings}


HF_OPTIM = _written(HF_OPTIM_SPELLINGS)  # Optimizer -> `optim:` value written
HF_OPTIM_TO_FITPLAN = _read(HF_OPTIM_SPELLINGS)  # `optim:` value read -> Optimizer
LF_FLASH_ATTN = _written(LF_FLASH_ATTN_SPELLINGS)  # Attention -> `flash_attn:` value written
LF_ATTN_TO_FITPLAN = _read(LF_FLASH_ATTN_SPELLINGS)  # `flash_attn:` value read -> Attention
ACCELERATE_SHARDING_STRATEGY = _written(ACCELERATE_SHARDING_STRATEGY_SPELLINGS)
ACCELERATE_SHARDING_STRATEGY_TO_FITPLAN = _read(ACCELERATE_SHARDING_STRATEGY_SPELLINGS)
ACCELERATE_MIXED_PRECISION = _written(ACCELERATE_MIXED_PRECISION_SPELLINGS)
ACCELERATE_MIXED_PRECISION_TO_FITPLAN = _read(ACCELERATE_MIXED_PRECISION_SPELLINGS)

# The LLaMA-Factory argument that carries each knob (fitplan TrainConfig field -> key).
# `grad_ckpt` is carried inverted (`disable_gradient_checkpointing`), `zero_stage` by the
# `deepspeed:` file it names, precision by one of the flags below.
KNOB_KEY = {
    "method": "finetuning_type",
    "bits": "quantization_bit",
    "lora_rank": "lora_rank",
    "lora_targets": "lora_target",
    "freeze_layers": "freeze_trainable_layers",
    "seq_len": "cutoff_len",
    "micro_batch": "per_device_train_batch_size",
    "grad_accum": "gradient_accumulation_steps",
    "grad_ckpt": "disable_gradient_checkpointing",
    "attn": "flash_attn",
    "zero_stage": "deepspeed",
    "optim": "optim",
    "packing": "packing",
}
PRECISION_FLAGS = ("pure_bf16", "bf16", "fp16")  # the reader checks them in this order
