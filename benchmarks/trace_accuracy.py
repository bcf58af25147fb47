"""How far the memory formula is from the trace oracle on catalog models (0.5B to 72B).

For each row: trace one steady-state training step of the real Hugging Face model code on fake
tensors (no GPU, no weights), evaluate `fitplan.solver.estimate.estimate` for the same
configuration, and print both tensor peaks (GiB) and the formula's relative error. Ends with the
median and maximum |error|.

    .venv/bin/python benchmarks/trace_accuracy.py            # full grid (~10 min on 2 cores)
    .venv/bin/python benchmarks/trace_accuracy.py --quick    # one point per model
    .venv/bin/python benchmarks/trace_accuracy.py --families # the model types of issue 13 only

The model types of issue 13 (MoE, MLA, windows, composite models) are held to the trace on a
grid per family: the tiny config of each (solver/oracle/small_models.py MODERN_SMALL_MODELS) at
LoRA / full x checkpointing on / off x SDPA / eager x seq 256 / 512, and the published configs in
tests/data/configs/ at full size for two LoRA points. The summary gives the largest |error| per
family.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings

import itertools
from pathlib import Path

from fitplan.solver.memory.estimate import tensor_peak
from fitplan.solver.oracle.small_models import MODERN_SMALL_MODELS
from fitplan.solver.oracle.step import trace_training_step
from fitplan.solver.problem.config import TrainConfig
from fitplan.solver.specs.catalog import load_model, parse_gpu_set
from fitplan.solver.units import GIB

MODELS = ["qwen2.5-0.5b", "llama-3.2-1b", "qwen2.5-1.5b", "gemma-2-2b", "phi-3-mini", "chatglm3-6b",
          "qwen-7b", "baichuan2-7b", "llama-2-7b", "mistral-7b", "qwen2.5-7b", "qwen3-8b", "llama-3.1-8b",
          "gemma-2-9b", "qwen2.5-14b", "qwen2.5-32b", "llama-2-70b", "qwen2.5-72b"]
BIG = {"qwen2.5-32b", "llama-2-70b", "qwen2.5-72b"}  # LoRA points only: keeps the run short

POINTS = [
    dict(method="lora", seq_len=2048, micro_batch=1),
    dict(method="lora", seq_len=1024, micro_batch=2, grad_ckpt=False),
    dict(method="lora", seq_len=512, micro_batch=4, attn="eager"),
    dict(method="full", seq_len=2048, micro_batch=1),
    dict(method="freeze", seq_len=1024, micro_batch=2, grad_ckpt=False),
]
GPUS = parse_gpu_set("1xA100-80G")  # the formula's tensor peak does not depend on the GPU

FAMILY_GRID = [dict(method=m, grad_ckpt=c, attn=a, seq_len=s)
               for m, c, a, s in itertools.product(["lora", "full"], [True, False], ["sdpa", "eager"], [256, 512])]
CONFIGS = Path(__file__).resolve().parent.parent / "tests" / "data" / "configs"
# Published configs traced at full size (fake tensors: no memory is allocated), two LoRA points each.
FULL_SIZE = ["qwen3-30b-a3b.json", "qwen1.5-moe-a2.7b.json", "mixtral-8x7b-v0.1.json", "gpt-oss-20b.json",
             "deepseek-v2-lite.json", "llama-4-scout-17b-16e-instruct.abridged.json", "gemma-3-1b-it.json",
             "gemma-3-4b-it.reconstructed.json", "phi-4.json", "olmo-2-1124-7b.json"]
FULL_SIZE_POINTS = [dict(method="lora", seq_len=1024), dict(method="lora", seq_len=512, grad_ckpt=False)]


def rows(quick: bool):
    for name in MODELS:
        points = POINTS[:1] if quick else (POINTS[:3] if name in BIG else POINTS)
        for knobs in points:
            yield name, knobs


def family_rows(quick: bool):
    """(family, model, knobs) of the issue-13 grid."""
    for family, model in MODERN_SMALL_MODELS.items():
        for knobs in FAMILY_GRID[:1] if quick else FAMILY_GRID:
            yield family, model, knobs
    if not quick:
        for fixture in FULL_SIZE:
            model = load_model(str(CONFIGS / fixture))
            for knobs in FULL_SIZE_POINTS:
                yield f"{model.model_type} (full size)", model, knobs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one point per model")
    parser.add_argument("--families", action="store_true", help="only the model types of issue 13")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    errors = []
    by_family: dict[str, list[float]] = {}
    print(f"{'model':<14} {'config':<34} {'formula GiB':>11} {'traced GiB':>10} {'error':>8}  "
          f"{'formula moment':<20} traced peak (s)")
    catalog = [] if args.families else [(name, load_model(name), knobs) for name, knobs in rows(args.quick)]
    for name, model, knobs in catalog + list(family_rows(args.quick)):
        config = TrainConfig(**knobs)
        started = time.perf_counter()
        trace = trace_training_step(model, config)
        formula_peak, formula_moment = tensor_peak(model, GPUS, config)  # as `estimate`, no runnability rules
        error = formula_peak / trace.traced_peak_bytes - 1
        errors.append(abs(error))
        by_family.setdefault(name, []).append(abs(error))
        label = (f"{config.method.value} s{config.seq_len} b{config.micro_batch} "
                 f"{'ckpt' if config.grad_ckpt else 'no-ckpt'} {config.attn.value}")
        print(f"{name:<14} {label:<34} {formula_peak / GIB:11.3f} {trace.traced_peak_bytes / GIB:10.3f} "
              f"{error:+8.2%}  {formula_moment:<20} {trace.peak_phase}/{trace.peak_layer} "
              f"({time.perf_counter() - started:.0f} s)", flush=True)
    print(f"\n{len(errors)} rows: median |error| {statistics.median(errors):.2%}, max |error| {max(errors):.2%}")
    for name, family_errors in by_family.items():
        if name in MODERN_SMALL_MODELS or name.endswith("(full size)"):
            print(f"  {name:<28} {len(family_errors):>3} points, max |error| {max(family_errors):.2%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
