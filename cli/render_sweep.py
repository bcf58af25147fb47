"""Rows of `fitplan sweep` as CSV (with a header) or JSON lines."""

from __future__ import annotations

import csv
import io
import json

from fitplan.solver.problem.answers import COLUMNS, SweepRow


def _csv_cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def csv_header() -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(COLUMNS)
    return buffer.getvalue().rstrip("\n")


def csv_line(row: SweepRow) -> str:
    buffer = io.StringIO()
    data = row.model_dump()
    csv.writer(buffer, lineterminator="\n").writerow([_csv_cell(data[c]) for c in COLUMNS])
    return buffer.getvalue().rstrip("\n")


def jsonl_line(row: SweepRow) -> str:
    return json.dumps(row.model_dump(mode="json"))
