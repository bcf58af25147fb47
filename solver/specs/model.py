"""What the memory and speed models need to know about a transformer: the architecture numbers
of its Hugging Face `config.json`, and the linear modules one decoder layer holds.

The module names follow each family's modelling code, because they are the names users pass
to LLaMA-Factory's `lora_target` (e.g. `q_proj,v_proj` for Llama, `c_attn` for Qwen1,
`W_pack` for Baichuan, `query_key_value` for ChatGLM).
"""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from . import limits
from .layers import DENSE_FULL, AttentionKind, LayerKind, LayerRun, QkNorm, RouterScoring, describe_runs
from .prequantized import Prequantized


class NormType(str, Enum):
    rmsnorm = "rmsnorm"
    layernorm = "layernorm"


class MlpKind(str, Enum):
    gated = "gated"  # SwiGLU / GeGLU: gate and up projections, then down
    plain = "plain"  # up, activation, down


class Family(str, Enum):
    """Module layout family: decides the names and fusion of the per-layer linear modules."""

    llama = "llama"  # Llama, CodeLlama, Yi, Mistral, Qwen2/2.5/3, Gemma-2: q,k,v,o,gate,up,down
    qwen = "qwen"  # Qwen1 (remote code): c_attn (fused qkv), attn.c_proj, w1, w2, mlp.c_proj
    baichuan = "baichuan"  # Baichuan/Baichuan2 (remote code): W_pack (fused qkv), o_proj, gate,up,down
    chatglm = "chatglm"  # ChatGLM2/3 (remote code): query_key_value, dense, dense_h_to_4h (fused), dense_4h_to_h
    phi3 = "phi3"  # Phi-3: qkv_proj (fused), o_proj, gate_up_proj (fused), down_proj
    glm4 = "glm4"  # GLM-4-0414: q,k,v,o, gate_up_proj (fused), down_proj
    deepseek = "deepseek"  # MLA: q_proj (or q_a_proj, q_b_proj), kv_a_proj_with_mqa, kv_b_proj, o_proj; gate,up,down


class LinearModule(BaseModel):
    """One `nn.Linear` inside a decoder layer: what LLaMA-Factory's `lora_target` can name and
    bitsandbytes can quantize. Routed experts are not linear modules in transformers 5 (fused 3-D
    parameters, see `ModelSpec.expert_params`); routers are not either."""

    model_config = ConfigDict(frozen=True)

    name: str
    in_features: int
    out_features: int
    bias: bool
    # which activation feeds it: attn_in, attn_out, mlp_in, mlp_mid; MLA's q_latent and
    # kv_latent (the q_a / kv_a layernorm outputs); shared_mid (the shared expert's act * up)
    input_tensor: str
    count: int = 1  # how many copies per layer

    @property
    def weight_params(self) -> int:
        return self.in_features * self.out_features * self.count

    @property
    def params(self) -> int:
        return (self.in_features * self.out_features + (self.out_features if self.bias else 0)) * self.count


class ModelVariant(BaseModel):
    """Another named model with its catalog entry's architecture: the chat/instruct (or base)
    release of the same config.json numbers, with its own Hub id and chat template."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str  # e.g. qwen-7b-chat
    hf_id: str  # e.g. Qwen/Qwen-7B-Chat
    aliases: list[str] = Field(default_factory=list)
    template: str | None = None  # LLaMA-Factory 0.9.5 `template` for it
    lf_model: str | None = None  # LLaMA-Factory's name for it (extras/constants.py), when it registers it
    template_note: str = ""  # why `template`, where LLaMA-Factory registers none (default: the entry's, same template)
    source: str = ""  # why it has the entry's architecture, where that is not the same config.json


class ModelSpec(BaseModel):
    """A decoder-only transformer, as its `config.json` describes it. Validated on load.

    A catalog entry is one architecture with the named models that share it (`variants`); resolving
    a variant's name gives the entry with that variant's name, Hub id and template (`variant_of`
    names the entry). Memory and speed read only the architecture fields, so a variant's estimate
    is the entry's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    aliases: list[str] = Field(default_factory=list)
    hf_id: str = ""  # e.g. Qwen/Qwen2.5-7B: the Hub id of this named model
    template: str | None = None  # LLaMA-Factory 0.9.5 chat template; None = not known (config.json models)
    lf_model: str | None = None  # LLaMA-Factory's name for it (catalogs/llamafactory_0.9.5_templates.yaml)
    template_note: str = ""  # why `template`, where LLaMA-Factory registers no template for this model
    variants: list[ModelVariant] = Field(default_factory=list)
    variant_of: str = ""  # the catalog entry a variant belongs to ("" for an entry itself)
    local_dir: str = ""  # the folder of the config.json the user gave by path
    revision: str = ""  # Hub revision the config.json was read at (Hub ids only)
    model_type: str  # config.json model_type (llama, qwen2, qwen3, mistral, gemma2, phi3, qwen, baichuan, chatglm)
    family: Family
    hidden_size: int = Field(gt=0, le=limits.MAX_HIDDEN_SIZE)  # bounds: specs/limits.py
    num_layers: int = Field(gt=0, le=limits.MAX_LAYERS)
    num_attention_heads: int = Field(gt=0, le=limits.MAX_HEADS)
    num_kv_heads: int = Field(gt=0, le=limits.MAX_HEADS)
    head_dim: int = Field(gt=0, le=limits.MAX_HEAD_DIM)  # q/k head width (MLA: qk_nope_head_dim + qk_rope_head_dim)
    intermediate_size: int = Field(gt=0, le=limits.MAX_INTERMEDIATE_SIZE)  # per-branch width of the dense MLP (Qwen1: config value / 2)
    vocab_size: int = Field(gt=0, le=limits.MAX_VOCAB_SIZE)
    tie_word_embeddings: bool
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    norm_type: NormType = NormType.rmsnorm
    norms_per_layer: int = 2  # Gemma-2/3 and GLM-4 have 4 (pre/post attention and feed-forward)
    qk_norm: bool = False  # Qwen3: RMSNorm on each head's q and k
    mlp_kind: MlpKind = MlpKind.gated
    num_experts: int = Field(default=0, ge=0, le=limits.MAX_EXPERTS)  # routed experts per MoE layer; 0 = dense
    experts_per_token: int = Field(default=0, ge=0, le=limits.MAX_EXPERTS)  # top-k
    final_logit_softcapping: float | None = None  # Gemma-2
    max_position_embeddings: int = Field(default=4096, gt=0, le=limits.MAX_POSITIONS)
    official_params: int = Field(gt=0)  # published parameter count
    official_params_rounded_to: int = Field(default=0, ge=0)  # the published count is rounded ("3.8B": 100_000_000)
    official_params_source: str
    source: str  # where the architecture numbers come from (config.json URL or path)
    prequantized: Prequantized | None = None  # config.json `quantization_config` (GPTQ, AWQ, ...)
    # ---- layers that are not all alike (specs/layers.py) ----
    layer_runs: tuple[LayerRun, ...] = ()  # in order; () = num_layers equal layers (MoE iff num_experts)
    # ---- MoE (transformers 5: experts fused into 3-D parameters) ----
    moe_intermediate_size: int = Field(default=0, ge=0, le=limits.MAX_INTERMEDIATE_SIZE)  # one routed expert's width (0: intermediate_size)
    shared_expert_intermediate_size: int = Field(default=0, ge=0, le=limits.MAX_INTERMEDIATE_SIZE)  # the shared expert's width, 0 = none
    shared_expert_gate: bool = False  # Qwen2-MoE: sigmoid(Linear(h, 1)) scales the shared expert
    router_scoring: RouterScoring = RouterScoring.softmax
    norm_topk_prob: bool = False  # the top-k weights are renormalized to sum to 1
    router_bias: bool = False  # gpt-oss
    router_fp32: bool = False  # router weight kept fp32 (_keep_in_fp32_modules_strict: DeepSeek, GLM-4.5)
    routing_weights_fp32: bool = False  # the top-k weights stay fp32 into the experts (Mixtral, DeepSeek-V2)
    expert_bias: bool = False  # gpt-oss: gate_up_proj_bias [E, 2m], down_proj_bias [E, h]
    # ---- attention variants ----
    q_lora_rank: int = Field(default=0, ge=0)  # MLA: 0 = a plain q_proj (DeepSeek-V2-Lite)
    kv_lora_rank: int = Field(default=0, ge=0)  # MLA latent width; 0 = not MLA
    qk_rope_head_dim: int = Field(default=0, ge=0)  # MLA: the rotary part of head_dim
    v_head_dim: int = Field(default=0, ge=0)  # MLA: value head width (0: head_dim)
    sliding_window: int | None = Field(default=None, gt=0)  # keys a sliding layer attends to
    attention_chunk_size: int | None = Field(default=None, gt=0)  # Llama-4 chunked layers
    attention_sinks: bool = False  # gpt-oss: a learned sink logit per head
    qk_norm_kind: QkNorm = QkNorm.per_head
    post_norms_only: bool = False  # OLMo-2: norms on the sublayer outputs, no input norm
    partial_rotary_factor: float = Field(default=1.0, gt=0, le=1)  # GLM-4: rotary on half the head
    # ---- what else the checkpoint holds ----
    vision_params: int = Field(default=0, ge=0)  # frozen vision tower + projector (Gemma-3, Mistral-3)

    # The per-layer tables (runs, layer kinds, linear modules, LoRA target lists, parameters per
    # layer kind) are asked hundreds of thousands of times per recommend query; the spec is frozen,
    # so each is computed once, keyed by its arguments. model_copy starts a copy with none.
    _cache: dict | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _heads_divide(self) -> "ModelSpec":
        if self.num_attention_heads % self.num_kv_heads:
            raise ValueError(
                f"num_attention_heads {self.num_attention_heads} is not a multiple of "
                f"num_kv_heads {self.num_kv_heads}"
            )
        if self.num_experts and not self.experts_per_token:
            raise ValueError("an MoE model needs experts_per_token")
        if self.experts_per_token > self.num_experts:
            raise ValueError(f"experts_per_token {self.experts_per_token} exceeds num_experts {self.num_experts}")
        if self.layer_runs:
            if sum(run.count for run in self.layer_runs) != self.num_layers:
                raise ValueError(f"layer_runs count {sum(r.count for r in self.layer_runs)} layers, "
                                 f"num_layers is {self.num_layers}")
            if any(run.kind.moe for run in self.layer_runs) and not self.num_experts:
                raise ValueError("layer_runs has MoE layers but num_experts is 0")
        windowed = {run.kind.attention for run in self.runs()}
        if AttentionKind.sliding in windowed and not self.sliding_window:
            raise ValueError("sliding-window layers need sliding_window")
        if AttentionKind.chunked in windowed and not self.attention_chunk_size:
            raise ValueError("chunked-attention layers need attention_chunk_size")
        return self

    def memo(self, key: tuple, compute):
        """`compute()`, once per `key` for this spec: the tables derived from a frozen architecture
        (per layer kind, per LoRA target list), which the search asks for hundreds of thousands of
        times per query."""
        cache = self.__pydantic_private__
        table = cache.get("_cache")
        if table is None:
            table = cache["_cache"] = {}
        if key not in table:
            table[key] = compute()
        return table[key]

    def model_copy(self, *, update=None, deep: bool = False) -> "ModelSpec":
        """pydantic's copy, without the per-layer tables: an update may change the architecture."""
        copied = super().model_copy(update=update, deep=deep)
        object.__setattr__(copied, "__pydantic_private__", {"_cache": None})
        return copied

    def __eq__(self, other: object) -> bool:
        """Equal architecture and names; the per-layer tables computed so far do not count."""
        if not isinstance(other, ModelSpec):
            return NotImplemented
        return type(self) is type(other) and self.__dict__ == other.__dict__

    @property
    def model_name_or_path(self) -> str:
        """What LLaMA-Factory's `model_name_or_path` should say: the folder of a config.json given
        by path, else the Hub id of the model the user named, else the name."""
        return self.local_dir or self.hf_id or self.name

    def named(self, variant: ModelVariant) -> "ModelSpec":
        """This entry as `variant` names it: same architecture, the variant's name, Hub id and template."""
        return self.model_copy(update={
            "name": variant.name, "aliases": list(variant.aliases), "hf_id": variant.hf_id,
            "template": variant.template, "lf_model": variant.lf_model,
            "template_note": variant.template_note or (self.template_note if variant.template == self.template else ""),
            "variants": [], "variant_of": self.name})
    # ---- the layers --------------------------------------------------------------------------
    def runs(self) -> tuple[LayerRun, ...]:
        """The decoder layers as runs of equal kinds, first to last."""
        if self.layer_runs:
            return self.layer_runs
        return self.memo(("runs",), lambda: (LayerRun(kind=LayerKind(moe=self.num_experts > 0),
                                                          count=self.num_layers),))

    def layer_kinds(self) -> tuple[tuple[LayerKind, int], ...]:
        """Each distinct layer kind with how many layers have it (first appearance order): what
        every per-layer sum goes over."""
        def kinds() -> tuple[tuple[LayerKind, int], ...]:
            counts: dict[LayerKind, int] = {}
            for run in self.runs():
                counts[run.kind] = counts.get(run.kind, 0) + run.count
            return tuple(counts.items())

        return self.memo(("kinds",), kinds)

    @property
    def first_layer_kind(self) -> LayerKind:
        return self.runs()[0].kind

    @property
    def last_layer_kind(self) -> LayerKind:
        return self.runs()[-1].kind

    @property
    def checkpoint_quantization(self) -> str | None:
        """"mxfp4" (gpt-oss) or "fp8" (DeepSeek-V3): a checkpoint LLaMA-Factory dequantizes to bf16 at
        load (specs/prequantized.py); None otherwise."""
        quant = self.prequantized
        return quant.method if quant is not None and quant.dequantized_at_load else None

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank > 0

    def describe_layers(self) -> str:
        return describe_runs(self.runs())

    def window_of(self, kind: LayerKind) -> int | None:
        """Keys a layer of this kind attends to at most (None: the whole sequence)."""
        if kind.attention == AttentionKind.sliding:
            return self.sliding_window
        if kind.attention == AttentionKind.chunked:
            return self.attention_chunk_size
        return None

    # ---- derived sizes -------------------------------------------------------------------
    @property
    def q_dim(self) -> int:
        return self.num_attention_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.num_kv_heads * self.head_dim

    @property
    def attn_out_dim(self) -> int:
        """Width of the attention output (o_proj's input): MLA's value heads are narrower."""
        return self.num_attention_heads * (self.v_head_dim or self.head_dim)

    @property
    def expert_intermediate_size(self) -> int:
        return self.moe_intermediate_size or self.intermediate_size

    def linear_modules(self, kind: LayerKind | None = None) -> list[LinearModule]:
        """The linear layers of one decoder layer of `kind` (default: the first layer's), named as
        the family's modelling code names them."""
        return list(self._linear_modules(kind))

    def _linear_modules(self, kind: LayerKind | None) -> tuple[LinearModule, ...]:
        return self.memo(("linear", kind), lambda: tuple(self._build_linear_modules(kind or self.first_layer_kind)))

    def _build_linear_modules(self, kind: LayerKind) -> list[LinearModule]:
        h, q, kv, i = self.hidden_size, self.q_dim, self.kv_dim, self.intermediate_size
        qkv_bias, o_bias, mb = self.qkv_bias, self.o_bias, self.mlp_bias

        def lin(name: str, d_in: int, d_out: int, bias: bool, feed: str) -> LinearModule:
            return LinearModule(name=name, in_features=d_in, out_features=d_out, bias=bias, input_tensor=feed)

        gated_mlp = [lin("gate_proj", h, i, mb, "mlp_in"), lin("up_proj", h, i, mb, "mlp_in"),
                     lin("down_proj", i, h, mb, "mlp_mid")]
        if self.family == Family.llama:
            attn = [lin("q_proj", h, q, qkv_bias, "attn_in"), lin("k_proj", h, kv, qkv_bias, "attn_in"),
                    lin("v_proj", h, kv, qkv_bias, "attn_in"), lin("o_proj", q, h, o_bias, "attn_out")]
            mlp = gated_mlp
        elif self.family == Family.qwen:
            attn = [lin("c_attn", h, q + 2 * kv, qkv_bias, "attn_in"), lin("attn.c_proj", q, h, o_bias, "attn_out")]
            mlp = [lin("w1", h, i, mb, "mlp_in"), lin("w2", h, i, mb, "mlp_in"), lin("mlp.c_proj", i, h, mb, "mlp_mid")]
        elif self.family == Family.baichuan:
            attn = [lin("W_pack", h, q + 2 * kv, qkv_bias, "attn_in"), lin("o_proj", q, h, o_bias, "attn_out")]
            mlp = gated_mlp
        elif self.family == Family.chatglm:
            attn = [lin("query_key_value", h, q + 2 * kv, qkv_bias, "attn_in"), lin("dense", q, h, o_bias, "attn_out")]
            mlp = [lin("dense_h_to_4h", h, 2 * i, mb, "mlp_in"), lin("dense_4h_to_h", i, h, mb, "mlp_mid")]
        elif self.family == Family.phi3:
            attn = [lin("qkv_proj", h, q + 2 * kv, qkv_bias, "attn_in"), lin("o_proj", q, h, o_bias, "attn_out")]
            mlp = [lin("gate_up_proj", h, 2 * i, mb, "mlp_in"), lin("down_proj", i, h, mb, "mlp_mid")]
        elif self.family == Family.glm4:
            attn = [lin("q_proj", h, q, qkv_bias, "attn_in"), lin("k_proj", h, kv, qkv_bias, "attn_in"),
                    lin("v_proj", h, kv, qkv_bias, "attn_in"), lin("o_proj", q, h, o_bias, "attn_out")]
            mlp = [lin("gate_up_proj", h, 2 * i, mb, "mlp_in"), lin("down_proj", i, h, mb, "mlp_mid")]
        elif self.family == Family.deepseek:
            # MLA (modeling_deepseek_v2.py:300-345): attention_bias on q_a, kv_a and o only
            nh, c = self.num_attention_heads, self.kv_lora_rank
            nope = self.head_dim - self.qk_rope_head_dim
            if self.q_lora_rank:
                attn = [lin("q_a_proj", h, self.q_lora_rank, qkv_bias, "attn_in"),
                        lin("q_b_proj", self.q_lora_rank, q, False, "q_latent")]
            else:
                attn = [lin("q_proj", h, q, False, "attn_in")]
            attn += [lin("kv_a_proj_with_mqa", h, c + self.qk_rope_head_dim, qkv_bias, "attn_in"),
                     lin("kv_b_proj", c, nh * (nope + (self.v_head_dim or self.head_dim)), False, "kv_latent"),
                     lin("o_proj", self.attn_out_dim, h, o_bias, "attn_out")]
            mlp = gated_mlp
        else:  # pragma: no cover - Family is an enum
            raise AssertionError(self.family)
        if kind.moe:
            # The routed experts and the router are no nn.Linear (MODELLING.md item 6); what stays
            # linear is the shared expert (deepseek shared_experts, qwen2_moe/llama4 shared_expert)
            # and Qwen2-MoE's shared_expert_gate, Linear(h, 1).
            mlp = []
            shared = self.shared_expert_intermediate_size
            if shared:
                mlp = [lin("gate_proj", h, shared, False, "mlp_in"), lin("up_proj", h, shared, False, "mlp_in"),
                       lin("down_proj", shared, h, False, "shared_mid")]
            if self.shared_expert_gate:
                mlp.append(lin("shared_expert_gate", h, 1, False, "mlp_in"))
        if self.mlp_kind == MlpKind.plain:
            mlp = [m for m in mlp if m.name not in ("gate_proj", "w1")]
        return attn + mlp

    def linear_module_names(self) -> list[str]:
        """Every linear module name of the decoder layers, each once (all kinds)."""
        names: list[str] = []
        for kind, _ in self.layer_kinds():
            names += [m.name for m in self.linear_modules(kind) if m.name not in names]
        return names

    def modules_matching(self, targets: tuple[str, ...], kind: LayerKind | None = None) -> list[LinearModule]:
        """The linear modules of one layer that LLaMA-Factory's `lora_target` names select:
        `all` = every one; else a module's whole name or its last dotted part (`c_proj`)."""
        def matching() -> tuple[LinearModule, ...]:
            modules = self._linear_modules(kind)
            if "all" in targets:
                return modules
            wanted = set(targets)
            return tuple(m for m in modules if m.name in wanted or m.name.split(".")[-1] in wanted)

        return list(self.memo(("matching", tuple(targets), kind), matching))

    def any_module_matches(self, targets: tuple[str, ...]) -> bool:
        return any(self.modules_matching(targets, kind) for kind, _ in self.layer_kinds())

    def norm_params_per_norm(self) -> int:
        return self.hidden_size * (2 if self.norm_type == NormType.layernorm else 1)

    # ---- parameters ------------------------------------------------------------------------
    def router_params(self, kind: LayerKind | None = None) -> int:
        """The router of one MoE layer: E x h (+ E bias for gpt-oss)."""
        kind = kind or self.first_layer_kind
        if not kind.moe:
            return 0
        return self.num_experts * (self.hidden_size + (1 if self.router_bias else 0))

    def expert_params(self, kind: LayerKind | None = None) -> int:
        """All routed experts of one MoE layer: gate_up_proj [E, 2m, h] + down_proj [E, h, m]
        (+ gpt-oss biases [E, 2m] and [E, h])."""
        kind = kind or self.first_layer_kind
        if not kind.moe:
            return 0
        h, m = self.hidden_size, self.expert_intermediate_size
        each = 3 * h * m + ((2 * m + h) if self.expert_bias else 0)
        return self.num_experts * each

    def active_expert_params(self, kind: LayerKind | None = None) -> int:
        """The routed experts one token passes through (top-k), by the published convention."""
        if not self.num_experts:
            return 0
        return self.expert_params(kind) * self.experts_per_token // self.num_experts

    def experts_run_per_token(self) -> int:
        """Experts the installed transformers actually computes per token: top-k with grouped_mm,
        but every expert for Llama-4, whose Llama4TextMoe multiplies all tokens by all experts
        (modeling_llama4.py:166-175, findings section 3)."""
        return self.num_experts if self.model_type in ("llama4", "llama4_text") else self.experts_per_token

    def layer_params(self, kind: LayerKind | None = None) -> int:
        """Parameters of one decoder layer: linears, biases, norms, router, experts, q/k norms."""
        return self.memo(("layer_params", kind), lambda: self._layer_params(kind or self.first_layer_kind))

    def _layer_params(self, kind: LayerKind) -> int:
        linear = sum(m.params for m in self.linear_modules(kind))
        norms = self.norms_per_layer * self.norm_params_per_norm()
        qk_norm = 0
        if self.qk_norm and self.qk_norm_kind == QkNorm.per_head:
            qk_norm = 2 * self.head_dim
        elif self.qk_norm and self.qk_norm_kind == QkNorm.projection:
            qk_norm = self.q_dim + self.kv_dim
        mla_norms = self.q_lora_rank + self.kv_lora_rank  # q_a_layernorm, kv_a_layernorm
        sinks = self.num_attention_heads if self.attention_sinks else 0
        return (linear + norms + qk_norm + mla_norms + sinks + self.router_params(kind)
                + self.expert_params(kind))

    def decoder_params(self) -> int:
        return self.memo(("decoder_params",),
                         lambda: sum(count * self.layer_params(kind) for kind, count in self.layer_kinds()))

    def largest_layer_params(self) -> int:
        return self.memo(("largest_layer_params",),
                         lambda: max(self.layer_params(kind) for kind, _ in self.layer_kinds()))

    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size

    def lm_head_params(self) -> int:
        """Untied output projection; 0 when tied to the input embedding."""
        return 0 if self.tie_word_embeddings else self.vocab_size * self.hidden_size

    def text_params(self) -> int:
        """The language model: embeddings, decoder layers, final norm, lm_head."""
        return (self.embedding_params() + self.lm_head_params() + self.decoder_params()
                + self.norm_params_per_norm())

    def total_params(self) -> int:
        """Parameter count computed from the architecture (checked against `official_params`):
        every expert, and a multimodal model's vision tower and projector."""
        return self.memo(("total_params",), lambda: self.text_params() + self.vision_params)

    def expert_params_total(self) -> int:
        return sum(count * self.expert_params(kind) for kind, count in self.layer_kinds())

    def active_params(self, include_embedding: bool = True) -> int:
        """Parameters one token uses: the total less the routed experts it is not sent to (router,
        shared experts, attention, norms, lm_head counted). Published active counts differ on the
        input embedding (Mixtral's and Qwen's include it, OpenAI's and DeepSeek's do not:
        /work/notes/models/MODELLING.md, 'Counting conventions')."""
        routed = sum(count * (self.expert_params(kind) - self.active_expert_params(kind))
                     for kind, count in self.layer_kinds())
        return self.total_params() - routed - (0 if include_embedding else self.embedding_params())
