"""Parameters of the vision tower and projector a multimodal config.json brings with its language
model (Gemma-3: SigLIP; Mistral-3: Pixtral; Llama-4: its own encoder). LLaMA-Factory 0.9.5 keeps
both frozen by default (`freeze_vision_tower`, `freeze_multi_modal_projector` default True,
hparams/finetuning_args.py:527-534) and text-only training never runs them, so they cost their
16-bit weights on every GPU and nothing else: memory reports them as frozen weights on their own
line.

Counts follow the module definitions of transformers 5.24 (modeling_siglip.py:116-630,
modeling_pixtral.py:157-395, modeling_llama4.py:1003-1031; read for
/work/notes/models/MODELLING.md items 15-17, where they match the classes built on `meta`
exactly). Keys a vision_config omits take the vision config class's default (`_DEFAULTS`).
"""

from __future__ import annotations

from typing import Any

_DEFAULTS: dict[str, dict[str, Any]] = {
    "siglip_vision_model": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_channels=3,
                                image_size=224, patch_size=16, vision_use_head=True),
    "pixtral": dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_channels=3, patch_size=16),
    "llama4_vision_model": dict(hidden_size=768, intermediate_size=5632, num_hidden_layers=34, num_channels=3,
                                image_size=448, patch_size=14, vision_output_dim=7680, projector_input_dim=4096,
                                projector_output_dim=4096),
}
_VISION_TYPES = {"gemma3": "siglip_vision_model", "mistral3": "pixtral", "llama4": "llama4_vision_model"}


def _linear(d_in: int, d_out: int, bias: bool = False) -> int:
    return d_in * d_out + (d_out if bias else 0)


def _siglip(v: dict) -> int:
    h, inter, patch = v["hidden_size"], v["intermediate_size"], v["patch_size"]
    embeddings = v["num_channels"] * patch * patch * h + h + (v["image_size"] // patch) ** 2 * h
    layer = 4 * _linear(h, h, True) + 2 * 2 * h + _linear(h, inter, True) + _linear(inter, h, True)
    head = 0
    if v["vision_use_head"]:  # SiglipMultiheadAttentionPoolingHead
        head = h + 3 * h * h + 3 * h + _linear(h, h, True) + 2 * h + _linear(h, inter, True) + _linear(inter, h, True)
    return embeddings + v["num_hidden_layers"] * layer + 2 * h + head


def _pixtral(v: dict) -> int:
    h, inter, patch = v["hidden_size"], v["intermediate_size"], v["patch_size"]
    layer = 4 * h * h + 2 * h * inter + inter * h + 2 * h
    return v["num_channels"] * patch * patch * h + h + v["num_hidden_layers"] * layer


def _llama4_vision(v: dict) -> int:
    h, inter, patch = v["hidden_size"], v["intermediate_size"], v["patch_size"]
    positions = (v["image_size"] // patch) ** 2 + 1
    embeddings = v["num_channels"] * patch * patch * h + h + positions * h
    layer = 4 * _linear(h, h, True) + _linear(h, inter, True) + _linear(inter, h, True) + 2 * 2 * h
    adapter = _linear(inter, v["projector_input_dim"]) + _linear(v["projector_output_dim"], v["projector_output_dim"])
    return embeddings + 2 * 2 * h + v["num_hidden_layers"] * layer + adapter


def vision_params(cfg: dict, model_type: str, text_hidden: int) -> int:
    """The vision tower plus the projector into the language model's hidden size."""
    raw = dict(cfg.get("vision_config") or {})
    vision_type = raw.get("model_type") or _VISION_TYPES[model_type]
    v = {**_DEFAULTS.get(vision_type, {}), **{k: val for k, val in raw.items() if val is not None}}
    vh = v["hidden_size"]
    if model_type == "gemma3":
        # mm_input_projection_weight [vision_hidden, text_hidden] + mm_soft_emb_norm [vision_hidden]
        return _siglip(v) + vh * text_hidden + vh
    if model_type == "llama4":
        return _llama4_vision(v) + _linear(v["vision_output_dim"], text_hidden)  # multi_modal_projector.linear_1
    # mistral3: RMSNorm(vh) + patch merger [vh * s^2, vh] + linear_1 [vh * feature layers, H] + linear_2 [H, H]
    bias = bool(cfg.get("multimodal_projector_bias", False))
    merge = int(cfg.get("spatial_merge_size", 2))
    layers = cfg.get("vision_feature_layer", -1)
    feature_layers = 1 if isinstance(layers, int) else len(layers)
    projector = vh + vh * merge * merge * vh + _linear(vh * feature_layers, text_hidden, bias) + _linear(
        text_hidden, text_hidden, bias)
    return _pixtral(v) + projector
