"""When nothing fits: the constraint that binds, in words with numbers, and the smallest changes
that make something fit (longest sequence, fewest GPUs of this kind, dropping a pin).

The binding constraint is read off the candidate that comes closest: the combination whose
peak requirement at its smallest micro batch exceeds the budget by the least. Its peak is
re-evaluated by `estimate`, so the terms named are those `fitplan estimate` prints.
"""

from __future__ import annotations

from ..memory.estimate import estimate
from ..memory.terms import label_of
from ..problem.answers import Explanation
from ..problem.config import TrainConfig, describe_plan
from ..problem.instance import Instance
from ..problem.settings import SolverSettings
from ..units import format_gib
from .candidates import Candidates
from .questions import fits_somewhere, max_seq_len, min_gpus
from .solve import solve

FLAG_OF_PIN = {"method": "--method", "bits": "--bits", "lora_rank": "--lora-rank", "lora_targets": "--lora-target",
               "freeze_layers": "--freeze-layers", "micro_batch": "--micro-batch", "grad_accum": "--grad-accum",
               "grad_ckpt": "--grad-ckpt/--no-grad-ckpt", "attn": "--attn", "zero_stage": "--zero",
               "offload": "--offload", "optim": "--optim", "precision": "--precision", "n_gpus": "--n-gpus",
               "liger": "--liger/--no-liger", "unsloth_gc": "--unsloth-gc", "reentrant_gc": "--reentrant-gc",
               "memory_optimizer": "--memory-optimizer", "projection_rank": "--projection-rank", "dora": "--dora",
               "pissa": "--pissa", "rslora": "--rslora", "loraplus_lr_ratio": "--loraplus-lr-ratio",
               "upcast_layernorm": "--upcast-layernorm", "upcast_lmhead_output": "--upcast-lmhead-output",
               "sharding": "--sharding", "fsdp_strategy": "--fsdp-strategy", "fsdp_version": "--fsdp-version"}


def _memory_sentence(instance: Instance, settings: SolverSettings, candidates: Candidates
                     ) -> tuple[str, TrainConfig | None, int | None]:
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
                    f"{format_gib(least.host_ram_bytes)} per node, more than the {format_gib(host_limit)} "
                    "assumed: pass --host-ram-gib with what your nodes have", None, None)
    _, table, option = best
    config = candidates.space.config(table.knobs, option.split)
    result = estimate(instance.model, gpus, config)
    terms = sorted({**result.breakdown_bytes, **result.overhead_bytes}.items(), key=lambda item: -item[1])
    shown = [f"{label_of(name)} {format_gib(value)}" for name, value in terms[:3]]
    rest = result.peak_bytes - sum(value for _, value in terms[:3])
    gpu = gpus.gpu
    by_fraction = int(gpu.memory_bytes * (1 - settings.headroom_fraction))  # else the floor of settings.py binds
    kept_free = (f"{settings.headroom_fraction:.0%} headroom" if budget == by_fraction
                 else f"the {format_gib(gpu.memory_bytes - budget)} kept free with variable-length samples")
    sentence = (f"the plan closest to fitting, {describe_plan(config)} at seq {config.seq_len}, needs "
                f"{format_gib(result.peak_bytes)} per GPU at its peak ({result.peak_phase}): "
                f"{' + '.join(shown)} + {format_gib(rest)} of other terms exceed the {gpu.name}'s "
                f"{format_gib(gpu.memory_bytes)} less {kept_free} ({format_gib(budget)})")
    return sentence, config, result.peak_bytes


def binding_sentence(instance: Instance, settings: SolverSettings, candidates: Candidates) -> str:
    """Why nothing fits `instance`, the binding memory term only (no search for changes that fit)."""
    return _memory_sentence(instance, settings, candidates)[0]


def explain(instance: Instance, settings: SolverSettings, candidates: Candidates) -> Explanation:
    """Why nothing fits `instance`, and the smallest changes that would."""
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
        answer = solve(relaxed, quick)
        if answer.plan is not None:
            suggestions.append(f"without {FLAG_OF_PIN.get(name, name)} it fits: {describe_plan(answer.plan)}")
    return Explanation(binding=binding, closest_plan=closest, closest_required_bytes=need,
                       max_seq_len=longest, min_gpus=fewest, suggestions=suggestions)
