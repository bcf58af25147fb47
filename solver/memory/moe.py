"""What a mixture-of-experts layer adds to memory, as transformers 5 implements it for training
under LLaMA-Factory 0.9.5: the router, the routed experts run with grouped GEMMs, the shared
expert, the auxiliary load-balancing loss, and what ZeRO-3 gathers.

Sources (transformers 5.24, the trace's version; 5.6, LLaMA-Factory's pin, has the same expert
path: /work/notes/moe/findings.md sections 2-4, every figure traced on fake tensors and checked
against real CPU tensors to the byte):
- Experts are fused 3-D parameters, `gate_up_proj` [E, 2m, h] and `down_proj` [E, h, m], run by
  `grouped_mm_experts_forward` (integrations/moe.py:424-537), the default `_experts_implementation`
  (modeling_utils.py:1893-1915; LLaMA-Factory never sets it): the top-k choices are flattened
  into S = tokens x k rows, sorted by expert, and each expert's rows multiplied in one grouped
  GEMM. Every shape is fixed by tokens x k, so the bytes do not depend on the routing: a
  balanced and a worst-case routing save exactly the same (findings 0.3, real tensors). There
  is no capacity, no padding and no token dropping in these classes.
- grouped_mm is not autocast-enabled: it casts its input to the weight's dtype (moe.py:378-381),
  so full fine-tuning under AMP (fp32 trainable experts) runs and saves the experts in fp32.
- Llama-4's `Llama4TextMoe` multiplies every token by every expert (modeling_llama4.py:166-175):
  E rows per token, not k.
- LLaMA-Factory's `lora_target: all` adapts `nn.Linear` modules only (model/model_utils/misc.py:
  28-52): on transformers 5 the routed experts and the routers are not adapted (docs/moe.md).
- Aux loss: only with `moe_aux_loss_coef` (LF model/model_utils/moe.py:160-208) do mixtral,
  qwen2_moe, qwen3_moe and llama4 return router logits, kept until the loss: 2E bytes per token
  per MoE layer (traced, mixtral).
- ZeRO-3: LLaMA-Factory marks each MoE block as a DeepSpeed leaf module (model/model_utils/moe.py:
  43-157), so ZeRO-3 gathers all of a layer's experts at once.
"""

from __future__ import annotations

from ..problem.config import TrainConfig
from ..problem.knobs import Method, Precision
from ..specs.gpu import GpuSet
from ..specs.layers import LayerKind, RouterScoring
from ..specs.model import ModelSpec
from ..units import FP32_BYTES, HALF_BYTES, format_gib
from .load import built_whole_under_zero3, load_host_ram_bytes
from .terms import Term

EXPERT_OFFSETS_BYTES = 512  # the int32 per-expert offsets of the grouped GEMM: one 512-B block per layer
INDEX_BYTES = 8  # int64 sort permutation, row -> token map and inverse permutation, per routed row
# LLaMA-Factory 0.9.5 turns on output_router_logits with moe_aux_loss_coef only for these
# (model/model_utils/moe.py:160-208).
AUX_LOSS_MODEL_TYPES = frozenset({"mixtral", "qwen2_moe", "qwen3_moe", "llama4", "llama4_text"})


def _autocast(config: TrainConfig) -> bool:
    return config.precision in (Precision.bf16, Precision.fp16) and config.zero_stage == 0


def _compute_bytes(config: TrainConfig) -> int:
    return FP32_BYTES if config.precision == Precision.fp32 else HALF_BYTES


def expert_bytes_each(config: TrainConfig, trainable: bool) -> int:
    """Element size of the expert GEMMs: fp32 for trainable experts under AMP (LLaMA-Factory
    upcasts them; grouped_mm does not autocast), else the model's compute dtype."""
    if trainable and _autocast(config):
        return FP32_BYTES
    return _compute_bytes(config)


def routing_weight_bytes(model: ModelSpec) -> int:
    return FP32_BYTES if model.routing_weights_fp32 else HALF_BYTES


def router_bytes_per_token(model: ModelSpec) -> int:
    """What the router keeps per token (routing kind, findings section 3 router table)."""
    e, k = model.num_experts, model.experts_per_token
    if model.router_scoring == RouterScoring.softmax:
        # fp32 softmax over E, int64 top-k indices; renormalization keeps the fp32 sum and top-k
        return FP32_BYTES * e + INDEX_BYTES * k + ((FP32_BYTES + FP32_BYTES * k) if model.norm_topk_prob else 0)
    if model.router_scoring == RouterScoring.sigmoid:
        return HALF_BYTES * e + 10 * k + 2
    if model.router_scoring == RouterScoring.topk_softmax:
        return 10 * k
    return FP32_BYTES * e + INDEX_BYTES * k  # sigmoid_all (Llama-4)


def routed_bytes_per_token(model: ModelSpec, config: TrainConfig, trainable: bool) -> float:
    """The routed experts' saved tensors per token (findings section 3, experts table):
    per routed row the up projection's output (2m), the activation (m) and the down output (h),
    kept for the product with the routing weight; trainable experts also keep the gathered
    input (h) and act * up (m) for their weight gradients; three int64 index vectors; the
    routing weight. gpt-oss's clamped SwiGLU keeps 6m (7m trainable) and, trainable, the
    expert ids for its bias gradients. Llama-4 runs all E experts on every token."""
    h, m = model.hidden_size, model.expert_intermediate_size
    cb = expert_bytes_each(config, trainable)
    if model.model_type in ("llama4", "llama4_text"):
        cb = _compute_bytes(config)  # Llama-4's expert bmm is autocast-eligible: 16-bit under AMP
        e = model.num_experts
        if not trainable:
            return e * (3 * cb * m + cb * h) + HALF_BYTES * e
        stream = FP32_BYTES if _autocast(config) else _compute_bytes(config)
        return e * (4 * cb * m + cb * h + stream * h) + HALF_BYTES * e
    k = model.experts_per_token
    if model.model_type == "gpt_oss":
        rows = cb * (7 * m + 2 * h) + 4 * INDEX_BYTES if trainable else cb * (6 * m + h) + 3 * INDEX_BYTES
    else:
        rows = cb * (4 * m + 2 * h) if trainable else cb * (3 * m + h)
        rows += 3 * INDEX_BYTES
    return k * rows * config.capacity_factor + routing_weight_bytes(model) * k


def shared_expert_bytes_per_token(model: ModelSpec, config: TrainConfig) -> int:
    """The shared expert's gated MLP (gate, act(gate), up) and, for Qwen2-MoE, the gated product:
    the shared output and sigmoid(shared_expert_gate) are both kept (modeling_qwen2_moe.py:337-347)."""
    cb = _compute_bytes(config)
    saved = 3 * cb * model.shared_expert_intermediate_size
    if model.shared_expert_gate:
        saved += cb * model.hidden_size + cb
    return saved


def moe_layer_bytes_per_token(model: ModelSpec, config: TrainConfig, trainable: bool) -> dict[Term, float]:
    """One MoE layer's feed-forward block per token, by term (its linear modules' inputs, the
    shared expert's adapters included, are counted with the other linear inputs)."""
    parts = {Term.router_activations: float(router_bytes_per_token(model)),
             Term.routed_activations: routed_bytes_per_token(model, config, trainable)}
    if model.shared_expert_intermediate_size:
        parts[Term.shared_expert_activations] = float(shared_expert_bytes_per_token(model, config))
    return parts


def moe_layer_fixed_bytes(model: ModelSpec, config: TrainConfig, trainable: bool) -> int:
    """Per MoE layer, independent of tokens: the grouped GEMM's int32 offsets, and for an fp32
    router (DeepSeek, GLM-4.5) under autocast the 16-bit copy of its frozen weight that F.linear
    keeps for the input gradient (findings section 3: 2 E h)."""
    fixed = EXPERT_OFFSETS_BYTES if model.model_type not in ("llama4", "llama4_text") else 0
    if model.router_fp32 and _autocast(config) and not trainable:
        fixed += HALF_BYTES * model.num_experts * model.hidden_size
    return fixed


def router_reads_input(kind: LayerKind) -> bool:
    """The router is one more consumer of the MoE block's input (a trainable router under
    autocast keeps its own 16-bit copy of it, like any linear)."""
    return kind.moe


def moe_backward_working_set_per_token(model: ModelSpec, config: TrainConfig, trainable: bool) -> int:
    """Backward temporaries of one MoE block (one layer in isolation, findings section 3,
    ws.py): frozen experts (6k + 2) h with 16-bit routing weights, (14k + 2) h with fp32 ones;
    trainable experts (12k + 4) h. Llama-4 runs E rows per token (its own fit below)."""
    h = model.hidden_size
    k = model.experts_run_per_token()
    if trainable and model.model_type in ("llama4", "llama4_text"):
        # every expert's fp32 output gradients of the bmm, independent of h (trace, tiny llama4_text
        # full ckpt, E = 4 / 8 at h = 256 and E = 4 at h = 384: 2052 E + 2056 B at m = 128)
        return 16 * model.expert_intermediate_size * (k + 1) + 4 * (k + 2)
    if trainable:
        return (12 * k + 4) * h
    return ((14 if model.routing_weights_fp32 else 6) * k + 2) * h


def aux_loss_bytes_per_token(model: ModelSpec, config: TrainConfig) -> int:
    """Router logits of every MoE layer kept for the load-balancing loss (16-bit [tokens, E] per
    layer, traced: +2E per token per MoE layer at the loss), when LLaMA-Factory turns them on."""
    if config.moe_aux_loss_coef is None or model.model_type not in AUX_LOSS_MODEL_TYPES:
        return 0
    moe_layers = sum(count for kind, count in model.layer_kinds() if kind.moe)
    return HALF_BYTES * model.num_experts * moe_layers


def expert_weight_params(model: ModelSpec) -> int:
    """All routed experts of all layers: on every GPU unless ZeRO-3 shards them."""
    return model.expert_params_total()


def experts_trainable(config: TrainConfig) -> bool:
    """Full fine-tuning trains the experts; LoRA (`all` on transformers 5) and freeze's frozen
    layers do not."""
    return config.method == Method.full


def moe_notes(model: ModelSpec, gpus: GpuSet, config: TrainConfig) -> list[str]:
    """What `estimate` says about a mixture-of-experts or multimodal model: which modules
    `lora_target: all` adapts, what is an assumption, what the load does."""
    notes = []
    if model.is_moe:
        if config.uses_lora and "all" in config.lora_targets:
            shared = " and the shared expert" if model.shared_expert_intermediate_size else ""
            notes.append(f"lora_target all adapts the attention{shared} and the dense layers' MLPs, not the routed "
                         "experts or the router: transformers 5 fuses the experts into 3-D parameters, and "
                         "LLaMA-Factory 0.9.5 targets nn.Linear modules only (on transformers 4.57 every expert "
                         "linear would get an adapter; docs/moe.md)")
        cc = gpus.gpu.compute_capability_major
        if cc < 8:
            notes.append(f"assumption: on {gpus.gpu.name} (compute capability < 8.0) transformers runs the experts "
                         "one by one in a Python loop instead of grouped_mm; its per-expert buffers follow the "
                         f"busiest expert, taken as {config.capacity_factor:g} x the mean (--capacity-factor)")
        elif config.capacity_factor != 1.0:
            notes.append(f"capacity factor {config.capacity_factor:g} is your margin: transformers' grouped_mm keeps "
                         "exactly tokens x top-k rows whatever the routing, so 1.0 is exact")
        if model.model_type in ("llama4", "llama4_text"):
            notes.append("Llama-4's MoE runs every expert on every token in transformers (all-expert "
                         "activations and FLOPs, not top-k)")
    if model.checkpoint_quantization:
        notes.append(f"the {model.checkpoint_quantization.upper()} checkpoint is dequantized to bf16 at load "
                     "(LLaMA-Factory 0.9.5): weights are counted at 16 bits")
    if built_whole_under_zero3(model, config):
        notes.append("the load holds the whole model on each GPU before ZeRO-3 shards it (no zero.Init for a "
                     "quantized or dequantized checkpoint): the `load` moment")
    host = load_host_ram_bytes(model, config, gpus.gpus_per_node)
    if host:
        notes.append(f"loading takes {format_gib(host, digits=1)} of host RAM per node (every rank's private "
                     "copy before ZeRO-3 shards it)")
    return notes
