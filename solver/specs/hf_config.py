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
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from pydantic import ValidationError

from ..errors import ConfigFileError, validation_message
from .model import Family, ModelSpec
from .prequantized import DEQUANTIZED_AT_LOAD, MODELLED_METHODS, Prequantized

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
    """Phi-3: fused qkv_proj and gate_up_proj."""
    return _llama_like(cfg, family=Family.phi3)


def _from_baichuan(cfg: Config) -> dict[str, Any]:
    """Baichuan / Baichuan2 (remote code): multi-head attention through one fused W_pack."""
    return _llama_like(cfg, family=Family.baichuan,
                       max_position_embeddings=cfg.get("max_position_embeddings") or cfg.get("model_max_length") or 4096)


def _from_chatglm(cfg: Config) -> dict[str, Any]:
    """ChatGLM2/3 (remote code): grouped KV heads, qkv bias, untied output_layer."""
    heads = int(_require(cfg, "num_attention_heads"))
    kv_heads = int(cfg["multi_query_group_num"]) if cfg.get("multi_query_attention") else heads
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
}

SUPPORTED_MODEL_TYPES = tuple(_FAMILIES)


def quantization_from_config(cfg: Config, file: Path) -> Prequantized | None:
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


def _read_config(path: Path) -> tuple[Config, Path]:
    file = path / "config.json" if path.is_dir() else path
    if not file.is_file():
        raise ConfigFileError(
            f"no config.json at '{path}': pass a model's config.json or the directory that holds it"
        )
    try:
        cfg = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigFileError(f"cannot read '{file}': {exc}".splitlines()[0]) from exc
    except json.JSONDecodeError as exc:
        raise ConfigFileError(
            f"'{file}' is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
            "download the config.json again"
        ) from exc
    if not isinstance(cfg, dict):
        raise ConfigFileError(f"'{file}' holds no JSON object: a Hugging Face config.json is one object")
    return cfg, file


def model_from_config_file(path: Path, *, hf_id: str = "", revision: str = "") -> ModelSpec:
    """The `ModelSpec` described by a Hugging Face `config.json` (or a directory holding one).

    `official_params` is the count computed from the architecture, since a config file carries
    no published count. A config.json the user gave by path keeps its folder (`local_dir`, what
    LLaMA-Factory's `model_name_or_path` will say); one read from the Hub cache (specs/hub.py) is
    named by its Hub id instead.
    """
    cfg, file = _read_config(Path(path))
    model_type = str(cfg.get("model_type", "")).lower()
    if model_type not in _FAMILIES:
        shown = f"'{cfg['model_type']}'" if cfg.get("model_type") else "no model_type"
        raise ConfigFileError(
            f"{file} has {shown}; supported model types: {', '.join(SUPPORTED_MODEL_TYPES)} "
            "(MoE types are not supported yet)"
        )
    fields = _FAMILIES[model_type](cfg)
    name = hf_id or str(cfg.get("_name_or_path") or file.parent.name or file.stem)
    where = dict(hf_id=hf_id, revision=revision) if hf_id else dict(local_dir=str(file.parent.resolve()))
    try:
        draft = ModelSpec(name=name, model_type=model_type, official_params=1,
                          official_params_source=_COMPUTED, source=str(file), **where,
                          prequantized=quantization_from_config(cfg, file), **fields)
        return draft.model_copy(update={"official_params": draft.total_params()})
    except ValidationError as exc:
        raise ConfigFileError(f"{file}: {validation_message(exc, 'config')}; check the config.json values") from exc
