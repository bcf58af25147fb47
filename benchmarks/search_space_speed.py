"""CPU time of the search space and of a warm `recommend`, for paired before/after runs of two
checkouts (process CPU time, medians: the figure least moved by other jobs on a shared machine).

    .venv/bin/python benchmarks/search_space_speed.py            # in each checkout, alternated

Per query it prints: the knob combinations, the median CPU ms to enumerate them and build every
allowed split's configuration (a fresh space each repeat), and the median CPU ms of
`recommend(explain_failure=False)` after one untimed call (per-model tables warm)."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recommend_latency import _instance  # noqa: E402

QUERIES = [("qwen2.5-7b", "8xP4", 2048), ("llama-3.1-8b", "8xA100-80G", 4096), ("qwen2.5-1.5b", "1xT4", 1024)]


def enumerate_ms(query, repeats: int) -> tuple[int, float]:
    from fitplan.solver.planner.search_space import search_space

    times, combos = [], 0
    for _ in range(repeats):
        space = search_space(_instance(*query, None))
        start = time.process_time()
        combos = space.knob_combinations()
        for knobs in combos:
            for split in space.splits_allowed(knobs):
                space.config(knobs, split)
        times.append(time.process_time() - start)
    return len(combos), 1000 * statistics.median(times)


def recommend_ms(query, repeats: int) -> float:
    from fitplan.solver.planner.recommend import recommend

    recommend(_instance(*query, None), explain_failure=False)
    times = []
    for _ in range(repeats):
        instance = _instance(*query, None)
        start = time.process_time()
        recommend(instance, explain_failure=False)
        times.append(time.process_time() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    for query in QUERIES:
        combos, enum = enumerate_ms(query, args.repeats)
        print(f"{' '.join(map(str, query))}: {combos} combinations, enumerate + configurations {enum:.0f} ms, "
              f"warm recommend {recommend_ms(query, args.repeats):.0f} ms (CPU, medians)")


if __name__ == "__main__":
    main()
