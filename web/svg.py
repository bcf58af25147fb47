"""A small SVG writer for the figures: every text and attribute is escaped here (a model name
from an uploaded config.json may hold markup), so no figure builds markup by hand."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .html import esc

FONT = "DejaVu Sans, Verdana, Arial, sans-serif"

# One colour per memory term (the Term values of solver/memory/terms.py), the Tableau 20 order.
TERM_COLOURS = {
    "weights": "#4e79a7", "trainable_params": "#f28e2b", "gradients": "#e15759", "optimizer_states": "#76b7b2",
    "activations": "#59a14f", "logits_loss": "#edc948", "autocast_weight_copies": "#b07aa1",
    "transient": "#ff9da7", "comm_buffers": "#9c755f", "zero3_gathered_layer": "#a0cbe8",
    "allocator_reserve": "#bab0ac", "cuda_context": "#79706e", "kernel_workspaces": "#d4a6c8",
    "nccl_buffers": "#86bcb6",
}
SPARE_COLOURS = ("#8cd17d", "#b6992d", "#f1ce63", "#499894", "#d37295", "#fabfd2")
METHOD_COLOURS = {"full": "#e15759", "lora": "#4e79a7", "qlora": "#59a14f", "freeze": "#b07aa1"}
BUDGET_COLOUR = "#c0392b"
CAPACITY_COLOUR = "#333333"


def term_colour(name: str) -> str:
    if name in TERM_COLOURS:
        return TERM_COLOURS[name]
    return SPARE_COLOURS[sum(map(ord, name)) % len(SPARE_COLOURS)]


def _attributes(attrs: dict) -> str:
    parts = []
    for key, value in attrs.items():
        if value is None:
            continue
        name = key.rstrip("_").replace("_", "-")  # class_ -> class, data_term -> data-term
        if isinstance(value, float):
            value = f"{value:.2f}".rstrip("0").rstrip(".")
        parts.append(f'{name}="{esc(value)}"')
    return " ".join(parts)


@dataclass
class Svg:
    """An SVG document built element by element; `render()` gives the markup."""

    width: int
    height: int
    css_class: str
    label: str  # the figure's accessible name
    parts: list[str] = field(default_factory=list)

    def element(self, tag: str, content: str | None = None, *, title: str | None = None, **attrs) -> None:
        inner = (f"<title>{esc(title)}</title>" if title else "") + (esc(content) if content is not None else "")
        opening = f"<{tag} {_attributes(attrs)}".rstrip()
        self.parts.append(f"{opening}>{inner}</{tag}>" if inner else f"{opening}/>")

    def rect(self, x: float, y: float, width: float, height: float, **attrs) -> None:
        self.element("rect", x=x, y=y, width=max(width, 0.0), height=max(height, 0.0), **attrs)

    def line(self, x1: float, y1: float, x2: float, y2: float, *, stroke: str = CAPACITY_COLOUR, **attrs) -> None:
        self.element("line", x1=x1, y1=y1, x2=x2, y2=y2, stroke=stroke, **attrs)

    def text(self, x: float, y: float, content: str, *, size: int = 12, **attrs) -> None:
        self.element("text", content, x=x, y=y, font_size=size, **attrs)

    def circle(self, cx: float, cy: float, r: float, **attrs) -> None:
        self.element("circle", cx=cx, cy=cy, r=r, **attrs)

    def polyline(self, points: list[tuple[float, float]], **attrs) -> None:
        self.element("polyline", points=" ".join(f"{x:.1f},{y:.1f}" for x, y in points), fill="none", **attrs)

    def open_group(self, **attrs) -> None:
        self.parts.append(f"<g {_attributes(attrs)}>")

    def close_group(self) -> None:
        self.parts.append("</g>")

    def clip_rect(self, clip_id: str, x: float, y: float, width: float, height: float) -> None:
        self.parts.append(f'<clipPath id="{esc(clip_id)}"><rect {_attributes({"x": x, "y": y, "width": width, "height": height})}/>'
                          "</clipPath>")

    def render(self) -> str:
        head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.width}" height="{self.height}" '
                f'viewBox="0 0 {self.width} {self.height}" class="{esc(self.css_class)}" role="img" '
                f'aria-label="{esc(self.label)}" font-family="{esc(FONT)}">')
        background = f'<rect x="0" y="0" width="{self.width}" height="{self.height}" fill="#ffffff"/>'
        return head + background + "".join(self.parts) + "</svg>"


@dataclass(frozen=True)
class Scale:
    """Maps a value interval onto pixels, linearly or on log2 (sequence lengths)."""

    lo: float
    hi: float
    start_px: float
    end_px: float
    log: bool = False

    def __call__(self, value: float) -> float:
        lo, hi, v = self.lo, self.hi, value
        if self.log:
            lo, hi, v = math.log2(lo), math.log2(hi), math.log2(max(value, 1e-12))
        span = (hi - lo) or 1.0
        return self.start_px + (v - lo) / span * (self.end_px - self.start_px)


def nice_ticks(hi: float, count: int = 5, lo: float = 0.0) -> list[float]:
    """Round tick values from at most `lo` to at least `hi` (steps of 1, 2 or 5 times a power of
    ten)."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(lo / step + 1e-9)
    last = math.ceil(hi / step - 1e-9)
    return [round(k * step, 10) for k in range(first, last + 1)]


def tick_label(value: float) -> str:
    return f"{value:g}" if value < 1e4 else f"{value:,.0f}"
