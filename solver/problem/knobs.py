"""The knobs of a fine-tuning run and their values: the vocabulary `estimate` evaluates and
`recommend` decides. Names and defaults follow LLaMA-Factory 0.9.5 (shared/reference/schemas.md)."""

from __future__ import annotations

from enum import Enum


class Method(str, Enum):
    full = "full"
    freeze = "freeze"  # LLaMA-Factory finetuning_type=freeze: the last `freeze_layers` layers train
    lora = "lora"
    qlora = "qlora"  # LoRA on a bitsandbytes-quantized base (quantization_bit 4 or 8)


class Attention(str, Enum):
    eager = "eager"  # LLaMA-Factory flash_attn: disabled
    sdpa = "sdpa"
    fa2 = "fa2"


class Offload(str, Enum):
    none = "none"
    optimizer = "optimizer"  # DeepSpeed offload_optimizer (ZeRO 1-3)
    all = "all"  # offload_optimizer + offload_param (ZeRO 3 only)


class Sharding(str, Enum):
    """Which engine shards the model states over the GPUs (docs/fsdp.md)."""

    none = "none"  # plain DDP (llamafactory-cli train under torchrun)
    deepspeed = "deepspeed"  # DeepSpeed ZeRO stage 1-3 (`deepspeed:` in train.yaml)
    fsdp = "fsdp"  # PyTorch FSDP through accelerate (`accelerate launch --config_file fsdp_config.yaml`)


class FsdpStrategy(str, Enum):
    """FSDP's sharding strategies (accelerate 1.11 `FSDP_SHARDING_STRATEGY`, utils/constants.py:38)."""

    full_shard = "full_shard"  # params, grads and optimizer states sharded; params resharded after forward
    shard_grad_op = "shard_grad_op"  # same shards; params stay gathered from forward to their backward
    hybrid_shard = "hybrid_shard"  # FULL_SHARD inside a node, replicated across nodes
    no_shard = "no_shard"  # nothing sharded (DDP-like)


class Optimizer(str, Enum):
    adamw = "adamw"  # torch AdamW (HF adamw_torch_fused / adamw_torch)
    adamw_8bit = "adamw_8bit"  # bitsandbytes 8-bit AdamW
    paged_adamw_8bit = "paged_adamw_8bit"
    adafactor = "adafactor"
    sgd = "sgd"


class Precision(str, Enum):
    bf16 = "bf16"  # AMP: fp32 trainable params, bf16 autocast
    fp16 = "fp16"  # AMP with loss scaling: fp32 trainable params, fp16 autocast
    fp32 = "fp32"
    pure_bf16 = "pure_bf16"  # LLaMA-Factory pure_bf16: bf16 params and optimizer states, no AMP


FSDP_VERSIONS = (1, 2)  # accelerate `fsdp_version`: 1 = FullyShardedDataParallel, 2 = fully_shard
# accelerate 1.11 FullyShardedDataParallelPlugin.fsdp_version defaults to 1, and LLaMA-Factory 0.9.5's
# examples/accelerate/fsdp_config.yaml (the FSDP+QLoRA example's config) sets no fsdp_version.
DEFAULT_FSDP_VERSION = 1

BITS = (16, 8, 4)  # base weight bits: 16-bit, bitsandbytes LLM.int8, NF4
BITSANDBYTES_OPTIMIZERS = (Optimizer.adamw_8bit, Optimizer.paged_adamw_8bit)

LLAMAFACTORY_DEFAULT_LORA_RANK = 8  # FinetuningArguments.lora_rank
LLAMAFACTORY_DEFAULT_FREEZE_LAYERS = 2  # FinetuningArguments.freeze_trainable_layers


class MemoryOptimizer(str, Enum):
    """Full-parameter training at a fraction of AdamW's memory (LLaMA-Factory 0.9.5
    `hparams/finetuning_args.py` GaloreArguments, ApolloArguments, BAdamArgument, `use_adam_mini`;
    optimizers built in `train/trainer_utils.py`). `*_layerwise` steps each parameter as soon as
    its gradient is made (`galore_layerwise` / `apollo_layerwise`), so whole-model gradients never exist."""

    none = "none"
    galore = "galore"
    galore_layerwise = "galore_layerwise"
    apollo = "apollo"
    apollo_layerwise = "apollo_layerwise"
    badam = "badam"  # badam_mode: layer (one decoder layer trains at a time)
    adam_mini = "adam_mini"


PROJECTED_OPTIMIZERS = (MemoryOptimizer.galore, MemoryOptimizer.galore_layerwise, MemoryOptimizer.apollo,
                        MemoryOptimizer.apollo_layerwise)
LAYERWISE_OPTIMIZERS = (MemoryOptimizer.galore_layerwise, MemoryOptimizer.apollo_layerwise)
LLAMAFACTORY_DEFAULT_PROJECTION_RANK = 16  # FinetuningArguments.galore_rank and apollo_rank
