"""What the memory and speed models need to know about a transformer: the architecture numbers
of its Hugging Face `config.json`, and the linear modules one decoder layer holds.

The module names follow each family's modelling code, because they are the names users pass
to LLaMA-Factory's `lora_target` (e.g. `q_proj,v_proj` for Llama, `c_attn` for Qwen1,
`W_pack` for Baichuan, `query_key_value` for ChatGLM).
"""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

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


class LinearModule(BaseModel):
    """One linear layer inside a decoder layer (per expert for MoE experts)."""

    model_config = ConfigDict(frozen=True)

    name: str
    in_features: int
    out_features: int
    bias: bool
    input_tensor: str  # which activation feeds it: attn_in, attn_out, mlp_in, mlp_mid
    count: int = 1  # how many copies per layer (MoE experts)

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
    hidden_size: int = Field(gt=0)
    num_layers: int = Field(gt=0)
    num_attention_heads: int = Field(gt=0)
    num_kv_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    intermediate_size: int = Field(gt=0)  # per-branch width of the MLP (Qwen1: config value / 2)
    vocab_size: int = Field(gt=0)
    tie_word_embeddings: bool
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    norm_type: NormType = NormType.rmsnorm
    norms_per_layer: int = 2  # Gemma-2 has 4 (pre/post attention and feed-forward)
    qk_norm: bool = False  # Qwen3: RMSNorm on each head's q and k
    mlp_kind: MlpKind = MlpKind.gated
    num_experts: int = 0  # 0 = dense
    experts_per_token: int = 0
    final_logit_softcapping: float | None = None  # Gemma-2
    max_position_embeddings: int = Field(default=4096, gt=0)
    official_params: int = Field(gt=0)  # published parameter count
    official_params_rounded_to: int = Field(default=0, ge=0)  # the published count is rounded ("3.8B": 100_000_000)
    official_params_source: str
    source: str  # where the architecture numbers come from (config.json URL or path)
    prequantized: Prequantized | None = None  # config.json `quantization_config` (GPTQ, AWQ, ...)

    # linear_modules() is asked thousands of times per recommend query; the spec is frozen, so
    # its modules are built once.
    _linear_modules: tuple[LinearModule, ...] | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _heads_divide(self) -> "ModelSpec":
        if self.num_attention_heads % self.num_kv_heads:
            raise ValueError(
                f"num_attention_heads {self.num_attention_heads} is not a multiple of "
                f"num_kv_heads {self.num_kv_heads}"
            )
        if self.num_experts and not self.experts_per_token:
            raise ValueError("an MoE model needs experts_per_token")
        return self

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

    # ---- derived sizes -------------------------------------------------------------------
    @property
    def q_dim(self) -> int:
        return self.num_attention_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.num_kv_heads * self.head_dim

    def linear_modules(self) -> list[LinearModule]:
        """The linear layers of one decoder layer, named as the family's modelling code names them."""
        cache = self.__pydantic_private__
        if cache.get("_linear_modules") is None:
            cache["_linear_modules"] = tuple(self._build_linear_modules())
        return list(cache["_linear_modules"])

    def _build_linear_modules(self) -> list[LinearModule]:
        h, q, kv, i = self.hidden_size, self.q_dim, self.kv_dim, self.intermediate_size
        experts = max(self.num_experts, 1)
        qkv_bias, o_bias, mb = self.qkv_bias, self.o_bias, self.mlp_bias

        def lin(name: str, d_in: int, d_out: int, bias: bool, feed: str, count: int = 1) -> LinearModule:
            return LinearModule(name=name, in_features=d_in, out_features=d_out, bias=bias,
                                input_tensor=feed, count=count)

        if self.family == Family.llama:
            attn = [lin("q_proj", h, q, qkv_bias, "attn_in"), lin("k_proj", h, kv, qkv_bias, "attn_in"),
                    lin("v_proj", h, kv, qkv_bias, "attn_in"), lin("o_proj", q, h, o_bias, "attn_out")]
            mlp = [lin("gate_proj", h, i, mb, "mlp_in", experts), lin("up_proj", h, i, mb, "mlp_in", experts),
                   lin("down_proj", i, h, mb, "mlp_mid", experts)]
        elif self.family == Family.qwen:
            attn = [lin("c_attn", h, q + 2 * kv, qkv_bias, "attn_in"), lin("attn.c_proj", q, h, o_bias, "attn_out")]
            mlp = [lin("w1", h, i, mb, "mlp_in"), lin("w2", h, i, mb, "mlp_in"), lin("mlp.c_proj", i, h, mb, "mlp_mid")]
        elif self.family == Family.baichuan:
            attn = [lin("W_pack", h, q + 2 * kv, qkv_bias, "attn_in"), lin("o_proj", q, h, o_bias, "attn_out")]
            mlp = [lin("gate_proj", h, i, mb, "mlp_in"), lin("up_proj", h, i, mb, "mlp_in"),
                   lin("down_proj", i, h, mb, "mlp_mid")]
        elif self.family == Family.chatglm:
            attn = [lin("query_key_value", h, q + 2 * kv, qkv_bias, "attn_in"), lin("dense", q, h, o_bias, "attn_out")]
            mlp = [lin("dense_h_to_4h", h, 2 * i, mb, "mlp_in"), lin("dense_4h_to_h", i, h, mb, "mlp_mid")]
        elif self.family == Family.phi3:
            attn = [lin("qkv_proj", h, q + 2 * kv, qkv_bias, "attn_in"), lin("o_proj", q, h, o_bias, "attn_out")]
            mlp = [lin("gate_up_proj", h, 2 * i, mb, "mlp_in"), lin("down_proj", i, h, mb, "mlp_mid")]
        else:  # pragma: no cover - Family is an enum
            raise AssertionError(self.family)
        if self.mlp_kind == MlpKind.plain:
            mlp = [m for m in mlp if m.name not in ("gate_proj", "w1")]
        return attn + mlp

    def linear_module_names(self) -> list[str]:
        return [m.name for m in self.linear_modules()]

    def modules_matching(self, targets: tuple[str, ...]) -> list[LinearModule]:
        """The linear modules of one layer that LLaMA-Factory's `lora_target` names select:
        `all` = every one; else a module's whole name or its last dotted part (`c_proj`)."""
        modules = self.linear_modules()
        if "all" in targets:
            return modules
        wanted = set(targets)
        return [m for m in modules if m.name in wanted or m.name.split(".")[-1] in wanted]

    def norm_params_per_norm(self) -> int:
        return self.hidden_size * (2 if self.norm_type == NormType.layernorm else 1)

    def layer_params(self) -> int:
        """Parameters of one decoder layer: linears, biases, norms, router, q/k norms."""
        linear = sum(m.params for m in self.linear_modules())
        norms = self.norms_per_layer * self.norm_params_per_norm()
        router = self.hidden_size * self.num_experts if self.num_experts else 0
        qk_norm = 2 * self.head_dim if self.qk_norm else 0
        return linear + norms + router + qk_norm

    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size

    def lm_head_params(self) -> int:
        """Untied output projection; 0 when tied to the input embedding."""
        return 0 if self.tie_word_embeddings else self.vocab_size * self.hidden_size

    def total_params(self) -> int:
        """Parameter count computed from the architecture (checked against `official_params`)."""
        return (self.embedding_params() + self.lm_head_params() + self.num_layers * self.layer_params()
                + self.norm_params_per_norm())
