"""The two plots of an answer, as SVG: memory vs sequence length for full / LoRA / QLoRA (from
`seq_len_sweep`), and the runners-up as a memory x tokens/s scatter with the plan highlighted and
the Pareto front drawn. `fitplan plot` writes the same figures to a file."""

from __future__ import annotations

from dataclasses import dataclass

from .api_bridge import GIB, Recommendation, describe_config_of
from .seq_len_sweep import SeqLenCurve
from .svg import BUDGET_COLOUR, CAPACITY_COLOUR, METHOD_COLOURS, Scale, Svg, nice_ticks, tick_label

WIDTH, HEIGHT = 760, 380
LEFT, RIGHT, TOP, BOTTOM = 64, 230, 40, 50  # the right margin holds the legend
Y_CLIP_CAPACITIES = 3  # the memory axis stops at 3 x the capacity: longer curves leave the plot


def _gib(nbytes: float) -> str:
    return f"{nbytes / GIB:.2f} GiB"


def _frame(svg: Svg, x: Scale, y: Scale, x_ticks: list[float], y_ticks: list[float], x_title: str, y_title: str,
           y_tick_gib: bool = False) -> None:
    svg.rect(x.start_px, y.end_px, x.end_px - x.start_px, y.start_px - y.end_px, fill="none", stroke="#cccccc")
    for tick in x_ticks:
        px = x(tick)
        svg.line(px, y.start_px, px, y.start_px + 4, stroke="#999999")
        svg.text(px, y.start_px + 16, tick_label(tick), size=10, text_anchor="middle", fill="#555555")
    for tick in y_ticks:
        py = y(tick * GIB if y_tick_gib else tick)
        svg.line(x.start_px - 4, py, x.end_px, py, stroke="#eeeeee")
        svg.text(x.start_px - 7, py + 3, tick_label(tick), size=10, text_anchor="end", fill="#555555")
    svg.text((x.start_px + x.end_px) / 2, HEIGHT - 12, x_title, size=11, text_anchor="middle")
    svg.text(14, (y.start_px + y.end_px) / 2, y_title, size=11, text_anchor="middle",
             transform=f"rotate(-90 14 {(y.start_px + y.end_px) / 2:.0f})")


# ---- memory vs sequence length ---------------------------------------------------------------

def seq_len_plot_svg(curves: list[SeqLenCurve], *, title: str, capacity_bytes: int, budget_bytes: int,
                     budget_label: str, asked_seq_len: int) -> str:
    """Required memory per GPU against the sequence length (log2 axis), one line per method,
    the capacity and budget lines, and each method's longest fitting length marked."""
    svg = Svg(WIDTH, HEIGHT, "seq-len-plot", title)
    lengths = sorted({seq for curve in curves for seq, _ in curve.points}) or [asked_seq_len]
    highest = max([required for curve in curves for _, required in curve.points] + [capacity_bytes])
    y_ticks = nice_ticks(min(highest, Y_CLIP_CAPACITIES * capacity_bytes) / GIB * 1.05)
    x = Scale(lengths[0], max(lengths[-1], lengths[0] * 2), LEFT, WIDTH - RIGHT, log=True)
    y = Scale(0, y_ticks[-1] * GIB, HEIGHT - BOTTOM, TOP)
    svg.text(LEFT, 22, title, size=13, font_weight="bold")
    _frame(svg, x, y, [s for s in lengths if s >= lengths[0]], y_ticks, "--seq-len (tokens per sample, log scale)",
           "required per GPU (GiB)", y_tick_gib=True)
    svg.clip_rect("seq-len-area", LEFT, TOP, WIDTH - RIGHT - LEFT, HEIGHT - BOTTOM - TOP)
    _limit(svg, x, y(capacity_bytes), CAPACITY_COLOUR, "capacity", dash=None)
    _limit(svg, x, y(budget_bytes), BUDGET_COLOUR, "budget", dash="5,3")
    asked = x(asked_seq_len)
    svg.line(asked, TOP, asked, HEIGHT - BOTTOM, stroke="#888888", stroke_dasharray="2,3", class_="asked")
    svg.text(asked + 3, TOP + 10, f"--seq-len {asked_seq_len}", size=10, fill="#555555")
    for k, curve in enumerate(curves):
        _curve(svg, x, y, curve)
        _curve_legend(svg, k, curve)
    _line_key(svg, TOP + 8 + len(curves) * 44, CAPACITY_COLOUR, None, [f"capacity {_gib(capacity_bytes)}"])
    _line_key(svg, TOP + 8 + len(curves) * 44 + 24, BUDGET_COLOUR, "5,3", budget_label.split(": ", 1))
    return svg.render()


def _limit(svg: Svg, x: Scale, py: float, colour: str, css: str, dash: str | None) -> None:
    svg.line(x.start_px, py, x.end_px, py, stroke=colour, stroke_width=1.5, stroke_dasharray=dash, class_=css)


def _line_key(svg: Svg, ly: float, colour: str, dash: str | None, lines: list[str]) -> None:
    lx = WIDTH - RIGHT + 14
    svg.line(lx, ly, lx + 18, ly, stroke=colour, stroke_width=1.5, stroke_dasharray=dash)
    for k, text in enumerate(lines):
        svg.text(lx + 24, ly + 4 + 14 * k, text + (":" if k < len(lines) - 1 else ""), size=11, fill=colour)


def _curve(svg: Svg, x: Scale, y: Scale, curve: SeqLenCurve) -> None:
    if not curve.points:
        return
    colour = METHOD_COLOURS.get(curve.method, "#555555")
    svg.open_group(class_="curve", data_method=curve.method, clip_path="url(#seq-len-area)")
    svg.polyline([(x(seq), y(required)) for seq, required in curve.points], stroke=colour, stroke_width=2)
    for seq, required in curve.points:
        svg.circle(x(seq), y(required), 3, fill=colour, title=f"{curve.method} at seq {seq}: {_gib(required)}")
    svg.close_group()
    if curve.longest_fitting is not None:
        px = x(curve.longest_fitting)
        svg.element("path", d=f"M{px:.1f},{y.start_px - 1:.1f} l-5,-9 l10,0 z", fill=colour, class_="longest",
                    data_method=curve.method, data_seq_len=curve.longest_fitting,
                    title=f"{curve.method}: longest that fits {curve.longest_fitting}")


def curve_summary(curve: SeqLenCurve) -> str:
    """One line per method, as the legend and the page's text say it."""
    if curve.error:
        return f"{curve.method}: cannot run with this setup: {curve.error}"
    if curve.longest_fitting is None:
        return f"{curve.method}: does not fit even at seq {curve.points[0][0]}"
    if curve.fits_beyond_range:
        return f"{curve.method}: fits up to seq {curve.longest_fitting} and beyond"
    return f"{curve.method}: longest that fits: seq {curve.longest_fitting}"


def _curve_legend(svg: Svg, k: int, curve: SeqLenCurve) -> None:
    lx, ly = WIDTH - RIGHT + 14, TOP + 8 + k * 44
    colour = METHOD_COLOURS.get(curve.method, "#555555")
    svg.line(lx, ly, lx + 18, ly, stroke=colour, stroke_width=3)
    head, _, tail = curve_summary(curve).partition(": ")
    svg.text(lx + 24, ly + 4, head, size=12, font_weight="bold", fill=colour)
    svg.text(lx + 24, ly + 19, tail if len(tail) <= 34 else tail[:33] + "…", size=10, class_="curve-summary",
             data_method=curve.method, title=tail)


# ---- the runners-up scatter ------------------------------------------------------------------

@dataclass(frozen=True)
class PlanPoint:
    rank: int  # 1 = the plan, 2.. = runners-up, as `recommend --top` numbers them
    peak_bytes: int
    tokens_per_s: float
    description: str


def plan_points(result: Recommendation) -> list[PlanPoint]:
    """The plan and its runners-up, numbered as the CLI lists them."""
    if result.plan is None:
        return []
    points = [PlanPoint(1, result.estimate.peak_bytes, result.tokens_per_s, describe_config_of(result.plan))]
    for k, runner in enumerate(result.runners_up, start=2):
        points.append(PlanPoint(k, runner.peak_bytes, runner.tokens_per_s, describe_config_of(runner.plan)))
    return points


def pareto_front(points: list[PlanPoint]) -> list[PlanPoint]:
    """The points no other point beats on both memory (less) and speed (more), by memory."""
    front = [p for p in points
             if not any(q.peak_bytes <= p.peak_bytes and q.tokens_per_s >= p.tokens_per_s
                        and (q.peak_bytes, q.tokens_per_s) != (p.peak_bytes, p.tokens_per_s) for q in points)]
    return sorted(front, key=lambda p: (p.peak_bytes, p.tokens_per_s))


def runners_up_plot_svg(result: Recommendation, *, title: str) -> str:
    """Peak GiB per GPU against tokens/s for the plan (1, highlighted) and each runner-up, the
    Pareto front, and the memory budget line."""
    svg = Svg(WIDTH, HEIGHT, "runners-up-plot", title)
    svg.text(LEFT, 22, title, size=13, font_weight="bold")
    points = plan_points(result)
    if not points:
        svg.text(LEFT, TOP + 30, "nothing fits: no plan to draw", size=12, fill=BUDGET_COLOUR)
        return svg.render()
    budget = result.memory_budget_bytes
    memory_gib = [p.peak_bytes / GIB for p in points] + [budget / GIB]
    speeds = [p.tokens_per_s for p in points]
    x_ticks = nice_ticks(*_padded(memory_gib))
    y_ticks = nice_ticks(*_padded(speeds))
    x = Scale(x_ticks[0] * GIB, x_ticks[-1] * GIB, LEFT, WIDTH - RIGHT)
    y = Scale(y_ticks[0], y_ticks[-1], HEIGHT - BOTTOM, TOP)
    _frame(svg, Scale(x_ticks[0], x_ticks[-1], LEFT, WIDTH - RIGHT), y, x_ticks, y_ticks, "peak GiB per GPU",
           "tokens/s")
    bx = x(budget)
    svg.line(bx, TOP, bx, HEIGHT - BOTTOM, stroke=BUDGET_COLOUR, stroke_dasharray="5,3", class_="budget")
    svg.text(bx - 4, TOP + 10, f"memory budget per GPU: {_gib(budget)}", size=10, fill=BUDGET_COLOUR,
             text_anchor="end")
    front = pareto_front(points)
    if len(front) > 1:
        svg.polyline([(x(p.peak_bytes), y(p.tokens_per_s)) for p in front], stroke="#f28e2b", stroke_width=1.5,
                     stroke_dasharray="4,2", class_="pareto")
    for point in sorted(points, key=lambda p: -p.rank):  # the plan drawn last, on top
        _plan_dot(svg, x(point.peak_bytes), y(point.tokens_per_s), point, point in front)
    _scatter_legend(svg)
    return svg.render()


def _padded(values: list[float]) -> tuple[float, int, float]:
    """(hi, tick count, lo) of an axis around `values`, a fifth of their spread either side."""
    lo, hi = min(values), max(values)
    pad = (hi - lo) / 5 or hi / 20 or 1.0
    return hi + pad, 5, max(0.0, lo - pad)


def _plan_dot(svg: Svg, px: float, py: float, point: PlanPoint, on_front: bool) -> None:
    chosen = point.rank == 1
    text = f"{point.rank}. {point.tokens_per_s:,.0f} tokens/s, peak {_gib(point.peak_bytes)}: {point.description}"
    svg.circle(px, py, 7 if chosen else 4.5, fill="#e15759" if chosen else "#4e79a7",
               stroke="#222222" if on_front else "#ffffff", stroke_width=2 if chosen else 1,
               class_="plan chosen" if chosen else "plan runner-up", data_rank=point.rank,
               data_pareto="true" if on_front else "false", title=text)
    left = point.rank % 2 == 1 and not chosen  # odd runners-up labelled on the left: fewer overlaps
    svg.text(px - 8 if left else px + 8, py - 6, str(point.rank), size=10, fill="#333333",
             text_anchor="end" if left else None)


def _scatter_legend(svg: Svg) -> None:
    lx, ly = WIDTH - RIGHT + 14, TOP + 8
    svg.circle(lx + 6, ly, 7, fill="#e15759", stroke="#222222", stroke_width=2)
    svg.text(lx + 20, ly + 4, "1 = the plan", size=11)
    svg.circle(lx + 6, ly + 24, 4.5, fill="#4e79a7", stroke="#ffffff")
    svg.text(lx + 20, ly + 28, "2, 3, ... = runners-up", size=11)
    svg.line(lx, ly + 48, lx + 14, ly + 48, stroke="#f28e2b", stroke_width=1.5, stroke_dasharray="4,2")
    svg.text(lx + 20, ly + 52, "Pareto front: no other plan", size=11)
    svg.text(lx + 20, ly + 66, "is both faster and smaller", size=11)
