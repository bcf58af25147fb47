"""`fitplan sweep`: one row per model x GPU set x sequence length, for pipelines.

Exit codes: 0 at least one row has a plan that fits (rows that do not fit are data: `fits` is
false and `reason` says why); 3 no row fits; 2 bad input (unknown model or GPU, bad list)."""

from __future__ import annotations

import os
import sys

import click

import fitplan
from fitplan.solver.errors import InvalidConfigurationError, shown
from fitplan.solver.planner.sweep import any_fits
from fitplan.solver.problem.answers import SweepRow
from fitplan.solver.problem.settings import SolverSettings
from fitplan.solver.specs import limits
from fitplan.solver.units import GIB

from .exit_codes import EXIT_NOTHING_FITS, EXIT_OK
from .options import (
    BoundedCommand,
    FiniteFloat,
    ShortChoice,
    count,
    data_shape_options,
    inter_node_option,
    knob_options,
    pins_from_kwargs,
    revision_option,
)
from .render_sweep import csv_header, csv_line, jsonl_line


def _names(text: str, what: str, example: str) -> list[str]:
    names = [part.strip() for part in text.split(",", limits.MAX_SWEEP_LIST_ITEMS) if part.strip()]
    if not names:
        raise InvalidConfigurationError(f"--{what} is empty: give a comma-separated list, e.g. {example}")
    if len(names) > limits.MAX_SWEEP_LIST_ITEMS:
        raise InvalidConfigurationError(f"--{what} lists more than {limits.MAX_SWEEP_LIST_ITEMS} entries "
                                        "(solver/specs/limits.py): split the sweep into several calls")
    return names


def _seq_lens(text: str) -> list[int]:
    values = []
    for part in _names(text, "seq-lens", "1024,2048,4096"):
        whole = part.isascii() and part.isdigit() and len(part) <= limits.MAX_COUNT_DIGITS
        if not whole or not 1 <= int(part) <= limits.MAX_SEQ_LEN:
            raise InvalidConfigurationError(f"--seq-lens: '{shown(part)}' is not a whole number in "
                                            f"1..{limits.MAX_SEQ_LEN:,}, e.g. 1024,2048,4096")
        values.append(int(part))
    return values


def _stream_is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


@click.command("sweep", cls=BoundedCommand)
@click.option("--models", required=True,
              help="Comma-separated models: qwen2.5-7b,Qwen/Qwen3-8B (catalog names, Hugging Face ids or config.json paths).")
@revision_option
@click.option("--gpus", required=True,
              help="Comma-separated GPU sets: 8xP4,4xA10,1xA100-80G,2x8xH100, or VRAM budgets 1x24GiB,2x80GB (see recommend --help).")
@inter_node_option
@click.option("--seq-lens", default="2048", show_default=True, help="Comma-separated tokens per sample: 1024,2048,4096.")
@click.option("--global-batch", type=count(1, limits.MAX_GLOBAL_BATCH), default=None, help="Samples per optimizer step over all GPUs.")
@data_shape_options
@knob_options
@click.option("--search/--no-search", default=True, show_default=True,
              help="Search for the fastest plan (as `recommend`), or evaluate the knobs given with "
                   "LLaMA-Factory's defaults for the rest (as `estimate`).")
@click.option("--headroom", type=FiniteFloat(0, 0.9), default=None,
              help="Fraction of each GPU's memory kept free (as recommend; default 0.05).")
@click.option("--host-ram-gib", type=FiniteFloat(1, limits.MAX_HOST_RAM_GIB), default=None,
              help="Host RAM per node for CPU offload (as recommend; default 2x the node's GPU memory).")
@click.option("--time-limit", type=FiniteFloat(0.1, limits.MAX_TIME_LIMIT_S), default=None,
              help="CP-SAT time limit per row, seconds (as recommend; default 10).")
@click.option("--jobs", "-j", type=count(1, limits.MAX_JOBS), default=None,
              help="Worker processes answering rows (default: the number of CPUs). Rows keep their order.")
@click.option("--format", "fmt", type=ShortChoice(["csv", "jsonl"]), default="csv", show_default=True,
              help="csv (with a header) or one JSON object per line.")
def sweep_command(models: str, revision: str | None, gpus: str, inter_node_gbps: float | None, seq_lens: str,
                  global_batch: int | None, packing: bool, mean_sample_len: int | None, search: bool,
                  headroom: float | None, host_ram_gib: float | None, time_limit: float | None, jobs: int | None,
                  fmt: str, **knobs) -> int:
    """The best plan, or why nothing fits, for every model x GPU set x sequence length.

    Exit 0 when at least one row fits, 3 when none does, 2 on bad input."""
    model_names = _names(models, "models", "qwen2.5-7b,llama-2-13b")
    gpu_names = _names(gpus, "gpus", "8xP4,1xA100-80G")
    lengths = _seq_lens(seq_lens)
    settings = None
    if search:
        chosen = {"headroom_fraction": headroom, "time_limit_s": time_limit,
                  "host_ram_bytes": int(host_ram_gib * GIB) if host_ram_gib else None}
        settings = SolverSettings(**{k: v for k, v in chosen.items() if v is not None})
    rows_iter = fitplan.sweep(model_names, gpu_names, seq_lens=lengths, global_batch=global_batch, packing=packing,
                              mean_sample_len=mean_sample_len, search=search, settings=settings,
                              jobs=jobs or min(os.cpu_count() or 1, limits.MAX_JOBS), revision=revision, inter_node_gbps=inter_node_gbps,
                              **pins_from_kwargs(knobs))
    total = len(model_names) * len(gpu_names) * len(lengths)
    render = csv_line if fmt == "csv" else jsonl_line
    # A bar only for a person watching: stderr on a terminal. When stdout is that same terminal
    # the rows are held back until the bar is done, so the two do not interleave.
    show_bar = _stream_is_terminal(sys.stderr)
    hold_rows = show_bar and _stream_is_terminal(sys.stdout)
    rows: list[SweepRow] = []
    held: list[str] = []

    def emit(line: str) -> None:
        if hold_rows:
            held.append(line)
        else:
            click.echo(line)
            sys.stdout.flush()

    if fmt == "csv":
        emit(csv_header())
    if show_bar:
        with click.progressbar(length=total, label="sweep", file=sys.stderr, show_pos=True, show_eta=True) as bar:
            for row in rows_iter:
                rows.append(row)
                emit(render(row))
                bar.update(1)
    else:
        for row in rows_iter:
            rows.append(row)
            emit(render(row))
    for line in held:
        click.echo(line)
    return EXIT_OK if any_fits(rows) else EXIT_NOTHING_FITS
