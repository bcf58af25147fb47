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
from ..specs.model import Family, MlpKind, ModelSpec
from ..units import FP32_BYTES, HALF_BYTES
from .params import lora_params_per_layer, lora_targets
from .states import computes_in_16bit_params

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
    is an eager run; fa2 soft-caps inside the kernel and keeps the flash footprint."""
    if model.model_type == "gemma2" and config.attn == Attention.sdpa:
        return Attention.eager
    return config.attn


def _fused_qkv(model: ModelSpec) -> bool:
    """One qkv linear whose output q, k and v are views of (Phi-3, ChatGLM, Qwen1, Baichuan)."""
    return model.family in (Family.phi3, Family.chatglm, Family.qwen, Family.baichuan)


def _gemma_norm(model: ModelSpec) -> bool:
    """Gemma-2's RMSNorm computes `norm(x.float()) * (1 + w.float())` in fp32 and returns
    `type_as(x)`: a trainable weight keeps the fp32 normalized input, and the output has the
    input's dtype whatever the weight's."""
    return model.model_type == "gemma2"


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
    # With checkpointing LLaMA-Factory calls enable_input_require_grads(), so grads reach layer 0.
    frozen = LayerRole.frozen_grad if config.grad_ckpt else LayerRole.frozen_no_grad
    return [frozen] * (n - n_train) + [LayerRole.trainable] * n_train


def _norm_bytes(model: ModelSpec, config: TrainConfig, role: LayerRole) -> int:
    """One RMSNorm: its fp32 input (upcast copy, or the input itself when already fp32), rsqrt,
    and under a trainable weight the normalized input it multiplies the weight with."""
    h = model.hidden_size
    saved = FP32_BYTES * h + RMSNORM_SAVED_SCALAR_BYTES
    if role == LayerRole.trainable:
        # Gemma-2: fp32 normalized input (trace, gemma2-shaped freeze eager: 4h per norm).
        saved += (FP32_BYTES if _gemma_norm(model) else stream_bytes(config)) * h
    return saved


def _norm_output_bytes(model: ModelSpec, config: TrainConfig, role: LayerRole) -> int:
    """dtype of a norm's output: fp32 when its weight was upcast (trainable, AMP), else the stream's."""
    if role == LayerRole.trainable and autocast_on(config) and not _gemma_norm(model):
        return FP32_BYTES
    return stream_bytes(config)


def _linear_input_bytes(model: ModelSpec, config: TrainConfig, role: LayerRole) -> int:
    """What the linear layers keep of their inputs for weight gradients (frozen linears keep none)."""
    cb = compute_bytes(config)
    widths = {"attn_in": model.hidden_size, "attn_out": model.q_dim, "mlp_in": model.hidden_size,
              "mlp_mid": model.intermediate_size}
    modules = model.linear_modules()
    saved = 0
    if role == LayerRole.trainable:
        for tensor, width in widths.items():
            consumers = [m for m in modules if m.input_tensor == tensor]
            if not consumers:
                continue
            in_bytes = cb if tensor in ("attn_out", "mlp_mid") else _norm_output_bytes(model, config, role)
            if tensor == "attn_out" and effective_attention(model, config) != Attention.eager:
                if model.family not in (Family.phi3, Family.chatglm):
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
    targets = lora_targets(model, config)
    rank = config.lora_rank
    if autocast_on(config) or _adapters_cast_per_op(config):
        # peft casts x to the fp32 adapter dtype, autocast casts it back to 16-bit per op: one
        # 16-bit copy per adapter, plus the A output.
        return sum((cb * m.in_features + cb * rank) * m.count for m in targets)
    if config.precision == Precision.pure_bf16:
        # peft's default fp32 adapters on a bf16 base, no autocast: each adapter keeps its own
        # fp32 copy of its input and an fp32 A output (trace-notes P5).
        return sum((FP32_BYTES * m.in_features + FP32_BYTES * rank) * m.count for m in targets)
    # Adapters in the compute dtype (DeepSpeed casts the module; fp32 runs) save their input
    # itself: one storage per input tensor, shared by the adapters that read it.
    for tensor in {m.input_tensor for m in targets}:
        if tensor == "attn_out" and effective_attention(model, config) != Attention.eager:
            continue  # the SDPA output storage, counted with attention
        saved += cb * widths[tensor]
    return saved + sum(cb * rank * m.count for m in targets)


def _attention_bytes(model: ModelSpec, config: TrainConfig, role: LayerRole = LayerRole.lora) -> int:
    """What attention keeps per token: SDPA-flash / FA2 keep q, k, v, the output and an fp32
    logsumexp; eager keeps q, the repeat_kv copies of k and v, and the fp32 + 16-bit
    probabilities (b * heads * s^2 in total, so per token it grows with s).

    With a fused qkv linear, v is a view of the fused output, so that whole storage is what
    stays (trace, phi3-shaped MHA lora sdpa and eager: +2q+2kv per token per layer)."""
    cb = compute_bytes(config)
    nh = model.num_attention_heads
    q, kv = model.q_dim, model.kv_dim
    qk_norm = 0
    if model.qk_norm:  # Qwen3: RMSNorm over each head's q and k keeps fp32 inputs and rsqrt
        qk_norm = FP32_BYTES * (q + kv) + RMSNORM_SAVED_SCALAR_BYTES * (nh + model.num_kv_heads)
        if role == LayerRole.trainable:
            # a trainable q/k norm weight also keeps its 16-bit normalized input (trace,
            # qwen3-shaped full sdpa: +2(q+kv) per token per layer)
            qk_norm += cb * (q + kv)
    v_bytes = cb * (q + 2 * kv) if _fused_qkv(model) else cb * kv
    if effective_attention(model, config) == Attention.eager:
        gqa = model.num_kv_heads != nh
        k_saved = cb * (q if gqa else kv)
        v_saved = cb * q if gqa else v_bytes  # repeat_kv copies under GQA, else v itself
        probs = EAGER_PROBS_BYTES_PER_HEAD_KEY * nh * config.seq_len
        if cb == FP32_BYTES:
            # fp32 runs: softmax(dtype=fp32).to(fp32) is the same storage, so only the fp32
            # probabilities stay (trace, llama-shaped lora eager fp32 s=128: -2 * heads * s)
            probs = FP32_BYTES * nh * config.seq_len
        if model.model_type == "gemma2":
            # attention logit soft-capping keeps tanh's 16-bit output (trace, gemma2-shaped
            # lora eager s=128: +2 * heads * s per token per layer)
            probs += cb * nh * config.seq_len
        return cb * q + k_saved + v_saved + probs + qk_norm
    return cb * q + cb * kv + v_bytes + cb * q + FLASH_LSE_BYTES_PER_HEAD * nh + qk_norm


def _mlp_bytes(model: ModelSpec, config: TrainConfig) -> int:
    """Gated MLP keeps gate, act(gate) and up outputs; a plain MLP keeps up and act(up)."""
    cb = compute_bytes(config)
    branches = 3 if model.mlp_kind == MlpKind.gated else 2
    return branches * cb * model.intermediate_size


def layer_bytes_per_token(model: ModelSpec, config: TrainConfig, role: LayerRole) -> int:
    """Bytes one layer keeps for backward per token, without gradient checkpointing."""
    if role == LayerRole.frozen_no_grad:
        return 0
    norms = model.norms_per_layer * _norm_bytes(model, config, role)
    return (norms + _linear_input_bytes(model, config, role) + _attention_bytes(model, config, role)
            + _mlp_bytes(model, config))


def checkpoint_bytes_per_token(model: ModelSpec, config: TrainConfig) -> int:
    """With gradient checkpointing a layer keeps only its input hidden state."""
    return stream_bytes(config) * model.hidden_size


def rope_cache_bytes(model: ModelSpec, config: TrainConfig) -> int:
    """RoPE cos and sin, [1, s, head_dim] each in the stream dtype, made once per forward and
    kept by every layer; independent of the micro batch. Settled by the trace: 2 * head_dim * 2
    bytes per position under LoRA (128 B at head_dim 32), 4-byte elements under full."""
    return 2 * model.head_dim * stream_bytes(config) * config.seq_len


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
    final_norm = FP32_BYTES * h + RMSNORM_SAVED_SCALAR_BYTES
    if config.method == Method.full:
        # the final norm's weight trains too: it keeps its normalized input (trace, llama-shaped
        # full sdpa: +4h per token with the fp32 stream)
        final_norm += (FP32_BYTES if _gemma_norm(model) else stream_bytes(config)) * h
    if config.grad_ckpt:
        per_layer = sum(checkpoint_bytes_per_token(model, config) for r in roles if r != LayerRole.frozen_no_grad)
        eager_mask = 0
        if effective_attention(model, config) == Attention.eager:
            # the 4D mask, kept as a checkpoint input; Gemma-2 passes a sliding-window mask too
            # (trace, gemma2-shaped lora ckpt eager s=256 b=2: 2 masks)
            # in the stream dtype (fp32 under AMP full fine-tuning: trace, llama-shaped full ckpt
            # eager s=256 b=2: 4s per token)
            eager_mask = stream_bytes(config) * config.seq_len * (2 if model.model_type == "gemma2" else 1)
        return per_layer + final_norm + eager_mask
    total = sum(layer_bytes_per_token(model, config, r) for r in roles)
    embedding_trains = config.method == Method.full
    if not embedding_trains and any(r != LayerRole.frozen_no_grad for r in roles):
        # The first layer that keeps anything gets an input that needs no grad: its first norm
        # keeps neither the fp32 input nor rsqrt (trace: layer 0 under LoRA, and the first
        # trainable layer under freeze, llama-shaped freeze sdpa: -(4h + 4)).
        total -= FP32_BYTES * h + RMSNORM_SAVED_SCALAR_BYTES
    return total + final_norm


def forward_end_logits_per_token(model: ModelSpec) -> int:
    """Logits bytes alive at the end of the forward (still inside autocast): 16-bit logits,
    their fp32 upcast and the log_softmax output, plus Gemma-2's soft-capping tanh output."""
    per_vocab = FORWARD_END_LOGITS_BYTES_PER_VOCAB + (SOFTCAP_BYTES_PER_VOCAB if model.final_logit_softcapping else 0)
    return per_vocab * model.vocab_size


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


def layer_backward_working_set_per_token(model: ModelSpec, config: TrainConfig, last: bool = False) -> int:
    """Extra bytes, on top of the saved activations, while one layer runs backward: the first
    layer processed (the last decoder layer), or with `last` the last one processed (layer 0).

    - With checkpointing: the layer's recomputed saved tensors plus its MLP-backward temporaries
      (c + 12h + 4i, trace-notes Q6; re-checked by the trace, lora ckpt sdpa: -0.3 %).
    - Without: the MLP-backward temporaries on top of everything saved (12h + 4i).
    - Eager attention: the softmax backward (12 * heads * s + ~16h) replaces the layer's own saved
      tensors, whichever of the two moments is larger. Settled by the trace (see constants).
    """
    h, i = model.hidden_size, model.intermediate_size
    roles = layer_roles(model, config)
    role = roles[0] if last else roles[-1]
    if role == LayerRole.frozen_no_grad:
        return 0
    own = layer_bytes_per_token(model, config, role)
    recomputed = own if config.grad_ckpt else 0
    mlp_moment = recomputed + 12 * h + 4 * i
    if effective_attention(model, config) == Attention.eager:
        if config.method == Method.full:
            extra = EAGER_SOFTMAX_BACKWARD_EXTRA_PER_HIDDEN_FULL * h
        elif role == LayerRole.frozen_grad:
            extra = EAGER_SOFTMAX_BACKWARD_EXTRA_PER_HIDDEN_FROZEN * h
        else:
            extra = EAGER_SOFTMAX_BACKWARD_EXTRA_PER_HIDDEN * h
        softmax_moment = EAGER_SOFTMAX_BACKWARD_BYTES_PER_HEAD_KEY * model.num_attention_heads * config.seq_len + extra
        if not config.grad_ckpt:
            softmax_moment -= own  # the layer's own saved tensors are already in the activations
        return max(mlp_moment, softmax_moment)
    return mlp_moment


def autocast_copy_params(model: ModelSpec, config: TrainConfig, layers: int | None = None,
                         lm_head: bool = True) -> int:
    """Parameters autocast caches a 16-bit copy of: every fp32 trainable weight (and bias) a
    matmul reads. Embeddings and norm weights are not cast. Settled by the trace (llama-shaped
    full nock: 6.52 MiB = 2 bytes x (linear + lm_head params), not 2 x all trainable params).
    `layers` = how many trainable decoder layers count (default all)."""
    if not autocast_on(config):
        return 0
    if config.uses_lora:
        n = model.num_layers if layers is None else layers
        return n * lora_params_per_layer(model, config)
    per_layer = sum(m.params for m in model.linear_modules())
    trainable_layers = model.num_layers if config.method == Method.full else min(config.freeze_layers, model.num_layers)
    n = trainable_layers if layers is None else min(layers, trainable_layers)
    head = model.vocab_size * model.hidden_size if (config.method == Method.full and lm_head) else 0
    return n * per_layer + head


def quantized_dequant_bytes(model: ModelSpec, config: TrainConfig) -> int:
    """bitsandbytes dequantizes one frozen weight to 16-bit for each 4-bit matmul (and the 8-bit
    path holds comparable per-op buffers): the largest linear's weight in 16-bit at a time."""
    if config.bits == 16:
        return 0
    return HALF_BYTES * max(m.in_features * m.out_features for m in model.linear_modules())
