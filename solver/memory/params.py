"""How many parameters train, and which: counts per configuration (LoRA adapters, freeze's
last layers, the largest module ZeRO-3 gathers). Memory and speed both read them.

Source: LoRA adds A (r x d_in) and B (d_out x r) to each targeted linear (Hu et al. 2021,
"LoRA", section 4.1); peft's printed trainable counts are checked in tests (20,185,088 for
Qwen2.5-7B r8 all-linear; 4,194,304 for Llama-2-7B r8 q,v).
"""

from __future__ import annotations

from ..problem.config import TrainConfig
from ..problem.knobs import Method
from ..specs.model import LinearModule, ModelSpec


def lora_targets(model: ModelSpec, config: TrainConfig) -> list[LinearModule]:
    """The linear modules of one layer that get a LoRA adapter (`all` = every one)."""
    return model.modules_matching(config.lora_targets)


def lora_params_per_layer(model: ModelSpec, config: TrainConfig) -> int:
    """LoRA adds A (r x d_in) and B (d_out x r) to each targeted linear (Hu et al. 2021)."""
    return sum(config.lora_rank * (m.in_features + m.out_features) * m.count
               for m in lora_targets(model, config))


def trainable_params(model: ModelSpec, config: TrainConfig) -> int:
    """Parameters that receive gradients and optimizer states (BAdam: its active block, one
    decoder layer at a time; DoRA: + one magnitude per adapted output feature, peft `dora.py:64`)."""
    if config.method == Method.full and config.memory_optimizer.value == "badam":
        return model.layer_params()
    if config.method == Method.full:
        return model.total_params()
    if config.method == Method.freeze:
        return min(config.freeze_layers, model.num_layers) * model.layer_params()
    magnitudes = sum(m.out_features * m.count for m in lora_targets(model, config)) if config.dora else 0
    return model.num_layers * (lora_params_per_layer(model, config) + magnitudes)


def frozen_params(model: ModelSpec, config: TrainConfig) -> int:
    """Base parameters that are only read: all of them for LoRA, the frozen layers for freeze
    (BAdam: every layer but the active block)."""
    if config.method == Method.full and config.memory_optimizer.value == "badam":
        return model.total_params() - trainable_params(model, config)
    if config.method == Method.full:
        return 0
    if config.method == Method.freeze:
        return model.total_params() - trainable_params(model, config)
    return model.total_params()


def largest_layer_params(model: ModelSpec) -> int:
    """The largest single module ZeRO-3 must gather whole: a decoder layer or the embedding."""
    return max(model.layer_params(), model.embedding_params(), model.lm_head_params())
