"""Reading what a user hands fitplan (a config.json, a LLaMA-Factory YAML, a DeepSpeed JSON, an
accelerate config) within bounds (solver/specs/limits.py): at most MAX_INPUT_FILE_BYTES bytes in
one read, so /dev/zero or /dev/urandom end at once; UTF-8 text only; JSON without NaN and nested
at most MAX_NESTING_DEPTH deep; YAML through the safe loader with at most MAX_YAML_ALIASES
aliases (no billion laughs) and the same depth. Every refusal is one ConfigFileError line."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from ..errors import ConfigFileError, shown
from .limits import MAX_INPUT_FILE_BYTES, MAX_NESTING_DEPTH, MAX_YAML_ALIASES


def _depth(value: object, limit: int) -> int:
    """How deeply `value` nests lists and objects, counting at most to `limit` + 1."""
    if limit < 0 or not isinstance(value, (dict, list)):
        return 0
    children = value.values() if isinstance(value, dict) else value
    return 1 + max((_depth(child, limit - 1) for child in children), default=0)


def read_bounded_text(file: Path, what: str, limit: int = MAX_INPUT_FILE_BYTES) -> str:
    """At most `limit` bytes of a file as UTF-8 text, read in one bounded read (so /dev/zero and
    /dev/urandom end at once); a larger or binary file is refused in one line."""
    try:
        with open(file, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise ConfigFileError(f"cannot read '{shown(file)}': {exc.strerror or exc}") from None
    if len(data) > limit:
        raise ConfigFileError(f"'{shown(file)}' is over {limit // 1024:,} KiB, not a {what} (those are a few KB): "
                              f"pass the {what} itself")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigFileError(f"'{shown(file)}' is not UTF-8 text (a binary file?): pass the {what} itself") from None
    if "\x00" in text:
        raise ConfigFileError(f"'{shown(file)}' holds NUL bytes (a binary file?): pass the {what} itself")
    return text


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def parse_json_bounded(text: str, file: Path | str, what: str) -> object:
    """JSON text as Python values: NaN and Infinity refused (not JSON), nesting beyond
    MAX_NESTING_DEPTH refused in one line (Python's parser would hit its recursion limit)."""
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        data = None
        deep = True
    except json.JSONDecodeError as exc:
        raise ConfigFileError(f"'{shown(file)}' is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
                              f"pass the {what} itself") from None
    except ValueError as exc:
        raise ConfigFileError(f"'{shown(file)}' is not valid JSON: {exc}; pass the {what} itself") from None
    else:
        deep = _depth(data, MAX_NESTING_DEPTH) > MAX_NESTING_DEPTH
    if deep:
        raise ConfigFileError(f"'{shown(file)}' nests deeper than {MAX_NESTING_DEPTH} levels, not a {what} "
                              "(those nest 3 deep)")
    return data


class BoundedSafeLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing more than MAX_YAML_ALIASES aliases and nesting deeper than
    MAX_NESTING_DEPTH (its composer recurses once per level and would hit Python's limit)."""

    def __init__(self, stream) -> None:
        super().__init__(stream)
        self._aliases = 0
        self._nesting = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_YAML_ALIASES:
                raise ConfigFileError(f"more than {MAX_YAML_ALIASES} YAML aliases (*name): a training file uses "
                                      "none; write the values out")
        self._nesting += 1
        try:
            if self._nesting > MAX_NESTING_DEPTH:
                raise ConfigFileError(f"nested deeper than {MAX_NESTING_DEPTH} levels: a training file nests 2 deep")
            return super().compose_node(parent, index)
        finally:
            self._nesting -= 1


def load_yaml_bounded(text: str, file: Path | str, loader: type[BoundedSafeLoader] = BoundedSafeLoader) -> object:
    """YAML text as Python values through `loader` (a BoundedSafeLoader); one ConfigFileError line
    naming `file` when it is not YAML or breaks a bound."""
    try:
        return yaml.load(text, Loader=loader)  # noqa: S506 - a SafeLoader subclass
    except ConfigFileError as exc:
        raise ConfigFileError(f"{shown(file)}: {exc}") from None
    except RecursionError:
        raise ConfigFileError(f"{shown(file)}: nested deeper than {MAX_NESTING_DEPTH} levels") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigFileError(f"{shown(file)} is not valid YAML{where}: {shown(problem)}") from None
