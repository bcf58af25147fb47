"""Bytes that grow linearly with the micro batch: the one shape every memory term has.

`fixed_bytes + bytes_per_sample * micro_batch` is exactly what both consumers need: the plain
evaluator plugs in a micro batch, and the CP-SAT model uses the two integer coefficients in a
linear constraint. Writing every term in this shape is what keeps the two in agreement.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Affine:
    fixed_bytes: int = 0
    bytes_per_sample: int = 0  # one sample = seq_len tokens

    def at(self, micro_batch: int) -> int:
        return self.fixed_bytes + self.bytes_per_sample * micro_batch

    def __add__(self, other: "Affine") -> "Affine":
        return Affine(self.fixed_bytes + other.fixed_bytes, self.bytes_per_sample + other.bytes_per_sample)


ZERO = Affine()


def fixed(nbytes: float) -> Affine:
    """A term that does not depend on the micro batch (rounded up to whole bytes)."""
    return Affine(fixed_bytes=int(-(-nbytes // 1)))


def per_token(bytes_per_token: float, seq_len: int) -> Affine:
    """A term proportional to the tokens of a micro batch (rounded up to whole bytes per sample)."""
    return Affine(bytes_per_sample=int(-(-(bytes_per_token * seq_len) // 1)))
