"""How long one configuration's memory evaluation takes: `required_bytes_by_moment` plus
`host_ram_bytes`, the pair the recommender asks for each knob combination it keeps
(planner/candidates.py `memory_of`), over the configurations `build_candidates` evaluates for a
few queries (with and without the memory optimizers).

    .venv/bin/python benchmarks/memory_eval_speed.py
    .venv/bin/python benchmarks/memory_eval_speed.py --repeats 7

Two figures per query, in ms per configuration:
- first pass: each configuration once, in the recommender's order, on a fresh copy of the model
  (ModelSpec.model_copy: no per-model tables yet), so it includes filling those tables;
- warm: the median of `--repeats` further passes over the same configurations on that copy
  (every per-model table filled), what later queries on a catalog model pay.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recommend_latency import _instance  # noqa: E402

# (label, model, gpus, seq_len, pins)
QUERIES = [
    ("qwen2.5-7b 8xP4 seq 2048", "qwen2.5-7b", "8xP4", 2048, None),
    ("llama-3.1-8b 8xA100-80G seq 4096", "llama-3.1-8b", "8xA100-80G", 4096, None),
    ("qwen2.5-1.5b 1xT4 seq 1024", "qwen2.5-1.5b", "1xT4", 1024, None),
    ("qwen3-30b-a3b (MoE) 8xH100 seq 2048", "tests/data/configs/qwen3-30b-a3b.json", "8xH100", 2048, None),
    ("qwen2.5-7b 8xA100-80G seq 2048 FSDP full_shard", "qwen2.5-7b", "8xA100-80G", 2048,
     {"fsdp_strategy": "full_shard"}),
]


def evaluated_configs(instance) -> list:
    """The configurations `build_candidates` hands to `required_bytes_by_moment`, in order."""
    from fitplan.solver.planner import candidates
    from fitplan.solver.problem.settings import SolverSettings

    seen = []
    original = candidates.required_bytes_by_moment

    def recording(model, gpus, config):
        seen.append(config)
        return original(model, gpus, config)

    candidates.required_bytes_by_moment = recording
    try:
        for with_memory_optimizers in (False, True):
            candidates.build_candidates(instance, SolverSettings(), with_memory_optimizers=with_memory_optimizers)
    finally:
        candidates.required_bytes_by_moment = original
    return seen


def pass_s(model, gpus, configs) -> float:
    from fitplan.solver.memory.estimate import required_bytes_by_moment
    from fitplan.solver.memory.peak import host_ram_bytes

    start = time.perf_counter()
    for config in configs:
        required_bytes_by_moment(model, gpus, config)
        host_ram_bytes(model, config, gpus.gpus_per_node)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    total_first, total_warm, total_configs = 0.0, 0.0, 0
    for label, model_name, gpus_text, seq, pins in QUERIES:
        instance = _instance(model_name, gpus_text, seq, None, pins)
        configs = evaluated_configs(instance)
        model = instance.model.model_copy()
        first = pass_s(model, instance.gpus, configs)
        warm = statistics.median(pass_s(model, instance.gpus, configs) for _ in range(args.repeats))
        n = len(configs)
        print(f"{label}: {n} configurations, first pass {first / n * 1000:.3f} ms, warm {warm / n * 1000:.3f} ms "
              "per configuration")
        total_first, total_warm, total_configs = total_first + first, total_warm + warm, total_configs + n
    print(f"all: {total_configs} configurations, first pass {total_first / total_configs * 1000:.3f} ms, "
          f"warm {total_warm / total_configs * 1000:.3f} ms per configuration")

if __name__ == "__main__":
    main()
