"""`fitplan check train.yaml --gpus 4xA10`: does an existing LLaMA-Factory config fit?

Reads the YAML (and its DeepSpeed JSON, or with --accelerate-config the accelerate FSDP config the
run launches with), maps it onto the memory model, prints the breakdown, what would run out of
memory first, and the nearest configuration that fits.
Exit 0 fits, 3 does not fit, 2 bad input (including a file LLaMA-Factory would reject)."""

from __future__ import annotations

import json

import click

from fitplan.solver.errors import ConfigFileError, FitplanError, InvalidConfigurationError, UnknownModelError, shown
from fitplan.solver.llamafactory.read_accelerate import FsdpRun, sibling_fsdp_config
from fitplan.solver.llamafactory.read_yaml import LlamaFactoryRun, read_accelerate_config, read_llamafactory_config
from fitplan.solver.memory.estimate import estimate
from fitplan.solver.planner.questions import nearest_fit
from fitplan.solver.problem.answers import Estimate
from fitplan.solver.problem.config import violations
from fitplan.solver.specs import limits
from fitplan.solver.specs.catalog import load_model, parse_gpu_set
from fitplan.solver.specs.gpu import GpuSet
from fitplan.solver.specs.model import ModelSpec

from .exit_codes import EXIT_NOTHING_FITS, EXIT_OK
from .options import BoundedCommand, count, revision_option
from .render import oom_first, render_check


def _resolve_model(run: LlamaFactoryRun, model_option: str | None, revision: str | None = None) -> ModelSpec:
    if model_option:
        return load_model(model_option, revision=revision)
    if not run.model_name_or_path:
        raise UnknownModelError(f"{run.source} has no model_name_or_path: pass --model NAME_OR_CONFIG_JSON")
    try:
        return load_model(run.model_name_or_path, revision=revision)
    except (UnknownModelError, FitplanError) as exc:
        raise UnknownModelError(
            f"model_name_or_path '{shown(run.model_name_or_path)}' of {shown(run.source)} cannot be resolved: {exc} "
            "(or pass --model with a catalog name or a path to its config.json)"
        ) from None


def _estimate_for_file(model: ModelSpec, gpus: GpuSet, run: LlamaFactoryRun) -> Estimate:
    problems = violations(model, gpus, run.config)
    if problems:
        raise InvalidConfigurationError(f"{run.source} cannot run as written on {gpus.label()}: {problems[0]}")
    return estimate(model, gpus, run.config)


def _accelerate_fsdp(yaml_path: str, accelerate_config: str | None) -> FsdpRun | None:
    """The FSDP settings the run launches with. Without --accelerate-config, an FSDP accelerate
    config beside the YAML means the run probably launches with it: refused rather than estimated
    as plain DDP."""
    if accelerate_config is not None:
        return None if accelerate_config.lower() == "none" else read_accelerate_config(accelerate_config)
    from pathlib import Path

    sibling = sibling_fsdp_config(Path(yaml_path))
    if sibling is not None:
        raise InvalidConfigurationError(
            f"{sibling} beside {yaml_path} sets distributed_type: FSDP: pass --accelerate-config {sibling} to check "
            "the FSDP run, or --accelerate-config none to check it as launched without (plain DDP)")
    return None


@click.command("check", cls=BoundedCommand)
@click.argument("yaml_path", metavar="TRAIN_YAML")
@click.option("--gpus", "gpus", required=True, help="GPU set the file will run on: 4xA10, 2x8xH100, or a VRAM budget 1x24GiB.")
@click.option("--model", "model", default=None,
              help="Catalog name, Hugging Face id or config.json path, instead of the file's model_name_or_path "
                   "(which is resolved the same way: catalog, then the Hugging Face cache or Hub).")
@revision_option
@click.option("--n-gpus", type=count(1, limits.MAX_TOTAL_GPUS), default=None,
              help="GPUs the run uses (default: all of --gpus).")
@click.option("--mean-sample-len", type=count(1, limits.MAX_SEQ_LEN), default=None,
              help="Mean tokens per sample of your data, when not packed (default: cutoff_len, the conservative end).")
@click.option("--accelerate-config", "accelerate_config", default=None, metavar="FSDP_CONFIG_YAML",
              help="The accelerate config the run launches with (accelerate launch --config_file): its FSDP "
                   "settings are estimated. 'none' = the run launches without one (plain DDP or DeepSpeed).")
@click.option("--nearest/--no-nearest", default=True, show_default=True,
              help="When it does not fit, search the nearest configuration that does.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
def check_command(yaml_path: str, gpus: str, model: str | None, revision: str | None, n_gpus: int | None,
                  mean_sample_len: int | None, accelerate_config: str | None, nearest: bool, as_json: bool) -> int:
    """Does an existing LLaMA-Factory training YAML fit on these GPUs?"""
    gpu_set = parse_gpu_set(gpus)
    fsdp = _accelerate_fsdp(yaml_path, accelerate_config)
    launched = fsdp.num_processes if fsdp is not None else None  # the accelerate config's num_processes
    used = n_gpus or launched or gpu_set.total_gpus
    if used > gpu_set.total_gpus:
        raise InvalidConfigurationError(f"--n-gpus {used} is more than the {gpu_set.total_gpus} GPUs in {gpu_set.label()}")
    probe = read_llamafactory_config(yaml_path, n_gpus=used, fsdp=fsdp)
    spec = _resolve_model(probe, model, revision)
    run = read_llamafactory_config(yaml_path, n_gpus=used, model_type=spec.model_type,
                                   mean_sample_len=mean_sample_len, prequantized=spec.prequantized is not None,
                                   fsdp=fsdp)
    if run.errors:  # LLaMA-Factory would reject the file: that one line, no estimate of a run that cannot start
        more = f" (and {len(run.errors) - 1} more)" if len(run.errors) > 1 else ""
        raise ConfigFileError(f"{shown(run.source)}: {run.errors[0]}{more}")
    result = _estimate_for_file(spec, gpu_set, run)
    search = nearest and not result.fits
    fit = nearest_fit(spec, gpu_set, run.config) if search else None

    if as_json:
        payload = {"file": run.source, "deepspeed_file": run.deepspeed_path, "accelerate_file": run.accelerate_path,
                   "errors": run.errors,
                   "warnings": run.warnings, "estimate": result.to_json_dict(),
                   "oom_first": None if result.fits else oom_first(result, fit),
                   "nearest_fit": None if fit is None else {"changed": fit[1], "estimate": fit[0].to_json_dict()}}
        click.echo(json.dumps(payload, indent=2))
    else:
        click.echo(render_check(result, fit, search, run.warnings))
    return EXIT_OK if result.fits else EXIT_NOTHING_FITS
