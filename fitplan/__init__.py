"""fitplan: which fine-tuning configuration fits on these GPUs, and which of those trains fastest.

The Python API, the same calls the `fitplan` command makes::

    import fitplan

    est = fitplan.estimate("qwen2.5-7b", "1xA100-80G", seq_len=2048, method="lora")
    print(est.peak_bytes / 2**30, est.fits)

    rec = fitplan.recommend("qwen2.5-7b", "8xP4", seq_len=1024)
    if rec.plan:
        print(rec.plan.method, rec.plan.micro_batch, rec.tokens_per_s)

    for row in fitplan.sweep(["qwen2.5-7b", "llama-2-13b"], ["8xP4", "1xA100-80G"], seq_lens=[1024, 4096]):
        print(row.model, row.gpus, row.seq_len, row.status, row.peak_gib)

Models and GPU sets may be given as names (`"qwen2.5-7b"`, `"Qwen/Qwen3-8B"`, a path to a
Hugging Face `config.json`; `"8xP4"`, `"2x8xH100"`, a VRAM budget `"1x24GiB"`) or as the objects
`load_model` / `parse_gpu_set` return. `revision=` picks the Hub revision of a Hugging Face id's
config.json; `inter_node_gbps=` the network out of each node (Gb/s) for `recommend` and `sweep`. Knobs are
keyword arguments named like the command-line flags (`method`, `bits`, `lora_rank`,
`lora_targets`, `micro_batch`, `grad_accum`, `grad_ckpt`, `attn`, `zero_stage`, `offload`,
`optim`, `precision`, `n_gpus`, `sharding`, `fsdp_strategy`, `fsdp_version`); enum values may be strings (`method="qlora"`). Bad input raises
`fitplan.FitplanError` (a ValueError) with a one-line message.

Importing `fitplan` is cheap: the solver (pydantic, OR-Tools) loads on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Iterator

__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover
    from fitplan.solver.problem.answers import Estimate, SweepRow
    from fitplan.solver.problem.instance import Instance
    from fitplan.solver.specs.gpu import GpuSet
    from fitplan.solver.specs.model import ModelSpec

__all__ = [
    "estimate", "recommend", "sweep", "make_instance", "load_model", "parse_gpu_set",
    "FitplanError", "__version__",
]

# Names re-exported from fitplan.solver, resolved on first access so `import fitplan` stays light.
_LAZY = {
    "load_model": ("fitplan.solver.specs.catalog", "load_model"),
    "parse_gpu_set": ("fitplan.solver.specs.catalog", "parse_gpu_set"),
    "FitplanError": ("fitplan.solver.errors", "FitplanError"),
    "Estimate": ("fitplan.solver.problem.answers", "Estimate"),
    "Instance": ("fitplan.solver.problem.instance", "Instance"),
    "Pins": ("fitplan.solver.problem.instance", "Pins"),
    "Workload": ("fitplan.solver.problem.instance", "Workload"),
    "TrainConfig": ("fitplan.solver.problem.config", "TrainConfig"),
    "Recommendation": ("fitplan.solver.problem.answers", "Recommendation"),
    "SolverSettings": ("fitplan.solver.problem.settings", "SolverSettings"),
    "SweepRow": ("fitplan.solver.problem.answers", "SweepRow"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module_name, attr = _LAZY[name]
        value = getattr(importlib.import_module(module_name), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'fitplan' has no attribute {name!r}")


def _bad_input(message: str):
    from fitplan.solver.errors import InvalidConfigurationError

    return InvalidConfigurationError(message)


def _as_model(model: "str | ModelSpec", revision: str | None = None) -> "ModelSpec":
    from fitplan.solver.specs.catalog import load_model
    from fitplan.solver.specs.model import ModelSpec

    if isinstance(model, ModelSpec):
        return model
    if not isinstance(model, str):
        raise _bad_input(f"model must be a name, a path or a ModelSpec (fitplan.load_model), not "
                         f"{type(model).__name__}: e.g. 'qwen2.5-7b'")
    return load_model(model, revision=revision)


def _as_gpus(gpus: "str | GpuSet", inter_node_gbps: float | None = None) -> "GpuSet":
    import math

    from fitplan.solver.specs import limits
    from fitplan.solver.specs.catalog import parse_gpu_set
    from fitplan.solver.specs.gpu import GpuSet

    if not isinstance(gpus, (str, GpuSet)):
        raise _bad_input(f"gpus must be a GPU set such as '8xP4' or a GpuSet (fitplan.parse_gpu_set), not "
                         f"{type(gpus).__name__}")
    gpu_set = gpus if isinstance(gpus, GpuSet) else parse_gpu_set(gpus)
    if inter_node_gbps is None:
        return gpu_set
    number = isinstance(inter_node_gbps, (int, float)) and not isinstance(inter_node_gbps, bool)
    if not number or not math.isfinite(inter_node_gbps) or not 0 < inter_node_gbps <= limits.MAX_INTER_NODE_GBPS:
        raise _bad_input(f"inter_node_gbps {inter_node_gbps!r:.40} is not a rate in Gb/s in "
                         f"(0, {limits.MAX_INTER_NODE_GBPS:g}], e.g. 3200")
    return gpu_set.model_copy(update={"inter_node_gbit_per_s": float(inter_node_gbps)})


def _pins(knobs: dict):
    """Pins from keyword arguments; a comma-separated `lora_targets` string is split, and an
    unknown knob or bad value becomes a one-line FitplanError. Counts are whole numbers: `bits`
    may be the string "4" (as the flag), never 4.7 (no truncation) nor True."""
    from pydantic import ValidationError

    from fitplan.solver.errors import validation_message
    from fitplan.solver.problem.instance import Pins

    knobs = {k: v for k, v in knobs.items() if v is not None}
    if isinstance(knobs.get("lora_targets"), str):
        knobs["lora_targets"] = tuple(p.strip() for p in knobs["lora_targets"].split(",") if p.strip())
    for name in ("bits", "fsdp_version"):
        value = knobs.get(name)
        if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit() and len(value) < 4:
            knobs[name] = int(value)
    try:
        return Pins(**knobs)
    except ValidationError as exc:
        unknown = exc.errors()[0].get("type") == "extra_forbidden"
        hint = f" (knobs: {', '.join(Pins.model_fields)})" if unknown else ""
        raise _bad_input(validation_message(exc, "pins") + hint) from None


def _settings(settings):
    from fitplan.solver.problem.settings import SolverSettings

    if settings is not None and not isinstance(settings, SolverSettings):
        raise _bad_input(f"settings must be a fitplan.SolverSettings (or None), not {type(settings).__name__}: "
                         "e.g. fitplan.SolverSettings(time_limit_s=5, top_k=3)")
    return settings


def _workload(**fields):
    from pydantic import ValidationError

    from fitplan.solver.errors import validation_message
    from fitplan.solver.problem.instance import Workload

    try:
        return Workload(**fields)
    except ValidationError as exc:
        raise _bad_input(validation_message(exc)) from None


def _bounded_list(items, what: str, example: str) -> list:
    """A list, tuple or other iterable of at most MAX_SWEEP_LIST_ITEMS items (a string is not a list)."""
    from itertools import islice

    from fitplan.solver.specs import limits

    if isinstance(items, (str, bytes)) or not hasattr(items, "__iter__"):
        raise _bad_input(f"{what} must be a list, e.g. {example}, not {type(items).__name__}")
    values = list(islice(items, limits.MAX_SWEEP_LIST_ITEMS + 1))
    if not values:
        raise _bad_input(f"{what} is empty: give at least one, e.g. {example}")
    if len(values) > limits.MAX_SWEEP_LIST_ITEMS:
        raise _bad_input(f"{what} has more than {limits.MAX_SWEEP_LIST_ITEMS} entries (solver/specs/limits.py): "
                         "split the sweep into several calls")
    return values


def make_instance(model: "str | ModelSpec", gpus: "str | GpuSet", *, seq_len: int = 2048,
                  global_batch: int | None = None, packing: bool = False, mean_sample_len: int | None = None,
                  revision: str | None = None, inter_node_gbps: float | None = None,
                  neat_packing: bool = False, allow_packing: bool = False, **knobs) -> "Instance":
    """The question `estimate` and `recommend` answer, from names or objects and knob keywords.
    `packing` / `mean_sample_len` / `neat_packing` describe the data (as --packing /
    --mean-sample-len / --neat-packing); `allow_packing` lets `recommend` pack (--allow-packing);
    `revision` is the Hub revision of a Hugging Face id's config.json (--revision);
    `inter_node_gbps` the network out of each node in gigabits per second (--inter-node-gbps;
    default: the GPU's); `capacity_factor` / `moe_aux_loss_coef` keywords the MoE assumptions (as
    --capacity-factor / --moe-aux-loss-coef)."""
    from fitplan.solver.problem.instance import Instance

    moe = {k: v for k in ("capacity_factor", "moe_aux_loss_coef") if (v := knobs.pop(k, None)) is not None}
    workload = _workload(seq_len=seq_len, global_batch=global_batch, packing=packing, mean_sample_len=mean_sample_len,
                         neat_packing=neat_packing, allow_packing=allow_packing, **moe)
    from fitplan.solver.problem.instance import ineffective_pin_problem

    pins = _pins(knobs)
    problem = ineffective_pin_problem(pins.pinned())  # a pin that cannot take effect is an error, not a shrug
    if problem:
        raise _bad_input(problem)
    return Instance(model=_as_model(model, revision), gpus=_as_gpus(gpus, inter_node_gbps), workload=workload,
                    pins=pins)


def estimate(model: "str | ModelSpec", gpus: "str | GpuSet", *, seq_len: int = 2048,
             global_batch: int | None = None, packing: bool = False, mean_sample_len: int | None = None,
             revision: str | None = None, **knobs) -> "Estimate":
    """Per-GPU memory of one configuration: the knobs given, LLaMA-Factory's defaults for the
    rest (what `fitplan estimate` prints). Raises FitplanError when it cannot run at all."""
    from fitplan.solver.memory.estimate import estimate as _estimate
    from fitplan.solver.problem.instance import config_for_estimate

    instance = make_instance(model, gpus, seq_len=seq_len, global_batch=global_batch, packing=packing,
                             mean_sample_len=mean_sample_len, revision=revision, **knobs)
    return _estimate(instance.model, instance.gpus, config_for_estimate(instance))


def recommend(model: "str | ModelSpec", gpus: "str | GpuSet", *, seq_len: int = 2048,
              global_batch: int | None = None, packing: bool = False, mean_sample_len: int | None = None,
              settings=None, revision: str | None = None, inter_node_gbps: float | None = None,
              compare_engines: bool = False, **knobs):
    """The fastest configuration that fits, deciding every knob not given (what `fitplan
    recommend` prints). Returns a Recommendation: `status`, `plan` (None when nothing fits),
    `estimate`, `tokens_per_s`, `runners_up`, `explanation`; with `compare_engines=True` (the
    CLI's default) and the engine free, `other_engines`: each other sharding engine's fastest plan
    and why it loses. `settings` is a `fitplan.SolverSettings` (headroom, host RAM per node, time
    limit, runners-up)."""
    from fitplan.solver.planner.recommend import recommend as _recommend

    instance = make_instance(model, gpus, seq_len=seq_len, global_batch=global_batch, packing=packing,
                             mean_sample_len=mean_sample_len, revision=revision, inter_node_gbps=inter_node_gbps,
                             **knobs)
    if not isinstance(compare_engines, bool):
        raise _bad_input(f"compare_engines must be True or False, not {compare_engines!r:.40}")
    return _recommend(instance, _settings(settings), other_engines=compare_engines)


def sweep(models: Iterable, gpu_sets: Iterable, *, seq_lens: Iterable[int] = (2048,),
          global_batch: int | None = None, packing: bool = False, mean_sample_len: int | None = None,
          search: bool = True, settings=None, jobs: int = 1, revision: str | None = None,
          inter_node_gbps: float | None = None, **knobs) -> Iterator["SweepRow"]:
    """One SweepRow per (model, GPU set, sequence length), in that nesting order: the best plan
    (`search=True`, as `recommend`) or the knobs given with defaults (`search=False`, as
    `estimate`), or the reason nothing fits. Names are resolved before the first row, so a typo
    fails at once. `jobs` > 1 answers rows in that many worker processes (same rows, same order)."""
    from pydantic import ValidationError

    from fitplan.solver.errors import validation_message
    from fitplan.solver.planner.sweep import SweepRequest, run_sweep
    from fitplan.solver.problem.instance import check_user_pins
    from fitplan.solver.specs import limits

    settings = _settings(settings)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or not 1 <= jobs <= limits.MAX_JOBS:
        raise _bad_input(f"jobs must be a whole number of worker processes in 1..{limits.MAX_JOBS}, not {jobs!r:.40}")
    if not isinstance(search, bool):
        raise _bad_input(f"search must be True or False, not {search!r:.40}")
    model_list = _bounded_list(models, "models", "['qwen2.5-7b', 'llama-2-13b']")
    gpu_list = _bounded_list(gpu_sets, "gpu_sets", "['8xP4', '1xA100-80G']")
    lengths = _bounded_list(seq_lens, "seq_lens", "[1024, 4096]")
    if len(model_list) * len(gpu_list) * len(lengths) > limits.MAX_SWEEP_ROWS:
        raise _bad_input(f"the sweep has {len(model_list) * len(gpu_list) * len(lengths):,} rows, more than "
                         f"{limits.MAX_SWEEP_ROWS:,} (solver/specs/limits.py): split it into several calls")
    for seq_len in lengths:  # every row's workload is valid before the first row is answered
        _workload(seq_len=seq_len, global_batch=global_batch, packing=packing, mean_sample_len=mean_sample_len)
    pins = _pins(knobs)
    check_user_pins(pins)  # the same pins on every row: contradictions are bad input, not rows
    try:
        request = SweepRequest(
            models=[_as_model(m, revision) for m in model_list],
            gpu_sets=[_as_gpus(g, inter_node_gbps) for g in gpu_list],
            seq_lens=lengths,
            global_batch=global_batch,
            packing=packing,
            mean_sample_len=mean_sample_len,
            pins=pins,
            search=search,
        )
    except ValidationError as exc:
        raise _bad_input(validation_message(exc)) from None
    return run_sweep(request, settings, jobs=jobs)
