#!/usr/bin/env python
"""Time a 100-combination sweep (5 models x 5 GPU sets x 4 sequence lengths), the way
`fitplan sweep` runs it: one recommend per row, in this one process.

    .venv/bin/python benchmarks/sweep_speed.py             # recommend (the default of fitplan sweep)
    .venv/bin/python benchmarks/sweep_speed.py --jobs 1    # one process
    .venv/bin/python benchmarks/sweep_speed.py --no-search # estimate only

Prints the wall time, rows per second, the slowest rows, and how many rows fit. The issue asks for
well under a minute on the 2-core development machine."""

from __future__ import annotations

import argparse
import os
import sys
import time

import fitplan

MODELS = ["qwen2.5-0.5b", "qwen2.5-7b", "llama-2-13b", "qwen1.5-32b", "llama-2-70b"]
GPU_SETS = ["8xP4", "4xA10", "3xRTX3090", "1xA100-80G", "2x8xH100"]
SEQ_LENS = [512, 1024, 2048, 4096]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-search", dest="search", action="store_false", help="estimate instead of recommend")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="worker processes, as `fitplan sweep --jobs` (default: the number of CPUs)")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    timings = []
    rows = []
    last = started
    for row in fitplan.sweep(MODELS, GPU_SETS, seq_lens=SEQ_LENS, search=args.search, jobs=args.jobs):
        now = time.perf_counter()
        timings.append((now - last, f"{row.model} {row.gpus} seq {row.seq_len}"))
        rows.append(row)
        last = now
    wall_s = time.perf_counter() - started

    print(f"{len(rows)} combinations ({'recommend' if args.search else 'estimate'}, {args.jobs} jobs, "
          f"{os.cpu_count()} CPUs) in {wall_s:.2f} s "
          f"({len(rows) / wall_s:.1f} rows/s); {sum(r.fits for r in rows)} fit")
    print("slowest rows (time since the previous row arrived; with several jobs rows overlap):")
    for seconds, label in sorted(timings, reverse=True)[:5]:
        print(f"  {seconds:6.2f} s  {label}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
