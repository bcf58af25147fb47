"""How fast one configuration trains: time of one optimizer step and tokens per second over all
GPUs, from FLOPs per token, the GPU's matmul rate, per-layer launch overhead, dequantisation,
optimizer work and the bytes each collective or offload copy moves over the real link.

It ranks plans for the recommender; it is not a profiler. What it must get right is the order:
16-bit LoRA beats QLoRA (dequantisation costs time), no checkpointing beats checkpointing
(recompute costs a forward), bigger micro-steps amortise launch overhead, ZeRO-3 and offload pay
for their traffic. Every constant lives, with its source, in speed/constants.py.

FLOPs per token (Kaplan et al. 2020, "Scaling Laws", section 2.1; Narayanan et al. 2021,
"Efficient Large-Scale Language Model Training on GPU Clusters", appendix: 2N forward, 4N
backward for weight and input gradients, +2N when activations are recomputed):
- matmul parameters N = decoder linears (active experts only) + the lm_head projection;
- a layer whose weights train pays 2N forward + 4N backward; a frozen layer that gradients pass
  through (LoRA base, freeze's lower layers under checkpointing) pays 2N + 2N (input gradient
  only); a frozen layer nothing before it trains pays 2N forward only;
- LoRA adapters pay 6 x r x (d_in + d_out) per targeted linear;
- attention scores and values: 4 x s x q_dim per token per layer forward (x 0.5 for causal fused
  kernels), twice that backward, once more when recomputed.

Mixture of experts (transformers 5 under LLaMA-Factory 0.9.5): the FLOPs are those of the
active parameters: the router, the shared expert and top-k routed experts per token (Llama-4:
every expert, its Llama4TextMoe runs all experts on every token, modeling_llama4.py:166-175).
The expert weights set the memory traffic: each pass reads every expert's weights, so a grouped
GEMM takes the longer of its FLOPs and that read (`expert_weights_s`). LLaMA-Factory's HF backend
has no expert parallelism: every GPU holds (or ZeRO-3 gathers) all experts, so there is no
all-to-all; ZeRO-3's all-gather moves every expert. Sums go over the layer kinds (dense/MoE,
windowed attention), never over every layer.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..memory.fsdp import shard_group_size
from ..memory.params import lora_params, trainable_params
from ..memory.states import frozen_base_bytes
from ..problem.config import TrainConfig
from ..problem.knobs import BITSANDBYTES_OPTIMIZERS, Attention, Method, Offload, Optimizer, Precision
from ..specs.gpu import GpuSet, GpuSpec
from ..specs.model import ModelSpec
from ..units import FP32_BYTES, HALF_BYTES
from . import constants as K
from . import levers
from .fsdp import fsdp_communication_s, fsdp_cpu_optimizer_s, fsdp_offload_bytes


@dataclass(frozen=True)
class StepTime:
    """Seconds of one optimizer step on one GPU (all GPUs run in lockstep), by cause."""

    compute_s: float  # matmuls and attention at the achievable rate
    overhead_s: float  # per-layer kernel launch overhead
    dequant_s: float  # bitsandbytes dequantisation of 4/8-bit weights
    communication_s: float  # DDP all-reduce, ZeRO reduce-scatter / all-gather
    offload_s: float  # PCIe copies to and from host memory
    optimizer_s: float  # optimizer update (GPU, or CPU Adam under offload)
    tokens_per_step: int  # tokens of one optimizer step over all GPUs
    adapters_s: float = 0.0  # LoRA adapters' elementwise work on their inputs (memory-bound)
    fused_kernels_s: float = 0.0  # <= 0: DRAM traffic Liger's fused kernels remove (speed/levers.py)
    expert_weights_s: float = 0.0  # MoE: reading all experts' weights beyond their GEMMs' FLOPs time

    @property
    def step_time_s(self) -> float:
        return (self.compute_s + self.overhead_s + self.dequant_s + self.communication_s + self.offload_s
                + self.optimizer_s + self.adapters_s + self.fused_kernels_s + self.expert_weights_s)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens_per_step / self.step_time_s

    def breakdown_s(self) -> dict[str, float]:
        """Seconds by cause, as `recommend` reports them (`step_time_breakdown_s`)."""
        causes = {"compute": self.compute_s, "launch_overhead": self.overhead_s, "dequantisation": self.dequant_s,
                  "adapters": self.adapters_s, "communication": self.communication_s, "offload": self.offload_s,
                  "optimizer": self.optimizer_s}
        if self.expert_weights_s:
            causes["expert_weight_reads"] = self.expert_weights_s  # MoE: all experts read per pass
        if self.fused_kernels_s:
            causes["fused_kernels"] = self.fused_kernels_s  # negative: time Liger saves
        return causes


@dataclass(frozen=True)
class _ModelShape:
    """The few numbers of a model the speed model reads, computed once per model."""

    num_layers: int
    layer_matmul_params: float  # active weights one token multiplies in a layer, mean over the layers
    lm_head_matmul_params: int  # logits projection (tied or not, the matmul runs)
    q_dim: float  # attention width: (q/k + v) / 2 per head x heads (MLA's v heads are narrower)
    linear_weights_total: int  # all layers' linear weights (what bitsandbytes quantises)
    expert_matmul_params: float = 0.0  # routed-expert weights one token multiplies, summed over layers
    expert_weights_total: int = 0  # every routed expert's weights, all layers


def _shape_of(model: ModelSpec) -> _ModelShape:
    active = 0.0
    linear_total = 0
    experts_run = 0.0
    for kind, count in model.layer_kinds():
        modules = model.linear_modules(kind)
        layer = sum(m.in_features * m.out_features * m.count for m in modules) + model.router_params(kind)
        if kind.moe:
            per_expert = model.expert_params(kind) / model.num_experts
            experts_run += count * per_expert * model.experts_run_per_token()
        active += count * layer
        linear_total += count * sum(m.weight_params for m in modules)
    return _ModelShape(
        num_layers=model.num_layers,
        layer_matmul_params=(active + experts_run) / model.num_layers,
        lm_head_matmul_params=model.vocab_size * model.hidden_size,
        q_dim=(model.q_dim + model.attn_out_dim) / 2,
        linear_weights_total=linear_total,
        expert_matmul_params=experts_run,
        expert_weights_total=model.expert_params_total(),
    )


_SHAPES: dict[int, tuple[ModelSpec, _ModelShape]] = {}


def model_shape(model: ModelSpec) -> _ModelShape:
    """Cached by identity (ModelSpec is frozen); the object is kept alive with its entry."""
    hit = _SHAPES.get(id(model))
    if hit is not None and hit[0] is model:
        return hit[1]
    shape = _shape_of(model)
    if len(_SHAPES) > 512:
        _SHAPES.clear()
    _SHAPES[id(model)] = (model, shape)
    return shape


# ---- rates and links ---------------------------------------------------------------------------

def matmul_flops_per_s(gpu: GpuSpec, precision: Precision) -> float:
    """Datasheet dense matmul rate for the precision the matmuls run in.

    16-bit autocast GEMMs run through cuBLAS with fp32 accumulation, so a GPU whose fp16 path is
    slower than fp32 (Pascal P4/P40: fp16 at 1/64 rate, CUDA programming guide arithmetic
    instructions table) runs them at its fp32 rate, never the fp16 one. fp32 runs use the fp32
    rate (PyTorch leaves TF32 matmuls off by default since 1.12)."""
    if precision == Precision.fp32:
        return gpu.fp32_tflops * 1e12
    if precision in (Precision.bf16, Precision.pure_bf16) and gpu.bf16_tflops:
        return max(gpu.bf16_tflops, gpu.fp32_tflops) * 1e12
    return max(gpu.fp16_tflops, gpu.fp32_tflops) * 1e12


def collective_bytes_per_s(gpus: GpuSet, n_gpus: int) -> float:
    """Bus bandwidth of a ring collective over `n_gpus` GPUs packed onto as few nodes as
    possible: NVLink (per direction = marketed bidirectional / 2) or PCIe inside a node, the
    node's network across nodes (nccl-tests busbw is bounded by the slowest hop)."""
    gpu = gpus.gpu
    if n_gpus > gpus.gpus_per_node:
        return gpus.network_gbit_per_s * 1e9 / K.BITS_PER_BYTE * K.NCCL_LINK_EFFICIENCY
    if gpu.nvlink_gbps:
        per_direction = gpu.nvlink_gbps / 2
        if gpu.peer_link_gbps and n_gpus > 1:  # a mesh: each GPU reaches its k - 1 peers over one link each
            per_direction = min(per_direction, (n_gpus - 1) * gpu.peer_link_gbps / 2)
        return per_direction * 1e9 * K.NCCL_LINK_EFFICIENCY
    return gpu.pcie_gbps_per_direction * 1e9 * K.NCCL_LINK_EFFICIENCY


def _pcie_copy_bytes_per_s(gpu: GpuSpec) -> float:
    return gpu.pcie_gbps_per_direction * 1e9 * K.PCIE_COPY_EFFICIENCY


def _dram_bytes_per_s(gpu: GpuSpec) -> float:
    return gpu.memory_bandwidth_gbps * 1e9 * K.DRAM_EFFICIENCY


# ---- FLOPs -------------------------------------------------------------------------------------

def _layer_backward_kinds(config: TrainConfig, num_layers: int) -> tuple[int, int, int]:
    """How many layers train their weights, pass gradients only, or run forward only."""
    if config.method == Method.full and config.memory_optimizer.value == "badam":
        return 1, num_layers - 1, 0  # one block trains; gradients still flow down (BAdam, layer mode)
    if config.method == Method.full:
        return num_layers, 0, 0
    if config.uses_lora:
        return 0, num_layers, 0
    trained = min(config.freeze_layers, num_layers)
    # LLaMA-Factory enables input gradients under checkpointing, so they reach layer 0.
    if config.grad_ckpt:
        return trained, num_layers - trained, 0
    return trained, 0, num_layers - trained


def _mean_keys(model: ModelSpec, config: TrainConfig) -> float:
    """Keys a query attends to, mean over the layers: FlashAttention skips the blocks outside a
    sliding or chunked window; SDPA's masked kernel and eager compute the whole square."""
    if config.attn != Attention.fa2:
        return float(config.seq_len)
    keys = 0
    for kind, count in model.layer_kinds():
        window = model.window_of(kind)
        keys += count * (min(config.seq_len, window) if window else config.seq_len)
    return keys / model.num_layers


def flops_per_token(model: ModelSpec, config: TrainConfig) -> float:
    """Matmul FLOPs of one token through forward, backward and recompute (see module docstring)."""
    shape = model_shape(model)
    causal = K.CAUSAL_FLOP_FRACTION_EAGER if config.attn == Attention.eager else K.CAUSAL_FLOP_FRACTION_FUSED
    attn_fwd = 4 * _mean_keys(model, config) * shape.q_dim * causal
    layer_fwd = 2 * shape.layer_matmul_params + attn_fwd
    trained, grad_only, _frozen_no_grad = _layer_backward_kinds(config, shape.num_layers)
    with_grad = trained + grad_only
    total = shape.num_layers * layer_fwd
    total += trained * (4 * shape.layer_matmul_params + 2 * attn_fwd)
    total += grad_only * (2 * shape.layer_matmul_params + 2 * attn_fwd)
    if config.grad_ckpt:
        total += with_grad * layer_fwd
    head_backward = 4 if config.method == Method.full and not model.tie_word_embeddings else 2
    if with_grad == 0:
        head_backward = 4 if config.method == Method.full else 0
    total += (2 + head_backward) * shape.lm_head_matmul_params
    if config.uses_lora:
        total += 6 * lora_params(model, config)
    return float(total)


def _passes_per_micro_step(config: TrainConfig) -> int:
    return 3 if config.grad_ckpt else 2


# ---- the step ----------------------------------------------------------------------------------

def _dequant_s_per_micro_step(model: ModelSpec, gpu: GpuSpec, config: TrainConfig) -> float:
    if config.bits == 16:
        return 0.0
    weights = model_shape(model).linear_weights_total
    bytes_per_weight = K.DEQUANT_EFFECTIVE_BYTES_PER_WEIGHT[config.bits]
    return _passes_per_micro_step(config) * weights * bytes_per_weight / _dram_bytes_per_s(gpu)


def _adapter_s_per_micro_step(model: ModelSpec, gpu: GpuSpec, config: TrainConfig) -> float:
    """Each LoRA adapter moves its input through elementwise kernels in every pass (dtype casts,
    dropout, scaling and the add, and their backward): memory-bound traffic proportional to
    tokens x the adapted module's input width (constant: speed/constants.py)."""
    if not config.uses_lora:
        return 0.0
    targets = config.lora_targets
    input_elements = model.memo(("lora_input_elements", targets), lambda: sum(
        count * sum(m.in_features * m.count for m in model.modules_matching(targets, kind))
        for kind, count in model.layer_kinds()))
    traffic = (_passes_per_micro_step(config) * config.micro_batch * config.seq_len * input_elements
               * K.LORA_ELEMENTWISE_BYTES_PER_INPUT_ELEMENT)
    return traffic / _dram_bytes_per_s(gpu)


def _expert_weight_s_per_micro_step(shape: _ModelShape, gpu: GpuSpec, config: TrainConfig,
                                    flops_per_token: float, tokens: int, rate: float) -> float:
    """MoE: every pass over the layers reads all experts' 16-bit weights (a grouped GEMM touches
    every expert a token was routed to, and with thousands of tokens that is all of them); the
    part of that read longer than the expert GEMMs' own FLOPs time is added. Passes: forward,
    backward, and the recompute under checkpointing."""
    if not shape.expert_weights_total:
        return 0.0
    passes = _passes_per_micro_step(config)
    read_s = passes * shape.expert_weights_total * HALF_BYTES / _dram_bytes_per_s(gpu)
    expert_share = shape.expert_matmul_params / max(shape.layer_matmul_params * shape.num_layers, 1)
    layer_flops = flops_per_token - (2 + 4) * shape.lm_head_matmul_params
    expert_compute_s = max(layer_flops, 0) * expert_share * tokens / rate
    return max(0.0, read_s - expert_compute_s)


def _grad_bytes_each(config: TrainConfig) -> int:
    """Gradients as DDP reduces them: in the trainable parameters' dtype (fp32 under AMP)."""
    if config.precision == Precision.pure_bf16:
        return HALF_BYTES
    return FP32_BYTES


def _optimizer_bytes_per_param(optim: Optimizer) -> int:
    if optim in BITSANDBYTES_OPTIMIZERS:
        return K.ADAMW_8BIT_BYTES_PER_PARAM
    if optim == Optimizer.sgd:
        return K.SGD_BYTES_PER_PARAM
    if optim == Optimizer.adafactor:
        return K.ADAFACTOR_BYTES_PER_PARAM
    return K.ADAMW_BYTES_PER_PARAM


@dataclass(frozen=True)
class _PerToken:
    """What does not depend on how the batch is split: computed once per knob combination."""

    model: ModelSpec
    flops_per_token: float
    trainable_params: int
    frozen_base_bytes: float


_PER_TOKEN: dict[tuple[int, tuple], _PerToken] = {}
_SPLIT_FIELDS = ("micro_batch", "grad_accum")


def _per_token(model: ModelSpec, config: TrainConfig) -> _PerToken:
    # every field but the split's (a plain tuple: cheaper to build and hash than a config copy)
    key = (id(model), tuple(value for name, value in config.__dict__.items() if name not in _SPLIT_FIELDS))
    hit = _PER_TOKEN.get(key)
    if hit is not None and hit.model is model:
        return hit
    if len(_PER_TOKEN) > 100_000:
        _PER_TOKEN.clear()
    hit = _PER_TOKEN[key] = _PerToken(model, flops_per_token(model, config), trainable_params(model, config),
                                      frozen_base_bytes(model, config))
    return hit


def step_time(model: ModelSpec, gpus: GpuSet, config: TrainConfig) -> StepTime:
    """Seconds of one optimizer step of `config` (micro batch, accumulation, GPUs as set) and the
    tokens it processes over all GPUs. A VRAM budget carries a reference card's rates
    (specs/budget.py): its figures rank plans and are not reported."""
    gpu = gpus.gpu
    shape = model_shape(model)
    data = levers.data_shape(config)  # packing and the mean sample length (speed/levers.py)
    attention_config = config if data.attention_span == config.seq_len else \
        config.model_copy(update={"seq_len": data.attention_span})
    per_token = _per_token(model, attention_config)
    n = config.n_gpus
    accum = config.grad_accum
    tokens_micro = config.micro_batch * data.computed_tokens
    rate = matmul_flops_per_s(gpu, config.precision) * K.MATMUL_EFFICIENCY_MAX
    compute = accum * per_token.flops_per_token * tokens_micro / rate
    overhead = accum * K.LAYER_PASS_OVERHEAD_S * shape.num_layers * _passes_per_micro_step(config)
    dequant = accum * _dequant_s_per_micro_step(model, gpu, config)
    computed_config = config if data.computed_tokens == config.seq_len else \
        config.model_copy(update={"seq_len": data.computed_tokens})
    adapters = accum * (_adapter_s_per_micro_step(model, gpu, computed_config)
                        + levers.dora_s_per_micro_step(model, gpu, config, rate))
    fused = -min(accum * levers.liger_saved_s_per_micro_step(model, gpu, config, tokens_micro),
                 K.LIGER_MAX_SAVED_FRACTION * (compute + overhead + adapters + dequant))
    expert_reads = accum * _expert_weight_s_per_micro_step(shape, gpu, config, per_token.flops_per_token,
                                                           tokens_micro, rate)

    p_train = per_token.trainable_params
    ring = (n - 1) / n if n > 1 else 0.0
    link = collective_bytes_per_s(gpus, n)
    comm_bytes = 0.0
    offload_bytes = 0.0
    offload_opt = config.offload in (Offload.optimizer, Offload.all)
    stage = config.zero_stage
    if stage == 0:
        # HF Trainer (accelerate) skips DDP's all-reduce while accumulating (`no_sync`): one
        # all-reduce per step, 2 (n-1)/n of the gradient bytes per GPU (ring all-reduce).
        comm_bytes += 2 * ring * p_train * _grad_bytes_each(config)
    else:
        # DeepSpeed reduce-scatters 16-bit gradients at every micro-step's backward.
        comm_bytes += accum * ring * p_train * HALF_BYTES
        if stage in (1, 2):
            comm_bytes += ring * p_train * HALF_BYTES  # all-gather of updated 16-bit params per step
        else:
            # ZeRO-3 gathers every parameter (frozen base included) for forward, backward and,
            # under checkpointing, the recompute.
            param_bytes = per_token.frozen_base_bytes + p_train * HALF_BYTES
            comm_bytes += accum * _passes_per_micro_step(config) * ring * param_bytes
            if config.offload == Offload.all:
                offload_bytes += accum * _passes_per_micro_step(config) * param_bytes / n
        if offload_opt:
            # fp32 gradient partition to the host each micro-step, 16-bit params back each step.
            offload_bytes += accum * p_train / n * FP32_BYTES + p_train / n * HALF_BYTES
    offload_bytes += accum * levers.checkpoint_offload_bytes_per_micro_step(model, config, tokens_micro)
    communication = comm_bytes / link * (1 - K.COMM_OVERLAP_FRACTION) if comm_bytes else 0.0
    offload = offload_bytes / _pcie_copy_bytes_per_s(gpu) if offload_bytes else 0.0

    if config.fsdp_strategy is not None:  # FSDP's collectives and offload (speed/fsdp.py)
        communication = fsdp_communication_s(model, gpus, config, lambda k: collective_bytes_per_s(gpus, k))
        offload = fsdp_offload_bytes(model, gpus, config) / _pcie_copy_bytes_per_s(gpu)
    if config.fsdp_strategy is not None and config.offload == Offload.all:
        optimizer = fsdp_cpu_optimizer_s(model, gpus, config)
    elif config.fsdp_strategy is not None:
        shard = p_train / shard_group_size(config, gpus.gpus_per_node)
        optimizer = shard * _optimizer_bytes_per_param(config.optim) / _dram_bytes_per_s(gpu)
    elif offload_opt:
        gpus_on_node = min(n, gpus.gpus_per_node)
        optimizer = p_train / n * gpus_on_node / K.CPU_ADAM_PARAMS_PER_S_PER_NODE
    else:
        shard = p_train / n if stage > 0 else p_train
        optimizer = shard * _optimizer_bytes_per_param(config.optim) / _dram_bytes_per_s(gpu)
    optimizer += levers.projector_s_per_step(model, gpu, config)
    return StepTime(compute_s=compute, overhead_s=overhead, dequant_s=dequant, communication_s=communication,
                    offload_s=offload, optimizer_s=optimizer,
                    tokens_per_step=config.micro_batch * accum * n * data.real_tokens, adapters_s=adapters,
                    fused_kernels_s=fused, expert_weights_s=expert_reads)
