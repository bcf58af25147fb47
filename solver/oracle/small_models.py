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
