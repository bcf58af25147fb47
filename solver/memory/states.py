"""Model states per GPU: base weights, trainable parameters, gradients, optimizer states, the
ZeRO sharding and CPU offload of each, communication buffers, and the host RAM offload needs.

Sources
- ZeRO: Rajbhandari et al., "ZeRO: Memory Optimizations Toward Training Trillion Parameter
  Models" (SC'20), section 3.1: mixed-precision Adam keeps 2+2+12 = 16 bytes per parameter
  (16-bit params, 16-bit grads, fp32 master + momentum + variance); stage 1 shards the 12, stage 2
  also the grads, stage 3 also the params.
- DeepSpeed's own estimators, `estimate_zero2_model_states_mem_needs` (runtime/zero/stage_1_and_2.py)
  and `estimate_zero3_model_states_mem_needs` (runtime/zero/stage3.py): GPU 4P + 16P/n (stage 1/2),
  2P with optimizer offload; stage 3 4*largest_layer + 18P/n, + 2P/n with optimizer offload,
  largest layer only with parameter offload; host RAM with offload P*max(4*gpus, 16 or 18)*1.5.
- LLaMA-Factory 0.9.5 `model/adapter.py` (shared/reference/schemas.md A.2, "Precision
  behaviour"): trainable parameters are upcast to fp32 unless pure_bf16, or ZeRO-3 without
  quantization. The DeepSpeed engine casts the module to bf16/fp16 and keeps the fp32 master copy
  inside its optimizer.
- bitsandbytes: `Int8Params` keep int8 weights plus one fp32 scale per output row; `Params4bit`
  (NF4) keep 4-bit weights plus one absmax per block of 64, itself quantized to 8 bits per block
  with one fp32 absmax per 256 blocks under double quantization (QLoRA paper, Dettmers et al.
  2023, section 3: 0.127 bits/param of constants with, 0.5 without). Embeddings, norms and the
  lm_head are not quantized (transformers' bnb integration skips lm_head; embeddings and norms
  are not nn.Linear).
- PyTorch DDP: without `gradient_as_bucket_view` the reducer's buckets hold a second copy of all
  gradients ("the saved memory size will be equal to the total gradients size", DDP docs).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..problem.config import TrainConfig
from ..problem.knobs import BITSANDBYTES_OPTIMIZERS, MemoryOptimizer, Method, Offload, Optimizer, Precision
from ..specs.model import ModelSpec
from ..specs.layers import RouterScoring
from ..units import FP32_BYTES, HALF_BYTES
from . import optimizers
from .params import frozen_params, largest_layer_params, trainable_params
from .prequantized import prequantized_base_bytes, quantized_in_training
from .terms import Term

NF4_BLOCK = 64  # bitsandbytes 4-bit blocksize used by transformers' BitsAndBytesConfig
NF4_DOUBLE_QUANT_BLOCK = 256  # second-level blocks of absmax constants
BNB_OPTIM_BLOCK = 256  # bitsandbytes 8-bit optimizers: blockwise quantization, 256 values a block
DEEPSPEED_HOST_BUFFER_FACTOR = 1.5  # `additional_buffer_factor` of DeepSpeed's estimators


def zero3_gathered_bytes(model: ModelSpec, config: TrainConfig) -> float:
    """ZeRO-3 gathers one module's 16-bit parameters at a time, and a trainable one also its
    16-bit gradients: DeepSpeed's estimator takes 4 bytes x the largest layer for full
    fine-tuning. Frozen modules (the embeddings and base layers under LoRA/freeze) have no
    gradients, so they gather at 2 bytes per parameter."""
    embeddings = max(model.embedding_params(), model.lm_head_params())
    layer = largest_layer_params(model) if model.is_moe else model.layer_params()
    if config.method == Method.full:
        return 2 * HALF_BYTES * max(layer, embeddings)
    layer_bytes = 2 * HALF_BYTES * layer if config.method == Method.freeze else HALF_BYTES * layer
    return max(layer_bytes, HALF_BYTES * embeddings)


# ---- what each parameter costs ---------------------------------------------------------------

def uses_deepspeed(config: TrainConfig) -> bool:
    """ZeRO stage 0 here means plain DDP without DeepSpeed, as LLaMA-Factory runs without `deepspeed:`."""
    return config.zero_stage > 0


def computes_in_16bit_params(config: TrainConfig) -> bool:
    """The forward reads 16-bit parameters, not fp32 ones under autocast: DeepSpeed casts the
    module to 16 bits, FSDP gathers every parameter in its 16-bit `param_dtype` (memory/fsdp.py)."""
    return uses_deepspeed(config) or config.fsdp_strategy is not None


def trainable_param_bytes_each(config: TrainConfig) -> int:
    """Bytes of one trainable parameter in the module (fp32 upcast, or 16-bit under DeepSpeed/pure_bf16)."""
    if config.precision == Precision.fp32:
        return FP32_BYTES
    if config.memory_optimizer == MemoryOptimizer.badam:
        return HALF_BYTES  # "Pure bf16 / BAdam detected, remaining trainable params in half precision" (adapter.py:317)
    if config.precision == Precision.pure_bf16 and config.uses_lora and not uses_deepspeed(config):
        # Issue 3 (trace): peft's autocast_adapter_dtype=True makes the adapters fp32 and
        # LLaMA-Factory does not cast them back under pure_bf16.
        return FP32_BYTES
    if config.precision == Precision.pure_bf16 or uses_deepspeed(config):
        return HALF_BYTES
    return FP32_BYTES


def frozen_base_bytes(model: ModelSpec, config: TrainConfig) -> float:
    """Bytes of the frozen base weights on one unsharded GPU, by quantization bits."""
    n_frozen = frozen_params(model, config)
    if n_frozen == 0:
        return 0.0
    dense_bytes = FP32_BYTES if config.precision == Precision.fp32 else HALF_BYTES
    upcast = 0.0
    if config.upcast_layernorm and dense_bytes == HALF_BYTES and config.method != Method.full:
        # LLaMA-Factory upcast_layernorm: frozen 1-D norm weights in fp32 (trace: +2 bytes each)
        norms = model.num_layers * (model.norms_per_layer * model.norm_params_per_norm()
                                    + (2 * model.head_dim if model.qk_norm else 0)) + model.norm_params_per_norm()
        upcast = (FP32_BYTES - HALF_BYTES) * norms
    extra = fp32_kept_extra_bytes(model, config) + upcast
    if quantized_in_training(model):  # a GPTQ/AWQ checkpoint: its own storage (memory/prequantized.py)
        return prequantized_base_bytes(model, n_frozen, HALF_BYTES) + extra
    if config.bits == 16:
        return n_frozen * dense_bytes + extra
    # bitsandbytes replaces nn.Linear (and Conv1D) modules only (transformers 5.6
    # integrations/bitsandbytes.py:184): the fused 3-D experts and the routers stay 16-bit.
    kinds = model.layer_kinds()
    linear_weights = sum(n * sum(m.weight_params for m in model.linear_modules(kind)) for kind, n in kinds)
    rest = n_frozen - linear_weights  # embeddings, lm_head, norms, biases, experts stay 16-bit
    if config.bits == 8:
        row_scales = sum(n * sum(m.out_features * m.count for m in model.linear_modules(kind)) for kind, n in kinds)
        return linear_weights * 1 + row_scales * FP32_BYTES + rest * HALF_BYTES + extra
    # NF4 with double quantization (LLaMA-Factory `double_quantization: true` default)
    return linear_weights * 0.5 + nf4_constant_bytes(linear_weights) + rest * HALF_BYTES + extra


def nf4_constant_bytes(linear_weights: float) -> float:
    """NF4 block constants with double quantization: one 8-bit absmax per block of 64 and one fp32
    absmax per 256 blocks (QLoRA paper, section 3)."""
    blocks = linear_weights / NF4_BLOCK
    return blocks * 1 + (blocks / NF4_DOUBLE_QUANT_BLOCK) * FP32_BYTES


def fp32_kept_extra_bytes(model: ModelSpec, config: TrainConfig) -> float:
    """Frozen tensors transformers keeps in fp32 whatever the load dtype: DeepSeek's and GLM-4.5's
    router weights (`_keep_in_fp32_modules_strict`, modeling_deepseek_v3.py:551, glm4_moe :460;
    trainable, hence counted elsewhere, under full fine-tuning) and the sigmoid routers'
    `e_score_correction_bias` buffers [E] (on the GPU in every method)."""
    if not model.is_moe:
        return 0.0
    moe_layers = sum(n for kind, n in model.layer_kinds() if kind.moe)
    extra = 0.0
    if model.router_fp32 and config.method != Method.full and config.precision != Precision.fp32:
        extra += (FP32_BYTES - HALF_BYTES) * moe_layers * model.router_params()
    if model.router_scoring == RouterScoring.sigmoid:
        extra += FP32_BYTES * model.num_experts * moe_layers
    return extra


def frozen_part_bytes(model: ModelSpec, config: TrainConfig) -> dict[Term, float]:
    """The named parts of the frozen weights on one unsharded GPU: every routed expert (16-bit:
    bitsandbytes does not quantize them) and a multimodal model's vision tower."""
    parts: dict[Term, float] = {}
    dense_bytes = FP32_BYTES if config.precision == Precision.fp32 else HALF_BYTES
    if model.is_moe and config.method != Method.full:
        frozen_layers = model.num_layers - (min(config.freeze_layers, model.num_layers)
                                            if config.method == Method.freeze else 0)
        experts = 0
        for run in model.runs():  # the first layers are the frozen ones under freeze
            take = min(run.count, frozen_layers)
            experts += take * model.expert_params(run.kind)
            frozen_layers -= take
        if experts:
            parts[Term.expert_weights] = experts * dense_bytes
    if model.vision_params:
        parts[Term.vision_weights] = model.vision_params * dense_bytes
    return parts


def optimizer_state_bytes_each(model: ModelSpec, config: TrainConfig) -> float:
    """Optimizer state bytes per trainable parameter (not counting the fp32 master copy).

    AdamW keeps two states in the parameter's dtype (torch.optim.AdamW; fp32 here, bf16 under
    pure_bf16). 8-bit AdamW keeps two uint8 states with one fp32 absmax per 256 values. Adafactor
    (HF default, no first moment) keeps factored row and column second moments, about
    (rows + cols) / (rows * cols) per parameter, taken here for the model's smallest matrix side.
    SGD without momentum keeps nothing.
    """
    if config.optim == Optimizer.sgd:
        return 0.0
    if config.optim in BITSANDBYTES_OPTIMIZERS:
        return 2 * (1 + FP32_BYTES / BNB_OPTIM_BLOCK)
    if config.optim == Optimizer.adafactor:
        side = config.lora_rank if config.uses_lora else model.hidden_size
        return FP32_BYTES * 2 / side
    if config.memory_optimizer == MemoryOptimizer.adam_mini:
        return FP32_BYTES if uses_deepspeed(config) else trainable_param_bytes_each(config)  # one moment
    # AdamW states take the parameter's dtype: fp32 for peft's fp32 LoRA adapters even under
    # pure_bf16 (issue 3, trace).
    state_dtype = FP32_BYTES if uses_deepspeed(config) else trainable_param_bytes_each(config)
    if config.precision == Precision.fp32:
        state_dtype = FP32_BYTES
    return 2 * state_dtype


# ---- per-GPU model states ----------------------------------------------------------------------

@dataclass(frozen=True)
class ModelStates:
    """Bytes one GPU holds for the model itself, before any activation."""

    weights: float  # frozen base (16-bit or quantized), sharded under ZeRO-3
    trainable_params: float  # trainable parameters as the module holds them
    gradients: float  # gradients of the trainable parameters as they sit between backward and step
    optimizer_states: float  # optimizer states (+ fp32 master and fp32 grad partition under DeepSpeed)
    comm_buffers: float  # DDP buckets / DeepSpeed reduce bucket
    zero3_gathered: float  # ZeRO-3: one gathered layer (params + grads), DeepSpeed's estimator
    host_ram: float  # host RAM per node for offloaded states
    weight_parts: dict = field(default_factory=dict)  # named parts of `weights` (Term -> bytes on this GPU)


def model_states(model: ModelSpec, config: TrainConfig, gpus_per_node: int) -> ModelStates:
    """Model states per GPU for one configuration (see module docstring for the sources)."""
    n = config.n_gpus
    p_train = trainable_params(model, config)
    base = frozen_base_bytes(model, config)
    state_each = optimizer_state_bytes_each(model, config)
    if not uses_deepspeed(config):
        param_each = trainable_param_bytes_each(config)
        grads = p_train * param_each
        states = p_train * state_each
        if config.memory_optimizer != MemoryOptimizer.none:  # GaLore, APOLLO, BAdam, Adam-mini
            grads = optimizers.gradient_bytes(model, config, p_train, param_each)
            states = optimizers.state_bytes(model, config, p_train, param_each)
        ddp_buckets = grads if n > 1 else 0.0
        return ModelStates(weights=base, trainable_params=p_train * param_each, gradients=grads,
                           optimizer_states=states, comm_buffers=ddp_buckets,
                           zero3_gathered=0.0, host_ram=0.0, weight_parts=frozen_part_bytes(model, config))

    # DeepSpeed: 16-bit module params and grads; fp32 master + fp32 grads + states, sharded.
    stage = config.zero_stage
    fp32_side = p_train * (FP32_BYTES + FP32_BYTES + state_each)  # master, fp32 grads, states
    params16 = p_train * HALF_BYTES
    grads16 = p_train * HALF_BYTES
    reduce_bucket = HALF_BYTES * model.hidden_size**2  # "auto" = hidden_size^2 elements (HF integration)
    offload_opt = config.offload in (Offload.optimizer, Offload.all)
    nodes = -(-n // gpus_per_node)
    if stage in (1, 2):
        # deepspeed 0.19.8 estimate_zero2_model_states_mem_needs: GPU 2P + 18P/n (16-bit grads
        # partitioned); stage 1 keeps full 16-bit grads until the reduce. Offload: GPU 2P; host
        # P * max(4 * gpus, 16) * 1.5, where DeepSpeed multiplies by ALL GPUs of the job: that
        # grows without bound with nodes, so fitplan counts the GPUs of one node and shares the
        # 16 bytes/param of states among the nodes, as DeepSpeed's own ZeRO-3 estimator does.
        gpu_fp32 = 0.0 if offload_opt else fp32_side / n
        grads_on_gpu = 0.0 if offload_opt else (grads16 / n if stage == 2 else grads16)
        host_each = max(4 * min(n, gpus_per_node), 16 / nodes)
        host = p_train * host_each * DEEPSPEED_HOST_BUFFER_FACTOR if offload_opt else 0.0
        return ModelStates(weights=base, trainable_params=params16, gradients=grads_on_gpu,
                           optimizer_states=gpu_fp32, comm_buffers=reduce_bucket,
                           zero3_gathered=0.0, host_ram=host, weight_parts=frozen_part_bytes(model, config))
    # Stage 3: everything sharded; one module gathered at a time. deepspeed 0.19.8
    # estimate_zero3_model_states_mem_needs with zero.Init (the HF integration loads ZeRO-3 models
    # under it): GPU largest + 18P/n (fitplan adds the 16-bit gradient partition, 2P/n, which
    # stage 3 keeps beside the fp32 one); optimizer offload: largest + 2P/n on the GPU and
    # P * 16 / nodes * 1.5 on the host; parameter offload too: largest on the GPU, P * 18 / nodes * 1.5.
    offload_params = config.offload == Offload.all
    gathered = zero3_gathered_bytes(model, config)
    if offload_params:
        params_gpu, base_gpu = 0.0, 0.0
        host = (p_train * 18 / nodes * DEEPSPEED_HOST_BUFFER_FACTOR) + base / nodes
    else:
        params_gpu, base_gpu = params16 / n, base / n
        host = (p_train * 16 / nodes * DEEPSPEED_HOST_BUFFER_FACTOR) if offload_opt else 0.0
    share = 0.0 if offload_params else 1 / n
    return ModelStates(weights=base_gpu, trainable_params=params_gpu,
                       gradients=0.0 if offload_opt else grads16 / n,
                       optimizer_states=0.0 if offload_opt else fp32_side / n,
                       comm_buffers=reduce_bucket, zero3_gathered=gathered, host_ram=host,
                       weight_parts={t: b * share for t, b in frozen_part_bytes(model, config).items()})


def optimizer_step_temporary_bytes(model: ModelSpec, config: TrainConfig) -> float:
    """Extra bytes alive inside `optimizer.step()`.

    HF Trainer's default `adamw_torch_fused` updates in place (no temporaries); DeepSpeed's
    FusedAdam / CPUAdam likewise. bitsandbytes 8-bit optimizers update blockwise in place.
    A `foreach` AdamW would add one fp32 buffer per parameter (`_foreach_sqrt`,
    shared/reference/trace-notes.md Q6); fitplan emits the fused optimizer, so it is 0 here.
    GaLore, APOLLO, BAdam and Adam-mini step one parameter at a time with full-size temporaries
    (memory/optimizers.py).
    """
    if config.memory_optimizer != MemoryOptimizer.none:
        return optimizers.step_temporary_bytes(model, config, trainable_param_bytes_each(config))
    return 0.0
