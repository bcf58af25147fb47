"""The stacked memory bar of one GPU: each term of `fitplan estimate`'s breakdown a colour, in
the CLI's order and words, the capacity and the budget lines, the headroom, and the
max_memory_reserved whisker. Every number is an `Estimate` field; nothing is computed here."""

from __future__ import annotations

from .api_bridge import GIB, Estimate, term_label
from .svg import BUDGET_COLOUR, CAPACITY_COLOUR, Scale, Svg, nice_ticks, term_colour, tick_label

WIDTH = 760
LEFT, RIGHT = 20, 175  # the right margin holds the labels of the capacity and budget lines
BAR_Y, BAR_HEIGHT = 58, 40
WHISKER_Y = 118
LEGEND_Y = 168
LEGEND_COLUMNS = 3
LEGEND_ROW_PX = 20


def gib_text(nbytes: int) -> str:
    """GiB as the CLI prints them (cli/render.gib, without its padding)."""
    return f"{nbytes / GIB:.2f} GiB"


def memory_bar_svg(estimate: Estimate, budget_bytes: int | None = None, budget_note: str = "") -> str:
    """The bar of `estimate` (per GPU, at the peak moment). `budget_bytes` draws recommend's
    memory budget line (capacity less headroom), with `budget_note` after its figure."""
    terms = list(estimate.breakdown_bytes.items()) + list(estimate.overhead_bytes.items())
    rows = -(-len(terms) // LEGEND_COLUMNS) + 1
    svg = Svg(WIDTH, LEGEND_Y + rows * LEGEND_ROW_PX + 10, "memory-bar",
              f"memory per GPU of {estimate.model} on {estimate.gpus}")
    top = max(estimate.capacity_bytes, estimate.peak_bytes, estimate.max_reserved_bytes)
    ticks = nice_ticks(top / GIB * 1.02)
    x = Scale(0, ticks[-1] * GIB, LEFT, WIDTH - RIGHT)
    svg.text(LEFT, 18, f"per GPU at the peak ({estimate.peak_phase}): {estimate.model} on {estimate.gpus}, "
                       f"each of the {estimate.config.n_gpus} GPU{'s' if estimate.config.n_gpus > 1 else ''} "
                       "holds this", size=13, font_weight="bold")
    _axis(svg, x, ticks)
    _stack(svg, x, terms)
    _headroom(svg, x, estimate)
    _limit_lines(svg, x, estimate, budget_bytes, budget_note)
    _whisker(svg, x, estimate)
    _legend(svg, terms, estimate)
    return svg.render()


def _axis(svg: Svg, x: Scale, ticks: list[float]) -> None:
    for tick in ticks:
        px = x(tick * GIB)
        label = tick_label(tick) + (" GiB" if tick == ticks[-1] else "")
        svg.line(px, BAR_Y + BAR_HEIGHT, px, BAR_Y + BAR_HEIGHT + 4, stroke="#999999")
        svg.text(px, BAR_Y + BAR_HEIGHT + 15, label, size=10, text_anchor="middle", fill="#555555")


def _stack(svg: Svg, x: Scale, terms: list[tuple[str, int]]) -> None:
    start = 0
    svg.open_group(class_="stack")
    for name, nbytes in terms:
        label = term_label(name)
        svg.rect(x(start), BAR_Y, x(start + nbytes) - x(start), BAR_HEIGHT, fill=term_colour(name),
                 stroke="#ffffff", stroke_width=0.5, class_="term", data_term=name,
                 data_gib=f"{nbytes / GIB:.2f}", title=f"{label} {gib_text(nbytes)}")
        start += nbytes
    svg.close_group()


def _headroom(svg: Svg, x: Scale, estimate: Estimate) -> None:
    required, capacity = estimate.peak_bytes, estimate.capacity_bytes
    verdict = "FITS" if estimate.fits else "DOES NOT FIT"
    text = f"headroom {gib_text(estimate.headroom_bytes)} {verdict}"
    if required <= capacity:
        svg.rect(x(required), BAR_Y, x(capacity) - x(required), BAR_HEIGHT, fill="#eef6ee", stroke="#59a14f",
                 stroke_dasharray="3,2", class_="headroom", data_gib=f"{estimate.headroom_bytes / GIB:.2f}", title=text)
    else:  # the part over the capacity, hatched in red
        svg.rect(x(capacity), BAR_Y - 4, x(required) - x(capacity), BAR_HEIGHT + 8, fill="none",
                 stroke=BUDGET_COLOUR, stroke_width=2, class_="overflow", title=text)
    svg.text(LEFT, BAR_Y - 8, f"= required {gib_text(required)}   {text}", size=12,
             fill="#2e7d32" if estimate.fits else BUDGET_COLOUR, class_="verdict")


def _limit_lines(svg: Svg, x: Scale, estimate: Estimate, budget_bytes: int | None, budget_note: str) -> None:
    """The lines on the bar; their labels stand in the right margin beside a sample of the line."""
    cap = x(estimate.capacity_bytes)
    key_x = x.end_px + 10
    svg.line(cap, BAR_Y - 6, cap, BAR_Y + BAR_HEIGHT + 6, stroke=CAPACITY_COLOUR, stroke_width=2, class_="capacity")
    svg.line(key_x, BAR_Y - 2, key_x, BAR_Y + 10, stroke=CAPACITY_COLOUR, stroke_width=2)
    svg.text(key_x + 6, BAR_Y + 8, f"capacity {gib_text(estimate.capacity_bytes)}", size=11, fill=CAPACITY_COLOUR)
    if budget_bytes is not None:
        px = x(budget_bytes)
        svg.line(px, BAR_Y - 6, px, BAR_Y + BAR_HEIGHT + 6, stroke=BUDGET_COLOUR, stroke_width=2,
                 stroke_dasharray="5,3", class_="budget", title=f"memory budget per GPU: {gib_text(budget_bytes)}")
        svg.line(key_x, BAR_Y + 18, key_x, BAR_Y + 44, stroke=BUDGET_COLOUR, stroke_width=2, stroke_dasharray="5,3")
        svg.text(key_x + 6, BAR_Y + 28, "memory budget per GPU:", size=11, fill=BUDGET_COLOUR)
        svg.text(key_x + 6, BAR_Y + 42, f"{gib_text(budget_bytes)}{budget_note}", size=11, fill=BUDGET_COLOUR)


def _whisker(svg: Svg, x: Scale, estimate: Estimate) -> None:
    reserved, most = estimate.reserved_peak_bytes, estimate.max_reserved_bytes
    y = WHISKER_Y
    svg.open_group(class_="whisker", data_reserved_gib=f"{reserved / GIB:.2f}", data_max_reserved_gib=f"{most / GIB:.2f}")
    svg.line(x(reserved), y, x(most), y, stroke="#555555", stroke_width=1.5)
    svg.line(x(reserved), y - 6, x(reserved), y + 6, stroke="#555555", stroke_width=2)
    svg.line(x(most), y - 6, x(most), y + 6, stroke="#555555", stroke_width=1.5)
    svg.close_group()
    svg.text(LEFT, y + 22, f"reserved {gib_text(reserved)}, max_memory_reserved up to {gib_text(most)} "
                           "(the whisker: not used for fits)", size=11, fill="#555555")


def _legend(svg: Svg, terms: list[tuple[str, int]], estimate: Estimate) -> None:
    column_px = (WIDTH - LEFT) // LEGEND_COLUMNS
    for k, (name, nbytes) in enumerate(terms):
        col, row = k % LEGEND_COLUMNS, k // LEGEND_COLUMNS
        lx, ly = LEFT + col * column_px, LEGEND_Y + row * LEGEND_ROW_PX
        svg.rect(lx, ly - 10, 12, 12, fill=term_colour(name))
        svg.text(lx + 17, ly, f"{term_label(name)} {gib_text(nbytes)}", size=11, class_="legend-term")
    last = LEGEND_Y + (-(-len(terms) // LEGEND_COLUMNS)) * LEGEND_ROW_PX
    svg.text(LEFT, last, f"= tensors (allocated) {gib_text(estimate.tensor_peak_bytes)}", size=11, fill="#555555")
