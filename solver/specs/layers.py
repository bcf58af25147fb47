"""The kinds of decoder layer a model mixes, and the parts only some layers have: routed experts
and their router, the shared expert, multi-head latent attention (MLA), sliding or chunked
attention windows, layers without rotary embeddings.

Layers are no longer all alike: DeepSeek-V2-Lite has 1 dense and 26 MoE layers, Gemma-3 five
sliding-window layers per full-attention layer, gpt-oss alternates sliding and full attention,
Llama-4 chunked (RoPE) and full (NoPE) layers. A `ModelSpec` lists its layers as runs of equal
kinds in order (`LayerRun`); the memory and speed sums go over the distinct kinds with their
counts (`ModelSpec.layer_kinds()`), never over every layer.

Where each kind comes from, per family (transformers 5.24 `DecoderLayer.__init__`, read in
/work/notes/models/MODELLING.md item 7): qwen2_moe / qwen3_moe: MoE unless the layer is in
`mlp_only_layers` or `(i + 1) % decoder_sparse_step != 0`; deepseek_v2 / deepseek_v3 /
glm4_moe: MoE from layer `first_k_dense_replace` on (`moe_layer_freq` is not read); llama4:
`moe_layers` (default every `interleave_moe_layer_step`-th layer); mixtral, gpt_oss: every
layer. Attention kinds come from `layer_types` (gemma3, gpt_oss, llama4).
"""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict, Field


class AttentionKind(str, Enum):
    full = "full"  # causal over the whole sequence
    sliding = "sliding"  # causal within `sliding_window` keys (Gemma-3, gpt-oss, Mistral with a window)
    chunked = "chunked"  # causal within fixed chunks of `attention_chunk_size` (Llama-4 RoPE layers)


class LayerKind(BaseModel):
    """One kind of decoder layer: its feed-forward block and its attention."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    moe: bool = False  # routed experts (+ router, + shared expert) instead of a dense MLP
    attention: AttentionKind = AttentionKind.full
    rope: bool = True  # False: Llama-4's NoPE layers (no rotary embedding, no q/k L2 norm)

    def label(self) -> str:
        parts = ["MoE" if self.moe else "dense"]
        if self.attention != AttentionKind.full:
            parts.append(self.attention.value)
        if not self.rope:
            parts.append("NoPE")
        return " ".join(parts)


DENSE_FULL = LayerKind()


class LayerRun(BaseModel):
    """`count` consecutive decoder layers of one kind."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: LayerKind = DENSE_FULL
    count: int = Field(gt=0)


class RouterScoring(str, Enum):
    """How the router turns its logits into the top-k weights; decides what it saves for backward
    (per token per MoE layer, bf16 AMP, /work/notes/moe/findings.md section 3, traced):
    - softmax: fp32 softmax over E, top-k, optional renormalization (`norm_topk_prob`):
      Qwen2/3-MoE `*TopKRouter` (modeling_qwen3_moe.py:250-269), Mixtral (always renormalized,
      modeling_mixtral.py:96-111), DeepSeek-V2 (modeling_deepseek_v2.py:86-117);
    - sigmoid: sigmoid scores plus the `e_score_correction_bias` buffer, group-limited top-k,
      renormalized: DeepSeek-V3 (modeling_deepseek_v3.py:120-158), GLM-4.5 (modeling_glm4_moe.py:269-307);
    - topk_softmax: top-k of the logits, softmax over the k: gpt-oss (modeling_gpt_oss.py:117-130);
    - sigmoid_all: top-k, scatter into -inf, sigmoid over all E: Llama-4 (modeling_llama4.py:141-153).
    """

    softmax = "softmax"
    sigmoid = "sigmoid"
    topk_softmax = "topk_softmax"
    sigmoid_all = "sigmoid_all"


class QkNorm(str, Enum):
    """Which q/k normalization the attention applies (when `ModelSpec.qk_norm`)."""

    per_head = "per_head"  # RMSNorm over each head's head_dim (Qwen3, Gemma-3, GLM-4.5 with use_qk_norm)
    projection = "projection"  # RMSNorm over the whole q and k projection (OLMo-2, modeling_olmo2.py:213-214)
    l2 = "l2"  # weightless L2 norm in Llama-4's RoPE layers (Llama4TextL2Norm)


def runs_from_kinds(kinds: list[LayerKind]) -> tuple[LayerRun, ...]:
    """Consecutive equal kinds merged into runs, in order."""
    runs: list[LayerRun] = []
    for kind in kinds:
        if runs and runs[-1].kind == kind:
            runs[-1] = LayerRun(kind=kind, count=runs[-1].count + 1)
        else:
            runs.append(LayerRun(kind=kind, count=1))
    return tuple(runs)


def describe_runs(runs: tuple[LayerRun, ...]) -> str:
    """The layer kinds with their counts, e.g. '1 dense + 26 MoE layers'."""
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.kind.label()] = counts.get(run.kind.label(), 0) + run.count
    return " + ".join(f"{n} {label}" for label, n in counts.items()) + " layers"
