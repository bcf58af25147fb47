"""Builds the Hugging Face model a trace runs: the in-library class for a ModelSpec, on `meta`,
prepared the way LLaMA-Factory prepares it for training (checkpointing, LoRA or freezing, the
dtype of trainable parameters), then given real storage (fake or real tensors).

Imports torch and transformers: only `oracle.step` imports this module.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch
from torch import nn

from ..problem.config import TrainConfig
from ..problem.knobs import Attention, Method, Precision
from ..specs.liger_kernels import liger_kernels
from ..specs.model import Family, ModelSpec
from . import families

# Remote-code families have no class in transformers. Each maps onto an in-library class whose
# tensors have the same shapes; the LoRA target names map onto that class's module names.
_FUSED_QKV = "qkv_proj"
_TARGET_NAMES: dict[Family, dict[str, str]] = {
    Family.llama: {},
    Family.phi3: {},
    # Qwen1: a1 = w1(x); a2 = w2(x); c_proj(a1 * silu(a2)) -> w2 is the gate, w1 the up projection.
    Family.qwen: {"c_attn": _FUSED_QKV, "attn.c_proj": "o_proj", "w1": "up_proj", "w2": "gate_proj",
                  "mlp.c_proj": "down_proj"},
    Family.baichuan: {"W_pack": _FUSED_QKV},
    Family.chatglm: {"query_key_value": _FUSED_QKV, "dense": "o_proj", "dense_h_to_4h": "gate_up_proj",
                     "dense_4h_to_h": "down_proj"},
}


@dataclass
class BuiltModel:
    model: nn.Module
    hf_class: str
    attn_implementation: str
    decoder_layers: list[nn.Module]
    lm_head: nn.Module
    embed_tokens: nn.Module
    notes: list[str] = field(default_factory=list)


def compute_dtype(config: TrainConfig) -> torch.dtype:
    """The dtype the model is loaded in (LLaMA-Factory `compute_dtype`)."""
    return {Precision.bf16: torch.bfloat16, Precision.pure_bf16: torch.bfloat16,
            Precision.fp16: torch.float16, Precision.fp32: torch.float32}[config.precision]


def _hf_config(spec: ModelSpec, notes: list[str]):
    import transformers as tf

    common = dict(vocab_size=spec.vocab_size, hidden_size=spec.hidden_size,
                  intermediate_size=spec.intermediate_size, num_hidden_layers=spec.num_layers,
                  num_attention_heads=spec.num_attention_heads, num_key_value_heads=spec.num_kv_heads,
                  head_dim=spec.head_dim, tie_word_embeddings=spec.tie_word_embeddings,
                  max_position_embeddings=spec.max_position_embeddings, use_cache=False,
                  pad_token_id=None, bos_token_id=None, eos_token_id=None)
    mt, fam = spec.model_type, spec.family
    if mt == "qwen2":
        if not spec.qkv_bias:
            notes.append("Qwen2Attention always has q/k/v biases; the spec says none (a few KB).")
        return tf.Qwen2Config(**common)
    if mt == "qwen3":
        return tf.Qwen3Config(attention_bias=spec.qkv_bias, **common)
    if mt == "mistral":
        notes.append("Mistral built without a sliding window (the spec carries none; no effect for "
                     "seq_len <= window with flash/sdpa).")
        return tf.MistralConfig(sliding_window=None, **common)
    if mt == "gemma2":
        return tf.Gemma2Config(final_logit_softcapping=spec.final_logit_softcapping,
                               query_pre_attn_scalar=spec.head_dim, **common)
    if fam == Family.phi3 or mt == "phi3":
        return tf.Phi3Config(**common)
    if fam == Family.chatglm:
        notes.append("ChatGLM (remote code) traced as Phi3ForCausalLM: same fused query_key_value and "
                     "dense_h_to_4h shapes; ChatGLM's rotary on half the head dim is not modelled.")
        return tf.Phi3Config(**common)
    if fam in (Family.qwen, Family.baichuan):
        notes.append(f"{spec.model_type} (remote code) traced as LlamaForCausalLM with one fused qkv "
                     "linear per layer (same shapes as "
                     f"{'c_attn' if fam == Family.qwen else 'W_pack'}).")
        if fam == Family.baichuan and spec.num_layers == 40:
            notes.append("Baichuan-13B uses ALiBi (an s x s bias per head) instead of RoPE; not modelled.")
        return tf.LlamaConfig(attention_bias=False, mlp_bias=spec.mlp_bias, **common)
    if mt != "llama":
        notes.append(f"model_type {mt!r} traced as LlamaForCausalLM (family {fam.value}).")
    return tf.LlamaConfig(attention_bias=spec.qkv_bias, mlp_bias=spec.mlp_bias, **common)


def _fuse_qkv(attn: nn.Module, spec: ModelSpec) -> None:
    """Replaces q_proj, k_proj, v_proj by one linear (Qwen1 c_attn, Baichuan W_pack) whose
    output the three projections slice, as the remote code does."""
    q, kv = spec.q_dim, spec.kv_dim
    attn.qkv_proj = nn.Linear(spec.hidden_size, q + 2 * kv, bias=spec.qkv_bias,
                              dtype=attn.o_proj.weight.dtype, device=attn.o_proj.weight.device)
    del attn.q_proj, attn.k_proj, attn.v_proj
    held: dict[str, torch.Tensor] = {}

    def q_proj(x):
        held["qkv"] = attn.qkv_proj(x)  # looked up per call: peft wraps it
        return held["qkv"][..., :q]

    def k_proj(x):
        return held["qkv"][..., q:q + kv]

    def v_proj(x):
        return held.pop("qkv")[..., q + kv:]  # drop the reference so nothing outlives the layer

    for name, fn in (("q_proj", q_proj), ("k_proj", k_proj), ("v_proj", v_proj)):
        object.__setattr__(attn, name, fn)


# Trace `use_reentrant_gc` as set (LLaMA-Factory's default is reentrant: one more hidden-state
# gradient per recomputed layer, memory/activations.py); False traces every checkpointed run
# non-reentrant, as the oracle did before issue 16.
REENTRANT_TRACED = True

FLASH_FOOTPRINT = "fitplan_flash_footprint"


def _register_flash_footprint_attention() -> str:
    """Gemma-2 under FA2 soft-caps inside the kernel; SDPA refuses `softcap`. The memory is the
    flash kernel's either way, so the softcap is dropped and SDPA's flash kernel traced."""
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    def attention(module, query, key, value, attention_mask, **kwargs):
        kwargs.pop("softcap", None)
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)

    AttentionInterface.register(FLASH_FOOTPRINT, attention)
    AttentionMaskInterface.register(FLASH_FOOTPRINT, sdpa_mask)
    return FLASH_FOOTPRINT


def attention_implementation(spec: ModelSpec, config: TrainConfig, notes: list[str]) -> str:
    """The `attn_implementation` the traced model runs. FA2 has no CPU kernel: the CPU flash
    SDPA kernel keeps the same tensors (output and an fp32 logsumexp), so fa2 traces as sdpa."""
    if config.attn == Attention.eager:
        return "eager"
    if config.attn == Attention.fa2:
        notes.append("fa2 traced with the CPU flash SDPA kernel: same saved tensors (output + fp32 "
                     "logsumexp); FA2's backward workspace (dq accumulator) is not seen.")
    if spec.model_type == "gemma2" and config.attn == Attention.sdpa:
        notes.append("Gemma-2 refuses sdpa in transformers 5 (no soft-capping); traced with eager, "
                     "which LLaMA-Factory also falls back to.")
        return "eager"
    return "sdpa"


def lora_target_names(spec: ModelSpec, config: TrainConfig) -> list[str]:
    """The in-library module names LoRA wraps ("all" = every linear of the decoder layers)."""
    names = spec.linear_module_names() if "all" in config.lora_targets else list(config.lora_targets)
    mapping = _TARGET_NAMES[spec.family]
    unknown = [n for n in names if n not in spec.linear_module_names()]
    if unknown:
        from ..errors import InvalidConfigurationError

        raise InvalidConfigurationError(
            f"LoRA target(s) {', '.join(unknown)} are not linear modules of {spec.name}; "
            f"choose from {', '.join(spec.linear_module_names())} or all")
    return sorted({mapping.get(n, n) for n in names})


def build_model(spec: ModelSpec, config: TrainConfig) -> BuiltModel:
    """The training-ready model on `meta`: gradient checkpointing (non-reentrant), LoRA or
    freezing. LLaMA-Factory (model/adapter.py) upcasts trainable parameters to fp32 unless
    pure_bf16; peft itself makes LoRA adapters fp32 (autocast_adapter_dtype=True)."""
    import transformers as tf

    notes: list[str] = []
    dtype = compute_dtype(config)
    modern = spec.model_type in families.MODERN_TYPES
    if modern:
        model, attn = families.build(spec, config, dtype, notes)
    else:
        hf_config = _hf_config(spec, notes)
        attn = attention_implementation(spec, config, notes)
        with torch.device("meta"):
            # Gemma-2 declares no sdpa support; its fa2 run is traced with the flash-footprint kernel.
            build_attn = "eager" if spec.model_type == "gemma2" else attn
            model = tf.AutoModelForCausalLM.from_config(hf_config, dtype=dtype, attn_implementation=build_attn)
        if attn != build_attn:
            model.config._attn_implementation = _register_flash_footprint_attention()
    inner = model.model
    lm_head = model.get_output_embeddings()
    if spec.family in (Family.qwen, Family.baichuan):
        for layer in inner.layers:
            _fuse_qkv(layer.self_attn, spec)
    if spec.family == Family.chatglm and spec.qkv_bias:
        for layer in inner.layers:
            old = layer.self_attn.qkv_proj
            layer.self_attn.qkv_proj = nn.Linear(old.in_features, old.out_features, bias=True,
                                                 dtype=dtype, device="meta")
    model.train()
    if config.grad_ckpt and config.unsloth_gc:
        from .levers import offloaded_checkpoint

        model._set_gradient_checkpointing(enable=True, gradient_checkpointing_func=offloaded_checkpoint)
        notes.append("use_unsloth_gc: LLaMA-Factory's offloaded checkpointing, its layer inputs held off the GPU.")
    elif config.grad_ckpt:
        enable = getattr(model, "activation_checkpointing_enable", None)
        reentrant = config.reentrant_gc and REENTRANT_TRACED
        if enable is not None:  # transformers >= 5.x name
            enable(activation_checkpointing_kwargs={"use_reentrant": reentrant})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": reentrant})
        if not reentrant:
            notes.append("Gradient checkpointing non-reentrant (LLaMA-Factory's default use_reentrant_gc=True "
                         "keeps the same per-layer input).")
    model.config.use_cache = False
    head = None
    kernels = liger_kernels(spec.model_type) if config.liger else None
    if kernels is not None:
        from .liger import patch_model

        head = patch_model(model, kernels)
        notes.append("Liger kernels traced by their allocation pattern on plain torch ops (solver/oracle/liger.py); "
                     "the Triton kernels themselves cannot run on a CPU.")
    elif config.liger:
        notes.append(f"LLaMA-Factory 0.9.5 applies no Liger kernel to model type {spec.model_type!r}: traced without.")

    if config.method in (Method.lora, Method.qlora):
        import peft

        targets = families.lora_targets(model, spec, config) if modern else lora_target_names(spec, config)
        lora = peft.LoraConfig(r=config.lora_rank, lora_alpha=2 * config.lora_rank, lora_dropout=0.0,
                               target_modules=targets, bias="none", task_type="CAUSAL_LM",
                               use_dora=config.dora, use_rslora=config.rslora)
        with warnings.catch_warnings(), families.peft_as_llamafactory_pins() if modern else families.nullcontext():
            warnings.simplefilter("ignore", FutureWarning)  # peft reads the deprecated is_gradient_checkpointing
            model = peft.get_peft_model(model, lora)
        if config.method == Method.qlora:
            notes.append(f"qlora traced as LoRA on a 16-bit base: bitsandbytes {config.bits}-bit kernels "
                         "have no fake implementation; the base weights are counted at 16 bits here.")
    elif config.method == Method.freeze:
        n_train = min(config.freeze_layers, spec.num_layers)
        trainable = {id(p) for layer in inner.layers[spec.num_layers - n_train:] for p in layer.parameters()}
        for p in model.parameters():
            p.requires_grad_(id(p) in trainable)
    if config.upcast_layernorm or config.upcast_lmhead_output:
        from .levers import upcast_layernorm, upcast_lmhead_output

        if config.upcast_layernorm:
            upcast_layernorm(model)
        if config.upcast_lmhead_output:
            upcast_lmhead_output(model)
    if config.precision != Precision.pure_bf16:
        for p in model.parameters():
            if p.requires_grad:
                p.data = p.data.to(torch.float32)
    elif config.method in (Method.lora, Method.qlora):
        notes.append("pure_bf16 LoRA: peft's autocast_adapter_dtype=True keeps the adapters in fp32 "
                     "(LLaMA-Factory does not cast them back), so adapter params, grads and Adam "
                     "states are fp32.")

    return BuiltModel(model=model, hf_class=type(inner).__name__.replace("Model", "ForCausalLM"),
                      attn_implementation=attn, decoder_layers=list(inner.layers),
                      lm_head=head if head is not None else lm_head, embed_tokens=inner.embed_tokens, notes=notes)


def materialize(model: nn.Module, empty) -> None:
    """Replaces every meta parameter and buffer with `empty(shape, dtype)` (fake or real CPU
    tensors); tied parameters stay tied."""
    memo: dict[int, torch.Tensor] = {}
    for module in model.modules():
        for name, param in list(module._parameters.items()):
            if param is None:
                continue
            if id(param) not in memo:
                memo[id(param)] = nn.Parameter(empty(param.shape, param.dtype), requires_grad=param.requires_grad)
            module._parameters[name] = memo[id(param)]
        for name, buf in list(module._buffers.items()):
            if buf is None:
                continue
            if id(buf) not in memo:
                memo[id(buf)] = empty(buf.shape, buf.dtype)
            module._buffers[name] = memo[id(buf)]
