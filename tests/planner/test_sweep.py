"""`fitplan sweep` and `fitplan.sweep`: one row per model x GPU set x sequence length, each row
the very answer `estimate` / `recommend` gives for that combination; exit 0 when some row fits,
3 when none does, 2 on bad input."""

import csv
import io
import json

import pytest

import fitplan
from fitplan.cli.main import main
from fitplan.solver.problem.answers import COLUMNS

ESTIMATE_GRID = ["--models", "qwen2.5-7b,llama-2-13b", "--gpus", "1xP4,1xA100-80G", "--seq-lens", "1024,4096",
                 "--no-search"]


def _run(capsys, argv):
    code = main(["sweep", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_rows_come_model_major_then_gpus_then_seq_len(capsys):
    code, out, err = _run(capsys, ESTIMATE_GRID)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["model"], r["gpus"], r["seq_len"]) for r in rows] == [
        (m, g, s) for m in ("qwen2.5-7b", "llama-2-13b") for g in ("1xP4", "1xA100-80G") for s in ("1024", "4096")]
    assert list(rows[0]) == COLUMNS
    assert code == 0
    assert err == ""  # not a terminal: no progress bar


def test_no_search_row_is_the_estimate_of_that_combination(capsys):
    _code, out, _err = _run(capsys, ESTIMATE_GRID + ["--format", "jsonl"])
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 8
    for row in rows:
        est = fitplan.estimate(row["model"], row["gpus"], seq_len=row["seq_len"])
        assert row["fits"] == est.fits
        assert row["peak_gib"] == round(est.peak_bytes / 2**30, 2)
        assert row["precision"] == est.config.precision.value
        assert (row["reason"] == "") == est.fits


def test_a_row_that_does_not_fit_says_how_much_it_needs(capsys):
    # A 7B base in 16 bits is 14 GiB before anything else (7.6e9 params x 2 bytes): not on an 8 GB P4.
    code, out, _err = _run(capsys, ["--models", "qwen2.5-7b", "--gpus", "1xP4", "--no-search", "--format", "jsonl"])
    row = json.loads(out)
    assert code == 3
    assert row["status"] == "oom" and row["fits"] is False
    assert row["reason"].startswith("needs ") and "GiB available" in row["reason"]


def test_pins_impossible_on_some_hardware_make_an_invalid_row_not_an_error(capsys):
    code, out, _err = _run(capsys, ["--models", "qwen2.5-0.5b", "--gpus", "1xP4,1xA100-80G", "--precision", "bf16",
                                    "--no-search", "--format", "jsonl"])
    p4, a100 = [json.loads(line) for line in out.splitlines()]
    assert p4["status"] == "invalid" and "fp16" in p4["reason"]
    assert a100["fits"] is True
    assert code == 0


def test_csv_cells_are_plain_for_pipelines(capsys):
    _code, out, _err = _run(capsys, ["--models", "qwen2.5-0.5b", "--gpus", "1xA100-80G", "--no-search"])
    header, line = out.splitlines()
    row = dict(zip(header.split(","), next(csv.reader([line]))))
    assert row["fits"] == "true" and row["grad_ckpt"] == "true"
    assert row["tokens_per_s"] == "" and row["reason"] == ""


@pytest.mark.parametrize("argv,needle", [
    (["--models", "qwen2.5-7", "--gpus", "1xP4"], "unknown model"),
    (["--models", "qwen2.5-7b", "--gpus", "1xP5"], "unknown GPU"),
    (["--models", " , ", "--gpus", "1xP4"], "--models is empty"),
    (["--models", "qwen2.5-7b", "--gpus", "1xP4", "--seq-lens", "1k"], "--seq-lens"),
    (["--models", "qwen2.5-7b", "--gpus", "1xP4", "--format", "xml"], "xml"),
])
def test_bad_input_is_one_line_and_exit_2_before_any_row(capsys, argv, needle):
    code, out, err = _run(capsys, argv)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and needle in err


def test_api_sweep_resolves_every_name_before_the_first_row():
    with pytest.raises(fitplan.FitplanError):
        fitplan.sweep(["qwen2.5-7b", "no-such-model"], ["1xP4"], search=False)


def test_api_sweep_yields_rows_lazily():
    rows = fitplan.sweep(["qwen2.5-0.5b"], ["1xA100-80G", "1xP4"], seq_lens=[512], search=False)
    first = next(rows)
    assert (first.model, first.gpus, first.seq_len) == ("qwen2.5-0.5b", "1xA100-80G", 512)
    assert len(list(rows)) == 1


# ---- search mode: each row is `recommend`'s answer ----------------------------------------------

SMALL_GRID = dict(models=["qwen2.5-0.5b"], gpu_sets=["1xP4", "1xA100-80G"], seq_lens=[512])


def test_search_row_is_the_recommendation_of_that_combination():
    rows = list(fitplan.sweep(SMALL_GRID["models"], SMALL_GRID["gpu_sets"], seq_lens=SMALL_GRID["seq_lens"],
                              method="lora", zero_stage=0))
    for row in rows:
        rec = fitplan.recommend(row.model, row.gpus, seq_len=row.seq_len, method="lora", zero_stage=0)
        assert row.status == rec.status and row.fits
        assert (row.method, row.micro_batch, row.grad_accum, row.attn, row.precision) == (
            rec.plan.method.value, rec.plan.micro_batch, rec.plan.grad_accum, rec.plan.attn.value,
            rec.plan.precision.value)
        assert row.peak_gib == round(rec.estimate.peak_bytes / 2**30, 2)
        assert row.tokens_per_s == round(rec.tokens_per_s, 1)


def test_worker_processes_give_the_same_rows_in_the_same_order():
    serial = list(fitplan.sweep(SMALL_GRID["models"], SMALL_GRID["gpu_sets"], seq_lens=[256, 512],
                                method="lora", zero_stage=0, jobs=1))
    parallel = list(fitplan.sweep(SMALL_GRID["models"], SMALL_GRID["gpu_sets"], seq_lens=[256, 512],
                                  method="lora", zero_stage=0, jobs=2))
    assert parallel == serial


def test_nothing_fits_anywhere_exits_3_with_the_binding_constraint(capsys):
    # Full fine-tuning keeps 16-bit weights of all 69e9 parameters on the GPU unless ZeRO-3 shards
    # them: 128 GiB, more than a P4's 7.4 GiB whatever else is chosen.
    code, out, _err = _run(capsys, ["--models", "llama-2-70b", "--gpus", "1xP4", "--seq-lens", "512",
                                    "--method", "full", "--format", "jsonl", "--jobs", "1"])
    row = json.loads(out)
    assert code == 3
    assert row["status"] == "infeasible" and row["fits"] is False and row["method"] is None
    assert "GiB" in row["reason"] and "\n" not in row["reason"]


def test_search_flags_reach_the_solver(capsys):
    # With 90% of the memory kept free, a 0.5B LoRA at 512 tokens still fits an A100-80G (8 GiB left).
    code, out, _err = _run(capsys, ["--models", "qwen2.5-0.5b", "--gpus", "1xA100-80G", "--seq-lens", "512",
                                    "--method", "lora", "--zero", "0", "--headroom", "0.9", "--format", "jsonl",
                                    "--jobs", "1"])
    row = json.loads(out)
    assert code == 0 and row["fits"]
    assert row["peak_gib"] <= 0.1 * row["capacity_gib"]


def test_progress_bar_only_for_a_terminal_and_rows_still_complete(capsys, monkeypatch):
    import sys

    from fitplan.cli import sweep as sweep_cli

    monkeypatch.setattr(sweep_cli, "_stream_is_terminal", lambda stream: stream is sys.stderr)
    code, out, err = _run(capsys, ESTIMATE_GRID)
    assert code == 0
    assert err.startswith("sweep")  # the bar's label, on stderr (click draws the bar itself only on a real tty)
    assert len(out.splitlines()) == 1 + 8  # header + every row, on stdout
