"""How far the memory formula is from the trace oracle on catalog models (0.5B to 72B).

For each row: trace one steady-state training step of the real Hugging Face model code on fake
tensors (no GPU, no weights), evaluate `fitplan.solver.estimate.estimate` for the same
configuration, and print both tensor peaks (GiB) and the formula's relative error. Ends with the
median and maximum |error|.

    .venv/bin/python benchmarks/trace_accuracy.py            # full grid (~10 min on 2 cores)
    .venv/bin/python benchmarks/trace_accuracy.py --quick    # one point per model
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings

from fitplan.solver.memory.estimate import estimate
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


def rows(quick: bool):
    for name in MODELS:
        points = POINTS[:1] if quick else (POINTS[:3] if name in BIG else POINTS)
        for knobs in points:
            yield name, knobs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one point per model")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    errors = []
    print(f"{'model':<14} {'config':<34} {'formula GiB':>11} {'traced GiB':>10} {'error':>8}  "
          f"{'formula moment':<20} traced peak (s)")
    for name, knobs in rows(args.quick):
        model = load_model(name)
        config = TrainConfig(**knobs)
        started = time.perf_counter()
        trace = trace_training_step(model, config)
        formula = estimate(model, GPUS, config)
        error = formula.tensor_peak_bytes / trace.traced_peak_bytes - 1
        errors.append(abs(error))
        label = (f"{config.method.value} s{config.seq_len} b{config.micro_batch} "
                 f"{'ckpt' if config.grad_ckpt else 'no-ckpt'} {config.attn.value}")
        print(f"{name:<14} {label:<34} {formula.tensor_peak_bytes / GIB:11.3f} {trace.traced_peak_bytes / GIB:10.3f} "
              f"{error:+8.2%}  {formula.peak_moment:<20} {trace.peak_phase}/{trace.peak_layer} "
              f"({time.perf_counter() - started:.0f} s)", flush=True)
    print(f"\n{len(errors)} rows: median |error| {statistics.median(errors):.2%}, max |error| {max(errors):.2%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
