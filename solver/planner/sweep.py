"""A grid of questions (models x GPU sets x sequence lengths) answered one row each: the best
plan's knobs, its per-GPU peak and speed, or the reason nothing fits. For pipelines that compare
hardware or models; `fitplan sweep` prints the rows as CSV or JSON lines.

Every row is one `recommend` call (or one `estimate` call with `search=False`), so a row says
exactly what `fitplan recommend` / `fitplan estimate` would say for that combination."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from functools import partial
from typing import Callable, Iterator

from pydantic import BaseModel, ConfigDict, Field

from ..errors import FitplanError
from ..memory.estimate import estimate
from ..problem.answers import RANKING_BY_MEMORY, Estimate, SweepRow, plan_knobs
from ..problem.config import TrainConfig
from ..problem.instance import Instance, Pins, Workload, config_for_estimate
from ..specs.gpu import GpuSet
from ..specs.model import ModelSpec
from ..units import format_gib, to_gib
from .recommend import recommend


class SweepRequest(BaseModel):
    """The grid: every model on every GPU set at every sequence length, with the same pins."""

    model_config = ConfigDict(frozen=True)

    models: list[ModelSpec] = Field(min_length=1)
    gpu_sets: list[GpuSet] = Field(min_length=1)
    seq_lens: list[int] = Field(default=[2048], min_length=1)
    global_batch: int | None = Field(default=None, ge=1)
    packing: bool = False
    mean_sample_len: int | None = Field(default=None, ge=1)
    pins: Pins = Pins()
    search: bool = True  # True: recommend (decide the free knobs); False: estimate (LLaMA-Factory defaults)

    @property
    def size(self) -> int:
        return len(self.models) * len(self.gpu_sets) * len(self.seq_lens)

    def instances(self) -> Iterator[Instance]:
        """Model-major, then GPU set, then sequence length: the order rows come out in."""
        for model in self.models:
            for gpus in self.gpu_sets:
                for seq_len in self.seq_lens:
                    workload = Workload(seq_len=seq_len, global_batch=self.global_batch, packing=self.packing,
                                        mean_sample_len=self.mean_sample_len)
                    yield Instance(model=model, gpus=gpus, pins=self.pins, workload=workload)


def _gib(value: int) -> float:
    return to_gib(value, digits=2)  # CSV columns: two decimals


def _knob_columns(config: TrainConfig) -> dict:
    return {**plan_knobs(config), "global_batch": config.global_batch}


def _memory_columns(est: Estimate) -> dict:
    return {"peak_gib": _gib(est.peak_bytes), "capacity_gib": _gib(est.capacity_bytes),
            "host_ram_gib": _gib(est.host_ram_bytes) if est.host_ram_bytes else None}


def _heading(instance: Instance) -> dict:
    return {"model": instance.model.name, "gpus": instance.gpus.label(), "seq_len": instance.workload.seq_len}


def infeasible_reason(explanation) -> str:
    """recommend's explanation as one CSV cell: the binding constraint, and what would fit."""
    if explanation is None:
        return "no configuration fits"
    parts = [" ".join(explanation.binding.split())]
    if explanation.max_seq_len:
        parts.append(f"longest seq that fits: {explanation.max_seq_len}")
    if explanation.min_gpus:
        parts.append(f"fewest GPUs that fit: {explanation.min_gpus}")
    return "; ".join(parts)


def oom_reason(est: Estimate) -> str:
    return (f"needs {format_gib(est.peak_bytes)} per GPU at {est.peak_moment} ({est.peak_phase}), "
            f"{format_gib(est.capacity_bytes)} available")


def estimate_row(instance: Instance) -> SweepRow:
    """The knobs pinned, LLaMA-Factory's defaults for the rest: does it fit?"""
    try:
        config = config_for_estimate(instance)
        est = estimate(instance.model, instance.gpus, config)
    except FitplanError as exc:
        return SweepRow(**_heading(instance), status="invalid", fits=False, reason=str(exc))
    return SweepRow(**_heading(instance), status="fits" if est.fits else "oom", fits=est.fits,
                    **_knob_columns(est.config), **_memory_columns(est),
                    reason="" if est.fits else oom_reason(est))


def recommend_row(instance: Instance, settings=None) -> SweepRow:
    """The fastest plan that fits (planner/recommend.py), or why nothing does."""
    try:
        rec = recommend(instance, settings)
    except FitplanError as exc:
        return SweepRow(**_heading(instance), status="invalid", fits=False, reason=str(exc))
    status = getattr(rec.status, "value", rec.status)
    if rec.plan is None:
        return SweepRow(**_heading(instance), status=str(status), fits=False,
                        reason=infeasible_reason(rec.explanation))
    columns = {**_knob_columns(rec.plan), "tokens_per_s": _round(rec.tokens_per_s), "step_time_s": _round(rec.step_time_s, 3)}
    if not rec.speed_known:  # a VRAM budget: no rates, the plan was ranked by memory fit
        columns.update(tokens_per_s=None, step_time_s=None, reason="speed unknown, ranked by " + RANKING_BY_MEMORY)
    if rec.estimate is not None:
        columns.update(_memory_columns(rec.estimate))
    return SweepRow(**_heading(instance), status=str(status), fits=True, **columns)


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(float(value), digits)


def run_sweep(request: SweepRequest, settings=None, *, jobs: int = 1,
              row_for: Callable[[Instance], SweepRow] | None = None) -> Iterator[SweepRow]:
    """The rows of the grid in `request.instances()` order, each as soon as it and the rows
    before it are answered. `jobs` > 1 answers rows in that many worker processes (each row is
    independent and CPU-bound; the order of the output does not change)."""
    if row_for is None:
        row_for = partial(recommend_row, settings=settings) if request.search else estimate_row
    jobs = max(1, min(jobs, request.size))
    if jobs == 1 or not request.search:  # estimate rows take about a millisecond: no pool
        for instance in request.instances():
            yield row_for(instance)
        return
    pool = ProcessPoolExecutor(max_workers=jobs)
    try:
        yield from pool.map(row_for, request.instances(), chunksize=1)
    finally:  # a consumer that stops early (Ctrl-C, head) must not wait for the rest of the grid
        pool.shutdown(wait=True, cancel_futures=True)


def any_fits(rows: list[SweepRow]) -> bool:
    return any(row.fits for row in rows)
