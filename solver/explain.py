"""When nothing fits: the constraint that binds, in words with numbers, and the smallest changes
that make something fit (longest sequence, fewest GPUs of this kind, dropping a pin).

The binding constraint is read off the candidate that comes closest: the combination whose
peak requirement at its smallest micro batch exceeds the budget by the least. Its peak is
re-evaluated by `estimate`, so the terms named are those `fitplan estimate` prints.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from .estimate import estimate
from .gpu_spec import GIB, to_gib
from .term_labels import TERM_LABELS
from .training_config import TrainConfig

if TYPE_CHECKING:  # pragma: no cover
    from .instance import Instance
    from .recommend import Candidates, SolverSettings


FLAG_OF_PIN = {"method": "--method", "bits": "--bits", "lora_rank": "--lora-rank", "lora_targets": "--lora-target",
               "freeze_layers": "--freeze-layers", "micro_batch": "--micro-batch", "grad_accum": "--grad-accum",
               "grad_ckpt": "--grad-ckpt/--no-grad-ckpt", "attn": "--attn", "zero_stage": "--zero",
               "offload": "--offload", "optim": "--optim", "precision": "--precision", "n_gpus": "--n-gpus"}


class Explanation(BaseModel):
    """Why nothing fits, and what would."""

    model_config = ConfigDict(frozen=True)

    binding: str  # the constraint that binds, with numbers
    closest_plan: TrainConfig | None = None
    closest_required_bytes: int | None = None
    max_seq_len: int | None = None  # longest sequence at which something fits (same GPUs, pins)
    min_gpus: int | None = None  # fewest GPUs of this kind on which something fits (pins but --n-gpus)
    suggestions: list[str] = Field(default_factory=list)

    def to_json_dict(self) -> dict:
        return {
            "binding": self.binding,
            "closest_plan": self.closest_plan.model_dump(mode="json") if self.closest_plan else None,
            "closest_required_gib": to_gib(self.closest_required_bytes) if self.closest_required_bytes else None,
            "max_seq_len": self.max_seq_len,
            "min_gpus": self.min_gpus,
            "suggestions": self.suggestions,
        }


def _gib(value: int) -> str:
    return f"{value / GIB:.2f} GiB"


def describe_plan(config: TrainConfig) -> str:
    method = config.method.value
    if config.bits != 16:
        method = f"{config.bits}-bit {method}"
    if config.uses_lora:
        method += f" r{config.lora_rank}"
    parts = [method, f"micro batch {config.micro_batch}", "ckpt" if config.grad_ckpt else "no ckpt",
             config.precision.value, config.optim.value]
    if config.zero_stage:
        parts.append(f"ZeRO-{config.zero_stage}")
    if config.offload.value != "none":
        parts.append(f"offload {config.offload.value}")
    parts.append(f"{config.n_gpus} GPU{'s' if config.n_gpus > 1 else ''}")
    return ", ".join(parts)


def _memory_sentence(instance: "Instance", settings: "SolverSettings", candidates: "Candidates") -> tuple[str, TrainConfig | None, int | None]:
    gpus = instance.gpus
    budget = candidates.budget_bytes
    host_limit = candidates.host_ram_limit_bytes

    def closest(tables):
        """The table whose smallest micro batch needs the least GPU memory, with that option."""
        best = None
        for table in tables:
            option = min(table.options, key=lambda o: o.split.micro_batch)
            need = max(term.at(option.split.micro_batch) for term in table.required)
            key = (need, candidates.order[table.knobs])
            if best is None or key < best[0]:
                best = (key, table, option)
        return best

    best = closest([t for t in candidates.tables if t.host_ram_bytes <= host_limit])
    if best is None:
        best = closest(candidates.tables)
        if best is None:
            return "no configuration of the pinned knobs is possible", None, None
        gpu_fitting = [t for t in candidates.tables
                       if max(term.at(min(o.split.micro_batch for o in t.options)) for term in t.required) <= budget]
        if gpu_fitting:  # the GPUs would hold these plans: host RAM is what binds
            least = min(gpu_fitting, key=lambda t: t.host_ram_bytes)
            return (f"the only plans that fit the GPUs offload to host RAM and need at least "
                    f"{_gib(least.host_ram_bytes)} per node, more than the {_gib(host_limit)} "
                    "assumed: pass --host-ram-gib with what your nodes have", None, None)
    _, table, option = best
    config = candidates.space.config(table.knobs, option.split)
    result = estimate(instance.model, gpus, config)
    terms = sorted({**result.breakdown_bytes, **result.overhead_bytes}.items(), key=lambda item: -item[1])
    shown = [f"{TERM_LABELS.get(name, name.replace('_', ' '))} {_gib(value)}" for name, value in terms[:3]]
    rest = result.peak_bytes - sum(value for _, value in terms[:3])
    gpu = gpus.gpu
    sentence = (f"the plan closest to fitting, {describe_plan(config)} at seq {config.seq_len}, needs "
                f"{_gib(result.peak_bytes)} per GPU at its peak ({result.peak_phase}): "
                f"{' + '.join(shown)} + {_gib(rest)} of other terms exceed the {gpu.name}'s "
                f"{_gib(gpu.memory_bytes)} less {settings.headroom_fraction:.0%} headroom ({_gib(budget)})")
    return sentence, config, result.peak_bytes


def explain(instance: "Instance", settings: "SolverSettings", candidates: "Candidates") -> Explanation:
    """Why nothing fits `instance`, and the smallest changes that would."""
    from .recommend import fits_somewhere, max_seq_len, min_gpus, recommend

    space = candidates.space
    if not space.splits:
        gb = space.global_batch
        n = instance.pins.n_gpus or instance.gpus.total_gpus
        return Explanation(binding=(
            f"global batch {gb} cannot be split into micro batch x accumulation x {n} GPUs with the pinned "
            f"--micro-batch/--grad-accum: use a --global-batch that is a multiple of {n} x micro batch"))
    binding, closest, need = _memory_sentence(instance, settings, candidates)
    quick = settings.model_copy(update={"top_k": 1})
    longest = max_seq_len(instance, quick, upper=instance.workload.seq_len)
    # The set itself (any number of its GPUs when --n-gpus is free) did not fit: look beyond it.
    beyond = 1 if instance.pins.n_gpus is not None else instance.gpus.total_gpus + 1
    fewest = min_gpus(instance, quick, start=beyond)
    suggestions = []
    if longest is not None:
        suggestions.append(f"--seq-len {longest} fits on {instance.gpus.label()}")
    if fewest is not None:
        suggestions.append(f"{fewest} x {instance.gpus.gpu.name} would fit (--gpus {fewest}x{instance.gpus.gpu.name})")
    for name in instance.pins.pinned():
        relaxed = instance.model_copy(update={"pins": instance.pins.model_copy(update={name: None})})
        if not fits_somewhere(relaxed, quick):
            continue
        answer = recommend(relaxed, quick, explain_failure=False)
        if answer.plan is not None:
            suggestions.append(f"without {FLAG_OF_PIN.get(name, name)} it fits: {describe_plan(answer.plan)}")
    return Explanation(binding=binding, closest_plan=closest, closest_required_bytes=need,
                       max_seq_len=longest, min_gpus=fewest, suggestions=suggestions)
