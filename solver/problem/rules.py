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
"""

from __future__ import annotations

from ..specs.gpu import GpuSet
from ..specs.model import ModelSpec
from .knobs import BITS, BITSANDBYTES_OPTIMIZERS, Attention, FsdpStrategy, Method, Offload, Optimizer, Precision

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


def hardware_problems(gpus: GpuSet, *, precision: Precision | None = None, attn: Attention | None = None,
                      bits: int | None = None, n_gpus: int | None = None) -> list[str]:
    """Every reason these knob values (None = not asked) cannot run on this GPU set."""
    gpu = gpus.gpu
    problems = []
    if precision is not None and not precision_allowed(gpus, precision):
        problems.append(
            f"{gpu.name} has no bf16 hardware (compute capability {gpu.compute_capability} < 8.0; torch only "
            "emulates it): use --precision fp16"
        )
    if attn is not None and not attention_allowed(gpus, attn):
        problems.append(
            f"FlashAttention-2 needs compute capability >= 8.0 and {gpu.name} has {gpu.compute_capability}: "
            "use --attn sdpa"
        )
    if bits is not None and not bits_allowed(gpus, bits):
        problems.append(f"bitsandbytes 4-bit does not run on {gpu.name}: use --bits 8 or 16")
    if n_gpus is not None and n_gpus > gpus.total_gpus:
        problems.append(f"--n-gpus {n_gpus} is more than the {gpus.total_gpus} GPUs in {gpus.label()}")
    return problems


# ---- the model -----------------------------------------------------------------------------------


def model_problems(model: ModelSpec, *, method: Method | None = None, lora_rank: int | None = None,
                   lora_targets: tuple[str, ...] | None = None, freeze_layers: int | None = None) -> list[str]:
    """Every reason these knob values (None = not asked) do not fit the model's architecture."""
    uses_lora = method in (Method.lora, Method.qlora) or method is None
    problems = []
    if uses_lora and lora_rank is not None and lora_rank > model.hidden_size:
        problems.append(f"LoRA rank {lora_rank} exceeds the hidden size {model.hidden_size} of {model.name}")
    if uses_lora and lora_targets is not None and not model.modules_matching(lora_targets):
        names = ", ".join(model.linear_module_names())
        problems.append(f"no LoRA target of {model.name} matches {','.join(lora_targets)}: choose from all, {names}")
    if method == Method.freeze and freeze_layers is not None and freeze_layers > model.num_layers:
        problems.append(f"--freeze-layers {freeze_layers} exceeds the {model.num_layers} layers of {model.name}")
    return problems
