"""Helpers the examples share: run a `fitplan` command in this process and print it the way a
terminal shows it (`$ fitplan ...`, its output, `[exit N]` when not 0), and print small tables.

The examples call the very CLI and API users call; their printed output is checked in under
examples/expected/ and compared by tests/test_examples.py."""

from __future__ import annotations

import contextlib
import shlex
import sys


def say(text: str = "") -> None:
    """A line of commentary (no numbers: those come from the tool)."""
    print(text)


def fitplan(command: str) -> int:
    """Run `fitplan <command>` in-process; stdout and stderr both go to this script's stdout."""
    from fitplan.cli.main import main

    print(f"$ fitplan {command}")
    sys.stdout.flush()
    with contextlib.redirect_stderr(sys.stdout):
        code = main(shlex.split(command))
    if code:
        print(f"[exit {code}]")
    print()
    return code


def table(header: list[str], rows: list[list[object]]) -> None:
    """A plain left-aligned text table."""
    cells = [[str(c) for c in header]] + [[("" if c is None else str(c)) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for k, row in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        if k == 0:
            print("  ".join("-" * w for w in widths))
    print()


@contextlib.contextmanager
def working_directory(path: str):
    """Run commands in a scratch folder so the files they write go there (and paths print short)."""
    import os

    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def gib(value_bytes: int) -> str:
    return f"{value_bytes / 2**30:.1f}"
