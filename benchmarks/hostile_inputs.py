"""The hostile-input battery (tests/helpers/hostile_cases.py) as real `fitplan` subprocesses: each
case must exit 2 with one `error: ...` line on stderr, nothing on stdout and no traceback, within
a second of its own work (issue 18). Prints one line per failure, then `N/M ok, max S s`.

    .venv/bin/python benchmarks/hostile_inputs.py [--timeout 30] [--only SUBSTRING]

The time is wall time of the whole process, interpreter start included; `--startup` prints the
start-up time of `fitplan --version` for comparison."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "helpers"))

from hostile_cases import CASES, Case, materialise  # noqa: E402

FITPLAN = [sys.executable, "-m", "fitplan.cli.main"]


def judge(case: Case, code: int, out: str, err: str) -> str | None:
    """Why the answer is wrong, or None."""
    if code != case.expected_code:
        return f"exit {code}, expected {case.expected_code}: {err.strip()[-300:]!r}"
    if case.expected_code != 2:
        return None
    lines = err.strip().splitlines()
    if "Traceback" in err or len(lines) != 1 or not lines[0].startswith("error: "):
        return f"stderr is not one error line: {err.strip()[-300:]!r}"
    if len(lines[0]) > 600:
        return f"error line of {len(lines[0])} characters"
    if out.strip():
        return f"stdout not empty: {out.strip()[:200]!r}"
    return None


def run_case(case: Case, timeout_s: float) -> tuple[str | None, float]:
    with tempfile.TemporaryDirectory() as tmp:
        argv = materialise(case, Path(tmp))
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(Path(tmp) / "hf-cache")}
        start = time.perf_counter()
        try:
            done = subprocess.run(FITPLAN + argv, capture_output=True, text=True, timeout=timeout_s, cwd=tmp, env=env,
                                  errors="replace")
        except subprocess.TimeoutExpired:
            return f"no answer within {timeout_s:g} s", time.perf_counter() - start
        seconds = time.perf_counter() - start
    return judge(case, done.returncode, done.stdout, done.stderr), seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds before a case counts as a hang")
    parser.add_argument("--only", default="", help="run only the cases whose name holds this")
    parser.add_argument("--startup", action="store_true", help="also time `fitplan --version`")
    args = parser.parse_args()
    cases = [c for c in CASES if args.only in c.name]
    if args.startup:
        start = time.perf_counter()
        subprocess.run(FITPLAN + ["--version"], capture_output=True)
        print(f"startup (fitplan --version): {time.perf_counter() - start:.2f} s")
    ok, slowest = 0, (0.0, "")
    for case in cases:
        problem, seconds = run_case(case, args.timeout)
        slowest = max(slowest, (seconds, case.name))
        if problem is None:
            ok += 1
        else:
            print(f"FAIL {case.name} ({seconds:.2f} s): {problem}")
    print(f"{ok}/{len(cases)} ok, max {slowest[0]:.2f} s ({slowest[1]})")
    return 0 if ok == len(cases) else 1


if __name__ == "__main__":
    sys.exit(main())
