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


def _as_model(model: "str | ModelSpec", revision: str | None = None) -> "ModelSpec":
    from fitplan.solver.specs.catalog import load_model
    from fitplan.solver.specs.model import ModelSpec

    return model if isinstance(model, ModelSpec) else load_model(str(model), revision=revision)


def _as_gpus(gpus: "str | GpuSet", inter_node_gbps: float | None = None) -> "GpuSet":
    from fitplan.solver.errors import InvalidConfigurationError
    from fitplan.solver.specs.catalog import parse_gpu_set
    from fitplan.solver.specs.gpu import GpuSet

    gpu_set = gpus if isinstance(gpus, GpuSet) else parse_gpu_set(str(gpus))
    if inter_node_gbps is None:
        return gpu_set
    if not inter_node_gbps > 0:
        raise InvalidConfigurationError(f"inter_node_gbps {inter_node_gbps} is not a positive rate in Gb/s, e.g. 3200")
    return gpu_set.model_copy(update={"inter_node_gbit_per_s": float(inter_node_gbps)})


def _pins(knobs: dict):
    """Pins from keyword arguments; a comma-separated `lora_targets` string is split, and an
    unknown knob or bad value becomes a one-line FitplanError."""
    from pydantic import ValidationError

    from fitplan.solver.errors import InvalidConfigurationError, validation_message
    from fitplan.solver.problem.instance import Pins

    knobs = {k: v for k, v in knobs.items() if v is not None}
    if isinstance(knobs.get("lora_targets"), str):
        knobs["lora_targets"] = tuple(p.strip() for p in knobs["lora_targets"].split(",") if p.strip())
    if "bits" in knobs:
        knobs["bits"] = int(knobs["bits"])
    try:
        return Pins(**knobs)
    except ValidationError as exc:
        unknown = exc.errors()[0].get("type") == "extra_forbidden"
        hint = f" (knobs: {', '.join(Pins.model_fields)})" if unknown else ""
        raise InvalidConfigurationError(validation_message(exc, "pins") + hint) from None


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
    from pydantic import ValidationError

    from fitplan.solver.errors import InvalidConfigurationError, validation_message
    from fitplan.solver.problem.instance import Instance, Workload

    moe = {k: v for k in ("capacity_factor", "moe_aux_loss_coef") if (v := knobs.pop(k, None)) is not None}
    try:
        workload = Workload(seq_len=seq_len, global_batch=global_batch, packing=packing,
                            mean_sample_len=mean_sample_len, neat_packing=neat_packing, allow_packing=allow_packing,
                            **moe)
    except ValidationError as exc:
        raise InvalidConfigurationError(validation_message(exc)) from None
    return Instance(model=_as_model(model, revision), gpus=_as_gpus(gpus, inter_node_gbps), workload=workload,
                    pins=_pins(knobs))


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
    return _recommend(instance, settings, other_engines=compare_engines)


def sweep(models: Iterable, gpu_sets: Iterable, *, seq_lens: Iterable[int] = (2048,),
          global_batch: int | None = None, packing: bool = False, mean_sample_len: int | None = None,
          search: bool = True, settings=None, jobs: int = 1, revision: str | None = None,
          inter_node_gbps: float | None = None, **knobs) -> Iterator["SweepRow"]:
    """One SweepRow per (model, GPU set, sequence length), in that nesting order: the best plan
    (`search=True`, as `recommend`) or the knobs given with defaults (`search=False`, as
    `estimate`), or the reason nothing fits. Names are resolved before the first row, so a typo
    fails at once. `jobs` > 1 answers rows in that many worker processes (same rows, same order)."""
    from fitplan.solver.planner.sweep import SweepRequest, run_sweep

    request = SweepRequest(
        models=[_as_model(m, revision) for m in models],
        gpu_sets=[_as_gpus(g, inter_node_gbps) for g in gpu_sets],
        seq_lens=list(seq_lens),
        global_batch=global_batch,
        packing=packing,
        mean_sample_len=mean_sample_len,
        pins=_pins(knobs),
        search=search,
    )
    return run_sweep(request, settings, jobs=jobs)
