"""Plans covering every knob the emitters translate, shared by the emit tests and the
LLaMA-Factory/DeepSpeed integration test."""

from __future__ import annotations

import itertools

from fitplan.solver.problem.config import TrainConfig, violations
from fitplan.solver.problem.knobs import Attention, FsdpStrategy, Method, Offload, Optimizer, Precision
from fitplan.solver.problem.rules import undocumented_problems
from fitplan.solver.specs.catalog import load_model, parse_gpu_set

METHODS = [(Method.full, 16), (Method.freeze, 16), (Method.lora, 16), (Method.qlora, 4), (Method.qlora, 8)]
STAGES = [0, 1, 2, 3]
OFFLOADS = list(Offload)
PRECISIONS = list(Precision)
ATTENTIONS = list(Attention)


def valid_config(model, gpus, **knobs) -> TrainConfig | None:
    try:
        config = TrainConfig(**knobs)
    except ValueError:
        return None
    if undocumented_problems(method=config.method, zero_stage=config.zero_stage, offload=config.offload):
        return None  # never planned nor emitted (problem/rules.py)
    return None if violations(model, gpus, config) else config


def full_grid(model_name: str = "qwen2.5-0.5b", gpus_text: str = "4xA100-80G") -> list[tuple]:
    """(model, gpus, config) for every valid method x ZeRO x offload x precision x attention x checkpointing."""
    model, gpus = load_model(model_name), parse_gpu_set(gpus_text)
    plans = []
    for (method, bits), stage, offload, precision, attn, ckpt in itertools.product(
            METHODS, STAGES, OFFLOADS, PRECISIONS, ATTENTIONS, (True, False)):
        config = valid_config(model, gpus, method=method, bits=bits, zero_stage=stage, offload=offload,
                              precision=precision, attn=attn, grad_ckpt=ckpt, n_gpus=gpus.total_gpus,
                              micro_batch=2, grad_accum=4, seq_len=1024, lora_rank=16, freeze_layers=3,
                              lora_targets=("all",) if method != Method.lora else ("q_proj", "v_proj"))
        if config is not None:
            plans.append((model, gpus, config))
    return plans


def optimizer_grid(model_name: str = "qwen2.5-0.5b", gpus_text: str = "2xA100-80G") -> list[tuple]:
    model, gpus = load_model(model_name), parse_gpu_set(gpus_text)
    plans = []
    for optim, stage in itertools.product(Optimizer, (0, 2)):
        config = valid_config(model, gpus, optim=optim, zero_stage=stage, n_gpus=2, method=Method.full)
        if config is not None:
            plans.append((model, gpus, config))
    return plans


def covering_grid() -> list[tuple]:
    """A small grid in which every method, ZeRO stage, offload, precision and attention choice
    occurs, on an Ampere set (bf16, FA2) and a P4 set (fp16, no FA2), single and multi node."""
    a100, p4 = "4xA100-80G", "2x4xP4"
    rows = [
        # method, bits, stage, offload, precision, attn, ckpt, gpus
        (Method.lora, 16, 0, Offload.none, Precision.bf16, Attention.fa2, True, a100),
        (Method.qlora, 4, 0, Offload.none, Precision.bf16, Attention.sdpa, False, a100),
        (Method.qlora, 8, 2, Offload.optimizer, Precision.fp16, Attention.eager, True, p4),
        (Method.full, 16, 3, Offload.all, Precision.bf16, Attention.fa2, True, a100),
        (Method.full, 16, 3, Offload.optimizer, Precision.fp16, Attention.sdpa, True, p4),
        (Method.full, 16, 1, Offload.none, Precision.pure_bf16, Attention.sdpa, True, a100),
        (Method.freeze, 16, 2, Offload.none, Precision.fp32, Attention.eager, False, a100),
        (Method.freeze, 16, 0, Offload.none, Precision.fp16, Attention.sdpa, True, p4),
        (Method.lora, 16, 3, Offload.none, Precision.fp16, Attention.eager, True, p4),
        (Method.qlora, 4, 3, Offload.none, Precision.bf16, Attention.fa2, True, a100),
        (Method.lora, 16, 1, Offload.optimizer, Precision.bf16, Attention.sdpa, True, a100),
        (Method.full, 16, 0, Offload.none, Precision.pure_bf16, Attention.fa2, False, a100),
    ]
    plans = []
    for method, bits, stage, offload, precision, attn, ckpt, gpus_text in rows:
        model, gpus = load_model("qwen2.5-0.5b"), parse_gpu_set(gpus_text)
        config = valid_config(model, gpus, method=method, bits=bits, zero_stage=stage, offload=offload,
                              precision=precision, attn=attn, grad_ckpt=ckpt, n_gpus=gpus.total_gpus - 1
                              if gpus.nodes == 1 else gpus.total_gpus, micro_batch=2, grad_accum=2, seq_len=512)
        assert config is not None, (method, stage, offload, precision, attn, gpus_text)
        plans.append((model, gpus, config))
    model, gpus = load_model("qwen2.5-0.5b"), parse_gpu_set(a100)
    plans.append((model, gpus, TrainConfig(packing=True, n_gpus=4, zero_stage=2)))
    plans.append((model, gpus, TrainConfig(mean_sample_len=200, n_gpus=4)))
    for optim in Optimizer:
        model, gpus = load_model("qwen2.5-0.5b"), parse_gpu_set(a100)
        plans.append((model, gpus, TrainConfig(optim=optim, n_gpus=4, zero_stage=2 if optim.value == "sgd" else 0,
                                               offload=Offload.optimizer if optim.value == "sgd" else Offload.none)))
    return plans


def lever_grid() -> list[tuple]:
    """One plan per memory lever (issue 16), each written the way the emitter writes it: Liger,
    offloaded and non-reentrant checkpointing, packing and neat packing, DoRA / PiSSA / rsLoRA /
    LoRA+, the upcast flags, GaLore / APOLLO (layer-wise and not), BAdam (one GPU and ZeRO-3 over
    several) and Adam-mini."""
    model, a100, one = load_model("qwen2.5-0.5b"), parse_gpu_set("4xA100-80G"), parse_gpu_set("1xA100-80G")
    rows = [
        (a100, dict(liger=True, n_gpus=4)),
        (a100, dict(liger=True, method="full", zero_stage=3, n_gpus=4)),
        (one, dict(unsloth_gc=True)),
        (one, dict(reentrant_gc=False)),
        (one, dict(packing=True, liger=True)),
        (one, dict(neat_packing=True, attn="fa2")),
        (one, dict(neat_packing=True, attn="sdpa", micro_batch=2)),
        (one, dict(dora=True, rslora=True, loraplus_lr_ratio=16.0)),
        (one, dict(pissa=True)),
        (one, dict(method="qlora", bits=4, dora=True, upcast_layernorm=True)),
        (one, dict(upcast_lmhead_output=True)),
        (one, dict(method="full", memory_optimizer="galore_layerwise", precision="pure_bf16", projection_rank=128)),
        (a100, dict(method="full", memory_optimizer="galore", precision="pure_bf16", n_gpus=2)),
        (one, dict(method="full", memory_optimizer="apollo_layerwise", precision="pure_bf16")),
        (one, dict(method="full", memory_optimizer="apollo", grad_accum=4)),
        (one, dict(method="full", memory_optimizer="badam", grad_accum=8)),
        (a100, dict(method="full", memory_optimizer="badam", zero_stage=3, n_gpus=4)),
        (one, dict(method="full", memory_optimizer="adam_mini")),
        (a100, dict(method="full", memory_optimizer="adam_mini", zero_stage=3, n_gpus=4)),
    ]
    plans = []
    for gpus, knobs in rows:
        config = valid_config(model, gpus, seq_len=512, **knobs)
        assert config is not None, knobs
        plans.append((model, gpus, config))
    return plans


def fsdp_grid() -> list[tuple]:
    """FSDP plans: every strategy, version, offload, method and precision accelerate 1.11 and
    LLaMA-Factory run, on one node of A100s (bf16), 8 x P4 (fp16) and two nodes (HYBRID_SHARD)."""
    plans = []
    for model_name, gpus_text in (("qwen2.5-0.5b", "4xA100-80G"), ("qwen2.5-7b", "8xP4"), ("qwen2.5-0.5b", "2x4xP4")):
        model, gpus = load_model(model_name), parse_gpu_set(gpus_text)
        precision = Precision.bf16 if gpus.gpu.bf16_hardware else Precision.fp16
        for (method, bits), strategy, version, offload, ckpt in itertools.product(
                METHODS, FsdpStrategy, (1, 2), (Offload.none, Offload.all), (True, False)):
            config = valid_config(model, gpus, method=method, bits=bits, fsdp_strategy=strategy, fsdp_version=version,
                                  offload=offload, precision=precision, grad_ckpt=ckpt, n_gpus=gpus.total_gpus,
                                  micro_batch=1, grad_accum=4, seq_len=1024, lora_rank=16, freeze_layers=3)
            if config is not None:
                plans.append((model, gpus, config))
    return plans
