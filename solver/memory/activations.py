"""Bytes that scale with tokens: what the decoder layers save for backward, the logits and loss
buffers, and the working set of one layer's backward.

Source: the tensors Hugging Face modelling code (transformers 5.x LlamaDecoderLayer and kin) saves
for autograd, counted per storage; derived in shared/reference/trace-notes.md Q6 for pure-bf16
runs and re-checked by fitplan's own trace of the real model code (`fitplan trace`,
tests/test_trace_vs_formula.py). Per-token figures are bytes per token per layer unless said.

The dtype rules that decide those bytes (LLaMA-Factory + HF Trainer on a GPU):
- `compute` bytes: 2 under bf16/fp16 autocast, DeepSpeed or pure_bf16; 4 in fp32.
- Autocast (AMP without DeepSpeed) casts each op's fp32 input separately, so LoRA adapters (fp32,
  peft's default `autocast_adapter_dtype=True`) each keep their own 16-bit copy of their input.
- Without autocast, fp32 adapters on a 16-bit base each keep an fp32 copy of their input
  (trace-notes P5); 16-bit adapters (DeepSpeed casts the module) share the input storage.
- Full fine-tuning without DeepSpeed runs the residual stream in fp32 (LLaMA-Factory upcasts the
  trainable embedding), so norms and checkpoints see 4-byte hidden states.
"""

from __future__ import annotations

from enum import Enum

from ..problem.config import TrainConfig
from ..problem.knobs import Attention, Method, Precision
from ..specs.layers import LayerKind
from ..specs.model import Family, MlpKind, ModelSpec
from ..units import FP32_BYTES, HALF_BYTES
from . import attention, levers, liger, moe
from .params import lora_params_per_layer, lora_targets
from .prequantized import largest_dequantized_module_bytes, quantized_in_training
from .states import computes_in_16bit_params, trainable_param_bytes_each

RMSNORM_SAVED_SCALAR_BYTES = 4  # the fp32 rsqrt(variance) per token each RMSNorm keeps
LOSS_BYTES_PER_VOCAB = 12  # fp32 log_softmax output + its grad + grad input (trace-notes P6)
# Gemma-2 final logit soft-capping: tanh keeps its 16-bit output. Settled by the trace
# (gemma2-shaped h=256 V=16384, lora sdpa s=128: logits_loss 14.0 B/vocab/token, not 16).
SOFTCAP_BYTES_PER_VOCAB = 2
# Bytes per vocab entry per token alive at the end of the forward (inside autocast, at nll_loss):
# 16-bit logits + their fp32 upcast + the fp32 log_softmax output. Settled by the trace
# (llama-shaped h=256 V=4096, full ckpt sdpa s=256 b=2: forward/head 10.1 B/vocab/token).
FORWARD_END_LOGITS_BYTES_PER_VOCAB = 10
EAGER_PROBS_BYTES_PER_HEAD_KEY = 6  # fp32 softmax output + its 16-bit copy, per head per key
FLASH_LSE_BYTES_PER_HEAD = 4  # fp32 logsumexp per head per token saved by SDPA-flash / FA2


def effective_attention(model: ModelSpec, config: TrainConfig) -> Attention:
    """Gemma-2 declares no SDPA support in transformers 5 (SDPA cannot soft-cap), so an sdpa run
    is an eager run; fa2 soft-caps inside the kernel and keeps the flash footprint. LLaMA-Factory
    runs every gpt-oss job with the FlashAttention-3 hub kernel whatever `flash_attn` says
    (model/model_utils/attention.py:34-44): the flash footprint."""
    if model.model_type == "gpt_oss":
        return Attention.fa2
    if model.model_type == "gemma2" and config.attn == Attention.sdpa:
        return Attention.eager
    return config.attn


def _fused_qkv(model: ModelSpec) -> bool:
    """One qkv linear whose output q, k and v are views of (Phi-3, ChatGLM, Qwen1, Baichuan)."""
    return model.family in (Family.phi3, Family.chatglm, Family.qwen, Family.baichuan)


def _gemma_norm(model: ModelSpec) -> bool:
    """Gemma-2's RMSNorm computes `norm(x.float()) * (1 + w.float())` in fp32 and returns
    `type_as(x)`: a trainable weight keeps the fp32 normalized input, and the output has the
    input's dtype whatever the weight's. Gemma-3 does the same, and OLMo-2's
    `(self.weight * hidden_states).to(input_dtype)` too (traced: fp32 `mul` inputs kept)."""
    return model.model_type in ("gemma2", "gemma3", "gemma3_text", "olmo2")


class LayerRole(str, Enum):
    trainable = "trainable"  # all weights train (full, and freeze's last layers)
    lora = "lora"  # frozen base with adapters
    frozen_grad = "frozen_grad"  # frozen, but gradients flow through to earlier trainable layers
    frozen_no_grad = "frozen_no_grad"  # frozen and nothing before it trains: saves nothing


def compute_bytes(config: TrainConfig) -> int:
    return FP32_BYTES if config.precision == Precision.fp32 else HALF_BYTES


def _adapters_cast_per_op(config: TrainConfig) -> bool:
    """FSDP1 with LoRA: each adapter is an FSDP unit of its own (peft's fsdp_auto_wrap_policy), so
    when peft reads its weight's dtype to cast the input the unit is not gathered yet and reports
    the fp32 shard: x is cast to fp32, and accelerate's autocast casts it back to 16 bits per
    adapter, as under AMP. Settled by the FSDP1 trace (llama-shaped LoRA, no checkpointing, 8
    ranks: one fp32 and one 16-bit copy per adapter input)."""
    return config.fsdp_strategy is not None and config.fsdp_version == 1 and config.uses_lora


def autocast_on(config: TrainConfig) -> bool:
    """HF Trainer wraps the forward in torch.autocast for bf16/fp16 unless DeepSpeed runs it; under
    FSDP every parameter is gathered in 16 bits, so autocast has nothing to cast or cache."""
    return config.precision in (Precision.bf16, Precision.fp16) and not computes_in_16bit_params(config)


def stream_bytes(config: TrainConfig) -> int:
    """Bytes per element of the residual stream between layers."""
    if (config.method == Method.full and config.precision != Precision.pure_bf16
            and not computes_in_16bit_params(config)):
        return FP32_BYTES  # the trainable embedding was upcast to fp32, so the stream is fp32
    return compute_bytes(config)


def layer_roles(model: ModelSpec, config: TrainConfig) -> list[LayerRole]:
    """The role of each decoder layer, first to last."""
    n = model.num_layers
    if config.method == Method.full:
        return [LayerRole.trainable] * n
    if config.uses_lora:
        return [LayerRole.lora] * n
    n_train = min(config.freeze_layers, n)
    if config.memory_optimizer.value == "badam":
        # BAdam's active block, at the worst place: layer 0, every layer above passing gradients
        return [LayerRole.trainable] + [LayerRole.frozen_grad] * (n - 1)
    # With checkpointing LLaMA-Factory calls enable_input_require_grads(), so grads reach layer 0.
    # The offloaded checkpoint is applied only to layers with trainable parameters and marks the
    # first trainable layer's input as needing grad (checkpointing.py:80-103): frozen layers below
    # run plainly and keep nothing (trace, qwen2-shaped freeze --unsloth-gc).
    frozen = LayerRole.frozen_grad if config.grad_ckpt and not config.unsloth_gc else LayerRole.frozen_no_grad
    return [frozen] * (n - n_train) + [LayerRole.trainable] * n_train


def layer_groups(model: ModelSpec, config: TrainConfig) -> list[tuple[LayerKind, LayerRole, int]]:
    """Every (layer kind, role) the decoder holds with how many layers have it: what the
    per-layer sums go over."""
    roles = layer_roles(model, config)
    counts: dict[tuple[LayerKind, LayerRole], int] = {}
    start = 0
    for run in model.runs():
        for role in set(roles[start:start + run.count]):
            n = sum(1 for r in roles[start:start + run.count] if r == role)
            counts[(run.kind, role)] = counts.get((run.kind, role), 0) + n
        start += run.count
    return [(kind, role, n) for (kind, role), n in counts.items()]


def _norm_bytes(model: ModelSpec, config: TrainConfig, role: LayerRole, on_sublayer_output: bool = False) -> int:
    """One RMSNorm: its fp32 input (upcast copy, or the input itself when already fp32), rsqrt,
    and under a trainable weight the normalized input it multiplies the weight with. A norm on
    a sublayer's 16-bit output (GLM-4's post-attention and post-MLP norms) casts that back to
    16 bits before the weight (trace, glm4-shaped full sdpa: 2h, not the stream's 4h)."""
    h = model.hidden_size
    if _liger_norm(model, config):
        return liger.norm_saved_bytes(h, stream_bytes(config))  # input + rstd, whatever the weight
    saved = FP32_BYTES * h + RMSNORM_SAVED_SCALAR_BYTES
    if role == LayerRole.trainable:
        # Gemma-2: fp32 normalized input (trace, gemma2-shaped freeze eager: 4h per norm).
        if _gemma_norm(model):
            saved += FP32_BYTES * h
        else:
            saved += (compute_bytes(config) if on_sublayer_output else stream_bytes(config)) * h
    return saved


def _liger_norm(model: ModelSpec, config: TrainConfig) -> bool:
    kernels = liger.applied(model, config)
    return kernels is not None and kernels.rms_norm


def _liger_mlp(model: ModelSpec, config: TrainConfig) -> bool:
    kernels = liger.applied(model, config)
    return kernels is not None and kernels.gated_mlp and model.mlp_kind == MlpKind.gated


def _norm_output_bytes(model: ModelSpec, config: TrainConfig, role: LayerRole) -> int:
    """dtype of a norm's output: fp32 when its weight was upcast (trainable, AMP), else the stream's.
    LigerRMSNorm's output has its input's dtype whatever the weight's (ops/rms_norm.py:462)."""
    if _liger_norm(model, config):
        return stream_bytes(config)
    if role == LayerRole.trainable and autocast_on(config) and not _gemma_norm(model):
        return FP32_BYTES
    return stream_bytes(config)


def _linear_input_bytes(model: ModelSpec, config: TrainConfig, role: LayerRole, kind: LayerKind | None = None) -> int:
    """What the linear layers keep of their inputs for weight gradients (frozen linears keep none).
    An MoE layer's router reads the block's input too (memory/moe.py)."""
    cb = compute_bytes(config)
    kind = kind or model.first_layer_kind
    modules = model.linear_modules(kind)
    widths = {"attn_in": model.hidden_size, "attn_out": model.attn_out_dim, "mlp_in": model.hidden_size}
    widths.update({m.input_tensor: m.in_features for m in modules if m.input_tensor not in widths})
    saved = 0
    if role == LayerRole.trainable:
        for tensor, width in widths.items():
            consumers = [m for m in modules if m.input_tensor == tensor]
            if tensor == "mlp_in" and moe.router_reads_input(kind):
                consumers.append(None)
            if not consumers:
                continue
            in_bytes = cb if tensor in ("attn_out", "mlp_mid", "shared_mid") else _norm_output_bytes(model, config, role)
            if tensor == "attn_out" and effective_attention(model, config) != Attention.eager:
                if model.family not in (Family.phi3, Family.chatglm) and not attention.output_copied(model):
                    continue  # o_proj's input is the SDPA output storage, counted with attention
                # Phi-3 class: o_proj gets its own contiguous copy of the SDPA output (trace,
                # phi3-shaped full sdpa: +2q per token per layer).
            if in_bytes != cb and autocast_on(config):
                saved += cb * width * len(consumers)  # each op casts its own copy
            else:
                saved += in_bytes * width  # one shared storage
        return saved
    if role != LayerRole.lora:
        return 0
    targets = lora_targets(model, config, kind)
    rank = config.lora_rank
    dora = levers.dora_saved_per_token(targets, cb) if config.dora else 0  # memory/levers.py
    if autocast_on(config) or _adapters_cast_per_op(config):
        # peft casts x to the fp32 adapter dtype, autocast casts it back to 16-bit per op: one
        # 16-bit copy per adapter, plus the A output.
        return sum((cb * m.in_features + cb * rank) * m.count for m in targets) + dora
    if config.precision == Precision.pure_bf16:
        # peft's default fp32 adapters on a bf16 base, no autocast: each adapter keeps its own
        # fp32 copy of its input and an fp32 A output (trace-notes P5).
        return sum((FP32_BYTES * m.in_features + FP32_BYTES * rank) * m.count for m in targets) + dora
    # Adapters in the compute dtype (DeepSpeed casts the module; fp32 runs) save their input
    # itself: one storage per input tensor, shared by the adapters that read it.
    for tensor in {m.input_tensor for m in targets}:
        if tensor == "attn_out" and effective_attention(model, config) != Attention.eager:
            continue  # the SDPA output storage, counted with attention
        saved += cb * widths[tensor]
    return saved + sum(cb * rank * m.count for m in targets) + dora


def _attention_bytes(model: ModelSpec, config: TrainConfig, role: LayerRole = LayerRole.lora,
                     kind: LayerKind | None = None) -> int:
    """What attention keeps per token: SDPA-flash / FA2 keep q, k, v, the output and an fp32
    logsumexp; eager keeps q, the repeat_kv copies of k and v, and the fp32 + 16-bit
    probabilities (b * heads * s^2 in total, so per token it grows with s).

    With a fused qkv linear, v is a view of the fused output, so that whole storage is what
    stays (trace, phi3-shaped MHA lora sdpa and eager: +2q+2kv per token per layer)."""
    cb = compute_bytes(config)
    nh = model.num_attention_heads
    q, kv = model.q_dim, model.kv_dim
    kind = kind or model.first_layer_kind
    attn = effective_attention(model, config)
    # Qwen3: RMSNorm over each head's q and k keeps fp32 inputs and rsqrt; a trainable weight
    # also keeps its 16-bit normalized input (trace, qwen3-shaped full sdpa: +2(q+kv) per token
    # per layer); OLMo-2 and Llama-4 norm differently (memory/attention.py).
    trainable = role == LayerRole.trainable
    if model.qk_norm and _liger_norm(model, config):
        # LigerRMSNorm keeps the projections' outputs themselves and an fp32 rstd per head
        qk_norm = cb * (q + kv) + RMSNORM_SAVED_SCALAR_BYTES * (nh + model.num_kv_heads)
    else:
        qk_norm = attention.qk_norm_bytes(model, kind, FP32_BYTES if _gemma_norm(model) else cb, trainable)
    if model.is_mla:
        probs = EAGER_PROBS_BYTES_PER_HEAD_KEY * nh * config.seq_len if attn == Attention.eager else 0
        return attention.mla_bytes(model, config, attn, cb, probs, trainable)
    v_bytes = cb * (q + 2 * kv) if _fused_qkv(model) else cb * kv
    if attn == Attention.eager:
        gqa = model.num_kv_heads != nh
        k_saved = cb * (q if gqa else kv)
        v_saved = cb * q if gqa else v_bytes  # repeat_kv copies under GQA, else v itself
        probs = attention.eager_probs_bytes_per_head_key(model, EAGER_PROBS_BYTES_PER_HEAD_KEY, cb,
                                                        stream_bytes(config)) * nh * config.seq_len
        if cb == FP32_BYTES:
            # fp32 runs: softmax(dtype=fp32).to(fp32) is the same storage, so only the fp32
            # probabilities stay (trace, llama-shaped lora eager fp32 s=128: -2 * heads * s)
            probs = FP32_BYTES * nh * config.seq_len
        if model.model_type == "gemma2":
            # attention logit soft-capping keeps tanh's 16-bit output (trace, gemma2-shaped
            # lora eager s=128: +2 * heads * s per token per layer)
            probs += cb * nh * config.seq_len
        return cb * q + k_saved + v_saved + probs + qk_norm
    window = attention.window_bytes(model, kind, attn, config.seq_len, cb) + attention.layer_rope_bytes(model, stream_bytes(config))
    return cb * q + cb * kv + v_bytes + cb * q + FLASH_LSE_BYTES_PER_HEAD * nh + qk_norm + window


def _mlp_bytes(model: ModelSpec, config: TrainConfig) -> int:
    """Gated MLP keeps gate, act(gate) and up outputs; a plain MLP keeps up and act(up)."""
    cb = compute_bytes(config)
    if _liger_mlp(model, config):
        return liger.gated_mlp_saved_bytes(model.intermediate_size, cb)
    branches = 3 if model.mlp_kind == MlpKind.gated else 2
    return branches * cb * model.intermediate_size


def layer_bytes_per_token(model: ModelSpec, config: TrainConfig, role: LayerRole,
                          kind: LayerKind | None = None) -> int:
    """Bytes one layer (of `kind`, default the first layer's) keeps for backward per token,
    without gradient checkpointing."""
    if role == LayerRole.frozen_no_grad:
        return 0
    kind = kind or model.first_layer_kind
    on_outputs = 2 if model.norms_per_layer == 4 else 0  # post-attention and post-MLP norms of sandwich layouts
    norms = ((model.norms_per_layer - on_outputs) * _norm_bytes(model, config, role)
             + on_outputs * _norm_bytes(model, config, role, on_sublayer_output=True))
    if kind.moe:
        feed_forward = sum(moe.moe_layer_bytes_per_token(model, config, role == LayerRole.trainable).values())
    else:
        feed_forward = _mlp_bytes(model, config)
    return int(-(-(norms + _linear_input_bytes(model, config, role, kind) + _attention_bytes(model, config, role, kind)
                   + feed_forward) // 1))


def layer_fixed_bytes(model: ModelSpec, config: TrainConfig, role: LayerRole, kind: LayerKind) -> int:
    """What one layer keeps that does not grow with tokens (MoE: memory/moe.py)."""
    if role == LayerRole.frozen_no_grad:
        return 0
    fixed = attention.gemma_norm_fixed_bytes(model, first_layer=False)
    fixed += attention.mla_fixed_bytes(model, effective_attention(model, config))
    if kind.moe:
        fixed += moe.moe_layer_fixed_bytes(model, config, role == LayerRole.trainable)
    return fixed


def checkpoint_bytes_per_token(model: ModelSpec, config: TrainConfig) -> int:
    """With gradient checkpointing a layer keeps only its input hidden state."""
    return stream_bytes(config) * model.hidden_size


def rope_cache_bytes(model: ModelSpec, config: TrainConfig) -> int:
    """RoPE cos and sin, [1, s, head_dim] each in the stream dtype, made once per forward and
    kept by every layer; independent of the micro batch. Settled by the trace: 2 * head_dim * 2
    bytes per position under LoRA (128 B at head_dim 32), 4-byte elements under full; the
    families whose tables differ in memory/attention.py."""
    per_position = attention.rope_bytes_per_position(model, stream_bytes(config), config.grad_ckpt)
    if per_position is None:
        per_position = 2 * model.head_dim * stream_bytes(config)
    return per_position * config.seq_len


def forward_end_extra_per_token(model: ModelSpec, config: TrainConfig) -> int:
    """The final norm's output, still referenced by the CausalLM forward until it returns: fp32
    under AMP full fine-tuning (fp32 weight), else the stream dtype. Settled by the trace
    (llama/qwen2/phi3-shaped full ckpt s=256 b=2: +4h per token at the forward's end)."""
    if config.method == Method.full and autocast_on(config):
        return FP32_BYTES * model.hidden_size
    return stream_bytes(config) * model.hidden_size


def saved_activations_per_token(model: ModelSpec, config: TrainConfig) -> int:
    """All decoder layers' saved tensors per token at the end of the forward pass, plus the
    final norm, minus layer 0's first norm when nothing before it needs a gradient."""
    h = model.hidden_size
    roles = layer_roles(model, config)
    groups = layer_groups(model, config)
    final_norm = FP32_BYTES * h + RMSNORM_SAVED_SCALAR_BYTES
    first_norm = final_norm
    if _liger_norm(model, config):
        final_norm = first_norm = liger.norm_saved_bytes(h, stream_bytes(config))
    elif config.method == Method.full:
        # the final norm's weight trains too: it keeps its normalized input (trace, llama-shaped
        # full sdpa: +4h per token with the fp32 stream)
        final_norm += (FP32_BYTES if _gemma_norm(model) else stream_bytes(config)) * h
    mask = levers.neat_packing_mask_per_token(config, compute_bytes(config))  # block-diagonal 4D mask
    if config.grad_ckpt:
        per_layer = sum(checkpoint_bytes_per_token(model, config) for r in roles if r != LayerRole.frozen_no_grad)
        if levers.offloads_checkpoints(config):
            # all on the host but layer 0's input, a leaf AccumulateGrad holds when the embedding is
            # frozen (LLaMA-Factory marks it requires_grad); the layer being recomputed is counted
            # in its working set (trace, qwen2-shaped lora and full --unsloth-gc)
            per_layer = 0 if config.method == Method.full else checkpoint_bytes_per_token(model, config)
        eager_mask = 0
        if effective_attention(model, config) == Attention.eager:
            # the 4D mask, kept as a checkpoint input; Gemma-2 passes a sliding-window mask too
            # (trace, gemma2-shaped lora ckpt eager s=256 b=2: 2 masks)
            # in the stream dtype (fp32 under AMP full fine-tuning: trace, llama-shaped full ckpt
            # eager s=256 b=2: 4s per token)
            eager_mask = stream_bytes(config) * config.seq_len * (2 if model.model_type == "gemma2" else 1)
        eager_mask = max(eager_mask, attention.checkpointed_mask_bytes(model, effective_attention(model, config),
                                                                       config.seq_len, stream_bytes(config)))
        return per_layer + final_norm + eager_mask + mask
    total = sum(n * layer_bytes_per_token(model, config, role, kind) for kind, role, n in groups)
    embedding_trains = config.method == Method.full
    first_keeps = next((r for r in roles if r != LayerRole.frozen_no_grad), None)
    if model.post_norms_only:
        pass  # OLMo-2 has no input norm: layer 0 starts with its attention (trace: all layers equal)
    elif _liger_norm(model, config) and first_keeps == LayerRole.trainable:
        pass  # LigerRMSNorm saves its input whenever its weight trains, even without an input gradient
    elif not embedding_trains and first_keeps is not None:
        # The first layer that keeps anything gets an input that needs no grad: its first norm
        # keeps neither the fp32 input nor rsqrt (trace: layer 0 under LoRA, and the first
        # trainable layer under freeze, llama-shaped freeze sdpa: -(4h + 4)).
        total -= first_norm
    return total + final_norm + mask


def saved_activations_fixed_bytes(model: ModelSpec, config: TrainConfig) -> int:
    """Saved tensors that do not grow with tokens: the RoPE cache, and without checkpointing
    what each MoE layer keeps (memory/moe.py)."""
    fixed = rope_cache_bytes(model, config)
    if not config.grad_ckpt:
        fixed += sum(n * layer_fixed_bytes(model, config, role, kind) for kind, role, n in layer_groups(model, config))
        # Gemma-3's (1 + w) of the final norm; none for the first norm of a first layer whose
        # input needs no gradient (as in saved_activations_per_token)
        one_norm = attention.gemma_norm_fixed_bytes(model, False) - attention.gemma_norm_fixed_bytes(model, True)
        fixed += one_norm
        if config.method != Method.full:
            fixed -= one_norm
    return fixed


# Liger runs (no logits to dominate the forward): the last decoder layer's forward, with every
# earlier layer's saved tensors alive, can be the step's peak. In flight at its MLP under LoRA:
# the product c, peft's fp32 cast of it for down_proj's adapter (and under checkpointing, which
# saves nothing, autocast's 16-bit copy of that cast), plus about this many hidden-size vectors
# (residual, norm output, projections). Settled by the trace (qwen2/llama-shaped lora sdpa
# s=256 b=2 with --liger: 8i + 8.1h with checkpointing, 6i + 10.3h without), rounded up.
FORWARD_IN_FLIGHT_PER_HIDDEN_CKPT = 9
FORWARD_IN_FLIGHT_PER_HIDDEN = 11
FORWARD_IN_FLIGHT_PER_HIDDEN_NO_ADAPTERS = 4


def forward_layer_in_flight_per_token(model: ModelSpec, config: TrainConfig) -> int:
    """Bytes per token in flight inside the last decoder layer's forward beyond what earlier
    layers saved (memory/peak.py `forward_last_layer`, a Liger moment; constants above)."""
    h, i = model.hidden_size, model.intermediate_size
    cb = compute_bytes(config)
    if not config.uses_lora:
        # no peft casts: about 4h in flight (trace, phi3/llama-shaped freeze nockpt with --liger)
        return FORWARD_IN_FLIGHT_PER_HIDDEN_NO_ADAPTERS * h + _phi3_fused_chunks(model, config)
    per_hidden = FORWARD_IN_FLIGHT_PER_HIDDEN_CKPT if config.grad_ckpt else FORWARD_IN_FLIGHT_PER_HIDDEN
    cast = 0
    if any(m.input_tensor == "mlp_mid" for m in lora_targets(model, config)):
        cast = FP32_BYTES * i + (cb * i if config.grad_ckpt else 0)
    return cb * i + cast + per_hidden * h + _phi3_fused_chunks(model, config)


def liger_final_norm_per_token(model: ModelSpec, config: TrainConfig) -> int:
    """What LigerRMSNorm keeps at the final norm (freed once its backward has run)."""
    return liger.norm_saved_bytes(model.hidden_size, stream_bytes(config)) if _liger_norm(model, config) else 0


def forward_end_logits_per_token(model: ModelSpec, config: TrainConfig | None = None) -> int:
    """Logits bytes alive at the end of the forward (still inside autocast): 16-bit logits,
    their fp32 upcast and the log_softmax output, plus Gemma-2's soft-capping tanh output.
    `upcast_lmhead_output`: lm_head's hook returns the fp32 cast, so the 16-bit logits die at
    once (trace, llama/qwen2-shaped lora and full: 8 bytes per vocab entry, not 10)."""
    per_vocab = FORWARD_END_LOGITS_BYTES_PER_VOCAB + (SOFTCAP_BYTES_PER_VOCAB if model.final_logit_softcapping else 0)
    if config is not None and config.upcast_lmhead_output:
        per_vocab -= HALF_BYTES
    return per_vocab * model.vocab_size


def dora_weight_norm_bytes(model: ModelSpec, config: TrainConfig) -> int:
    """DoRA's weight-norm buffers while a layer runs its forward (memory/levers.py)."""
    if not (config.dora and config.uses_lora):
        return 0
    return levers.dora_weight_norm_bytes(lora_targets(model, config), trainable_param_bytes_each(config))


def fused_loss_buffers(model: ModelSpec, config: TrainConfig, compute_capability_major: int = 8):
    """Liger's fused linear cross-entropy buffers (memory/liger.py) with this run's dtypes: the
    final norm's output in the stream dtype (LigerRMSNorm keeps its input's dtype), lm_head in
    the trainable dtype when it trains, else 16-bit (fp32 runs: fp32)."""
    if config.method == Method.full:
        weight_bytes = trainable_param_bytes_each(config)
    else:
        weight_bytes = FP32_BYTES if config.precision == Precision.fp32 else HALF_BYTES
    return liger.fused_loss_buffers(model, config, input_bytes=stream_bytes(config), weight_bytes=weight_bytes,
                                    autocast=autocast_on(config), matmul_bytes=HALF_BYTES,
                                    compute_capability_major=compute_capability_major)


def loss_bytes_per_token(model: ModelSpec, config: TrainConfig) -> float:
    """The loss buffers that are made afresh at every micro-step's length, per token (the
    variable-length allocator reserve, memory/overheads.py): Hugging Face's fp32 logits path,
    or Liger's grad_input, per-token buffers and logits chunk."""
    if not liger.fused_loss(model, config):
        return logits_loss_per_token(model)
    flce = fused_loss_buffers(model, config)
    return flce.per_token + flce.chunk / (config.micro_batch * config.seq_len)


def logits_loss_per_token(model: ModelSpec) -> int:
    """HF's loss upcasts the logits to fp32: log_softmax output, its gradient and the gradient
    input are alive together at the start of backward (trace-notes P6)."""
    per_vocab = LOSS_BYTES_PER_VOCAB + (SOFTCAP_BYTES_PER_VOCAB if model.final_logit_softcapping else 0)
    return per_vocab * model.vocab_size


# Eager softmax backward: what one layer holds besides the 12 * heads * s probability buffers
# (fp32 probabilities, their fp32 gradient, the softmax-backward output). Settled by the trace
# (h=256, s=512 and 1024, llama/qwen2/phi3-shaped, ckpt eager): 2.7-4.0 KB/token under LoRA and
# freeze (~16h, the attention side's saved inputs), 0.6-1.7 KB/token under full fine-tuning.
EAGER_SOFTMAX_BACKWARD_BYTES_PER_HEAD_KEY = 12
EAGER_SOFTMAX_BACKWARD_EXTRA_PER_HIDDEN = 16  # x h bytes per token (LoRA, freeze)
EAGER_SOFTMAX_BACKWARD_EXTRA_PER_HIDDEN_FULL = 4  # x h bytes per token (full)
# A frozen layer that passes gradients (freeze + checkpointing, layer 0): trace, mistral/phi3-
# shaped freeze ckpt eager s=128: 11-13h.
EAGER_SOFTMAX_BACKWARD_EXTRA_PER_HIDDEN_FROZEN = 12
# Liger: the norms whose fp32 input copy leaves the recompute moment (input and post-attention
# norms; Gemma-2's two extra norms run with in_place=False and allocate dX). Settled by the trace
# (qwen2/llama/qwen3/mistral-shaped and gemma2-shaped lora ckpt sdpa with --liger).
LIGER_NORMS_WITHOUT_FP32_COPY = 2
LIGER_MLP_BACKWARD_BYTES_PER_INTERMEDIATE = 4
UNSLOTH_BACKWARD_EXTRA_PER_HIDDEN = 16
LIGER_EAGER_SOFTMAX_EXTRA_PER_HIDDEN = 8


def _phi3_fused_chunks(model: ModelSpec, config: TrainConfig) -> int:
    """Phi-3 under Liger: the fused gate_up output stays referenced (as the chunks `gate, up` of
    LigerPhi3SwiGLUMLP.forward) while down_proj runs, beside the contiguous copies SwiGLU saves
    (trace, phi3-shaped lora / freeze / full with --liger: +2i per token)."""
    if any(m.name == "gate_up_proj" for m in model.linear_modules()):
        return 2 * compute_bytes(config) * model.intermediate_size
    return 0


def detached_input_gradient_per_token(model: ModelSpec, config: TrainConfig) -> int:
    """Reentrant checkpointing (LLaMA-Factory's default use_reentrant_gc=True) and the offloaded
    checkpoint back-propagate into a detached copy of the layer input and return its .grad: one
    more hidden-state gradient, alive through the whole of the layer's backward (trace,
    llama/qwen2-shaped lora, freeze, full ckpt sdpa: +2h per token in 16 bits, +4h full; the eager
    softmax backward of mixtral/qwen3_moe/deepseek-shaped full ckpt s=512, layer 0: +4h)."""
    if config.grad_ckpt and (config.reentrant_gc or config.unsloth_gc):
        return stream_bytes(config) * model.hidden_size
    return 0


def layer_backward_working_set_per_token(model: ModelSpec, config: TrainConfig, last: bool = False,
                                         position: int | None = None) -> int:
    """Extra bytes, on top of the saved activations, while one layer runs backward: the first
    layer processed (the last decoder layer), or with `last` the last one processed (layer 0).

    - With checkpointing: the layer's recomputed saved tensors plus its MLP-backward temporaries
      (c + 12h + 4i, trace-notes Q6; re-checked by the trace, lora ckpt sdpa: -0.3 %).
    - Without: the MLP-backward temporaries on top of everything saved (12h + 4i).
    - Eager attention: the softmax backward (12 * heads * s + ~16h) replaces the layer's own saved
      tensors, whichever of the two moments is larger. Settled by the trace (see constants).
    `position` asks for that layer instead (its role and kind).
    """
    h, i = model.hidden_size, model.intermediate_size
    roles = layer_roles(model, config)
    if position is None:  # the first and the last layer that runs backward
        keeping = [k for k, r in enumerate(roles) if r != LayerRole.frozen_no_grad] or [0 if last else len(roles) - 1]
        position = keeping[0] if last else keeping[-1]
    role = roles[position]
    kind = [run.kind for run in model.runs() for _ in range(run.count)][position]
    if role == LayerRole.frozen_no_grad:
        return 0
    own = layer_bytes_per_token(model, config, role, kind)
    recomputed = own if config.grad_ckpt else 0
    # The detached input's gradient of reentrant / offloaded checkpointing (above); a frozen layer
    # under freeze holds one vector less than non-reentrant instead (llama-shaped freeze ckpt eager
    # s=128, layer 0: -2.6h; 2h taken).
    input_grad = 0
    if config.grad_ckpt and config.reentrant_gc and role == LayerRole.frozen_grad:
        recomputed -= stream_bytes(config) * h
    else:
        input_grad = detached_input_gradient_per_token(model, config)
        recomputed += input_grad
    if config.grad_ckpt and config.unsloth_gc:
        # the offloaded checkpoint brings the layer input back (one vector) and recomputes and
        # back-propagates the layer inside its own backward (checkpointing.py:66-75), beside the
        # outer graph's buffers (trace, qwen2/llama-shaped lora ckpt sdpa --unsloth-gc --liger,
        # layer 0: +12.5h and +15.1h)
        recomputed += stream_bytes(config) * h + UNSLOTH_BACKWARD_EXTRA_PER_HIDDEN * h
    if kind.moe:  # the MoE block's backward instead of the dense MLP's (memory/moe.py)
        mlp_moment = recomputed + moe.moe_backward_working_set_per_token(model, config, role == LayerRole.trainable)
    elif _liger_norm(model, config) and _liger_mlp(model, config) and role != LayerRole.lora:
        # Liger, a layer without peft's casts: SwiGLU's backward writes into its saved a, b and
        # RMSNorm's into dY, so the MLP backward holds ~3-3.8 bytes per intermediate element
        # (trace, llama/qwen3/mistral-shaped freeze and full with --liger, ckpt and not),
        # taken at the top of that range.
        mlp_moment = recomputed + LIGER_MLP_BACKWARD_BYTES_PER_INTERMEDIATE * i + _phi3_fused_chunks(model, config)
    else:
        mlp_moment = recomputed + 12 * h + 4 * i
        if config.grad_ckpt and _liger_norm(model, config) and _liger_mlp(model, config):
            # Liger (trace, qwen2/llama-shaped lora ckpt sdpa with --liger: +2i - 8h against the
            # above): the product c stays while the MLP backward runs, and Hugging Face's norms'
            # fp32 input copies (2 x 4h) are gone.
            mlp_moment += (compute_bytes(config) * i - LIGER_NORMS_WITHOUT_FP32_COPY * FP32_BYTES * h
                           + _phi3_fused_chunks(model, config))
    if effective_attention(model, config) == Attention.eager:
        if config.method == Method.full:
            extra = EAGER_SOFTMAX_BACKWARD_EXTRA_PER_HIDDEN_FULL * h
        elif role == LayerRole.frozen_grad:
            extra = EAGER_SOFTMAX_BACKWARD_EXTRA_PER_HIDDEN_FROZEN * h
        else:
            extra = EAGER_SOFTMAX_BACKWARD_EXTRA_PER_HIDDEN * h
        softmax_moment = (EAGER_SOFTMAX_BACKWARD_BYTES_PER_HEAD_KEY * model.num_attention_heads * config.seq_len
                          + extra + input_grad)
        if _liger_norm(model, config):
            # Liger: the layer's norms keep their inputs, not fp32 copies (trace, gemma2-shaped
            # freeze with --liger: +8h against the above, checkpointing or not)
            softmax_moment += LIGER_EAGER_SOFTMAX_EXTRA_PER_HIDDEN * h
        if not config.grad_ckpt:
            softmax_moment -= own  # the layer's own saved tensors are already in the activations
        return max(mlp_moment, softmax_moment)
    return mlp_moment


def _autocast_params_per_layer(model: ModelSpec, config: TrainConfig, kind: LayerKind) -> int:
    """One trainable layer's weights a matmul under autocast reads: its linears, an MoE layer's
    router (F.linear) and Llama-4's experts (bmm); the grouped-GEMM experts of the others are not
    autocast (they run in the weight's dtype, memory/moe.py)."""
    if config.uses_lora:
        return lora_params_per_layer(model, config, kind)
    params = sum(m.params for m in model.linear_modules(kind))
    if kind.moe:
        params += model.router_params(kind)
        if model.model_type in ("llama4", "llama4_text"):
            params += model.expert_params(kind)
    return params


def autocast_copy_params(model: ModelSpec, config: TrainConfig, layers: int | None = None,
                         lm_head: bool = True, kind: LayerKind | None = None) -> int:
    """Parameters autocast caches a 16-bit copy of: every fp32 trainable weight (and bias) a
    matmul reads. Embeddings and norm weights are not cast. Settled by the trace (llama-shaped
    full nock: 6.52 MiB = 2 bytes x (linear + lm_head params), not 2 x all trainable params).
    `layers` = how many trainable decoder layers count (default all), each of `kind` (default
    the last layer's)."""
    if not autocast_on(config):
        return 0
    head = model.vocab_size * model.hidden_size if (config.method == Method.full and lm_head) else 0
    if layers is not None:
        trainable_layers = model.num_layers if config.method != Method.freeze else min(config.freeze_layers,
                                                                                      model.num_layers)
        per_layer = _autocast_params_per_layer(model, config, kind or model.last_layer_kind)
        return min(layers, trainable_layers) * per_layer + head
    total = sum(n * _autocast_params_per_layer(model, config, group_kind)
                for group_kind, role, n in layer_groups(model, config)
                if role in (LayerRole.trainable, LayerRole.lora))
    return total + head


def quantized_dequant_bytes(model: ModelSpec, config: TrainConfig) -> int:
    """bitsandbytes dequantizes one frozen weight to 16-bit for each 4-bit matmul (and the 8-bit
    path holds comparable per-op buffers): the largest linear's weight in 16-bit at a time. GPTQ
    and AWQ kernels dequantize the same way (memory/prequantized.py)."""
    if quantized_in_training(model):
        return largest_dequantized_module_bytes(model)
    if config.bits == 16:
        return 0
    return HALF_BYTES * max(m.in_features * m.out_features for kind, _ in model.layer_kinds()
                            for m in model.linear_modules(kind))


def moe_activation_parts_per_token(model: ModelSpec, config: TrainConfig) -> dict:
    """The MoE blocks' share of `saved_activations_per_token`, by term (memory/moe.py), summed
    over the MoE layers: nothing with checkpointing, where only the layer inputs stay."""
    parts: dict = {}
    if not model.is_moe or config.grad_ckpt:
        return parts
    for kind, role, n in layer_groups(model, config):
        if not kind.moe or role == LayerRole.frozen_no_grad:
            continue
        for term, value in moe.moe_layer_bytes_per_token(model, config, role == LayerRole.trainable).items():
            parts[term] = parts.get(term, 0.0) + n * value
    return {term: int(value) for term, value in parts.items()}
