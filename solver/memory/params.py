"""How many parameters train, and which: counts per configuration (LoRA adapters, freeze's
last layers, the largest module ZeRO-3 gathers). Memory and speed both read them.

Source: LoRA adds A (r x d_in) and B (d_out x r) to each targeted linear (Hu et al. 2021,
"LoRA", section 4.1); peft's printed trainable counts are checked in tests (20,185,088 for
Qwen2.5-7B r8 all-linear; 4,194,304 for Llama-2-7B r8 q,v).
"""

from __future__ import annotations

from ..problem.config import TrainConfig
from ..problem.knobs import Method
from ..specs.layers import LayerKind
from ..specs.model import LinearModule, ModelSpec


def lora_targets(model: ModelSpec, config: TrainConfig, kind: LayerKind | None = None) -> list[LinearModule]:
    """The linear modules of one layer (of `kind`) that get a LoRA adapter (`all` = every one:
    on transformers 5 neither the fused routed experts nor the routers, which are no nn.Linear)."""
    return model.modules_matching(config.lora_targets, kind)


def lora_params_per_layer(model: ModelSpec, config: TrainConfig, kind: LayerKind | None = None) -> int:
    """LoRA adds A (r x d_in) and B (d_out x r) to each targeted linear (Hu et al. 2021)."""
    rank, targets = config.lora_rank, config.lora_targets
    return model.memo(("lora_params_per_layer", rank, targets, kind),
                      lambda: sum(rank * (m.in_features + m.out_features) * m.count
                                  for m in model.modules_matching(targets, kind)))


def lora_params(model: ModelSpec, config: TrainConfig) -> int:
    """All layers' adapters, summed over the layer kinds."""
    return model.memo(("lora_params", config.lora_rank, config.lora_targets),
                      lambda: sum(count * lora_params_per_layer(model, config, kind)
                                  for kind, count in model.layer_kinds()))


def last_layers_params(model: ModelSpec, n: int) -> int:
    """Parameters of the last `n` decoder layers (freeze's trainable ones)."""
    total, left = 0, n
    for run in reversed(model.runs()):
        take = min(left, run.count)
        total += take * model.layer_params(run.kind)
        left -= take
        if not left:
            break
    return total


def trainable_params(model: ModelSpec, config: TrainConfig) -> int:
    """Parameters that receive gradients and optimizer states. LLaMA-Factory keeps a vision tower
    and projector frozen under full fine-tuning too (freeze_vision_tower, freeze_multi_modal_projector);
    BAdam trains its active block, one decoder layer at a time (the largest, for memory); DoRA adds
    one magnitude per adapted output feature (peft `dora.py:64`)."""
    key = ("trainable_params", config.method, config.memory_optimizer, config.freeze_layers, config.dora,
           config.lora_rank, config.lora_targets)  # every field read below
    return model.memo(key, lambda: _trainable_params(model, config))


def _trainable_params(model: ModelSpec, config: TrainConfig) -> int:
    if config.method == Method.full and config.memory_optimizer.value == "badam":
        return model.largest_layer_params()
    if config.method == Method.full:
        return model.total_params() - model.vision_params
    if config.method == Method.freeze:
        return last_layers_params(model, min(config.freeze_layers, model.num_layers))
    magnitudes = 0
    if config.dora:
        magnitudes = sum(count * sum(m.out_features * m.count for m in lora_targets(model, config, kind))
                         for kind, count in model.layer_kinds())
    return lora_params(model, config) + magnitudes


def frozen_params(model: ModelSpec, config: TrainConfig) -> int:
    """Base parameters that are only read: all of them for LoRA, the frozen layers for freeze, a
    full fine-tuning's frozen vision tower (BAdam: every layer but the active block too)."""
    if config.method in (Method.full, Method.freeze):
        return model.total_params() - trainable_params(model, config)
    return model.total_params()


def largest_layer_params(model: ModelSpec) -> int:
    """The largest single module ZeRO-3 must gather whole: a decoder layer (an MoE layer with all
    its experts: LLaMA-Factory makes the MoE block one ZeRO-3 leaf) or the embedding."""
    return max(model.largest_layer_params(), model.embedding_params(), model.lm_head_params())
