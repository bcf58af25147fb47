"""The model types of 2025 for the trace: the real transformers class for a `ModelSpec` (MoE with
fused experts, MLA, sliding / chunked windows, NoPE layers, composite models), built on `meta`
with the attention kernel a LLaMA-Factory 0.9.5 GPU run uses, and the LoRA targets
LLaMA-Factory's `lora_target: all` picks on it.

Everything the class needs is read from the spec, so the trace checks the spec's numbers against
the real module structure (a module the spec forgot shows up as a difference). Routing choices
that change no memory (DeepSeek-V3 / GLM-4.5 group-limited routing, `routed_scaling_factor`) take
the simplest valid values (`n_group = topk_group = 1`).

Imports torch and transformers: only `oracle.build` imports this module.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext

import torch
from torch import nn

from ..problem.config import TrainConfig
from ..problem.knobs import Attention
from ..specs.layers import AttentionKind, LayerKind
from ..specs.model import ModelSpec
from .kernels import allow_fp32_grouped_mm_on_meta, register_flash, register_mla_efficient

MODERN_TYPES = frozenset({"qwen3_moe", "qwen2_moe", "mixtral", "gpt_oss", "deepseek_v2", "deepseek_v3",
                          "glm4_moe", "llama4", "llama4_text", "gemma3_text", "gemma3", "mistral3", "glm4",
                          "olmo2"})
VISION_TOWER = "fitplan_frozen_vision_tower"

_LAYER_TYPE_NAMES = {AttentionKind.full: "full_attention", AttentionKind.sliding: "sliding_attention",
                     AttentionKind.chunked: "chunked_attention"}


def _kinds(spec: ModelSpec) -> list[LayerKind]:
    return [run.kind for run in spec.runs() for _ in range(run.count)]


def _first_moe_layer(spec: ModelSpec) -> int:
    kinds = _kinds(spec)
    first = next(i for i, kind in enumerate(kinds) if kind.moe)
    if not all(kind.moe for kind in kinds[first:]):
        raise ValueError(f"{spec.model_type} places MoE layers from first_k_dense_replace on; the spec mixes them")
    return first


def hf_config(spec: ModelSpec, notes: list[str]):
    """The transformers 5.24 config of the spec's architecture."""
    import transformers as tf

    kinds = _kinds(spec)
    common = dict(vocab_size=spec.vocab_size, hidden_size=spec.hidden_size, num_hidden_layers=spec.num_layers,
                  num_attention_heads=spec.num_attention_heads, num_key_value_heads=spec.num_kv_heads,
                  head_dim=spec.head_dim, tie_word_embeddings=spec.tie_word_embeddings,
                  max_position_embeddings=spec.max_position_embeddings, use_cache=False, pad_token_id=None,
                  bos_token_id=None, eos_token_id=None)
    moe = dict(num_experts_per_tok=spec.experts_per_token)
    mt = spec.model_type
    if mt == "qwen3_moe":
        return tf.Qwen3MoeConfig(**common, **moe, intermediate_size=spec.intermediate_size,
                                 moe_intermediate_size=spec.expert_intermediate_size, num_experts=spec.num_experts,
                                 norm_topk_prob=spec.norm_topk_prob, decoder_sparse_step=1,
                                 mlp_only_layers=[i for i, k in enumerate(kinds) if not k.moe],
                                 attention_bias=spec.qkv_bias)
    if mt == "qwen2_moe":
        return tf.Qwen2MoeConfig(**common, **moe, intermediate_size=spec.intermediate_size,
                                 moe_intermediate_size=spec.expert_intermediate_size, num_experts=spec.num_experts,
                                 shared_expert_intermediate_size=spec.shared_expert_intermediate_size,
                                 norm_topk_prob=spec.norm_topk_prob, decoder_sparse_step=1,
                                 mlp_only_layers=[i for i, k in enumerate(kinds) if not k.moe], qkv_bias=spec.qkv_bias)
    if mt == "mixtral":
        return tf.MixtralConfig(**common, **moe, intermediate_size=spec.expert_intermediate_size,
                                num_local_experts=spec.num_experts, sliding_window=spec.sliding_window)
    if mt == "gpt_oss":
        return tf.GptOssConfig(**common, **moe, intermediate_size=spec.expert_intermediate_size,
                               num_local_experts=spec.num_experts, sliding_window=spec.sliding_window,
                               layer_types=[_LAYER_TYPE_NAMES[k.attention] for k in kinds],
                               attention_bias=spec.qkv_bias)
    if mt in ("deepseek_v2", "deepseek_v3"):
        rope = spec.qk_rope_head_dim
        mla = dict(q_lora_rank=spec.q_lora_rank or None, kv_lora_rank=spec.kv_lora_rank,
                   qk_nope_head_dim=spec.head_dim - rope, qk_rope_head_dim=rope,
                   v_head_dim=spec.v_head_dim or spec.head_dim, attention_bias=spec.qkv_bias)
        shared = spec.shared_expert_intermediate_size // spec.expert_intermediate_size
        routing = dict(intermediate_size=spec.intermediate_size, moe_intermediate_size=spec.expert_intermediate_size,
                       n_routed_experts=spec.num_experts, n_shared_experts=shared,
                       first_k_dense_replace=_first_moe_layer(spec), norm_topk_prob=spec.norm_topk_prob)
        common.pop("head_dim")
        if mt == "deepseek_v2":
            return tf.DeepseekV2Config(**common, **moe, **mla, **routing, topk_method="greedy")
        notes.append("DeepSeek-V3 routing traced with n_group = topk_group = 1 (routing indices only; no memory).")
        return tf.DeepseekV3Config(**common, **moe, **mla, **routing, n_group=1, topk_group=1)
    if mt == "glm4_moe":
        notes.append("GLM-4.5 routing traced with n_group = topk_group = 1 (routing indices only; no memory).")
        return tf.Glm4MoeConfig(**common, **moe, intermediate_size=spec.intermediate_size,
                                moe_intermediate_size=spec.expert_intermediate_size, n_routed_experts=spec.num_experts,
                                n_shared_experts=spec.shared_expert_intermediate_size // spec.expert_intermediate_size,
                                first_k_dense_replace=_first_moe_layer(spec), norm_topk_prob=spec.norm_topk_prob,
                                attention_bias=spec.qkv_bias, use_qk_norm=spec.qk_norm, n_group=1, topk_group=1,
                                partial_rotary_factor=spec.partial_rotary_factor)
    if mt in ("llama4", "llama4_text"):
        return tf.Llama4TextConfig(**common, **moe, intermediate_size=spec.expert_intermediate_size,
                                   intermediate_size_mlp=spec.intermediate_size, num_local_experts=spec.num_experts,
                                   moe_layers=[i for i, k in enumerate(kinds) if k.moe],
                                   no_rope_layers=[int(k.rope) for k in kinds],
                                   attention_chunk_size=spec.attention_chunk_size or spec.max_position_embeddings,
                                   use_qk_norm=spec.qk_norm, attention_bias=spec.qkv_bias)
    if mt in ("gemma3_text", "gemma3"):
        return tf.Gemma3TextConfig(**common, intermediate_size=spec.intermediate_size,
                                   sliding_window=spec.sliding_window or spec.max_position_embeddings,
                                   layer_types=[_LAYER_TYPE_NAMES[k.attention] for k in kinds],
                                   query_pre_attn_scalar=spec.head_dim,
                                   final_logit_softcapping=spec.final_logit_softcapping, attention_bias=spec.qkv_bias)
    if mt == "mistral3":
        return tf.MistralConfig(**common, intermediate_size=spec.intermediate_size, sliding_window=spec.sliding_window)
    if mt == "glm4":
        return tf.Glm4Config(**common, intermediate_size=spec.intermediate_size, attention_bias=spec.qkv_bias,
                             partial_rotary_factor=spec.partial_rotary_factor)
    if mt == "olmo2":
        return tf.Olmo2Config(**common, intermediate_size=spec.intermediate_size, attention_bias=spec.qkv_bias)
    raise AssertionError(mt)  # pragma: no cover - MODERN_TYPES lists the cases above


def attention_kernel(spec: ModelSpec, config: TrainConfig, notes: list[str]) -> tuple[str, str | None]:
    """(attn_implementation to build with, kernel to run instead or None).

    - gpt-oss: LLaMA-Factory 0.9.5 loads the `kernels-community/vllm-flash-attn3` kernel for
      every gpt-oss run, whatever `flash_attn` says (model/model_utils/attention.py:34-44), and
      the class declares no SDPA (modeling_gpt_oss.py:380): the flash footprint, always.
    - fa2: the flash footprint (mask-free, windows and sinks inside the kernel).
    - MLA under sdpa: the memory-efficient kernel a GPU picks (kernels.register_mla_efficient).
    """
    if spec.model_type == "gpt_oss":
        notes.append("gpt-oss traced with the flash footprint: LLaMA-Factory always runs it with FlashAttention-3 "
                     "(sinks inside the kernel).")
        return "eager", register_flash()
    if config.attn == Attention.eager:
        return "eager", None
    if config.attn == Attention.fa2:
        notes.append("fa2 traced as a causal, mask-free flash kernel (CPU flash SDPA: output + fp32 logsumexp); "
                     "windows are inside the kernel; FA2's backward workspace is not seen.")
        return "sdpa", register_flash()
    if spec.is_mla:
        notes.append("MLA under sdpa traced with the CUDA memory-efficient kernel's meta implementation "
                     "(q/k and v head widths differ: no flash backend on a GPU).")
        return "sdpa", register_mla_efficient()
    return "sdpa", None


def build(spec: ModelSpec, config: TrainConfig, dtype: torch.dtype, notes: list[str]) -> tuple[nn.Module, str]:
    """The causal LM on `meta` (the text model of a composite, with its frozen vision tower as one
    frozen parameter of the same size: text-only training never runs it)."""
    import transformers as tf

    cfg = hf_config(spec, notes)
    build_attn, kernel = attention_kernel(spec, config, notes)
    kwargs = dict(dtype=dtype, attn_implementation=build_attn)
    if spec.is_moe:
        allow_fp32_grouped_mm_on_meta()
    with torch.device("meta"):
        if spec.model_type in ("llama4", "llama4_text"):
            model = tf.Llama4ForCausalLM._from_config(cfg, **kwargs)
        elif spec.model_type in ("gemma3", "gemma3_text"):
            model = tf.Gemma3ForCausalLM._from_config(cfg, **kwargs)
        else:
            model = tf.AutoModelForCausalLM.from_config(cfg, **kwargs)
        if spec.vision_params:
            frozen = nn.Parameter(torch.empty(spec.vision_params, dtype=dtype), requires_grad=False)
            model.register_parameter(VISION_TOWER, frozen)
            notes.append(f"{spec.model_type}: the frozen vision tower and projector are one frozen parameter of "
                         f"{spec.vision_params:,} elements (LLaMA-Factory freezes them; text-only steps never run them).")
    if kernel is not None:
        model.config._attn_implementation = kernel
    return model, kernel or build_attn


def lora_targets(model: nn.Module, spec: ModelSpec, config: TrainConfig) -> list[str]:
    """LLaMA-Factory 0.9.5 `find_all_linear_modules` (model/model_utils/misc.py:28-52): the last
    name of every module whose class name contains "Linear" (not "Embedding"), lm_head excluded.
    On transformers 5 that leaves out the fused routed experts and the custom routers
    (findings section 4). Named targets are passed as given."""
    if "all" not in config.lora_targets:
        return sorted(set(config.lora_targets))
    names = set()
    for name, module in model.named_modules():
        cls = type(module).__name__
        if "lm_head" in name or "Linear" not in cls or "Embedding" in cls:
            continue
        names.add(name.split(".")[-1])
    return sorted(names)


@contextmanager
def peft_as_llamafactory_pins():
    """LLaMA-Factory 0.9.5 pins peft <= 0.18.1, which adapts the named modules as they are. peft
    >= 0.19 (the trace's 0.21) rewrites LoRA targets on transformers-5 MoE models into
    `target_parameters` on the fused experts and drops the shared experts' adapters
    (peft/utils/transformers_weight_conversion.py:485, called from tuners_utils.py:833-849);
    that rewrite is switched off while the trace builds its adapters (findings section 4)."""
    try:
        import peft.utils.transformers_weight_conversion as conversion
    except ImportError:  # peft without the rewrite
        yield
        return
    original = conversion.convert_peft_config_for_transformers
    conversion.convert_peft_config_for_transformers = lambda *args, **kwargs: None
    try:
        yield
    finally:
        conversion.convert_peft_config_for_transformers = original
