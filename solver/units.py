"""Units, in one place: bytes per element of each dtype, GiB and MiB, and how a byte count is
shown to people. Inside the solver every memory figure is an integer number of bytes; GiB
(2^30 bytes) appear only at the edges (reports, JSON), through the functions here."""

from __future__ import annotations

GIB = 2**30
MIB = 2**20
GB = 10**9  # SI gigabyte, as cards are marketed ("80GB"): only for reading a VRAM budget

FP32_BYTES = 4  # float32
HALF_BYTES = 2  # bfloat16 / float16
INT8_BYTES = 1


def to_gib(nbytes: float, digits: int = 3) -> float:
    """Bytes as GiB (2^30), rounded for reports and JSON."""
    return round(nbytes / GIB, digits)


def format_gib(nbytes: float, *, digits: int = 2, width: int = 0) -> str:
    """`12.34 GiB`: bytes as GiB text with `digits` decimals, the number right-aligned in `width`."""
    return f"{nbytes / GIB:{width}.{digits}f} GiB"
