"""How fast `recommend` answers: cold CLI wall time (process start, imports, catalog load,
solve, print), warm per-query latency in one process, and a 1,000-query sweep.

    .venv/bin/python benchmarks/recommend_latency.py            # all three
    .venv/bin/python benchmarks/recommend_latency.py --queries 200

The sweep draws its queries from a fixed seed (models x GPU sets x seq x global batch), asks
each for the best plan without an explanation of infeasibility (what a sweep needs), and
reports the total and the per-query median, p95 and worst.

Issue 18, measured on the 2-core development machine while other jobs shared it (so absolute
figures are noisy: compare within a round). Runs alternated in one session, two rounds of
`--queries 200 --repeats 3`, before = 6272f8d (a copy of that tree with its own venv), after = the
speed branch; round 1 | round 2:

| figure | before | after |
| --- | --- | --- |
| cold `fitplan --help` | 1.66 s, 1.49 s | 0.10 s, 0.06 s |
| cold `fitplan estimate --model qwen2.5-7b --gpus 1xA100-80G` | 1.48 s, 0.90 s | 0.55 s, 0.29 s |
| cold `fitplan recommend --model qwen2.5-7b --gpus 8xP4` | 2.16 s, 2.33 s | 1.70 s, 0.98 s |
| warm qwen2.5-7b 8xP4 seq 2048 | 465 ms, 797 ms | 221 ms, 101 ms |
| warm qwen2.5-7b 8xP4 seq 512 | 1295 ms, 1223 ms | 289 ms, 168 ms |
| warm llama-3.1-8b 8xA100-80G seq 4096 | 1407 ms, 2370 ms | 780 ms, 479 ms |
| warm, nothing fits, explained: qwen2.5-7b 1xP4 --method full | 2952 ms, 4100 ms | 2279 ms, 1192 ms |
| warm, nothing fits, explained: qwen2.5-7b 1xA10 --method full --optim adamw | 537 ms, 661 ms | 758 ms, 338 ms |
| 200-query sweep: total | 170.8 s, 142.0 s | 86.2 s, 52.4 s |
| 200-query sweep: median / p95 per query | 611 / 2279 ms, 525 / 1955 ms | 377 / 1012 ms, 227 / 647 ms |

What is left (issue 18's goals are not all met): a warm unpinned query still prices every knob
combination's speed and evaluates memory for the combinations that can still be chosen (about
0.5 ms each); an infeasible query's explanation asks `fits_somewhere` for every GPU count up to
64 (`questions.min_gpus`), which cannot bisect without changing answers: whether a count fits
is not monotone (NCCL's buffers grow with the peers, a pinned global batch must divide by the
count)."""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

COLD_COMMAND = ["recommend", "--model", "qwen2.5-7b", "--gpus", "8xP4"]
COLD_LIGHT_COMMANDS = [["--help"], ["estimate", "--model", "qwen2.5-7b", "--gpus", "1xA100-80G"]]
# nothing fits: the answer with its explanation (longest length, fewest GPUs, pins dropped)
INFEASIBLE_QUERIES = [("qwen2.5-7b", "1xP4", 2048, {"method": "full"}),
                      ("qwen2.5-7b", "1xA10", 2048, {"method": "full", "optim": "adamw"})]
WARM_QUERIES = [("qwen2.5-7b", "8xP4", 2048), ("qwen2.5-7b", "8xP4", 512), ("qwen2.5-7b", "1xA100-80G", 2048),
                ("llama-3.1-8b", "8xA100-80G", 4096), ("qwen2.5-1.5b", "1xT4", 1024)]
SWEEP_MODELS = ["qwen2.5-0.5b", "qwen2.5-1.5b", "qwen2.5-3b", "qwen2.5-7b", "llama-3.2-1b", "llama-3.1-8b",
                "mistral-7b", "gemma-2-2b", "qwen2.5-14b", "yi-6b"]
SWEEP_GPUS = ["1xP4", "8xP4", "1xT4", "4xT4", "1xA10", "2xA10", "1xL4", "1xA100-80G", "8xA100-80G", "1xH100",
              "8xH100", "1xRTX4090", "4xV100-32G", "2x8xA100-80G"]
SWEEP_SEQS = [256, 512, 1024, 2048, 4096, 8192]
SWEEP_GLOBAL_BATCHES = [None, 8, 16, 32, 64]


def fitplan_executable() -> str:
    candidate = Path(sys.executable).with_name("fitplan")
    return str(candidate) if candidate.exists() else "fitplan"


def cold_cli_s(repeats: int, command: list[str] = COLD_COMMAND) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([fitplan_executable(), *command], capture_output=True, check=False,
                       env={**os.environ, "PYTHONHASHSEED": "0"})
        times.append(time.perf_counter() - start)
    return times


def _instance(model: str, gpus: str, seq: int, global_batch: int | None, pins: dict | None = None):
    from fitplan.solver.problem.instance import Instance, Pins, Workload
    from fitplan.solver.specs.catalog import load_model, parse_gpu_set

    return Instance(model=load_model(model), gpus=parse_gpu_set(gpus),
                    workload=Workload(seq_len=seq, global_batch=global_batch), pins=Pins(**(pins or {})))


def _median_warm_s(instance, repeats: int) -> float:
    """Median seconds of `recommend(instance)` after one untimed call (caches and imports warm)."""
    from fitplan.solver.planner.recommend import recommend

    recommend(instance)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        recommend(instance)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def warm_latency_s(repeats: int) -> dict[str, float]:
    return {f"{model} {gpus} seq {seq}": _median_warm_s(_instance(model, gpus, seq, None), repeats)
            for model, gpus, seq in WARM_QUERIES}


def infeasible_latency_s(repeats: int) -> dict[str, float]:
    """Warm: nothing fits, and recommend explains why (its default)."""
    return {f"{model} {gpus} seq {seq} {pins}": _median_warm_s(_instance(model, gpus, seq, None, pins), repeats)
            for model, gpus, seq, pins in INFEASIBLE_QUERIES}


def sweep_s(queries: int) -> tuple[float, list[float], int]:
    from fitplan.solver.planner.recommend import recommend

    rng = random.Random(1000)
    times, plans = [], 0
    start = time.perf_counter()
    for _ in range(queries):
        instance = _instance(rng.choice(SWEEP_MODELS), rng.choice(SWEEP_GPUS), rng.choice(SWEEP_SEQS),
                             rng.choice(SWEEP_GLOBAL_BATCHES))
        t0 = time.perf_counter()
        plans += recommend(instance, explain_failure=False).plan is not None
        times.append(time.perf_counter() - t0)
    return time.perf_counter() - start, times, plans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for command in (COLD_COMMAND, *COLD_LIGHT_COMMANDS):
        cold = cold_cli_s(args.repeats, command)
        print(f"cold CLI `fitplan {' '.join(command)}`: median {statistics.median(cold):.2f} s "
              f"(runs: {', '.join(f'{t:.2f}' for t in cold)})")
    for query, seconds in warm_latency_s(args.repeats).items():
        print(f"warm recommend, {query}: {seconds * 1000:.0f} ms")
    for query, seconds in infeasible_latency_s(args.repeats).items():
        print(f"warm recommend, nothing fits, explained, {query}: {seconds * 1000:.0f} ms")
    total, times, plans = sweep_s(args.queries)
    p95 = sorted(times)[min(len(times) - 1, int(0.95 * len(times)))]
    print(f"sweep of {args.queries} queries: {total:.1f} s total, median {statistics.median(times) * 1000:.0f} ms, "
          f"p95 {p95 * 1000:.0f} ms, worst {max(times) * 1000:.0f} ms, {plans} with a plan")


if __name__ == "__main__":
    main()
