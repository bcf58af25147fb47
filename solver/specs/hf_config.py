"""Reads a Hugging Face `config.json` into a `ModelSpec`, so users can plan for models the catalog
does not list.

Each supported `model_type` has one small function that maps that family's config keys onto
`ModelSpec` fields. Family quirks live there and nowhere else:

- Qwen1 (`qwen`): `intermediate_size` is the sum of both MLP branches (w1 + w2), so one branch
  is half of it; `kv_channels` is the head width; c_attn has a bias, the other linears do not.
- Baichuan (`baichuan`): fused `W_pack`; 13B uses ALiBi instead of rotary (no parameters either way).
- ChatGLM2/3 (`chatglm`): `ffn_hidden_size` is one branch (dense_h_to_4h outputs twice that),
  `multi_query_group_num` is the number of KV heads, `padded_vocab_size` is the vocabulary.
- Gemma/Gemma-2: embeddings are tied unless the config says otherwise; Gemma-2 has four
  norms per layer and a final logit soft-cap.

The model types of 2025 (issue 13; transformers 5.24 configuration and modelling files, the
details in /work/notes/models/MODELLING.md): MoE layers placed by `mlp_only_layers` /
`decoder_sparse_step` (Qwen), `first_k_dense_replace` (DeepSeek, GLM-4.5) or
`interleave_moe_layer_step` (Llama-4); experts counted as `num_experts`, `num_local_experts` or
`n_routed_experts`; composite models (`gemma3`, `mistral3`, `llama4`) nest the language model in
`text_config` and add a vision tower that LLaMA-Factory keeps frozen; `save_pretrained` writes
only non-default keys, so a missing key takes its config class's default (`_DEFAULTS`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable

from pydantic import ValidationError

from ..errors import ConfigFileError, shown, validation_message
from .files import parse_json_bounded, read_bounded_text
from .layers import AttentionKind, LayerKind, QkNorm, RouterScoring, runs_from_kinds
from .limits import (
    MAX_EXPERTS,
    MAX_HEAD_DIM,
    MAX_HEADS,
    MAX_HIDDEN_SIZE,
    MAX_INTERMEDIATE_SIZE,
    MAX_LAYERS,
    MAX_NAME_CHARS,
    MAX_POSITIONS,
    MAX_VOCAB_SIZE,
)
from .model import Family, ModelSpec
from .prequantized import DEQUANTIZED_AT_LOAD, MODELLED_METHODS, Prequantized
from .vision import vision_params

Config = dict[str, Any]

_COMPUTED = "computed from config.json"


def _require(cfg: Config, *keys: str) -> Any:
    """The first of `keys` present in the config; a one-line error naming them when none is."""
    for key in keys:
        if key in cfg and cfg[key] is not None:
            return cfg[key]
    names = " or ".join(f"'{k}'" for k in keys)
    raise ConfigFileError(
        f"config.json (model_type '{cfg.get('model_type')}') has no {names}: "
        "pass the model's original Hugging Face config.json"
    )


def _attention_heads(cfg: Config) -> tuple[int, int, int]:
    """(query heads, KV heads, head width) for configs in the Llama key convention."""
    hidden = int(_require(cfg, "hidden_size"))
    heads = int(_require(cfg, "num_attention_heads"))
    kv_heads = int(cfg.get("num_key_value_heads") or heads)
    head_dim = int(cfg.get("head_dim") or hidden // heads)
    return heads, kv_heads, head_dim


def _llama_like(cfg: Config, **overrides: Any) -> dict[str, Any]:
    """Fields shared by every config that uses the Llama key names (llama, mistral, qwen2, ...)."""
    heads, kv_heads, head_dim = _attention_heads(cfg)
    fields: dict[str, Any] = dict(
        family=Family.llama,
        hidden_size=_require(cfg, "hidden_size"),
        num_layers=_require(cfg, "num_hidden_layers"),
        num_attention_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        intermediate_size=_require(cfg, "intermediate_size"),
        vocab_size=_require(cfg, "vocab_size"),
        tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        qkv_bias=bool(cfg.get("attention_bias", False)),
        o_bias=bool(cfg.get("attention_bias", False)),
        mlp_bias=bool(cfg.get("mlp_bias", False)),
        max_position_embeddings=cfg.get("max_position_embeddings") or 4096,
    )
    fields.update(overrides)
    return fields


def _from_llama(cfg: Config) -> dict[str, Any]:
    """Llama, CodeLlama, Yi (also its early remote-code `Yi` type) and Mistral."""
    return _llama_like(cfg)


def _from_qwen2(cfg: Config) -> dict[str, Any]:
    """Qwen1.5 / Qwen2 / Qwen2.5: bias on q, k, v only (hard-coded in the modelling code)."""
    return _llama_like(cfg, qkv_bias=True, o_bias=False)


def _from_qwen3(cfg: Config) -> dict[str, Any]:
    """Qwen3: explicit head_dim, RMSNorm on every head's q and k."""
    return _llama_like(cfg, qk_norm=True)


def _from_gemma(cfg: Config) -> dict[str, Any]:
    return _llama_like(cfg, tie_word_embeddings=bool(cfg.get("tie_word_embeddings", True)))


def _from_gemma2(cfg: Config) -> dict[str, Any]:
    """Gemma-2: pre- and post-norms around attention and MLP, tied embeddings, logit soft-cap."""
    return _llama_like(
        cfg,
        tie_word_embeddings=bool(cfg.get("tie_word_embeddings", True)),
        norms_per_layer=4,
        final_logit_softcapping=cfg.get("final_logit_softcapping"),
    )


def _from_phi3(cfg: Config) -> dict[str, Any]:
    """Phi-3 and Phi-4 (both model_type phi3): fused qkv_proj and gate_up_proj."""
    return _llama_like(cfg, family=Family.phi3)


def _from_baichuan(cfg: Config) -> dict[str, Any]:
    """Baichuan / Baichuan2 (remote code): multi-head attention through one fused W_pack."""
    return _llama_like(cfg, family=Family.baichuan,
                       max_position_embeddings=cfg.get("max_position_embeddings") or cfg.get("model_max_length") or 4096)


def _from_chatglm(cfg: Config) -> dict[str, Any]:
    """ChatGLM2/3 (remote code): grouped KV heads, qkv bias, untied output_layer."""
    heads = int(_require(cfg, "num_attention_heads"))
    kv_heads = int(_require(cfg, "multi_query_group_num")) if cfg.get("multi_query_attention") else heads
    hidden = int(_require(cfg, "hidden_size"))
    return dict(
        family=Family.chatglm,
        hidden_size=hidden,
        num_layers=_require(cfg, "num_layers", "num_hidden_layers"),
        num_attention_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=cfg.get("kv_channels") or hidden // heads,
        intermediate_size=_require(cfg, "ffn_hidden_size"),
        vocab_size=_require(cfg, "padded_vocab_size", "vocab_size"),
        tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        qkv_bias=bool(cfg.get("add_qkv_bias", False)),
        o_bias=bool(cfg.get("add_bias_linear", False)),
        mlp_bias=bool(cfg.get("add_bias_linear", False)),
        max_position_embeddings=cfg.get("seq_length") or 8192,
    )


def _from_qwen(cfg: Config) -> dict[str, Any]:
    """Qwen1 (remote code): config intermediate_size covers w1 and w2 together, so halve it."""
    hidden = int(_require(cfg, "hidden_size"))
    return _llama_like(
        cfg,
        family=Family.qwen,
        head_dim=cfg.get("kv_channels") or hidden // int(_require(cfg, "num_attention_heads")),
        intermediate_size=int(_require(cfg, "intermediate_size")) // 2,
        qkv_bias=True,  # c_attn always has a bias; `no_bias` covers the other linears
        o_bias=not cfg.get("no_bias", True),
        mlp_bias=not cfg.get("no_bias", True),
        max_position_embeddings=cfg.get("max_position_embeddings") or cfg.get("seq_length") or 8192,
    )


# ---- the model types of 2025 (MoE, MLA, windows, composite models) ------------------------------

# transformers 5.24 config-class defaults for keys a stripped config.json omits (configuration_<type>.py;
# the table /work/notes/models/count_params.py DEFAULTS was read from the same files).
_DEFAULTS: dict[str, dict[str, Any]] = {
    "qwen3_moe": dict(decoder_sparse_step=1, mlp_only_layers=[], norm_topk_prob=False),
    "qwen2_moe": dict(decoder_sparse_step=1, mlp_only_layers=[], norm_topk_prob=False, qkv_bias=True),
    "gpt_oss": dict(attention_bias=True, head_dim=64, sliding_window=128),
    "deepseek_v2": dict(first_k_dense_replace=0, n_shared_experts=2, norm_topk_prob=False),
    "deepseek_v3": dict(first_k_dense_replace=3, n_shared_experts=1, norm_topk_prob=True),
    "glm4_moe": dict(first_k_dense_replace=1, n_shared_experts=1, norm_topk_prob=True, use_qk_norm=False,
                     partial_rotary_factor=0.5),
    "llama4_text": dict(interleave_moe_layer_step=1, attention_chunk_size=8192, no_rope_layer_interval=4,
                        use_qk_norm=True, head_dim=128),
    "gemma3_text": dict(vocab_size=262_208, head_dim=256, sliding_window=4096, sliding_window_pattern=6),
    "glm4": dict(attention_bias=True, head_dim=128, partial_rotary_factor=0.5),
}
# The wrapper config decides tying (modeling_utils.py:2492 reads the top-level config): gemma3 defaults
# True (configuration_gemma3.py:212), llama4 False. mistral3's class default is True as well
# (configuration_mistral3.py:98), but its checkpoints (Mistral-Small-3.1/3.2) store lm_head.weight beside
# embed_tokens, and from_pretrained does not tie a pair whose two tensors both load with different values
# (modeling_utils.py:2565-2585): the trained model is untied, as its MistralConfig text model says.
_WRAPPER_TIES = {"gemma3": True, "mistral3": False, "llama4": False}
_TEXT_TYPES = {"gemma3": "gemma3_text", "mistral3": "mistral", "llama4": "llama4_text"}


def _with_defaults(cfg: Config, model_type: str) -> Config:
    merged = dict(_DEFAULTS.get(model_type, {}))
    merged.update({k: v for k, v in cfg.items() if v is not None})
    return merged


def _experts(cfg: Config) -> tuple[int, int]:
    """(routed experts, top-k): the three spellings of the expert count, two of top-k."""
    experts = int(_require(cfg, "num_experts", "num_local_experts", "n_routed_experts"))
    top_k = int(_require(cfg, "num_experts_per_tok", "experts_per_token"))
    return experts, top_k


def _partial_rotary(cfg: Config) -> float:
    rope = cfg.get("rope_parameters") or {}
    return float(cfg.get("partial_rotary_factor") or rope.get("partial_rotary_factor") or 1.0)


def _attention_kinds(cfg: Config, layers: int) -> list[AttentionKind]:
    """`layer_types` (sliding_attention / chunked_attention / full_attention) per layer."""
    names = cfg.get("layer_types") or ["full_attention"] * layers
    if len(names) != layers:
        raise ConfigFileError(f"config.json layer_types lists {len(names)} layers, num_hidden_layers is {layers}")
    table = {"full_attention": AttentionKind.full, "sliding_attention": AttentionKind.sliding,
             "chunked_attention": AttentionKind.chunked}
    unknown = sorted({n for n in names if n not in table})
    if unknown:
        raise ConfigFileError(f"config.json layer_types has {', '.join(unknown)}: fitplan models full, sliding "
                              "and chunked attention layers only")
    return [table[n] for n in names]


def _moe_fields(cfg: Config, moe_layers: list[bool], attention: list[AttentionKind] | None = None,
                rope: list[bool] | None = None) -> dict[str, Any]:
    experts, top_k = _experts(cfg)
    n = len(moe_layers)
    attention = attention or [AttentionKind.full] * n
    rope = rope or [True] * n
    kinds = [LayerKind(moe=m, attention=a, rope=r) for m, a, r in zip(moe_layers, attention, rope)]
    return dict(num_experts=experts, experts_per_token=top_k, layer_runs=runs_from_kinds(kinds),
                moe_intermediate_size=int(cfg.get("moe_intermediate_size") or _require(cfg, "intermediate_size")))


def _qwen_moe_layers(cfg: Config) -> list[bool]:
    """Qwen2/3-MoE DecoderLayer: MoE unless in mlp_only_layers or off the decoder_sparse_step grid."""
    layers, step = int(_require(cfg, "num_hidden_layers")), int(cfg["decoder_sparse_step"])
    dense = set(cfg["mlp_only_layers"] or [])
    return [i not in dense and (i + 1) % step == 0 for i in range(layers)]


def _from_qwen3_moe(cfg: Config) -> dict[str, Any]:
    """Qwen3-MoE: Qwen3 attention (q/k norms, explicit head_dim), softmax top-k router."""
    cfg = _with_defaults(cfg, "qwen3_moe")
    return _llama_like(cfg, qk_norm=True, norm_topk_prob=bool(cfg["norm_topk_prob"]),
                       **_moe_fields(cfg, _qwen_moe_layers(cfg)))


def _from_qwen2_moe(cfg: Config) -> dict[str, Any]:
    """Qwen1.5/2-MoE: q/k/v bias (`qkv_bias`), a shared expert scaled by sigmoid(shared_expert_gate)."""
    cfg = _with_defaults(cfg, "qwen2_moe")
    return _llama_like(cfg, qkv_bias=bool(cfg["qkv_bias"]), o_bias=False, norm_topk_prob=bool(cfg["norm_topk_prob"]),
                       shared_expert_intermediate_size=int(_require(cfg, "shared_expert_intermediate_size")),
                       shared_expert_gate=True, **_moe_fields(cfg, _qwen_moe_layers(cfg)))


def _sliding_everywhere(cfg: Config) -> dict[str, Any]:
    """Mistral-style `sliding_window` on every layer (None: full attention)."""
    window = cfg.get("sliding_window")
    return dict(sliding_window=window) if window else {}


def _from_mixtral(cfg: Config) -> dict[str, Any]:
    """Mixtral: every layer MoE, renormalized softmax routing whose weights stay fp32."""
    layers = int(_require(cfg, "num_hidden_layers"))
    window = _sliding_everywhere(cfg)
    attention = [AttentionKind.sliding if window else AttentionKind.full] * layers
    return _llama_like(cfg, norm_topk_prob=True, routing_weights_fp32=True, **window,
                       **_moe_fields(cfg, [True] * layers, attention))


def _from_gpt_oss(cfg: Config) -> dict[str, Any]:
    """gpt-oss: biases on attention, router and experts, a sink per head, alternating sliding (128)
    and full layers, MXFP4 experts in the checkpoint."""
    cfg = _with_defaults(cfg, "gpt_oss")
    layers = int(_require(cfg, "num_hidden_layers"))
    return _llama_like(cfg, router_scoring=RouterScoring.topk_softmax, router_bias=True, expert_bias=True,
                       attention_sinks=True, sliding_window=int(cfg["sliding_window"]),
                       **_moe_fields(cfg, [True] * layers, _attention_kinds(cfg, layers)))


def _from_deepseek(cfg: Config, model_type: str) -> dict[str, Any]:
    """DeepSeek-V2/V3: MLA (`q_lora_rank` null = plain q_proj), `first_k_dense_replace` dense layers,
    `n_shared_experts` x moe_intermediate_size shared experts, fp32 router (V2 softmax with fp32
    weights, V3 sigmoid with a correction bias)."""
    cfg = _with_defaults(cfg, model_type)
    layers = int(_require(cfg, "num_hidden_layers"))
    first_dense = int(cfg["first_k_dense_replace"])
    heads = int(_require(cfg, "num_attention_heads"))
    nope, rope, v = (int(_require(cfg, k)) for k in ("qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim"))
    moe = _moe_fields(cfg, [i >= first_dense for i in range(layers)])
    v2 = model_type == "deepseek_v2"
    return _llama_like(
        cfg, family=Family.deepseek, num_kv_heads=heads, head_dim=nope + rope, qk_rope_head_dim=rope, v_head_dim=v,
        q_lora_rank=int(cfg.get("q_lora_rank") or 0), kv_lora_rank=int(_require(cfg, "kv_lora_rank")),
        shared_expert_intermediate_size=moe["moe_intermediate_size"] * int(cfg["n_shared_experts"]),
        router_scoring=RouterScoring.softmax if v2 else RouterScoring.sigmoid, router_fp32=True,
        routing_weights_fp32=v2, norm_topk_prob=bool(cfg["norm_topk_prob"]), mlp_bias=False, **moe)


def _from_glm4_moe(cfg: Config) -> dict[str, Any]:
    """GLM-4.5: q/k/v bias, optional q/k norm, partial rotary, DeepSeek-V3-style routing."""
    cfg = _with_defaults(cfg, "glm4_moe")
    layers = int(_require(cfg, "num_hidden_layers"))
    moe = _moe_fields(cfg, [i >= int(cfg["first_k_dense_replace"]) for i in range(layers)])
    return _llama_like(cfg, o_bias=False, qk_norm=bool(cfg["use_qk_norm"]), partial_rotary_factor=_partial_rotary(cfg),
                       shared_expert_intermediate_size=moe["moe_intermediate_size"] * int(cfg["n_shared_experts"]),
                       router_scoring=RouterScoring.sigmoid, router_fp32=True,
                       norm_topk_prob=bool(cfg["norm_topk_prob"]), **moe)


def _from_llama4(cfg: Config) -> dict[str, Any]:
    """Llama-4 text: MoE every `interleave_moe_layer_step`-th layer (shared expert of
    intermediate_size, dense layers of intermediate_size_mlp), chunked attention with RoPE and a
    weightless q/k L2 norm, every `no_rope_layer_interval`-th layer NoPE with full attention
    (configuration_llama4.py:165-193)."""
    cfg = _with_defaults(cfg, "llama4_text")
    layers = int(_require(cfg, "num_hidden_layers"))
    step = int(cfg["interleave_moe_layer_step"])
    moe_at = set(cfg.get("moe_layers") or range(step - 1, layers, step))
    interval = int(cfg["no_rope_layer_interval"])
    rope = [bool(r) for r in cfg.get("no_rope_layers") or [int((i + 1) % interval != 0) for i in range(layers)]]
    attention = [AttentionKind.chunked if r else AttentionKind.full for r in rope]
    moe = _moe_fields(cfg, [i in moe_at for i in range(layers)], attention, rope)
    expert_width = int(_require(cfg, "intermediate_size"))
    return _llama_like(cfg, intermediate_size=int(_require(cfg, "intermediate_size_mlp")),
                       **{**moe, "moe_intermediate_size": expert_width},
                       shared_expert_intermediate_size=expert_width, router_scoring=RouterScoring.sigmoid_all,
                       qk_norm=bool(cfg["use_qk_norm"]), qk_norm_kind=QkNorm.l2,
                       attention_chunk_size=int(cfg["attention_chunk_size"]))


def _from_gemma3_text(cfg: Config) -> dict[str, Any]:
    """Gemma-3: four (1 + w) RMSNorms per layer, per-head q/k norms, every `sliding_window_pattern`-th
    layer full attention and the others sliding (configuration_gemma3.py:104-110), tied embeddings."""
    cfg = _with_defaults(cfg, "gemma3_text")
    layers = int(_require(cfg, "num_hidden_layers"))
    if not cfg.get("layer_types"):
        pattern = int(cfg["sliding_window_pattern"])
        cfg["layer_types"] = ["sliding_attention" if (i + 1) % pattern else "full_attention" for i in range(layers)]
    kinds = [LayerKind(attention=a) for a in _attention_kinds(cfg, layers)]
    return _llama_like(cfg, tie_word_embeddings=bool(cfg.get("tie_word_embeddings", True)), norms_per_layer=4,
                       qk_norm=True, sliding_window=int(cfg["sliding_window"]), layer_runs=runs_from_kinds(kinds),
                       final_logit_softcapping=cfg.get("final_logit_softcapping"))


def _from_glm4(cfg: Config) -> dict[str, Any]:
    """GLM-4-0414: four norms, fused gate_up_proj, q/k/v bias, rotary on part of the head."""
    cfg = _with_defaults(cfg, "glm4")
    return _llama_like(cfg, family=Family.glm4, o_bias=False, norms_per_layer=4,
                       partial_rotary_factor=_partial_rotary(cfg))


def _from_olmo2(cfg: Config) -> dict[str, Any]:
    """OLMo-2: norms after attention and MLP only, q/k RMSNorm over the whole projection."""
    return _llama_like(cfg, qk_norm=True, qk_norm_kind=QkNorm.projection, post_norms_only=True)


def _composite(cfg: Config, model_type: str) -> tuple[Config, dict[str, Any]]:
    """A multimodal wrapper: the language model's config, and the frozen vision tower's count."""
    text = dict(cfg.get("text_config") or {})
    text.setdefault("model_type", _TEXT_TYPES[model_type])
    tie = cfg.get("tie_word_embeddings")
    text["tie_word_embeddings"] = _WRAPPER_TIES[model_type] if tie is None else bool(tie)
    return text, dict(vision_params=vision_params(cfg, model_type, int(_require(text, "hidden_size"))))


def _from_gemma3(cfg: Config) -> dict[str, Any]:
    text, extra = _composite(cfg, "gemma3")
    return {**_from_gemma3_text(text), **extra}


def _from_mistral3(cfg: Config) -> dict[str, Any]:
    """Mistral-3 (Mistral-Small-3.1): a Mistral text model and a frozen Pixtral tower."""
    text, extra = _composite(cfg, "mistral3")
    return {**_from_llama(text), **extra}


def _from_llama4_composite(cfg: Config) -> dict[str, Any]:
    text, extra = _composite(cfg, "llama4")
    return {**_from_llama4(text), **extra}


_FAMILIES: dict[str, Callable[[Config], dict[str, Any]]] = {
    "llama": _from_llama,
    "yi": _from_llama,
    "mistral": _from_llama,
    "qwen2": _from_qwen2,
    "qwen3": _from_qwen3,
    "gemma": _from_gemma,
    "gemma2": _from_gemma2,
    "phi3": _from_phi3,
    "baichuan": _from_baichuan,
    "chatglm": _from_chatglm,
    "qwen": _from_qwen,
    "qwen3_moe": _from_qwen3_moe,
    "qwen2_moe": _from_qwen2_moe,
    "mixtral": _from_mixtral,
    "gpt_oss": _from_gpt_oss,
    "deepseek_v2": lambda cfg: _from_deepseek(cfg, "deepseek_v2"),
    "deepseek_v3": lambda cfg: _from_deepseek(cfg, "deepseek_v3"),
    "glm4_moe": _from_glm4_moe,
    "llama4": _from_llama4_composite,
    "llama4_text": _from_llama4,
    "gemma3_text": _from_gemma3_text,
    "gemma3": _from_gemma3,
    "mistral3": _from_mistral3,
    "glm4": _from_glm4,
    "olmo2": _from_olmo2,
}

# Model types fitplan reads but does not model, and what is missing.
_NOT_MODELLED = {
    "qwen3_next": "its gated-deltanet linear-attention layers (3 of every 4): their memory depends on the "
                  "flash-linear-attention kernels a GPU run uses, which the fake-tensor trace cannot run "
                  "(only transformers' torch fallback traces), so fitplan has no checked formula for them",
}

SUPPORTED_MODEL_TYPES = tuple(_FAMILIES)


def quantization_from_config(cfg: Config, file: Path | str) -> Prequantized | None:
    """The checkpoint's `quantization_config` (None without one), or one line refusing a method
    whose storage fitplan does not model (specs/prequantized.py), instead of a wrong figure.

    Keys as transformers 5.6 `GPTQConfig` / `AwqConfig` write them: `quant_method`, `bits`,
    `group_size` (-1 = per-column); AWQ's legacy `w_bit` / `q_group_size` and `version`."""
    quant = cfg.get("quantization_config")
    if not quant:
        return None
    if not isinstance(quant, dict):
        raise ConfigFileError(f"{file}: quantization_config must be an object")
    method = str(quant.get("quant_method", "")).lower()
    if method in DEQUANTIZED_AT_LOAD:
        return Prequantized(method=method, bits=16)
    if method not in MODELLED_METHODS:
        raise ConfigFileError(
            f"{file} is a pre-quantized checkpoint (quantization_config quant_method {method or 'missing'!r}) whose "
            f"storage fitplan does not model (it models {', '.join(MODELLED_METHODS)}); "
            "plan its 16-bit original instead"
        )
    bits = quant.get("bits", quant.get("w_bit"))
    group = quant.get("group_size", quant.get("q_group_size", -1))
    version = str(quant.get("version") or quant.get("format") or "gemm").lower()
    if not isinstance(bits, int) or not isinstance(group, int) or (group < 1 and group != -1):
        raise ConfigFileError(f"{file}: quantization_config needs integer bits and group_size (-1 or positive)")
    if method == "gptq" and bits not in (2, 3, 4, 8):
        raise ConfigFileError(f"{file}: GPTQ with {bits} bits is not modelled (2, 3, 4 or 8)")
    if method == "awq" and (bits != 4 or version != "gemm"):
        raise ConfigFileError(f"{file}: AWQ {bits}-bit {version} is not modelled (4-bit GEMM, the autoawq layout)")
    return Prequantized(method=method, bits=bits, group_size=group)


# The whole numbers the readers take from a config.json (its text_config and vision_config too), with
# the largest each may be (solver/specs/limits.py). A string, list, float, bool or NaN where one of
# these goes is refused in one line before any reader does arithmetic with it.
_POSITIVE_COUNTS = {
    "hidden_size": MAX_HIDDEN_SIZE, "num_hidden_layers": MAX_LAYERS, "num_layers": MAX_LAYERS,
    "num_attention_heads": MAX_HEADS, "num_key_value_heads": MAX_HEADS, "multi_query_group_num": MAX_HEADS,
    "intermediate_size": MAX_INTERMEDIATE_SIZE, "ffn_hidden_size": MAX_INTERMEDIATE_SIZE,
    "intermediate_size_mlp": MAX_INTERMEDIATE_SIZE, "moe_intermediate_size": MAX_INTERMEDIATE_SIZE,
    "vocab_size": MAX_VOCAB_SIZE, "padded_vocab_size": MAX_VOCAB_SIZE,
    "head_dim": MAX_HEAD_DIM, "kv_channels": MAX_HEAD_DIM,
    "num_experts": MAX_EXPERTS, "num_local_experts": MAX_EXPERTS, "n_routed_experts": MAX_EXPERTS,
    "num_experts_per_tok": MAX_EXPERTS, "experts_per_token": MAX_EXPERTS,
    "decoder_sparse_step": MAX_LAYERS, "interleave_moe_layer_step": MAX_LAYERS, "no_rope_layer_interval": MAX_LAYERS,
    "sliding_window_pattern": MAX_LAYERS, "max_position_embeddings": MAX_POSITIONS, "seq_length": MAX_POSITIONS,
    "model_max_length": MAX_POSITIONS, "sliding_window": MAX_POSITIONS, "attention_chunk_size": MAX_POSITIONS,
    "patch_size": MAX_HEAD_DIM, "image_size": MAX_POSITIONS, "num_channels": MAX_HEAD_DIM,
    "spatial_merge_size": MAX_HEAD_DIM,
}
_COUNTS = {  # may be 0
    "first_k_dense_replace": MAX_LAYERS, "n_shared_experts": MAX_EXPERTS, "q_lora_rank": MAX_HIDDEN_SIZE,
    "kv_lora_rank": MAX_HIDDEN_SIZE, "qk_nope_head_dim": MAX_HEAD_DIM, "qk_rope_head_dim": MAX_HEAD_DIM,
    "v_head_dim": MAX_HEAD_DIM, "shared_expert_intermediate_size": MAX_INTERMEDIATE_SIZE,
    "vision_output_dim": MAX_HIDDEN_SIZE, "projector_input_dim": MAX_INTERMEDIATE_SIZE,
    "projector_output_dim": MAX_INTERMEDIATE_SIZE,
}
_FRACTIONS = ("partial_rotary_factor", "final_logit_softcapping")
_INDEX_LISTS = ("mlp_only_layers", "moe_layers", "no_rope_layers")
_NESTED = ("text_config", "vision_config", "rope_parameters")


def _count_problem(key: str, value: object, largest: int, smallest: int) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{key} is {shown(json.dumps(value) if not isinstance(value, str) else repr(value), 40)}, not a whole number"
    if not smallest <= value <= largest:
        return f"{key} {value} is outside {smallest}..{largest:,} (solver/specs/limits.py)"
    return None


def number_problems(cfg: Config, where: str = "") -> list[str]:
    """What is wrong with the numbers of a config.json's keys that the readers use (and those
    of its nested text/vision configs): each a phrase for a one-line error."""
    problems = []
    for key, value in cfg.items():
        if value is None:
            continue
        name = f"{where}{key}"
        if key in _POSITIVE_COUNTS or key in _COUNTS:
            largest = _POSITIVE_COUNTS.get(key) or _COUNTS[key]
            problem = _count_problem(name, value, largest, 1 if key in _POSITIVE_COUNTS else 0)
        elif key in _FRACTIONS:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            problem = None if ok and 0 <= value <= 1e6 else f"{name} is {shown(value, 40)}, not a finite number"
        elif key in _INDEX_LISTS:
            ok = isinstance(value, list) and len(value) <= MAX_LAYERS and all(
                isinstance(v, int) and (not isinstance(v, bool) or key == "no_rope_layers") for v in value)
            problem = None if ok else f"{name} must be a list of at most {MAX_LAYERS} layer numbers"
        elif key == "layer_types":
            ok = isinstance(value, list) and len(value) <= MAX_LAYERS and all(isinstance(v, str) for v in value)
            problem = None if ok else f"{name} must be a list of at most {MAX_LAYERS} layer type names"
        elif key in _NESTED:
            problem = None if isinstance(value, dict) else f"{name} must be an object"
            if problem is None:
                problems += number_problems(value, f"{name}.")
        elif key == "model_type":
            problem = None if isinstance(value, str) else f"{name} must be a string"
        else:
            problem = None
        if problem:
            problems.append(problem)
    return problems


def _read_config(path: Path) -> tuple[Config, Path]:
    try:
        file = path / "config.json" if path.is_dir() else path
        found = file.is_file() or file.is_char_device() or file.is_fifo()
    except OSError as exc:
        raise ConfigFileError(f"cannot read '{shown(path)}': {exc.strerror or exc}") from None
    if not found:
        raise ConfigFileError(
            f"no config.json at '{shown(path)}': pass a model's config.json or the directory that holds it"
        )
    cfg = parse_json_bounded(read_bounded_text(file, "config.json"), file, "model's config.json")
    if not isinstance(cfg, dict):
        raise ConfigFileError(f"'{shown(file)}' holds no JSON object: a Hugging Face config.json is one object")
    return cfg, file


def model_from_config_file(path: Path, *, hf_id: str = "", revision: str = "") -> ModelSpec:
    """The `ModelSpec` described by a Hugging Face `config.json` (or a directory holding one).

    `official_params` is the count computed from the architecture, since a config file carries
    no published count. A config.json the user gave by path keeps its folder (`local_dir`, what
    LLaMA-Factory's `model_name_or_path` will say); one read from the Hub cache (specs/hub.py) is
    named by its Hub id instead.
    """
    cfg, file = _read_config(Path(path))
    stem = file.parent.name if file.name == "config.json" else file.stem
    # the name is shown and written into emitted files: its line breaks escaped, its length bounded
    name = shown(hf_id or str(cfg.get("_name_or_path") or stem or file.stem), MAX_NAME_CHARS)
    where = dict(hf_id=hf_id, revision=revision) if hf_id else dict(local_dir=str(file.parent.resolve()))
    return model_from_config(cfg, name=name, source=str(file), where=where)


def model_from_config(cfg: Config, *, name: str, source: str, where: dict | None = None) -> ModelSpec:
    """The `ModelSpec` of a config.json's contents; `source` names where they came from in errors,
    `where` the Hub id / revision or local folder it was read from."""
    problems = number_problems(cfg)
    if problems:
        raise ConfigFileError(f"{shown(source)}: {problems[0]}; check the config.json values")
    model_type = str(cfg.get("model_type", "")).lower()
    if model_type in _NOT_MODELLED:
        raise ConfigFileError(f"{source} is a {model_type} model; fitplan does not model {_NOT_MODELLED[model_type]}")
    if model_type not in _FAMILIES:
        found = f"model_type '{shown(cfg['model_type'])}'" if cfg.get("model_type") else "no model_type key"
        raise ConfigFileError(
            f"{shown(source)} has {found}, for which fitplan has no config.json reader (its layer layout, module "
            f"names and memory terms are unknown here); supported model types: {', '.join(SUPPORTED_MODEL_TYPES)}"
        )
    try:
        fields = _FAMILIES[model_type](cfg)
    except (TypeError, ValueError, KeyError, IndexError, ZeroDivisionError, OverflowError) as exc:
        if isinstance(exc, ConfigFileError):
            raise
        # number_problems checks every key the readers use; this names anything it missed
        raise ConfigFileError(f"{shown(source)}: a value of this {model_type} config.json cannot be read "
                              f"({type(exc).__name__}: {shown(exc)}); check the config.json values") from None
    try:
        draft = ModelSpec(name=name, model_type=model_type, official_params=1,
                          official_params_source=_COMPUTED, source=source, **(where or {}),
                          prequantized=quantization_from_config(cfg, source), **fields)
        return draft.model_copy(update={"official_params": draft.total_params()})
    except ValidationError as exc:
        raise ConfigFileError(f"{source}: {validation_message(exc, 'config')}; check the config.json values") from exc
