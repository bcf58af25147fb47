"""`fitplan plot`: the page's figures without the page, as SVG (or PNG with the [png] extra)."""

from __future__ import annotations

from pathlib import Path

import click

from fitplan.solver.errors import ConfigFileError
from fitplan.solver.specs import limits

from .exit_codes import EXIT_BAD_INPUT, EXIT_NOTHING_FITS
from .options import (
    BoundedCommand,
    FiniteFloat,
    ShortChoice,
    count,
    data_shape_options,
    knob_options,
    model_and_gpus,
    pins_from_kwargs,
    workload_options,
)

KINDS = ("seq-len", "runners-up", "memory-bar")
PNG_HINT = "pip install 'fitplan[png]' (cairosvg, drawing with the system's libcairo2), or write .svg"


@click.command("plot", cls=BoundedCommand)
@model_and_gpus
@workload_options
@data_shape_options
@knob_options
@click.option("--kind", type=ShortChoice(KINDS), default="seq-len", show_default=True,
              help="seq-len: memory vs sequence length for full / LoRA / QLoRA; runners-up: memory x tokens/s "
                   "of the plan and its runners-up; memory-bar: the plan's memory per GPU, term by term.")
@click.option("--no-search", is_flag=True, help="Plot the knobs given with LLaMA-Factory's defaults (as estimate).")
@click.option("--top", "top_k", type=count(1, limits.MAX_TOP_K), default=8, show_default=True,
              help="Plans in the runners-up plot.")
@click.option("--headroom", type=FiniteFloat(0, 0.9), default=0.05, show_default=True,
              help="Fraction of each GPU's memory kept free.")
@click.option("--time-limit", type=FiniteFloat(0.1, limits.MAX_TIME_LIMIT_S), default=10.0, show_default=True,
              help="CP-SAT time limit per solve, seconds.")
@click.option("-o", "--out", "out", type=click.Path(dir_okay=False), required=True, help="plot.svg or plot.png.")
def plot_command(model: str, gpus: str, seq_len: int, global_batch: int | None, packing: bool,
                 mean_sample_len: int | None, kind: str, no_search: bool, top_k: int, headroom: float,
                 time_limit: float, out: str, **knobs) -> None:
    """Write one of the page's figures to a file."""
    from fitplan.web.answers import Limits, page_answer
    from fitplan.web.questions import RecommendQuestion, parse_question

    path = Path(out)
    if path.suffix.lower() not in (".svg", ".png"):
        raise ConfigFileError(f"-o {out}: write a .svg or a .png file")
    to_png = _png_converter() if path.suffix.lower() == ".png" else None  # before the work: fail fast
    pins = pins_from_kwargs(knobs)
    body = {"model": model, "gpus": gpus, "seq_len": seq_len, "global_batch": global_batch, "packing": packing,
            "mean_sample_len": mean_sample_len, "top_k": top_k, "headroom": headroom, "time_limit": time_limit,
            **{k: v for k, v in pins.items() if v is not None}}
    question = parse_question(RecommendQuestion, body)
    answer = page_answer(question, "estimate" if no_search else "recommend",
                         Limits(max_time_limit_s=time_limit, max_top_k=top_k, read_model_files=True))
    svg = {"seq-len": answer.seq_len_svg, "runners-up": answer.runners_up_svg, "memory-bar": answer.bar_svg}[kind]
    if not svg:
        click.echo(answer.report.splitlines()[0], err=True)  # "nothing fits: ...": no plan to draw
        raise SystemExit(EXIT_NOTHING_FITS)
    _write(path, svg, to_png)
    click.echo(f"wrote {path}")
    if answer.recommendation is not None and answer.recommendation.plan is None:
        raise SystemExit(EXIT_NOTHING_FITS)


def _write(path: Path, svg: str, to_png) -> None:
    try:
        if to_png is not None:
            path.write_bytes(to_png(bytestring=svg.encode("utf-8"), scale=2))
        else:
            path.write_text(svg)
    except OSError as exc:
        raise ConfigFileError(f"cannot write {path}: {exc.strerror or exc}; choose another -o") from None


def _png_converter():
    """cairosvg's svg2png, or one line saying how to install it (exit 2)."""
    try:
        import cairosvg
    except (ImportError, OSError) as exc:  # OSError: cairocffi finds no libcairo2
        click.echo(f"error: a PNG needs cairosvg ({exc.__class__.__name__}: {str(exc).splitlines()[0]}): {PNG_HINT}",
                   err=True)
        raise SystemExit(EXIT_BAD_INPUT) from None
    return cairosvg.svg2png
