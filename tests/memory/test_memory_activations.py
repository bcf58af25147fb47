"""Per-token activation bytes against the traced constants of shared/reference/trace-notes.md Q6
(a training step of the real HF code on fake tensors: transformers 5.23, peft 0.21, pure bf16,
LoRA on all seven linears, peft's fp32 adapters, dropout 0). The table there was measured, not
derived, and matched a real CPU run to the byte."""

import pytest

from fitplan.solver.memory.activations import (
    LayerRole,
    checkpoint_bytes_per_token,
    layer_bytes_per_token,
    logits_loss_per_token,
)
from fitplan.solver.problem.config import make_config
from fitplan.solver.specs.catalog import load_model

# (catalog model, attention, rank, seq) -> bytes per token per layer, trace-notes Q6 table.
TRACED = [
    ("qwen2.5-0.5b", "sdpa", 8, 2048, 81_696),   # qwen2-0.5b has the same layer shapes
    ("qwen2.5-0.5b", "sdpa", 64, 2048, 83_264),
    ("qwen2.5-0.5b", "eager", 8, 512, 125_928),
    ("qwen2.5-0.5b", "eager", 8, 2048, 254_952),
    ("qwen2.5-7b", "sdpa", 8, 2048, 320_856),
    ("qwen2.5-7b", "sdpa", 64, 2048, 322_424),
    ("qwen2.5-7b", "eager", 8, 512, 411_880),
    ("qwen2.5-7b", "eager", 8, 2048, 669_928),
    ("llama-2-7b", "sdpa", 8, 2048, 274_280),
    ("llama-2-7b", "sdpa", 64, 2048, 275_848),
    ("llama-2-7b", "eager", 8, 512, 364_264),
    ("llama-2-7b", "eager", 8, 2048, 659_176),
]


@pytest.mark.parametrize("name,attn,rank,seq,traced", TRACED)
def test_lora_layer_bytes_match_traced_pure_bf16_step(name, attn, rank, seq, traced):
    model = load_model(name)
    config = make_config(method="lora", lora_rank=rank, attn=attn, seq_len=seq, precision="pure_bf16",
                         grad_ckpt=False)
    assert layer_bytes_per_token(model, config, LayerRole.lora) == traced


@pytest.mark.parametrize("name,traced", [("qwen2.5-0.5b", 1_792), ("qwen2.5-7b", 7_168), ("llama-2-7b", 8_192)])
def test_checkpointed_layer_keeps_only_its_bf16_input(name, traced):
    model = load_model(name)
    config = make_config(method="lora", precision="pure_bf16", grad_ckpt=True)
    assert checkpoint_bytes_per_token(model, config) == traced


def test_full_pure_bf16_layer_matches_traced_closed_form():
    # trace-notes Q6 "Full FT, pure bf16: 20h + 8i + 4*kv*d + 4*nh + 8", verified to the byte there.
    model = load_model("qwen2.5-7b")
    h, i, kvd, nh = model.hidden_size, model.intermediate_size, model.kv_dim, model.num_attention_heads
    config = make_config(method="full", precision="pure_bf16", grad_ckpt=False)
    assert layer_bytes_per_token(model, config, LayerRole.trainable) == 20 * h + 8 * i + 4 * kvd + 4 * nh + 8


def test_bf16_adapters_layer_matches_traced_closed_form():
    # trace-notes Q6 "bf16 adapters: 16h + 8i + 4*kv*d + 4*nh + 14r + 8" (sdpa). fitplan's
    # bf16-adapter case is DeepSpeed's, which casts the whole module (adapters too) to bf16.
    model = load_model("llama-2-7b")
    h, i, kvd, nh, r = model.hidden_size, model.intermediate_size, model.kv_dim, model.num_attention_heads, 8
    config = make_config(method="lora", lora_rank=r, precision="bf16", zero_stage=2, n_gpus=2, grad_ckpt=False)
    assert layer_bytes_per_token(model, config, LayerRole.lora) == 16 * h + 8 * i + 4 * kvd + 4 * nh + 14 * r + 8


def test_loss_keeps_twelve_fp32_bytes_per_vocabulary_entry():
    # trace-notes P6: fp32 log_softmax output, its gradient and the gradient input, 12 * V bytes/token.
    model = load_model("qwen2.5-7b")
    assert logits_loss_per_token(model) == 12 * 152_064


def test_frozen_layers_before_any_trainable_layer_keep_nothing_without_checkpointing():
    model = load_model("llama-2-7b")
    config = make_config(method="freeze", grad_ckpt=False)
    assert layer_bytes_per_token(model, config, LayerRole.frozen_no_grad) == 0
