"""The data of the memory-vs-sequence-length plot: `fitplan.estimate` of one setup with full
fine-tuning, LoRA and QLoRA over a range of sequence lengths, and the longest length at which
each fits the memory budget.

The setup is the recommended plan's (ZeRO stage, offload, micro batch, checkpointing, attention,
precision, optimizer, GPU count) with the method swapped, or, when there is no plan, the pinned
knobs with LLaMA-Factory's defaults for the rest (what `fitplan estimate --method M` evaluates).
Samples are taken as seq-len long unless packed, as `recommend --max-seq-len` takes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import fitplan

from .api_bridge import FitplanError

METHODS = ("full", "lora", "qlora")
FIRST_SEQ_LEN = 256
GRANULARITY = 128  # the longest fitting length is a multiple of this (as recommend --max-seq-len)
QLORA_DEFAULT_BITS = 4
STOP_BUDGETS = 3  # a curve stops at its first length needing more than 3 x the budget: off the plot
LORA_ONLY_KNOBS = ("lora_rank", "lora_targets", "dora", "pissa", "rslora", "loraplus_lr_ratio")
PLAN_KNOBS = ("lora_rank", "lora_targets", "freeze_layers", "micro_batch", "grad_accum", "grad_ckpt", "attn",
              "zero_stage", "offload", "optim", "precision", "n_gpus", "fsdp_strategy", "fsdp_version")


@dataclass
class SeqLenCurve:
    """One method's required bytes per GPU at each sequence length drawn."""

    method: str
    points: list[tuple[int, int]] = field(default_factory=list)  # (seq_len, required bytes per GPU)
    longest_fitting: int | None = None  # None: not even the first length fits
    fits_beyond_range: bool = False  # it still fits at the longest length drawn
    error: str | None = None  # why this method cannot run with this setup (FitplanError's line)


def seq_len_grid(asked_seq_len: int, max_positions: int) -> list[int]:
    """Powers of two from FIRST_SEQ_LEN to the model's positions (at least 4 x the asked length),
    and the asked length."""
    upper = max(max_positions, 4 * asked_seq_len)
    grid, seq = [], FIRST_SEQ_LEN
    while seq <= upper:
        grid.append(seq)
        seq *= 2
    return sorted(set(grid) | {asked_seq_len})


def setup_knobs(plan_config=None, pins: dict | None = None) -> dict:
    """The knobs every curve shares: the plan's, or the pinned ones."""
    if plan_config is not None:
        knobs = {name: getattr(plan_config, name) for name in PLAN_KNOBS}
        if plan_config.fsdp_strategy is None:
            knobs["fsdp_version"] = None  # no FSDP: its version is no pin
        return knobs
    return {k: v for k, v in (pins or {}).items() if v is not None and k not in ("method", "bits")}


def method_knobs(setup: dict, method: str, pinned_bits: int | None = None) -> dict:
    """The setup with `method`: 16-bit weights for full and LoRA, the pinned 8 or 4 bits (else 4)
    for QLoRA."""
    bits = 16
    if method == "qlora":
        bits = pinned_bits if pinned_bits in (4, 8) else QLORA_DEFAULT_BITS
    # the knobs the method has no use for are not pinned (a pin that cannot take effect is refused)
    unused = () if method in ("lora", "qlora") else LORA_ONLY_KNOBS
    unused += () if method == "freeze" else ("freeze_layers",)
    return {**{k: v for k, v in setup.items() if k not in unused}, "method": method, "bits": bits}


def seq_len_curves(model, gpus, setup: dict, *, asked_seq_len: int, packing: bool, budget_bytes: int,
                   pinned_bits: int | None = None) -> list[SeqLenCurve]:
    """One curve per method over `seq_len_grid`; `model` and `gpus` are objects or names."""
    model_spec = model if not isinstance(model, str) else fitplan.load_model(model)
    grid = seq_len_grid(asked_seq_len, model_spec.max_position_embeddings)
    return [_curve(model_spec, gpus, method_knobs(setup, method, pinned_bits), grid, packing, budget_bytes)
            for method in METHODS]


def _required_bytes(model, gpus, knobs: dict, seq_len: int, packing: bool) -> int:
    return fitplan.estimate(model, gpus, seq_len=seq_len, packing=packing, **knobs).peak_bytes


def _curve(model, gpus, knobs: dict, grid: list[int], packing: bool, budget_bytes: int) -> SeqLenCurve:
    curve = SeqLenCurve(method=knobs["method"])
    try:
        for seq in grid:
            curve.points.append((seq, _required_bytes(model, gpus, knobs, seq, packing)))
            if curve.points[-1][1] > STOP_BUDGETS * budget_bytes:
                break
    except FitplanError as exc:
        curve.points, curve.error = [], str(exc)
        return curve
    fitting = [seq for seq, required in curve.points if required <= budget_bytes]
    if not fitting:
        return curve
    last = max(fitting)
    longer = [seq for seq, _ in curve.points if seq > last]
    if not longer:
        curve.longest_fitting, curve.fits_beyond_range = last, True
        return curve
    curve.longest_fitting = _longest_between(model, gpus, knobs, packing, budget_bytes, last, longer[0])
    return curve


def _longest_between(model, gpus, knobs: dict, packing: bool, budget_bytes: int, fits: int, fails: int) -> int:
    """Bisection on multiples of GRANULARITY: `fits` fits, `fails` does not."""
    lo, hi = fits // GRANULARITY, -(-fails // GRANULARITY)  # lo x GRANULARITY fits (or is `fits`)
    best = fits
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _required_bytes(model, gpus, knobs, mid * GRANULARITY, packing) <= budget_bytes:
            lo, best = mid, max(best, mid * GRANULARITY)
        else:
            hi = mid
    return best
