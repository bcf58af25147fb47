"""How fitplan's knob values are spelled in LLaMA-Factory 0.9.5 / HF Trainer files, both ways:
the writers emit the first spelling of each row, the reader accepts every spelling listed.

Sources: LLaMA-Factory 0.9.5 `hparams/model_args.py` (`flash_attn`: auto, disabled, sdpa, fa2,
fa3), transformers 5.6 `training_args.OptimizerNames` (adamw_torch_fused, adamw_torch,
adamw_8bit / adamw_bnb_8bit, paged_adamw_8bit, adafactor, sgd); shared/reference/schemas.md A.1.
"""

from __future__ import annotations

from ..problem.knobs import Attention, FsdpStrategy, MemoryOptimizer, Optimizer, Precision

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
# `optim:` under a DeepSpeed `optimizer` block (CPU offload): no OptimizerNames value names
# DeepSpeedCPUAdam; accelerate maps the HF optimizer onto it and keys AdamW mode on
# `isinstance(optimizer, torch.optim.AdamW)`, dropping `fused` (accelerate 1.11 utils/deepspeed.py).
HF_OPTIM_UNDER_DEEPSPEED_OPTIMIZER = "adamw_torch"
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
    # the memory levers (issue 16): LLaMA-Factory 0.9.5 hparams/model_args.py, data_args.py,
    # finetuning_args.py
    "liger": "enable_liger_kernel",
    "unsloth_gc": "use_unsloth_gc",
    "reentrant_gc": "use_reentrant_gc",
    "neat_packing": "neat_packing",
    "dora": "use_dora",
    "pissa": "pissa_init",
    "rslora": "use_rslora",
    "loraplus_lr_ratio": "loraplus_lr_ratio",
    "upcast_layernorm": "upcast_layernorm",
    "upcast_lmhead_output": "upcast_lmhead_output",
}
# HF TrainingArguments' own switch for Liger (transformers 5.6 `use_liger_kernel`): the Trainer
# applies the kernels to the model instance; read as `liger` too.
HF_LIGER_KEY = "use_liger_kernel"

# Each memory optimizer: (the key that turns it on, its layer-wise key, its rank key).
MEMORY_OPTIMIZER_KEYS: dict[MemoryOptimizer, tuple[str, str | None, str | None]] = {
    MemoryOptimizer.galore: ("use_galore", "galore_layerwise", "galore_rank"),
    MemoryOptimizer.galore_layerwise: ("use_galore", "galore_layerwise", "galore_rank"),
    MemoryOptimizer.apollo: ("use_apollo", "apollo_layerwise", "apollo_rank"),
    MemoryOptimizer.apollo_layerwise: ("use_apollo", "apollo_layerwise", "apollo_rank"),
    MemoryOptimizer.badam: ("use_badam", None, None),
    MemoryOptimizer.adam_mini: ("use_adam_mini", None, None),
}
# GaLore's and APOLLO's optimizer classes exist only for these HF `optim` spellings
# (LLaMA-Factory train/trainer_utils.py:239-246, 330-333); HF's default adamw_torch_fused is not one.
PROJECTED_OPTIM_SPELLINGS = {"galore": ("adamw_torch", "adamw_bnb_8bit", "adamw_8bit", "paged_adamw_8bit", "adafactor"),
                             "apollo": ("adamw_torch",)}
PRECISION_FLAGS = ("pure_bf16", "bf16", "fp16")  # the reader checks them in this order
