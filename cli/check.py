"""`fitplan check train.yaml --gpus 4xA10`: does an existing LLaMA-Factory config fit?

Reads the YAML (and its DeepSpeed JSON), maps it onto the memory model, prints the breakdown,
what would run out of memory first, and the nearest configuration that fits.
Exit 0 fits, 3 does not fit, 2 bad input (including a file LLaMA-Factory would reject)."""

from __future__ import annotations

import itertools
import json

import click

from fitplan.solver.catalog import load_model, parse_gpu_set
from fitplan.solver.errors import FitplanError, InvalidConfigurationError, UnknownModelError
from fitplan.solver.estimate import Estimate, estimate
from fitplan.solver.gpu_spec import GIB, GpuSet
from fitplan.solver.llamafactory_config import LlamaFactoryRun, read_llamafactory_config
from fitplan.solver.model_spec import ModelSpec
from fitplan.solver.rules import violations
from fitplan.solver.training_config import Attention, Offload, TrainConfig

from .exit_codes import EXIT_BAD_INPUT, EXIT_NOTHING_FITS, EXIT_OK
from .render import TERM_LABELS, describe_config, render_estimate

def _resolve_model(run: LlamaFactoryRun, model_option: str | None) -> ModelSpec:
    if model_option:
        return load_model(model_option)
    if not run.model_name_or_path:
        raise UnknownModelError(f"{run.source} has no model_name_or_path: pass --model NAME_OR_CONFIG_JSON")
    try:
        return load_model(run.model_name_or_path)
    except (UnknownModelError, FitplanError) as exc:
        raise UnknownModelError(
            f"model_name_or_path '{run.model_name_or_path}' is not in fitplan's catalog: pass --model with a "
            f"catalog name or a path to its config.json ({exc})"
        ) from None


def _variants(config: TrainConfig, gpus: GpuSet):
    """Configurations that differ from `config` only in memory-only knobs, with the global batch kept."""
    micro_batches = [m for m in range(config.micro_batch, 0, -1)
                     if (config.micro_batch * config.grad_accum) % m == 0]
    attns = [config.attn] + ([Attention.fa2] if gpus.gpu.flash_attention_2 and config.attn != Attention.fa2 else [])
    stages = [config.zero_stage] + [s for s in (1, 2, 3) if s > config.zero_stage and config.n_gpus > 1]
    offloads = [Offload.none, Offload.optimizer, Offload.all]
    for micro, ckpt, attn, stage, offload in itertools.product(micro_batches, (config.grad_ckpt, True), attns,
                                                                stages, offloads):
        knobs = config.model_dump()
        knobs.update(micro_batch=micro, grad_accum=config.micro_batch * config.grad_accum // micro,
                     grad_ckpt=ckpt, attn=attn, zero_stage=stage, offload=offload)
        try:
            yield TrainConfig(**knobs)
        except ValueError:
            continue  # offload without ZeRO, parameter offload below ZeRO-3, ...


def _changed(a: TrainConfig, b: TrainConfig) -> list[str]:
    skip = {"grad_accum"}  # follows micro_batch
    return [k for k in type(a).model_fields if k not in skip and getattr(a, k) != getattr(b, k)]


def _speed_tokens_per_s(model: ModelSpec, gpus: GpuSet, config: TrainConfig) -> float:
    try:
        from fitplan.solver.speed import step_time
    except ImportError:  # pragma: no cover - the speed model ships with the recommender
        return 0.0
    return step_time(model, gpus, config).tokens_per_s


def _nearest_by_local_search(model: ModelSpec, gpus: GpuSet, config: TrainConfig) -> tuple[Estimate, list[str]] | None:
    best = None
    for candidate in _variants(config, gpus):
        if candidate == config or violations(model, gpus, candidate):
            continue
        result = estimate(model, gpus, candidate)
        if not result.fits:
            continue
        changed = _changed(config, candidate)
        key = (len(changed), -_speed_tokens_per_s(model, gpus, candidate))
        if best is None or key < best[0]:
            best = (key, result, changed)
    return None if best is None else (best[1], best[2])


# Pins relaxed together, one group at a time, most harmless first: memory-only knobs, then the
# optimizer and precision, then the method (which changes what is trained).
RELAX_GROUPS = (("micro_batch", "grad_accum"), ("grad_ckpt",), ("attn",), ("zero_stage", "offload"), ("offload",),
                ("optim",), ("precision",), ("method", "bits", "lora_rank", "lora_targets", "freeze_layers"),
                ("micro_batch", "grad_accum", "grad_ckpt", "attn", "zero_stage", "offload"),
                ("method", "bits", "lora_rank", "lora_targets", "freeze_layers", "micro_batch", "grad_accum",
                 "grad_ckpt", "attn", "zero_stage", "offload", "optim", "precision"))


def _nearest_by_recommend(model: ModelSpec, gpus: GpuSet, config: TrainConfig, recommend, settings_type):
    """`recommend` with the file's knobs pinned but one group, for each group; the answer that
    changes the fewest knobs (then the fastest). Global batch and sequence length stay."""
    from fitplan.solver.instance import Instance, Pins, Workload

    pinned = {k: getattr(config, k) for k in Pins.model_fields}
    best = None
    for group in RELAX_GROUPS:
        pins = Pins(**{k: v for k, v in pinned.items() if k not in group})
        instance = Instance(model=model, gpus=gpus, workload=Workload(seq_len=config.seq_len,
                                                                      global_batch=config.global_batch), pins=pins)
        try:
            answer = recommend(instance, settings_type(time_limit_s=2.0), explain_failure=False)
        except FitplanError:
            continue
        if answer.plan is None or answer.estimate is None or not answer.estimate.fits:
            continue
        changed = _changed(config, answer.plan)
        key = (len(changed), -(answer.tokens_per_s or 0.0))
        if best is None or key < best[0]:
            best = (key, answer.estimate, changed)
    return None if best is None else (best[1], best[2])


def nearest_fitting(model: ModelSpec, gpus: GpuSet, config: TrainConfig) -> tuple[Estimate, list[str]] | None:
    """The fitting configuration that changes the fewest knobs of `config`, the fastest among
    equals; None if none fits. Uses the recommender (memory headroom, host RAM for offload) when
    it is installed, else a search over the memory-only knobs (same method, rank, sequence length
    and global batch)."""
    try:
        from fitplan.solver.recommend import SolverSettings, recommend
    except ImportError:
        return _nearest_by_local_search(model, gpus, config)
    return _nearest_by_recommend(model, gpus, config, recommend, SolverSettings)


def _oom_first(result: Estimate) -> str:
    term, value = max(result.breakdown_bytes.items(), key=lambda kv: kv[1])
    return (f"peak at {result.peak_phase} ({result.peak_moment}); largest term {TERM_LABELS.get(term, term)} "
            f"{value / GIB:.2f} GiB")


def _estimate_for_file(model: ModelSpec, gpus: GpuSet, run: LlamaFactoryRun) -> Estimate:
    problems = violations(model, gpus, run.config)
    if problems:
        raise InvalidConfigurationError(f"{run.source} cannot run as written on {gpus.label()}: {problems[0]}")
    return estimate(model, gpus, run.config)


@click.command("check")
@click.argument("yaml_path", metavar="TRAIN_YAML")
@click.option("--gpus", "gpus", required=True, help="GPU set the file will run on: 4xA10, 2x8xH100.")
@click.option("--model", "model", default=None,
              help="Catalog name or config.json path, when model_name_or_path is not a catalog model.")
@click.option("--n-gpus", type=click.IntRange(min=1), default=None,
              help="GPUs the run uses (default: all of --gpus).")
@click.option("--mean-sample-len", type=click.IntRange(min=1), default=None,
              help="Mean tokens per sample of your data, when not packed (default: cutoff_len, the conservative end).")
@click.option("--nearest/--no-nearest", default=True, show_default=True,
              help="When it does not fit, search the nearest configuration that does.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
def check_command(yaml_path: str, gpus: str, model: str | None, n_gpus: int | None, mean_sample_len: int | None,
                  nearest: bool, as_json: bool) -> int:
    """Does an existing LLaMA-Factory training YAML fit on these GPUs?"""
    gpu_set = parse_gpu_set(gpus)
    used = n_gpus or gpu_set.total_gpus
    if used > gpu_set.total_gpus:
        raise InvalidConfigurationError(f"--n-gpus {used} is more than the {gpu_set.total_gpus} GPUs in {gpu_set.label()}")
    probe = read_llamafactory_config(yaml_path, n_gpus=used)
    spec = _resolve_model(probe, model)
    run = read_llamafactory_config(yaml_path, n_gpus=used, model_type=spec.model_type,
                                   mean_sample_len=mean_sample_len)
    result = _estimate_for_file(spec, gpu_set, run)
    search = nearest and not result.fits
    nearest = nearest_fitting(spec, gpu_set, run.config) if search else None

    if as_json:
        payload = {"file": run.source, "deepspeed_file": run.deepspeed_path, "errors": run.errors,
                   "warnings": run.warnings, "estimate": result.to_json_dict(),
                   "oom_first": None if result.fits else _oom_first(result),
                   "nearest_fit": None if nearest is None else
                   {"changed": nearest[1], "estimate": nearest[0].to_json_dict()}}
        click.echo(json.dumps(payload, indent=2))
    else:
        click.echo(render_estimate(result))
        if not result.fits:
            click.echo(f"would run out of memory first: {_oom_first(result)}")
            if search and nearest is None:
                click.echo("nearest fit: none at this cutoff_len and global batch on these GPUs; try `fitplan "
                           "recommend` for a shorter --seq-len or more GPUs")
            elif search:
                fit, changed = nearest
                click.echo(f"nearest fit (changes {', '.join(changed)}): {describe_config(fit)}, "
                           f"{fit.peak_bytes / GIB:.2f} of {fit.capacity_bytes / GIB:.2f} GiB")
        for warning in run.warnings:
            click.echo(f"warning: {warning}")
        for error in run.errors:
            click.echo(f"error: {error}", err=True)
    if run.errors:
        return EXIT_BAD_INPUT
    return EXIT_OK if result.fits else EXIT_NOTHING_FITS
