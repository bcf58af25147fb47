"""Which configurations can run at all: hardware limits and the combinations LLaMA-Factory and
DeepSpeed reject. Each rule is written once, here, and returns the line a user can act on; the
configuration's own validation (`TrainConfig`), the recommender's pins and search space, and
the emitters all ask these functions.

Sources: shared/reference/gpus.md (bf16 and FlashAttention-2 need compute capability >= 8.0,
FA2 README; P4/P40/V100/T4 have no bf16 although torch reports it by emulation);
shared/reference/schemas.md A.2 (LLaMA-Factory parser rejections: quantization only with LoRA,
"Only 4-bit quantized model can use fsdp+qlora", `pure_bf16` is incompatible with ZeRO-3);
DeepSpeed 0.19.8 (`offload_param` is a ZeRO-3 feature; CPU offload steps the optimizer with its
own CPU Adam, so bitsandbytes' GPU optimizers cannot run there). FSDP: `fsdp_problems` below, each
rule with its source (docs/fsdp.md).
The memory levers (issue 16): LLaMA-Factory 0.9.5 `hparams/finetuning_args.py:595-615`,
`hparams/parser.py:192-193, 377-401`, `train/trainer_utils.py:239-251, 330-338`,
`data/collator.py:527-532`; /work/notes/llamafactory/facts.md D.1-D.5 quotes each message.
"""

from __future__ import annotations

from ..errors import shown
from ..specs.gpu import GpuSet
from ..specs.liger_kernels import LIGER_MIN_COMPUTE_CAPABILITY
from ..specs.model import ModelSpec
from .knobs import (
    BITS,
    BITSANDBYTES_OPTIMIZERS,
    LAYERWISE_OPTIMIZERS,
    PROJECTED_OPTIMIZERS,
    Attention,
    FsdpStrategy,
    MemoryOptimizer,
    Method,
    Offload,
    Optimizer,
    Precision,
)

# ---- knob combinations (LLaMA-Factory's and DeepSpeed's rejections) ---------------------------


def bits_problem(bits: int) -> str | None:
    return None if bits in BITS else "bits must be 16, 8 or 4"


def combination_problems(*, method: Method, bits: int, zero_stage: int, offload: Offload, optim: Optimizer,
                         precision: Precision, fsdp_strategy: FsdpStrategy | None = None,
                         fsdp_version: int = 1) -> list[str]:
    """Every reason LLaMA-Factory, DeepSpeed or accelerate refuses this combination of knobs,
    whatever the hardware and the model."""
    if fsdp_strategy is not None:
        return fsdp_problems(method=method, bits=bits, zero_stage=zero_stage, offload=offload, optim=optim,
                             precision=precision, strategy=fsdp_strategy, version=fsdp_version)
    problems = []
    if method == Method.qlora and bits == 16:
        problems.append("qlora needs a quantized base: --bits 4 or 8")
    if method in (Method.full, Method.freeze, Method.lora) and bits != 16:
        if method == Method.lora:
            problems.append("a quantized base (--bits 4/8) is --method qlora")
        else:
            problems.append("Quantization is only compatible with the LoRA or OFT method (LLaMA-Factory); "
                            "use --method qlora or --bits 16")
    if offload == Offload.optimizer and zero_stage == 0:
        problems.append("optimizer offload needs DeepSpeed ZeRO 1, 2 or 3 (--zero)")
    if offload != Offload.none and optim in BITSANDBYTES_OPTIMIZERS:
        problems.append("bitsandbytes 8-bit optimizers run on the GPU; DeepSpeed CPU offload uses its own CPU "
                        "Adam: use --optim adamw with --offload, or --offload none")
    if method == Method.qlora and bits == 8 and zero_stage == 3:
        problems.append("Only 4-bit quantized model can use fsdp+qlora (LLaMA-Factory): use --bits 4 or --zero 2")
    if offload == Offload.all and zero_stage != 3:
        problems.append("parameter offload (--offload all) needs ZeRO-3 (--zero 3)")
    if precision == Precision.pure_bf16 and zero_stage == 3:
        problems.append("`pure_bf16` is incompatible with DeepSpeed ZeRO-3 (LLaMA-Factory)")
    return problems


# ---- combinations no framework documents (fitplan never proposes them, and refuses them as pins) --

def undocumented_problems(*, method: Method, zero_stage: int, offload: Offload) -> list[str]:
    """Combinations LLaMA-Factory and DeepSpeed accept but no framework documents as working, so
    fitplan's memory model has nothing to be checked against. ZeRO-3 with CPU offload of a
    bitsandbytes-quantized base: PEFT's guide "Use PEFT QLoRA and DeepSpeed with ZeRO3" runs
    without offload (`offload_optimizer_device: none`, `offload_param_device: none`) and its
    Caveats say "DeepSpeed Stage 3 and qlora when used with CPU offloading leads to more GPU memory
    usage when compared to disabling CPU offloading" (huggingface/peft
    docs/source/accelerate/deepspeed.md); LLaMA-Factory's maintainer answers "use fsdp+qlora"
    (hiyouga/LlamaFactory issue #5595); transformers issue #24395 reports 4-bit + ZeRO-3 with
    `offload_param_device: cpu` using more GPU memory (notes/llamafactory/facts.md B.6)."""
    if method == Method.qlora and zero_stage == 3 and offload != Offload.none:
        return ["ZeRO-3 with CPU offload of a bitsandbytes-quantized base is undocumented (PEFT's ZeRO-3 + QLoRA "
                "guide uses no offload and warns that CPU offload there uses more GPU memory; LLaMA-Factory #5595: "
                "use FSDP+QLoRA): use --offload none, --zero 2, or a 16-bit --method lora"]
    return []


# GaLore's optimizer classes by HF `optim` (trainer_utils.py:239-246); APOLLO has only AdamW (:330-333).
GALORE_OPTIMIZERS = (Optimizer.adamw, Optimizer.adamw_8bit, Optimizer.paged_adamw_8bit, Optimizer.adafactor)
APOLLO_OPTIMIZERS = (Optimizer.adamw,)


def lever_problems(config) -> list[str]:
    """Every reason LLaMA-Factory 0.9.5 refuses a `TrainConfig`'s memory levers (or fitplan does not
    model the combination), as lines a user can act on. Batch-split rules: `split_problems`."""
    c = config
    problems = []
    uses_lora = c.method in (Method.lora, Method.qlora)
    for flag, on in (("use_dora", c.dora), ("pissa_init", c.pissa), ("use_rslora", c.rslora),
                     ("loraplus_lr_ratio", c.loraplus_lr_ratio is not None)):
        if on and not uses_lora:
            problems.append(f"`{flag}` is only valid for LoRA training (LLaMA-Factory): use --method lora")
    if c.pissa and c.method == Method.qlora:
        problems.append("Please use scripts/pissa_init.py to initialize PiSSA for a quantized model (LLaMA-Factory): "
                        "drop --pissa or use --bits 16")
    if c.pissa and c.zero_stage == 3:
        problems.append("Please use scripts/pissa_init.py to initialize PiSSA in DeepSpeed ZeRO-3 (LLaMA-Factory): "
                        "drop --pissa or use --zero 2")
    if c.unsloth_gc and not c.grad_ckpt:
        problems.append("use_unsloth_gc offloads the checkpoints of gradient checkpointing: it needs --grad-ckpt")
    problems += memory_optimizer_problems(method=c.method, memory_optimizer=c.memory_optimizer,
                                          zero_stage=c.zero_stage, offload=c.offload, optim=c.optim,
                                          n_gpus=c.n_gpus, fsdp_strategy=c.fsdp_strategy)
    problems += split_problems(memory_optimizer=c.memory_optimizer, neat_packing=c.neat_packing, attn=c.attn,
                               micro_batch=c.micro_batch, grad_accum=c.grad_accum)
    return problems


def memory_optimizer_problems(*, method: Method, memory_optimizer: MemoryOptimizer, zero_stage: int,
                              offload: Offload, optim: Optimizer, n_gpus: int,
                              fsdp_strategy: FsdpStrategy | None = None) -> list[str]:
    """GaLore, APOLLO, BAdam and Adam-mini: LLaMA-Factory's rejections, and what fitplan models."""
    m = memory_optimizer
    if m == MemoryOptimizer.none:
        return []
    name = {MemoryOptimizer.badam: "BAdam", MemoryOptimizer.adam_mini: "Adam-mini"}.get(
        m, "GaLore" if m.value.startswith("galore") else "APOLLO")
    problems = []
    if method in (Method.lora, Method.qlora) and m != MemoryOptimizer.adam_mini:
        problems.append("Cannot use LoRA with GaLore, APOLLO or BAdam together (LLaMA-Factory): use --method full")
    elif method != Method.full:
        problems.append(f"fitplan models {name} for full-parameter training only: use --method full")
    if m in PROJECTED_OPTIMIZERS and zero_stage > 0:
        problems.append("GaLore and APOLLO are incompatible with DeepSpeed yet (LLaMA-Factory): use --zero 0")
    if m in LAYERWISE_OPTIMIZERS and n_gpus > 1:
        problems.append(f"Distributed training does not support layer-wise {name} (LLaMA-Factory): use --n-gpus 1 "
                        f"or --memory-optimizer {m.value.removesuffix('_layerwise')}")
    if m == MemoryOptimizer.badam and n_gpus > 1 and zero_stage != 3:
        problems.append("Layer-wise BAdam only supports DeepSpeed ZeRO-3 training (LLaMA-Factory): use --zero 3")
    if m in PROJECTED_OPTIMIZERS:
        allowed = GALORE_OPTIMIZERS if name == "GaLore" else APOLLO_OPTIMIZERS
        if optim not in allowed:
            problems.append(f"{name} builds its own optimizer only for optim {', '.join(o.value for o in allowed)} "
                            f"(LLaMA-Factory: Unknown optim): use --optim {allowed[0].value}")
    if offload != Offload.none:
        problems.append(f"fitplan does not model {name} with DeepSpeed CPU offload: use --offload none")
    if fsdp_strategy is not None:
        problems.append(f"fitplan does not model {name} under FSDP: use --sharding none or deepspeed")
    if m in (MemoryOptimizer.badam, MemoryOptimizer.adam_mini) and zero_stage in (1, 2):
        problems.append(f"fitplan models {name} without DeepSpeed or with ZeRO-3 (LLaMA-Factory's sharded mode): "
                        "use --zero 0 or 3")
    return problems


def split_problems(*, memory_optimizer: MemoryOptimizer, neat_packing: bool, attn: Attention, micro_batch: int,
                   grad_accum: int) -> list[str]:
    """Levers that restrict how the batch may be split."""
    problems = []
    if memory_optimizer in LAYERWISE_OPTIMIZERS and grad_accum != 1:
        name = "GaLore" if memory_optimizer == MemoryOptimizer.galore_layerwise else "APOLLO"
        problems.append(f"Per-layer {name} does not support gradient accumulation (LLaMA-Factory): use --grad-accum 1")
    if neat_packing and attn == Attention.fa2 and micro_batch != 1:
        problems.append("neat_packing with FlashAttention-2 needs micro batch 1 (LLaMA-Factory collator: "
                        "bsz should be 1 for neat packing): use --micro-batch 1")
    return problems


def fsdp_problems(*, method: Method, bits: int, zero_stage: int, offload: Offload, optim: Optimizer,
                  precision: Precision, strategy: FsdpStrategy, version: int) -> list[str]:
    """Why accelerate 1.11 / LLaMA-Factory 0.9.5 would not run this FSDP combination, or why
    fitplan does not plan it (each rule says which)."""
    problems = combination_problems(method=method, bits=bits, zero_stage=0, offload=Offload.none, optim=optim,
                                    precision=precision)
    if zero_stage:
        # accelerate runs one distributed_type per launch: FSDP or DEEPSPEED (commands/config/config_args.py)
        problems.append("FSDP and DeepSpeed ZeRO are two sharding engines and accelerate runs one per launch: "
                        "drop --zero, or use --sharding deepspeed")
    if offload == Offload.optimizer:
        # FSDP1 CPUOffload(offload_params=True) / FSDP2 CPUOffloadPolicy move parameters, gradients and
        # the optimizer step to the CPU together; neither offloads the optimizer alone
        problems.append("FSDP offloads parameters, gradients and the optimizer step together "
                        "(fsdp_offload_params): use --offload all, or --offload none")
    if offload != Offload.none and optim in BITSANDBYTES_OPTIMIZERS:
        problems.append("FSDP CPU offload steps the optimizer on the CPU; bitsandbytes 8-bit optimizers run on "
                        "the GPU: use --optim adamw with --offload all")
    if method == Method.qlora and bits == 8:
        # LLaMA-Factory model_utils/quantization.py:183-192; FSDP1 also cannot flatten int8 with 16-bit norms
        problems.append("Only 4-bit quantized model can use fsdp+qlora (LLaMA-Factory): use --bits 4")
    if precision not in (Precision.bf16, Precision.fp16):
        # accelerate's mixed_precision sets FSDP's MixedPrecision policy (utils/dataclasses.py
        # set_mixed_precision); pure_bf16 and fp32 plans are not modelled under FSDP
        problems.append("fitplan plans FSDP with bf16 or fp16 mixed precision (accelerate mixed_precision): "
                        "use --precision bf16 or fp16")
    if version == 2:
        if method == Method.qlora:
            # accelerate 1.11 fsdp2_prepare_model casts the whole model to fp32 after fully_shard
            # (utils/fsdp_utils.py:702-707), 4-bit storage included; LLaMA-Factory's FSDP+QLoRA example
            # (examples/extras/fsdp_qlora) runs FSDP1
            problems.append("FSDP2 with a bitsandbytes 4-bit base is not what LLaMA-Factory 0.9.5 runs (accelerate "
                            "1.11 casts the whole model to fp32 after fully_shard): use --fsdp-version 1")
        if strategy in (FsdpStrategy.hybrid_shard, FsdpStrategy.no_shard):
            # accelerate 1.11: FSDP2 takes only reshard_after_forward (a bool), utils/dataclasses.py:1821-1824
            problems.append(f"FSDP2 has no {strategy.value} (accelerate 1.11 takes only reshard_after_forward: "
                            "full_shard or shard_grad_op): use --fsdp-version 1")
    return problems


def fsdp_hardware_problems(gpus: GpuSet, *, strategy: FsdpStrategy | None, n_gpus: int) -> list[str]:
    """FSDP strategies that need a shape of GPU set."""
    if strategy == FsdpStrategy.hybrid_shard and n_gpus <= gpus.gpus_per_node:
        # torch FSDP1 HYBRID_SHARD shards inside a node and replicates across nodes
        # (fsdp/_init_utils.py _init_intra_and_inter_node_groups)
        return ["hybrid_shard replicates across nodes; on one node it is full_shard: use --fsdp-strategy full_shard"]
    return []


def data_shape_problem(seq_len: int, mean_sample_len: int | None) -> str | None:
    if mean_sample_len is not None and mean_sample_len > seq_len:
        return f"mean_sample_len {mean_sample_len} exceeds seq_len {seq_len}"
    return None


# ---- hardware ----------------------------------------------------------------------------------


def precision_allowed(gpus: GpuSet, precision: Precision) -> bool:
    if precision in (Precision.bf16, Precision.pure_bf16):
        return gpus.gpu.bf16_hardware
    return True


def attention_allowed(gpus: GpuSet, attn: Attention) -> bool:
    return gpus.gpu.flash_attention_2 if attn == Attention.fa2 else True


def bits_allowed(gpus: GpuSet, bits: int) -> bool:
    return gpus.gpu.bitsandbytes_4bit if bits == 4 else True


def default_precision(gpus: GpuSet) -> Precision:
    """bf16 where the hardware has it, else fp16 mixed precision."""
    return Precision.bf16 if gpus.gpu.bf16_hardware else Precision.fp16


def liger_allowed(gpus: GpuSet) -> bool:
    """Whether Liger's Triton kernels run here: NVIDIA from LIGER_MIN_COMPUTE_CAPABILITY; AMD
    Instinct cards run them through ROCm's Triton (liger-kernel 0.8.5 README: "v0.4.0: Full AMD
    support", ROCm install section), and
    a VRAM budget names a card of the generation its default features describe."""
    cc = gpus.gpu.cc_at_least
    return cc is None or cc >= LIGER_MIN_COMPUTE_CAPABILITY


def gpu_count_launchable(gpus: GpuSet, n_gpus: int) -> bool:
    """Whether the search may plan `n_gpus` of this set: GPUs of one node, or whole nodes. A
    multi-node launch starts the same number of processes on every node (torchrun, deepspeed and
    accelerate take one --nproc_per_node / --num_processes per node count), and the speed and host
    RAM models count a node's GPUs as the set's; 9 GPUs of 2x8 is neither (issue 18)."""
    return n_gpus <= gpus.gpus_per_node or n_gpus % gpus.gpus_per_node == 0


def hardware_problems(gpus: GpuSet, *, precision: Precision | None = None, attn: Attention | None = None,
                      bits: int | None = None, n_gpus: int | None = None, liger: bool | None = None) -> list[str]:
    """Every reason these knob values (None = not asked) cannot run on this GPU set."""
    gpu = gpus.gpu
    problems = []
    if precision is not None and not precision_allowed(gpus, precision):
        problems.append(f"{gpu.name} has no bf16 hardware ({gpu.feature_gap('bf16')}): use --precision fp16")
    if attn is not None and not attention_allowed(gpus, attn):
        problems.append(f"FlashAttention-2 does not run on {gpu.name} ({gpu.feature_gap('fa2')}): use --attn sdpa")
    if bits is not None and not bits_allowed(gpus, bits):
        problems.append(f"bitsandbytes 4-bit does not run on {gpu.name} ({gpu.feature_gap('bnb')}): use --bits 8 or 16")
    if n_gpus is not None and n_gpus > gpus.total_gpus:
        problems.append(f"--n-gpus {n_gpus} is more than the {gpus.total_gpus} GPUs in {gpus.label()}")
    if liger and not liger_allowed(gpus):
        problems.append(f"Liger's Triton kernels need compute capability 7.0 or newer and {gpu.name} has "
                        f"{gpu.compute_capability}: use --no-liger")
    return problems


# ---- the model -----------------------------------------------------------------------------------


def prequantized_problems(model: ModelSpec, *, method: Method | None = None,
                          zero_stage: int | None = None) -> list[str]:
    """What LLaMA-Factory 0.9.5 refuses on a GPTQ/AWQ checkpoint (specs/prequantized.py):
    `model/adapter.py` "Quantized models can only be used for the LoRA or OFT tuning.";
    `model_utils/quantization.py` "DeepSpeed ZeRO-3 or FSDP is incompatible with PTQ-quantized
    models." (mxfp4/fp8 exempt: loaded dequantized); and `quantization_bit` on one is ignored
    ("`quantization_bit` will not affect on the PTQ-quantized models."), so QLoRA is a LoRA."""
    quant = model.prequantized
    if quant is None or not quant.quantized_in_training:
        return []
    problems = []
    if method in (Method.full, Method.freeze):
        problems.append(f"{model.name} is {quant.describe()}-quantized: Quantized models can only be used for the "
                        "LoRA or OFT tuning (LLaMA-Factory): use --method lora")
    if method == Method.qlora:
        problems.append(f"{model.name} is already {quant.describe()}-quantized; LLaMA-Factory ignores quantization_bit "
                        "on it: use --method lora (its own storage is planned)")
    if zero_stage == 3:
        problems.append("DeepSpeed ZeRO-3 or FSDP is incompatible with PTQ-quantized models (LLaMA-Factory): "
                        "use --zero 0, 1 or 2")
    return problems
def zero_stage_problem(model: ModelSpec, zero_stage: int | None) -> str | None:
    """LLaMA-Factory 0.9.5 registers DeepSeek-V2's ZeRO-3 leaf module by the remote-code class name
    "DeepseekV2MoE" (model/model_utils/moe.py:57-59), but transformers 5's own class is
    `DeepseekV2Moe` (models/deepseek_v2/modeling_deepseek_v2.py:85 in 5.6), and DeepSpeed 0.19.8
    raises when no module matches (deepspeed/utils/z3_leaf_module.py:83-84, raise_if_not_found
    defaults to True). Run in /work/main/.lfvenv on a tiny DeepseekV2 model: ValueError "No modules
    of type ['DeepseekV2MoE'] found"."""
    if zero_stage == 3 and model.model_type == "deepseek_v2":
        return ("DeepSeek-V2 cannot run ZeRO-3 under LLaMA-Factory 0.9.5: it registers the MoE leaf module as "
                "'DeepseekV2MoE' (model/model_utils/moe.py:57-59) but transformers names it DeepseekV2Moe, so "
                "DeepSpeed raises 'No modules of type ['DeepseekV2MoE'] found' at load: use --zero 2")
    return None


def attention_length_problem(model: ModelSpec, attn: Attention | None, seq_len: int | None) -> str | None:
    """transformers refuses FlashAttention on Llama-4's chunked layers past the chunk size
    (masking_utils.py:1422-1427, create_chunked_causal_mask)."""
    chunk = model.attention_chunk_size
    if attn == Attention.fa2 and chunk and seq_len is not None and seq_len > chunk:
        return (f"FlashAttention cannot run {model.name}'s chunked attention beyond attention_chunk_size {chunk} "
                f"(transformers masking_utils.create_chunked_causal_mask): use --attn sdpa or --seq-len <= {chunk}")
    return None


def fp32_experts_problem(model: ModelSpec, gpus: GpuSet | None, *, method: Method | None,
                         precision: Precision | None, zero_stage: int | None) -> str | None:
    """Full fine-tuning of a transformers-5 MoE under AMP without DeepSpeed runs the experts' grouped
    GEMM in fp32: LLaMA-Factory upcasts trainable parameters to fp32 (model/adapter.py) and
    transformers casts the input to the weight's dtype (integrations/moe.py:378-381). On CUDA
    (compute capability >= 8.0, where transformers uses grouped_mm, moe.py:302-350) torch 2.13
    documents bf16 inputs only (torch/nn/functional.py:7104-7112, "expected to be torch.bfloat16
    values on CUDA"), and its meta kernel, which mirrors the CUDA checks, rejects fp32
    (_meta_registrations.py:8611-8648). Llama-4's experts run a bmm, not grouped_mm."""
    if not model.is_moe or model.model_type in ("llama4", "llama4_text") or method != Method.full:
        return None
    if precision not in (Precision.bf16, Precision.fp16, Precision.fp32) or zero_stage:
        return None
    if gpus is not None and (gpus.gpu.compute_capability_major or 8) < 8:
        return None  # transformers' loop fallback runs any dtype (AMD and budgets: the CUDA-class path)
    return (f"full fine-tuning {model.name} with {precision.value if precision else 'AMP'} and no DeepSpeed keeps "
            "its experts in fp32, and torch's grouped_mm takes bf16 only on CUDA: use --precision pure_bf16 "
            "or --zero 2")


def model_problems(model: ModelSpec, *, method: Method | None = None, lora_rank: int | None = None,
                   lora_targets: tuple[str, ...] | None = None, freeze_layers: int | None = None,
                   zero_stage: int | None = None, attn: Attention | None = None, seq_len: int | None = None,
                   precision: Precision | None = None, gpus: GpuSet | None = None) -> list[str]:
    """Every reason these knob values (None = not asked) do not fit the model's architecture."""
    uses_lora = method in (Method.lora, Method.qlora) or method is None
    problems = prequantized_problems(model, method=method)
    problems += [p for p in (zero_stage_problem(model, zero_stage), attention_length_problem(model, attn, seq_len),
                             fp32_experts_problem(model, gpus, method=method, precision=precision,
                                                  zero_stage=zero_stage)) if p]
    if uses_lora and lora_rank is not None and lora_rank > model.hidden_size:
        problems.append(f"LoRA rank {lora_rank} exceeds the hidden size {model.hidden_size} of {model.name}")
    if uses_lora and lora_targets is not None and not model.any_module_matches(lora_targets):
        names = ", ".join(model.linear_module_names())
        problems.append(f"no LoRA target of {model.name} matches {shown(','.join(lora_targets))}: choose from all, {names}")
    if method == Method.freeze and freeze_layers is not None and freeze_layers > model.num_layers:
        problems.append(f"--freeze-layers {freeze_layers} exceeds the {model.num_layers} layers of {model.name}")
    return problems
