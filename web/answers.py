"""The answers to a question: the CLI's `--json` objects for the API, the figures and text for
the page, the zip of `recommend --emit` files. Each is one call of the library (`fitplan.estimate`,
`fitplan.recommend`, the CLI's own text rendering and file writer), run in the solver pool."""

from __future__ import annotations

import io
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import fitplan

from .api_bridge import (
    GIB,
    Estimate,
    FitplanError,
    Recommendation,
    max_seq_len,
    memory_budget_bytes,
    min_gpus,
    render_estimate,
    render_recommendation,
    tokens_to_train,
    write_emit,
)
from .memory_bar import memory_bar_svg
from .plots import curve_summary, runners_up_plot_svg, seq_len_plot_svg
from .questions import EstimateQuestion, RecommendQuestion, cli_command, load_question_model
from .seq_len_sweep import SeqLenCurve, seq_len_curves, setup_knobs


class NothingFits(FitplanError):
    """There is no plan, so there are no files to write (HTTP 409, the explanation as its text)."""


@dataclass(frozen=True)
class Limits:
    """What one question may do: the server's caps on the solver work (ServerLimits' solver
    fields), and whether --model may name a file (the CLI's `fitplan plot`; never the server)."""

    max_time_limit_s: float = 10.0
    max_top_k: int = 20
    read_model_files: bool = False


def _instance(question: EstimateQuestion, limits: Limits):
    model = load_question_model(question, read_files=limits.read_model_files)
    return fitplan.make_instance(model, question.gpus, **question.api_keywords())


# ---- the JSON API: the CLI's --json objects --------------------------------------------------

def estimate_json(question: EstimateQuestion) -> dict:
    """`fitplan estimate --json`."""
    return fitplan.estimate(load_question_model(question), question.gpus, **question.api_keywords()).to_json_dict()


def recommend_json(question: RecommendQuestion, limits: Limits) -> dict:
    """`fitplan recommend --json` (with --max-seq-len / --min-gpus: their answers)."""
    instance = _instance(question, limits)
    settings = question.settings(limits.max_time_limit_s, limits.max_top_k)
    if question.max_seq_len or question.min_gpus:
        answers = {}
        if question.max_seq_len:
            answers["max_seq_len"] = max_seq_len(instance, settings)
        if question.min_gpus:
            answers["min_gpus"] = min_gpus(instance, settings)
        return answers
    tokens = tokens_to_train(question.tokens, question.epochs, question.dataset_samples, question.seq_len)
    result = fitplan.recommend(instance.model, instance.gpus, settings=settings,
                               compare_engines=question.compare_engines, **question.api_keywords())
    payload = result.to_json_dict()
    if tokens and result.tokens_per_s:
        payload["time_to_train_s"] = round(result.time_to_train_s(tokens), 1)
    return payload


# ---- the zip of --emit files -----------------------------------------------------------------

def emit_zip(question: RecommendQuestion, limits: Limits) -> tuple[str, bytes]:
    """(file name, zip bytes) of the files `fitplan recommend --emit ...` writes for the plan."""
    instance = _instance(question, limits)
    settings = question.settings(limits.max_time_limit_s, limits.max_top_k)
    result = fitplan.recommend(instance.model, instance.gpus, settings=settings, **question.api_keywords())
    if result.plan is None:
        raise NothingFits("nothing fits: " + (result.explanation.binding if result.explanation else "no candidate"))
    with tempfile.TemporaryDirectory(prefix="fitplan-emit-") as folder:
        paths = write_emit(instance.model, instance.gpus, result.plan, out=folder, **question.emit_keywords())
        return f"{instance.model.name}-{instance.gpus.label()}-plan.zip", _zip(paths)


def _zip(paths: list[Path]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in paths:
            info = zipfile.ZipInfo(f"plan/{path.name}")
            info.external_attr = (path.stat().st_mode & 0o777) << 16  # launch.sh stays executable
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    return buffer.getvalue()


# ---- the page --------------------------------------------------------------------------------

@dataclass
class PageAnswer:
    """Everything the page shows for one question."""

    command: str  # "estimate" or "recommend"
    cli_line: str  # the command that reproduces it
    report: str  # what that command prints
    estimate: Estimate | None
    recommendation: Recommendation | None = None
    bar_svg: str = ""
    seq_len_svg: str = ""
    curve_lines: list[str] = field(default_factory=list)
    runners_up_svg: str = ""


def page_answer(question: RecommendQuestion, command: str, limits: Limits) -> PageAnswer:
    """The page's answer: `recommend` (the default) or `estimate` of the question."""
    if command == "estimate":
        return _estimate_page(question, limits)
    return _recommend_page(question, limits)


def _estimate_page(question: RecommendQuestion, limits: Limits) -> PageAnswer:
    instance = _instance(question, limits)
    est = fitplan.estimate(instance.model, instance.gpus, **question.api_keywords())
    budget = memory_budget_bytes(instance.gpus, question.headroom, variable_length=not instance.workload.packing)
    answer = PageAnswer("estimate", cli_command(_estimate_only(question), "estimate"), render_estimate(est), est,
                        bar_svg=memory_bar_svg(est))
    _add_seq_len_plot(answer, instance, question, setup_knobs(pins=question.knobs()), budget, question.headroom)
    return answer


def _estimate_only(question: RecommendQuestion) -> EstimateQuestion:
    fields = set(EstimateQuestion.model_fields)
    return EstimateQuestion.model_validate({k: v for k, v in question.model_dump().items() if k in fields})


def _recommend_page(question: RecommendQuestion, limits: Limits) -> PageAnswer:
    instance = _instance(question, limits)
    settings = question.settings(limits.max_time_limit_s, limits.max_top_k)
    tokens = tokens_to_train(question.tokens, question.epochs, question.dataset_samples, question.seq_len)
    result = fitplan.recommend(instance.model, instance.gpus, settings=settings,
                               compare_engines=question.compare_engines, **question.api_keywords())
    answer = PageAnswer("recommend", cli_command(question, "recommend"), render_recommendation(result, tokens),
                        result.estimate, result)
    if result.estimate is not None:
        answer.bar_svg = memory_bar_svg(result.estimate, result.memory_budget_bytes,
                                        f" ({result.headroom_fraction:.0%} headroom)")
        answer.runners_up_svg = runners_up_plot_svg(
            result, title=f"the plan and its runners-up: {instance.model.name} on {instance.gpus.label()}")
    setup = setup_knobs(result.plan) if result.plan is not None else setup_knobs(pins=question.knobs())
    _add_seq_len_plot(answer, instance, question, setup, result.memory_budget_bytes, result.headroom_fraction)
    return answer


def _add_seq_len_plot(answer: PageAnswer, instance, question: EstimateQuestion, setup: dict, budget: int,
                      headroom_fraction: float) -> None:
    curves = seq_len_curves(instance.model, instance.gpus, setup, asked_seq_len=question.seq_len,
                            packing=question.packing, budget_bytes=budget, pinned_bits=question.bits)
    answer.curve_lines = [curve_summary(curve) for curve in curves]
    answer.seq_len_svg = seq_len_figure(curves, instance, question.seq_len, budget, headroom_fraction)


def seq_len_figure(curves: list[SeqLenCurve], instance, asked_seq_len: int, budget: int,
                   headroom_fraction: float) -> str:
    """The memory-vs-sequence-length plot of `curves` on the instance's GPUs."""
    title = f"memory vs sequence length: {instance.model.name} on {instance.gpus.label()}"
    budget_label = f"memory budget per GPU: {budget / GIB:.2f} GiB ({headroom_fraction:.0%} headroom)"
    return seq_len_plot_svg(curves, title=title, capacity_bytes=instance.gpus.gpu.memory_bytes, budget_bytes=budget,
                            budget_label=budget_label, asked_seq_len=asked_seq_len)
