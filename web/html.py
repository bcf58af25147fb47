"""HTML built from escaped parts: a `str` is text and is always escaped; only `Markup` (our own
tags, the figures' SVG) goes in as it is. No page builds markup from user text by hand."""

from __future__ import annotations

import html


class Markup(str):
    """Markup that is already safe (built by `tag` or by svg.Svg)."""


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def _inner(children) -> str:
    parts = []
    for child in children:
        if child is None or child is False:
            continue
        if isinstance(child, (list, tuple)):
            parts.append(_inner(child))
        elif isinstance(child, Markup):
            parts.append(child)
        else:
            parts.append(esc(child))
    return "".join(parts)


_VOID = {"input", "br", "meta", "link", "img", "hr"}


def tag(name: str, /, *children, **attrs) -> Markup:
    """`<name attrs>children</name>`; attribute names: class_ -> class, data_x -> data-x; a True
    value writes the bare attribute, None or False leaves it out."""
    rendered = []
    for key, value in attrs.items():
        if value is None or value is False:
            continue
        attr = key.rstrip("_").replace("_", "-")
        rendered.append(attr if value is True else f'{attr}="{esc(value)}"')
    opening = f"<{name}{' ' if rendered else ''}{' '.join(rendered)}>"
    if name in _VOID:
        return Markup(opening)
    return Markup(f"{opening}{_inner(children)}</{name}>")


def join(*children) -> Markup:
    return Markup(_inner(children))
