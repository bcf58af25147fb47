"""Small models with each family's real layer structure and ratios (few layers, small hidden),
used to hold the memory formula to the trace quickly (tests/test_trace_*.py, benchmarks).
No torch needed to build them."""

from ..specs.model import Family, ModelSpec


def small_model(name: str, **fields) -> ModelSpec:
    base = dict(name=name, model_type="llama", family=Family.llama, hidden_size=256, num_layers=3,
                num_attention_heads=8, num_kv_heads=8, head_dim=32, intermediate_size=688, vocab_size=4096,
                tie_word_embeddings=False, official_params=1, official_params_source="test",
                source="test: small model with the family's layer structure")
    base.update(fields)
    return ModelSpec(**base)


SMALL_MODELS = {
    # Llama-2: MHA, i/h = 11008/4096
    "llama-mha": small_model("llama-mha"),
    # Qwen2/2.5: GQA 7:1-ish, q/k/v biases, wide MLP (18944/3584), large vocab
    "qwen2-gqa": small_model("qwen2-gqa", model_type="qwen2", num_kv_heads=2, qkv_bias=True,
                             intermediate_size=1352, vocab_size=8192),
    # Qwen3: q/k RMSNorm, head_dim larger than h / heads
    "qwen3": small_model("qwen3", model_type="qwen3", num_kv_heads=2, qk_norm=True, head_dim=64,
                         intermediate_size=768, vocab_size=8192),
    # Mistral: GQA 4:1, i/h = 14336/4096
    "mistral": small_model("mistral", model_type="mistral", num_kv_heads=2, intermediate_size=896),
    # Gemma-2: 4 norms per layer, soft-capping, tied embeddings, big vocab
    "gemma2": small_model("gemma2", model_type="gemma2", num_kv_heads=4, norms_per_layer=4,
                          final_logit_softcapping=30.0, tie_word_embeddings=True, intermediate_size=1152,
                          vocab_size=16384),
    # Phi-3: fused qkv_proj and gate_up_proj
    "phi3": small_model("phi3", model_type="phi3", family=Family.phi3),
}


# The model types of 2025, as config.json contents read by the same reader users' files go
# through (specs/hf_config.py), at the shapes of /work/notes/moe/tiny.py: h 256, 4 heads x 64,
# 2 KV heads, dense MLP 512, expert width 128, 8 experts, top-2, shared expert 256, 3-4 layers.
_TINY = dict(vocab_size=4096, hidden_size=256, num_attention_heads=4, num_key_value_heads=2, head_dim=64,
             intermediate_size=512, max_position_embeddings=4096, tie_word_embeddings=False, num_hidden_layers=3)
_MOE = dict(moe_intermediate_size=128, num_experts_per_tok=2)
_TINY_CONFIGS = {
    # Qwen3-30B-A3B-shaped: layer 0 dense (mlp_only_layers) to cover both kinds
    "qwen3_moe": dict(_TINY, **_MOE, num_experts=8, norm_topk_prob=True, mlp_only_layers=[0]),
    "qwen2_moe": dict(_TINY, **_MOE, num_experts=8, shared_expert_intermediate_size=256, mlp_only_layers=[0]),
    "mixtral": dict(_TINY, intermediate_size=128, num_local_experts=8, num_experts_per_tok=2),
    "gpt_oss": dict(_TINY, intermediate_size=128, num_local_experts=8, num_experts_per_tok=2, sliding_window=64,
                    layer_types=["sliding_attention", "full_attention", "sliding_attention"]),
    # DeepSeek-V2-Lite-shaped: no q LoRA, greedy softmax routing, 1 dense layer, 2 shared experts
    "deepseek_v2": dict(_TINY, **_MOE, num_key_value_heads=4, n_routed_experts=8, n_shared_experts=2,
                        first_k_dense_replace=1, q_lora_rank=None, kv_lora_rank=64, qk_nope_head_dim=32,
                        qk_rope_head_dim=16, v_head_dim=32),
    # DeepSeek-V3-shaped: q LoRA, sigmoid routing
    "deepseek_v3": dict(_TINY, **_MOE, num_key_value_heads=4, n_routed_experts=8, n_shared_experts=1,
                        first_k_dense_replace=1, q_lora_rank=96, kv_lora_rank=64, qk_nope_head_dim=32,
                        qk_rope_head_dim=16, v_head_dim=32),
    "glm4_moe": dict(_TINY, **_MOE, n_routed_experts=8, n_shared_experts=1, first_k_dense_replace=1,
                     attention_bias=True),
    # Llama-4 text, Maverick-like: MoE every 2nd layer, chunked RoPE layers, layer 3 NoPE
    "llama4_text": dict(_TINY, num_hidden_layers=4, intermediate_size=128, intermediate_size_mlp=512,
                        num_local_experts=4, num_experts_per_tok=1, interleave_moe_layer_step=2,
                        attention_chunk_size=64, no_rope_layer_interval=4, use_qk_norm=True),
    "gemma3_text": dict(_TINY, vocab_size=8192, tie_word_embeddings=True, sliding_window=64,
                        layer_types=["sliding_attention", "sliding_attention", "full_attention"]),
    "gemma3": dict(text_config=dict(_TINY, model_type="gemma3_text", vocab_size=8192, sliding_window=64,
                                    layer_types=["sliding_attention", "sliding_attention", "full_attention"]),
                   vision_config=dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, image_size=64,
                                      patch_size=16, vision_use_head=False)),
    "mistral3": dict(text_config=dict(_TINY, model_type="mistral"), tie_word_embeddings=False,
                     vision_config=dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, patch_size=16)),
    "glm4": dict(_TINY, attention_bias=True),
    "olmo2": dict(_TINY, num_key_value_heads=4),
}


def _tiny(model_type: str) -> ModelSpec:
    from ..specs.hf_config import model_from_config

    return model_from_config({"model_type": model_type, **_TINY_CONFIGS[model_type]}, name=f"tiny-{model_type}",
                             source="test: tiny config with the family's layer structure (oracle/small_models.py)")


MODERN_SMALL_MODELS = {model_type: _tiny(model_type) for model_type in _TINY_CONFIGS}
