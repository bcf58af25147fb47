"""What the attention variants of 2025 keep for backward, beyond the Llama-style attention of
memory/activations.py: multi-head latent attention (DeepSeek-V2/V3), sliding and chunked windows
under SDPA, and the q/k normalizations of OLMo-2 and Llama-4. Bytes per token per layer.

Sources: transformers 5.24 modelling code, traced on fake tensors (/work/notes/moe/findings.md
section 5; fitplan's own trace, tests/oracle/test_trace_modern.py):
- MLA (modeling_deepseek_v2.py:290-419, modeling_deepseek_v3.py:349-483): q (or q_a -> RMSNorm
  -> q_b), kv_a -> RMSNorm over the kv_lora_rank latent -> kv_b, whose output holds k_nope and
  v as views; k and q are concatenations of their nope and rope parts. The q/k head width
  differs from v's, so on a GPU SDPA runs the memory-efficient kernel (output + fp32
  logsumexp); FlashAttention pads v to the q/k width and crops the output
  (integrations/flash_attention.py:61-66, 96-97).
- Windows under SDPA: when the sequence reaches the window the mask is materialized
  (masking_utils.py:286-287); SDPA with a mask gets no GQA, so transformers repeats k and v to
  every head (integrations/sdpa_attention.py:42-51), and torch turns the boolean mask into a
  16-bit additive one per layer. Below the window the layer is plain causal. FlashAttention
  keeps the window inside the kernel: no mask, no copies.
"""

from __future__ import annotations

from ..problem.config import TrainConfig
from ..problem.knobs import Attention
from ..specs.layers import LayerKind, QkNorm
from ..specs.model import ModelSpec
from ..units import FP32_BYTES

RMSNORM_SAVED_SCALAR_BYTES = 4  # fp32 rsqrt(variance) per normalized vector
MEM_EFFICIENT_LSE_BYTES_PER_HEAD = 4  # fp32 logsumexp per head per token of the memory-efficient kernel
MEM_EFFICIENT_PHILOX_BYTES = 2 * 512  # its int64 philox seed and offset, one 512-B block each, per layer


def qk_norm_bytes(model: ModelSpec, kind: LayerKind, normalized_bytes: int, trainable: bool) -> int:
    """q/k normalization: the fp32 inputs and rsqrt of each normalized vector; a trainable weight
    also keeps the normalized input it multiplies (`normalized_bytes` per element: 16-bit for
    Qwen3's norm, fp32 for the norms that multiply in fp32, Gemma-3 and OLMo-2)."""
    if not model.qk_norm:
        return 0
    q, kv = model.q_dim, model.kv_dim
    if model.qk_norm_kind == QkNorm.l2:
        # Llama4TextL2Norm on RoPE layers only: fp32 q and k, their rsqrt per head, and the 16-bit
        # q it casts back (findings section 5); no weight, so nothing more when training.
        if not kind.rope:
            # NoPE layers scale q by an fp32 per-position temperature (attn_temperature_tuning,
            # modeling_llama4.py) and keep the scale: 4 B per token (traced)
            return FP32_BYTES
        return FP32_BYTES * (q + kv) + RMSNORM_SAVED_SCALAR_BYTES * (model.num_attention_heads + model.num_kv_heads)
    if model.qk_norm_kind == QkNorm.projection:
        scalars = 2 * RMSNORM_SAVED_SCALAR_BYTES  # one rsqrt for the whole q and one for k (OLMo-2)
    else:
        scalars = RMSNORM_SAVED_SCALAR_BYTES * (model.num_attention_heads + model.num_kv_heads)
    saved = FP32_BYTES * (q + kv) + scalars
    if trainable:
        saved += normalized_bytes * (q + kv)
    return saved


def window_masked(model: ModelSpec, kind: LayerKind, attn: Attention, seq_len: int) -> bool:
    """Whether SDPA gets a materialized mask in this layer: a sliding or chunked layer whose
    sequence reaches its window."""
    window = model.window_of(kind)
    return attn == Attention.sdpa and window is not None and seq_len >= window


def window_bytes(model: ModelSpec, kind: LayerKind, attn: Attention, seq_len: int, compute_bytes: int) -> int:
    """A masked window layer under SDPA: the 16-bit additive mask (s per token) and, with GQA,
    k and v repeated to every query head instead of the KV heads (copies unless there is a
    single KV head)."""
    if not window_masked(model, kind, attn, seq_len):
        return 0
    # one KV head (Gemma-3-1B) repeats as a view: expand then reshape of a size-1 dim (traced)
    repeated = 2 * compute_bytes * (model.q_dim - model.kv_dim) if model.num_kv_heads > 1 else 0
    return compute_bytes * seq_len + repeated


def mla_bytes(model: ModelSpec, config: TrainConfig, attn: Attention, compute_bytes: int, probs: int,
              trainable: bool = False) -> int:
    """MLA's attention tensors per token (beyond what its linears keep of their inputs): the
    latent norms' fp32 inputs (and, trainable, their 16-bit normalized outputs), the
    concatenated q and k, and per kernel
    - memory-efficient (sdpa): kv_b's output (v is a view of it), the output, fp32 logsumexp;
    - flash (fa2): v padded to the q/k width, the padded output, fp32 logsumexp;
    - eager: kv_b's output (v's storage) and the probabilities `probs`."""
    cb = compute_bytes
    nh = model.num_attention_heads
    qk = model.q_dim  # nh x (qk_nope + qk_rope)
    v = model.attn_out_dim  # nh x v_head_dim
    nope = nh * (model.head_dim - model.qk_rope_head_dim)
    latents = FP32_BYTES * model.kv_lora_rank + RMSNORM_SAVED_SCALAR_BYTES
    if model.q_lora_rank:
        latents += FP32_BYTES * model.q_lora_rank + RMSNORM_SAVED_SCALAR_BYTES
    if trainable:
        latents += cb * (model.kv_lora_rank + model.q_lora_rank)
    q_and_k = 2 * cb * qk
    if attn == Attention.eager:
        return latents + q_and_k + cb * (nope + v) + probs
    if attn == Attention.fa2:
        return latents + q_and_k + 2 * cb * qk + MEM_EFFICIENT_LSE_BYTES_PER_HEAD * nh
    return latents + q_and_k + cb * (nope + v) + cb * v + MEM_EFFICIENT_LSE_BYTES_PER_HEAD * nh


def checkpointed_mask_bytes(model: ModelSpec, attn: Attention, seq_len: int, stream_bytes: int,
                            layer_kinds: list[LayerKind] | None = None) -> int:
    """Masks the model builds once per forward and hands to every layer, so checkpointing keeps
    them as layer inputs (until the last layer using each has run backward: `layer_kinds` = the
    layers still to come): eager attention builds one 4D mask in the stream dtype per attention
    kind (full, sliding, chunked); SDPA a boolean one per window kind the sequence reaches."""
    present = layer_kinds if layer_kinds is not None else [kind for kind, _ in model.layer_kinds()]
    if attn == Attention.eager:
        return stream_bytes * seq_len * len({kind.attention for kind in present})
    if attn == Attention.sdpa:
        masked = {kind.attention for kind in present if window_masked(model, kind, attn, seq_len)}
        return seq_len * len(masked)
    return 0


def rope_bytes_per_position(model: ModelSpec, stream_bytes: int, checkpointing: bool = False) -> int | None:
    """The rotary tables the model computes once per forward and every layer keeps, per position,
    where they differ from Llama's cos and sin [s, head_dim] in the stream dtype (None: Llama's).
    Traced (dump of saved tensors at the end of the forward, tiny configs, LoRA and full):
    complex64 frequencies of half the rotary width (DeepSeek-V2, Llama-4), fp32 tables (OLMo-2),
    a rotary width below head_dim (DeepSeek-V3: qk_rope_head_dim; gpt-oss: head_dim / 2; GLM-4.5:
    partial_rotary_factor), two tables (Gemma-3: local and global), or none (GLM-4 rebuilds them
    in every layer, `layer_rope_bytes`, and keeps its half-width tables only as checkpoint inputs)."""
    mt = model.model_type
    if mt in ("llama4", "llama4_text"):
        return 4 * model.head_dim
    if mt == "deepseek_v2":
        return 4 * model.qk_rope_head_dim
    if mt == "deepseek_v3":
        return 2 * model.qk_rope_head_dim * stream_bytes
    if mt == "olmo2":
        return 2 * model.head_dim * FP32_BYTES
    if mt == "gpt_oss":
        return model.head_dim * stream_bytes
    if mt == "glm4_moe":
        return 2 * int(model.head_dim * model.partial_rotary_factor) * stream_bytes
    if mt in ("gemma3", "gemma3_text"):
        return 2 * 2 * model.head_dim * stream_bytes
    if mt == "glm4":
        return 2 * int(model.head_dim * model.partial_rotary_factor) * stream_bytes if checkpointing else 0
    return None


def layer_rope_bytes(model: ModelSpec, stream_bytes: int) -> int:
    """GLM-4 interleaves cos and sin to the rotary width inside every layer (`repeat_interleave`,
    modeling_glm4.py): two copies of rotary width per token per layer in the stream dtype (traced)."""
    if model.model_type != "glm4":
        return 0
    return 2 * stream_bytes * int(model.head_dim * model.partial_rotary_factor)


def gemma_norm_fixed_bytes(model: ModelSpec, first_layer: bool) -> int:
    """Gemma-3's RMSNorm multiplies by (1 + w) computed in fp32 on every call and saved, a fixed
    4 x width per norm (rounded to the allocator's 512-B blocks); layer 0's first norm, whose
    input needs no gradient, keeps none (traced)."""
    if model.model_type not in ("gemma3", "gemma3_text"):
        return 0

    def block(nbytes: int) -> int:
        return -(-nbytes // 512) * 512
    norms = (model.norms_per_layer - (1 if first_layer else 0)) * block(FP32_BYTES * model.hidden_size)
    if model.qk_norm:
        norms += 2 * block(FP32_BYTES * model.head_dim)
    return norms


def mla_fixed_bytes(model: ModelSpec, attn: Attention) -> int:
    """The memory-efficient kernel's philox seed and offset, kept per layer (traced)."""
    return MEM_EFFICIENT_PHILOX_BYTES if model.is_mla and attn == Attention.sdpa else 0


def eager_probs_bytes_per_head_key(model: ModelSpec, llama_bytes: int, compute_bytes: int, stream_bytes: int) -> int:
    """Eager attention's saved probabilities per head per key: Llama's fp32 softmax and its 16-bit
    copy (`llama_bytes`), but Llama-4 runs the softmax in the logits' dtype (modeling_llama4.py
    eager_attention_forward: no dtype=float32), which the mask's dtype sets: one 16-bit
    [b, h, s, s] tensor under LoRA, an fp32 one and its 16-bit cast with the fp32 stream of
    full fine-tuning (traced)."""
    if model.model_type in ("llama4", "llama4_text"):
        return stream_bytes + (compute_bytes if stream_bytes != compute_bytes else 0)
    return llama_bytes


def output_copied(model: ModelSpec) -> bool:
    """Whether the attention output is copied before o_proj (a trainable o_proj then keeps the
    copy): where the rotary embedding ends with a concatenation (partial rotary, GLM-4 and
    GLM-4.5; gpt-oss's halves), q leaves in the (b, h, s, d) layout, the
    kernel's output follows it, and `transpose(1, 2).contiguous()` copies (traced: a `clone` of
    2 q per token kept under full fine-tuning, none under LoRA)."""
    return model.model_type in ("glm4", "glm4_moe", "gpt_oss")
