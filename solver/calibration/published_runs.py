"""fitplan's predictions of the published GPU measurements (benchmarks/data/measured-calibration.csv,
a copy of shared/reference/measured-calibration.csv: ms-swift benchmark tables, one A100-80G,
`torch.cuda.max_memory_reserved`), and the statistics that judge them. Printed by
`python benchmarks/calibration.py`; held to the targets by tests/calibration/.

Memory: fitplan's reserved figure (tensor peak + allocator reserve + allocator-side workspaces,
what `torch.cuda.max_memory_reserved` reports) against `mem_gb_per_gpu` (GiB). Speed: samples/s
from speed/step_time.py against the measured samples/s. The published runs are modelled through
the ms-swift January-2024 profile (calibration/framework_profiles.py); docs/accuracy.md explains
each cause. Rows whose configuration fitplan cannot express (other tuners, model parallelism,
unstated sequence lengths) carry the reason and are left out of the figures.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from ..memory.estimate import memory_by_moment
from ..memory.overheads import overheads
from ..problem.config import TrainConfig
from ..specs.catalog import load_model, parse_gpu_set
from ..specs.gpu import GpuSet
from ..specs.model import ModelSpec
from ..speed.step_time import step_time
from ..units import GIB
from .framework_profiles import MS_SWIFT_2024_01, FrameworkProfile

REPO_ROOT = Path(__file__).resolve().parents[2]  # solver/calibration/ -> the checkout
CSV_PATH = REPO_ROOT / "benchmarks" / "data" / "measured-calibration.csv"
SHARED_CSV_PATH = REPO_ROOT.parent / "shared/reference/measured-calibration.csv"

MODELS = {"Qwen-1.8B-Chat": "qwen-1.8b", "Qwen-7B-Chat": "qwen-7b", "Qwen2.5-7B-Instruct": "qwen2.5-7b"}
QWEN1_DEFAULT_LORA_TARGETS = ("c_attn",)  # swift LoRATM.qwen, the DEFAULT of the benchmark
GPU = "A100-80G"


@dataclass(frozen=True)
class Row:
    index: int  # 0-based data row of the CSV
    label: str
    sweep: str
    measured_gib: float
    measured_samples_per_s: float | None
    model: ModelSpec | None = None
    config: TrainConfig | None = None
    skip_reason: str = ""


@dataclass(frozen=True)
class Prediction:
    row: Row
    tensor_gib: float
    reserved_gib: float  # uncapped
    compared_gib: float  # min(reserved, what the allocator can reserve on the card)
    moment: str
    samples_per_s: float | None

    @property
    def memory_error(self) -> float:
        return self.compared_gib / self.row.measured_gib - 1

    @property
    def speed_ratio(self) -> float | None:
        if self.samples_per_s is None or not self.row.measured_samples_per_s:
            return None
        return self.samples_per_s / self.row.measured_samples_per_s


def csv_path() -> Path:
    for path in (CSV_PATH, SHARED_CSV_PATH):
        if path.exists():
            return path
    raise SystemExit(f"calibration data not found: expected {CSV_PATH} (or {SHARED_CSV_PATH})")


def _sweep_of(i: int, raw: dict) -> str:
    notes = raw["notes"]
    if "Tuners table" in raw["source"]:
        return "tuners"
    if raw["model"].startswith("Qwen2.5"):
        return "swift3-examples"
    if "batch-size sweep" in notes:
        return "batch"
    if "gradient-accumulation sweep" in notes:
        return "grad_accum"
    if raw["method"] == "qlora":
        return "quantization"
    if "trainable params" in notes or raw["lora_rank"] not in ("8", ""):
        return "rank_targets"
    if raw["grad_ckpt"] == "false" or raw["attn_impl"].startswith("eager"):
        return "flash_ckpt"
    return f"seq_len {raw['model']} {raw['method']}"


def _skip_reason(raw: dict) -> str:
    if raw["method"] not in ("lora", "qlora", "full"):
        return f"tuner {raw['method']} is not a fitplan method"
    if not raw["seq_len"]:
        return "sequence length and data not stated (author comment or incomplete table)"
    if raw["n_gpus"] != "1":
        return "device_map model parallelism over 2 GPUs is not a fitplan layout"
    return ""


def _config(raw: dict) -> TrainConfig:
    knobs = dict(method=raw["method"], seq_len=int(raw["seq_len"]), micro_batch=int(raw["micro_batch"]),
                 grad_accum=int(raw["grad_accum"]), grad_ckpt=raw["grad_ckpt"] == "true",
                 attn="eager" if raw["attn_impl"].startswith("eager") else "fa2", precision="bf16")
    if raw["method"] != "full":
        targets = ("all",) if "targets ALL" in raw["notes"] else QWEN1_DEFAULT_LORA_TARGETS
        knobs.update(lora_rank=int(raw["lora_rank"]), lora_targets=targets, bits=int(raw["quant_bits"]))
    return TrainConfig(**knobs)


def load_rows(path: Path | None = None) -> list[Row]:
    with open(path or csv_path(), newline="") as handle:
        raws = list(csv.DictReader(handle))
    rows = []
    for i, raw in enumerate(raws):
        label = (f"{raw['model']} {raw['method']}{raw['quant_bits'] if raw['method'] == 'qlora' else ''} "
                 f"s{raw['seq_len'] or '?'} b{raw['micro_batch'] or '?'} ga{raw['grad_accum'] or '?'} "
                 f"r{raw['lora_rank'] or '-'} ckpt{raw['grad_ckpt'][:1]} {raw['attn_impl'][:5] or '?'}")
        speed = float(raw["throughput"]) if raw["throughput_unit"] == "samples/s" and raw["throughput"] else None
        reason = _skip_reason(raw)
        common = dict(index=i, label=label, sweep=_sweep_of(i, raw), measured_gib=float(raw["mem_gb_per_gpu"]),
                      measured_samples_per_s=speed)
        if reason:
            rows.append(Row(**common, skip_reason=reason))
        else:
            rows.append(Row(**common, model=load_model(MODELS[raw["model"]]), config=_config(raw)))
    return rows


def predict(row: Row, gpus: GpuSet, profile: FrameworkProfile = MS_SWIFT_2024_01) -> Prediction:
    """fitplan's reserved memory (max_memory_reserved: memory/estimate.py's max_reserved of the
    framework's moments) and samples/s for one published run."""
    model, config = row.model, profile.config(row.config)
    mb = config.micro_batch
    fill = profile.mean_length_fraction(config)
    rows = memory_by_moment(model, gpus, config, moments=profile.moments(model, config), mean_length_fraction=fill)
    best = None
    for r in rows:
        if best is None or r.max_reserved.at(mb) > best[1]:
            best = (r.moment.name, r.max_reserved.at(mb), r.tensor.at(mb))
    name, reserved_bytes, tensor_bytes = best
    outside = overheads(model, gpus.gpu, config, mean_length_fraction=fill).outside_allocator()
    reservable = gpus.gpu.memory_bytes - outside.at(mb)
    tokens = profile.lengths.padded_tokens_per_micro_step(config.seq_len, mb) if profile.lengths else mb * config.seq_len
    speed_config = config.model_copy(update={"seq_len": max(1, round(tokens / mb))})
    samples_per_s = mb * config.grad_accum * config.n_gpus / step_time(model, gpus, speed_config).step_time_s
    return Prediction(row=row, tensor_gib=tensor_bytes / GIB, reserved_gib=reserved_bytes / GIB,
                      compared_gib=min(reserved_bytes, reservable) / GIB, moment=name,
                      samples_per_s=samples_per_s)


def predict_all(path: Path | None = None) -> tuple[list[Prediction], list[Row]]:
    gpus = parse_gpu_set(f"1x{GPU}")
    rows = load_rows(path)
    predictions = [predict(r, gpus) for r in rows if not r.skip_reason]
    return predictions, [r for r in rows if r.skip_reason]


# ---- statistics -----------------------------------------------------------------------------------

def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def spearman(xs: list[float], ys: list[float]) -> float | None:
    """Spearman rank correlation with average ranks for ties; None when one side is constant."""
    def ranks(values):
        order = sorted(range(len(values)), key=lambda k: values[k])
        result = [0.0] * len(values)
        k = 0
        while k < len(order):
            j = k
            while j + 1 < len(order) and values[order[j + 1]] == values[order[k]]:
                j += 1
            for m in range(k, j + 1):
                result[order[m]] = (k + j) / 2
            k = j + 1
        return result

    rx, ry = ranks(xs), ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    sx = math.sqrt(sum((a - mx) ** 2 for a in rx))
    sy = math.sqrt(sum((b - my) ** 2 for b in ry))
    if sx == 0 or sy == 0:
        return None
    return sum((a - mx) * (b - my) for a, b in zip(rx, ry)) / (sx * sy)


@dataclass(frozen=True)
class Summary:
    rows: int
    median_abs_error: float
    p90_abs_error: float
    max_abs_error: float
    worst_under: float  # most negative error (under-prediction), 0 if none
    speed_ratio_min: float
    speed_ratio_max: float
    spearman_by_sweep: dict[str, float | None]
    ratio_range_by_sweep: dict[str, tuple[float, float]]


def speed_sweeps(predictions: list[Prediction]) -> dict[str, list[Prediction]]:
    """Each sweep varies one knob from the benchmark's default run (row 7: Qwen-7B LoRA s2048)."""
    groups: dict[str, list[Prediction]] = {}
    default = next((p for p in predictions if p.row.index == 7), None)
    for p in predictions:
        if p.speed_ratio is None:
            continue
        groups.setdefault(p.row.sweep, []).append(p)
    for name in ("quantization", "batch", "flash_ckpt", "rank_targets"):
        if name in groups and default is not None:
            groups[name].insert(0, default)
    return groups


def summarise(predictions: list[Prediction]) -> Summary:
    errors = [p.memory_error for p in predictions]
    abs_errors = [abs(e) for e in errors]
    ratios = [p.speed_ratio for p in predictions if p.speed_ratio is not None]
    rho, spans = {}, {}
    for name, group in speed_sweeps(predictions).items():
        rho[name] = spearman([p.samples_per_s for p in group], [p.row.measured_samples_per_s for p in group])
        spans[name] = (min(p.speed_ratio for p in group), max(p.speed_ratio for p in group))
    return Summary(rows=len(predictions), median_abs_error=quantile(abs_errors, 0.5),
                   p90_abs_error=quantile(abs_errors, 0.9), max_abs_error=max(abs_errors),
                   worst_under=min(0.0, min(errors)), speed_ratio_min=min(ratios), speed_ratio_max=max(ratios),
                   spearman_by_sweep=rho, ratio_range_by_sweep=spans)
