#!/usr/bin/env python
"""Rewrite examples/expected/*.txt from the tool's current output.

Run after any change to a formula, constant or catalog entry, review the diff (it is the change
users will see), and commit it with the change:

    .venv/bin/python examples/regenerate.py          # rewrite every expected file
    .venv/bin/python examples/regenerate.py 03       # only examples whose name starts with 03

tests/test_examples.py renders every example the same way and compares."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import shlex
import sys
from pathlib import Path

EXAMPLES_DIR = Path(__file__).resolve().parent
EXPECTED_DIR = EXAMPLES_DIR / "expected"


def example_paths() -> list[Path]:
    """The numbered Python examples and the quickstart shell script, in order."""
    return sorted(EXAMPLES_DIR.glob("[0-9][0-9]_*.py")) + [EXAMPLES_DIR / "quickstart.sh"]


def expected_path(example: Path) -> Path:
    return EXPECTED_DIR / f"{example.stem}.txt"


def _render_python(path: Path) -> None:
    if str(EXAMPLES_DIR) not in sys.path:
        sys.path.insert(0, str(EXAMPLES_DIR))
    spec = importlib.util.spec_from_file_location(f"fitplan_example_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main()


def _render_shell(path: Path) -> None:
    """The shell examples are lines `run <fitplan arguments>`; each runs in-process, printed as
    the script's own `run` function prints it."""
    if str(EXAMPLES_DIR) not in sys.path:
        sys.path.insert(0, str(EXAMPLES_DIR))
    from _transcript import fitplan

    for line in path.read_text().splitlines():
        if line.startswith("run "):
            fitplan(shlex.join(shlex.split(line)[1:]))


def render(path: Path) -> str:
    """What the example prints, as the expected file holds it."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        if path.suffix == ".py":
            _render_python(path)
        else:
            _render_shell(path)
    return buffer.getvalue()


def main(argv: list[str]) -> int:
    EXPECTED_DIR.mkdir(exist_ok=True)
    for path in example_paths():
        if argv and not any(path.name.startswith(prefix) for prefix in argv):
            continue
        target = expected_path(path)
        text = render(path)
        old = target.read_text() if target.exists() else None
        target.write_text(text)
        print(f"{'unchanged' if old == text else 'rewrote  '} {target.relative_to(EXAMPLES_DIR.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
