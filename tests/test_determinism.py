"""Same input, byte-identical output (issue 18): recommend's text and --json, estimate's --json and
sweep's CSV, each from two separate processes (no cache shared between them), and the sweep with
one worker and with two (rows keep their order). CP-SAT runs with one worker (SolverSettings:
deterministic search), so a plan never depends on timing."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

RECOMMEND = ["recommend", "--model", "qwen2.5-1.5b", "--gpus", "4xA10", "--seq-len", "1024", "--top", "3"]
QUERIES = {
    "recommend_text": RECOMMEND,
    "recommend_json": RECOMMEND + ["--json"],
    "estimate_json": ["estimate", "--model", "qwen2.5-7b", "--gpus", "2xA100-80G", "--method", "full", "--zero", "3",
                      "--json"],
}
SWEEP = ["sweep", "--models", "qwen2.5-0.5b,llama-3.2-1b", "--gpus", "1xT4,2xA10", "--seq-lens", "512,2048"]


def _run(argv: list[str], tmp_path) -> bytes:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hf-cache")}
    done = subprocess.run([sys.executable, "-m", "fitplan.cli.main", *argv], capture_output=True, env=env,
                          cwd=tmp_path, timeout=300)
    assert done.returncode in (0, 3), done.stderr.decode()[-500:]
    return done.stdout


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_the_same_question_gives_byte_identical_answers(name, tmp_path):
    first = _run(QUERIES[name], tmp_path)
    assert first and first == _run(QUERIES[name], tmp_path)


def test_sweep_csv_is_byte_identical_across_runs_and_worker_counts(tmp_path):
    one = _run(SWEEP + ["--jobs", "1"], tmp_path)
    assert one.count(b"\n") == 9  # the header and 2 x 2 x 2 rows
    assert one == _run(SWEEP + ["--jobs", "2"], tmp_path)
