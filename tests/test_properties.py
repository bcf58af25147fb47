"""Properties on random queries through the user's path (the API, as the CLI calls it), fixed seed
(issue 18). tests/memory/test_fits_property.py checks `fits` against the card through the solver's
own calls and tests/planner/test_recommend_property.py CP-SAT against an exhaustive search; these
add what neither covers:

- an estimate never shows a negative, NaN or infinite figure anywhere in its JSON, and `fits`
  implies the peak is within the capacity (300 estimates over catalog models, GPU sets, pins);
- recommend's plan, re-estimated with every knob pinned, is the same configuration, fits, and has
  the same peak to the byte (fewer queries: a recommend is a CP-SAT solve)."""

from __future__ import annotations

import math
import random

import fitplan
from fitplan.solver.errors import FitplanError
from fitplan.solver.problem.knobs import MemoryOptimizer, Method

MODELS = ["qwen2.5-0.5b", "qwen2.5-1.5b", "llama-3.2-1b", "qwen2.5-7b", "gemma-2-2b", "phi-3-mini", "qwen-1.8b",
          "chatglm3-6b", "llama-2-13b", "qwen3-8b"]
GPUS = ["1xA10", "1xT4", "2xA100-80G", "4xA10", "1xH100", "8xP4", "2x4xA100-40G", "1x24GiB", "2x16GiB:fp16", "1xRTX4090"]
PINS = {
    "method": ["full", "freeze", "lora", "qlora"],
    "micro_batch": [1, 2, 4, 8],
    "grad_accum": [1, 4],
    "grad_ckpt": [True, False],
    "attn": ["sdpa", "fa2", "eager"],
    "zero_stage": [0, 1, 2, 3],
    "offload": ["none", "optimizer", "all"],
    "optim": ["adamw", "adamw_8bit", "sgd"],
    "liger": [True, False],
}


def _numbers(value, where=""):
    """Every number in a JSON value, with where it is."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, (int, float)):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _numbers(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _numbers(item, f"{where}[{index}]")


def _query(rng: random.Random) -> dict:
    pins = {name: rng.choice(values) for name, values in PINS.items() if rng.random() < 0.4}
    if pins.get("method") != "lora" and rng.random() < 0.2:
        pins.pop("method", None)
    return dict(model=rng.choice(MODELS), gpus=rng.choice(GPUS), seq_len=rng.choice([128, 512, 1024, 2048, 8192]),
                packing=rng.random() < 0.3, **pins)


def test_300_random_estimates_show_no_negative_or_nan_figure_and_fit_within_capacity():
    rng = random.Random(18)
    answered = fitting = 0
    for _ in range(300):
        query = _query(rng)
        try:
            est = fitplan.estimate(query.pop("model"), query.pop("gpus"), **query)
        except FitplanError:
            continue  # a combination that cannot run: refused in one line (tests/test_hostile_input.py)
        answered += 1
        for where, number in _numbers(est.to_json_dict()):
            assert math.isfinite(number), (where, number, est.config)
            # headroom is capacity - peak: negative exactly when it does not fit; every other figure >= 0
            assert number >= 0 or (where == ".headroom_gib" and not est.fits), (where, number, est.config)
        assert est.peak_bytes >= est.reserved_peak_bytes >= est.tensor_peak_bytes > 0
        if est.fits:
            fitting += 1
            assert est.peak_bytes <= est.capacity_bytes, est.config
    assert answered >= 150 and 30 <= fitting < answered, (answered, fitting)


def _every_knob(plan) -> dict:
    """The plan as pins: every knob it decided, none that its method ignores."""
    knobs = {k: getattr(plan, k) for k in ("method", "micro_batch", "grad_accum", "grad_ckpt", "attn", "zero_stage",
                                           "offload", "optim", "precision", "n_gpus", "liger", "unsloth_gc",
                                           "reentrant_gc", "upcast_layernorm", "upcast_lmhead_output",
                                           "memory_optimizer")}
    knobs["sharding"] = plan.sharding
    if plan.method == Method.qlora:
        knobs["bits"] = plan.bits
    if plan.uses_lora:
        knobs.update(lora_rank=plan.lora_rank, lora_targets=plan.lora_targets, dora=plan.dora, pissa=plan.pissa,
                     rslora=plan.rslora, loraplus_lr_ratio=plan.loraplus_lr_ratio)
    if plan.method == Method.freeze:
        knobs["freeze_layers"] = plan.freeze_layers
    if plan.memory_optimizer not in (MemoryOptimizer.none, MemoryOptimizer.badam, MemoryOptimizer.adam_mini):
        knobs["projection_rank"] = plan.projection_rank
    if plan.fsdp_strategy is not None:
        knobs.update(fsdp_strategy=plan.fsdp_strategy, fsdp_version=plan.fsdp_version)
    return knobs


def test_recommends_plan_re_estimated_with_every_knob_pinned_fits_with_the_same_peak():
    rng = random.Random(1818)
    settings = fitplan.SolverSettings(time_limit_s=5.0)
    plans = 0
    for _ in range(24):
        model, gpus = rng.choice(MODELS[:7]), rng.choice(GPUS)
        seq_len, packing = rng.choice([256, 1024, 4096]), rng.random() < 0.3
        rec = fitplan.recommend(model, gpus, seq_len=seq_len, packing=packing, settings=settings)
        if rec.plan is None:
            continue
        plans += 1
        again = fitplan.estimate(model, gpus, seq_len=seq_len, packing=packing, **_every_knob(rec.plan))
        assert again.config == rec.plan, (again.config, rec.plan)
        assert again.fits and again.peak_bytes == rec.estimate.peak_bytes, (model, gpus, rec.plan)
    assert plans >= 12, plans
