"""A VRAM budget as a GPU: `--gpus 1x24GiB`, `2x80GB`, `4x16GiB:fp16`.

Many users think in budgets ("it must fit in 24 GB"), and published "fits in N GB" tables do too.
A budget is a generic card of that memory with a stated feature set and no known speed:

- the size: `GiB` = 2^30 bytes, `GB` = 10^9 bytes (SI, as cards are marketed: an "80GB" card
  is 80 x 10^9 bytes); it is the card's total, as the catalog's `memory_bytes` is, so the CUDA
  context, allocator reserve and headroom come out of it exactly as for a catalog GPU;
- the features after a colon, joined with `+`: `bf16` (bf16 hardware), `fa2` (FlashAttention-2),
  `bnb` (bitsandbytes 4-bit); `none` for none of them. Without a suffix: bf16+fa2+bnb, what every
  GPU of the Ampere generation or later has (catalogs/gpus.yaml). `fp16` is a shorthand for
  `bnb` alone (a pre-Ampere card: fp16 mixed precision, SDPA, bitsandbytes);
- the speed rates are unknown (`rates_known` False): no tokens/s is reported. Plans that fit are
  still ranked by the speed they would have relative to each other on a reference card's rates
  (BUDGET_REFERENCE: an A100-80G for a budget with bf16, a T4 without), because the order of plans
  (offload slower than none, QLoRA slower than LoRA, recomputation slower than none) holds on any
  card; ranking by memory fit alone would pick the leanest plan, an offloading one. Every answer
  says so.
"""

from __future__ import annotations

import re

from ..errors import UnknownGpuError, shown
from ..units import GB, GIB
from .gpu import GpuSpec
from .limits import MAX_GPU_MEMORY_BYTES

FEATURES = ("bf16", "fa2", "bnb")
DEFAULT_FEATURES = FEATURES
SHORTHANDS = {"none": (), "fp16": ("bnb",), "all": FEATURES}
UNITS = {"gib": GIB, "gb": GB}
# The card whose rates rank a budget's plans (never shown as tokens/s): the Ampere data-centre card
# for a budget with bf16 hardware, the Turing one for a pre-Ampere feature set.
BUDGET_REFERENCE = {True: "A100-80G", False: "T4"}

_BUDGET = re.compile(r"^(\d+(?:\.\d+)?)\s*(GiB|GB)(?::(.*))?$", re.IGNORECASE)


def is_budget(name: str) -> bool:
    return bool(_BUDGET.match(name.strip()))


def _features(text: str | None, name: str) -> tuple[str, ...]:
    if text is None:
        return DEFAULT_FEATURES
    chosen: set[str] = set()
    for part in text.lower().split("+"):
        part = part.strip()
        if part in SHORTHANDS:
            chosen.update(SHORTHANDS[part])
        elif part in FEATURES:
            chosen.add(part)
        else:
            raise UnknownGpuError(f"VRAM budget '{shown(name)}': unknown feature '{shown(part)}'; write features joined with +, "
                                  f"from {', '.join(FEATURES)} (or none, fp16), e.g. 24GiB:bf16+fa2+bnb")
    return tuple(f for f in FEATURES if f in chosen)


def budget_reference(name: str) -> str:
    """The catalog GPU whose rates rank this budget's plans (BUDGET_REFERENCE)."""
    match = _BUDGET.match(name.strip())
    features = _features(match.group(3), name) if match else DEFAULT_FEATURES
    return BUDGET_REFERENCE["bf16" in features]


def budget_gpu(name: str, reference: GpuSpec) -> GpuSpec:
    """The generic card a budget names, with `reference`'s rates for ranking (module docstring)."""
    match = _BUDGET.match(name.strip())
    if match is None:
        raise UnknownGpuError(f"'{name}' is not a VRAM budget: write a size in GiB or GB, e.g. 24GiB or 80GB")
    size, unit, suffix = match.groups()
    unit = "GiB" if unit.lower() == "gib" else "GB"
    if float(size) * UNITS[unit.lower()] > MAX_GPU_MEMORY_BYTES:
        raise UnknownGpuError(f"VRAM budget '{shown(name)}' is more than {MAX_GPU_MEMORY_BYTES // GIB:,} GiB per card "
                              "(14x the largest card, solver/specs/limits.py): give the memory of one card, e.g. 80GB")
    memory = int(float(size) * UNITS[unit.lower()])
    if memory <= 0:
        raise UnknownGpuError(f"VRAM budget '{name}' has no memory: give a size above 0, e.g. 24GiB")
    features = _features(suffix, name)
    label = "+".join(features) or "none"
    canonical = f"{float(size):g}{unit}" + ("" if features == DEFAULT_FEATURES else f":{label}")
    return GpuSpec(
        name=canonical,
        display_name=f"VRAM budget {float(size):g} {unit} ({label}; speed unknown, ranked on {reference.name} rates)",
        vendor="generic",
        arch=label,
        compute_capability="",
        memory_bytes=memory,
        memory_note=f"{size} {unit} = {memory:,} bytes ({'2^30' if unit == 'GiB' else '10^9'} bytes per {unit})",
        tensor_cores=True,
        bf16_hardware="bf16" in features,
        flash_attention_2="fa2" in features,
        bitsandbytes_4bit="bnb" in features,
        # the reference card's rates rank the plans; tokens/s is never shown (rates_known False)
        fp16_tflops=reference.fp16_tflops,
        bf16_tflops=(reference.bf16_tflops or reference.fp16_tflops) if "bf16" in features else None,
        fp32_tflops=reference.fp32_tflops,
        memory_bandwidth_gbps=reference.memory_bandwidth_gbps,
        nvlink_gbps=reference.nvlink_gbps,
        pcie_gen=reference.pcie_gen,
        rates_known=False,
        sources=["the --gpus budget"],
    )
