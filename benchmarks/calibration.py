"""Predict every published measurement in benchmarks/data/measured-calibration.csv with fitplan's
memory and speed models, and print the accuracy (the predictions themselves:
solver/calibration/published_runs.py).

    .venv/bin/python benchmarks/calibration.py            # per-row table + summary
    .venv/bin/python benchmarks/calibration.py --summary  # summary only
"""

from __future__ import annotations

import sys

from fitplan.solver.calibration.published_runs import predict_all, summarise


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    predictions, skipped = predict_all()
    if "--summary" not in argv:
        print(f"{'#':>3} {'row':<58}{'meas':>7}{'tensor':>8}{'pred':>7}{'err':>7}  {'peak at':<21}"
              f"{'meas/s':>7}{'pred/s':>7}{'ratio':>6}")
        for p in predictions:
            ratio = f"{p.speed_ratio:.2f}" if p.speed_ratio else "-"
            capped = "*" if p.compared_gib < p.reserved_gib else " "
            print(f"{p.row.index:>3} {p.row.label:<58}{p.row.measured_gib:7.2f}{p.tensor_gib:8.2f}"
                  f"{p.compared_gib:7.2f}{capped}{p.memory_error:+6.1%}  {p.moment:<21}"
                  f"{p.row.measured_samples_per_s or 0:7.2f}{p.samples_per_s:7.2f}{ratio:>6}")
        print("* prediction above what the card can reserve: compared at the card's limit "
              "(the allocator frees its cache there instead of failing)")
        print(f"\nnot modelled ({len(skipped)} rows):")
        for r in skipped:
            print(f"{r.index:>3} {r.label:<58} {r.skip_reason}")
    s = summarise(predictions)
    print(f"\nmemory, {s.rows} rows: median |error| {s.median_abs_error:.1%}, p90 {s.p90_abs_error:.1%}, "
          f"max {s.max_abs_error:.1%}, worst under-prediction {s.worst_under:+.1%}")
    print(f"speed: predicted/measured samples/s {s.speed_ratio_min:.2f} .. {s.speed_ratio_max:.2f}")
    for name, rho in s.spearman_by_sweep.items():
        lo, hi = s.ratio_range_by_sweep[name]
        rho_text = f"{rho:+.2f}" if rho is not None else "n/a (measured constant)"
        print(f"  {name:<30} Spearman {rho_text:<24} ratio {lo:.2f} .. {hi:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
