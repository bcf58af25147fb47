"""`--emit` and its placeholders, shared by the commands that produce a plan (`recommend`).

    @click.command()
    @emit_options
    def recommend_command(..., emit, out, dataset, template, model_path, output_dir): ...
        if emit:
            for path in write_emit(model, gpus, config, emit=emit, out=out, dataset=dataset, ...):
                click.echo(f"wrote {path}")
"""

from __future__ import annotations

import json
from pathlib import Path

import click
from pydantic import ValidationError

from fitplan.solver.errors import ConfigFileError, InvalidConfigurationError, shown, validation_message
from fitplan.solver.llamafactory.write_deepspeed import deepspeed_config
from fitplan.solver.llamafactory.write_yaml import DS_CONFIG_JSON, LAUNCH_SH, EmitPlaceholders, llamafactory_files
from fitplan.solver.llamafactory.write_yaml import breaks_a_line as _breaks
from fitplan.solver.problem.config import TrainConfig
from fitplan.solver.specs.gpu import GpuSet
from fitplan.solver.specs.limits import MAX_NAME_CHARS
from fitplan.solver.specs.model import ModelSpec

from .options import ShortChoice

EMIT_CHOICES = ("llamafactory", "deepspeed")
DEFAULT_OUT_DIR = "out"
EMIT_OPTION_NAMES = ("emit", "out", "dataset", "template", "model_path", "output_dir", "dataset_dir", "force")


def emit_options(func):
    """Add --emit, -o/--out and the placeholder flags to a click command."""
    options = [
        click.option("--emit", type=ShortChoice(EMIT_CHOICES, case_sensitive=False), default=None,
                     help="Write ready-to-run files: llamafactory (train.yaml, ds_config.json, launch.sh) or "
                          "deepspeed (ds_config.json alone, no \"auto\", for other trainers)."),
        click.option("-o", "--out", default=DEFAULT_OUT_DIR, show_default=True,
                     help="Directory for the --emit files (new or empty; --force to write into one that is not)."),
        click.option("--force", is_flag=True, default=False,
                     help="With --emit: write into a directory that already holds files, replacing the plan's files."),
        click.option("--dataset", default=None, help="LLaMA-Factory dataset names (default: its demo datasets)."),
        click.option("--template", default=None, help="LLaMA-Factory chat template (default: the model family's)."),
        click.option("--model-path", default=None, help="model_name_or_path (default: the catalog's Hub id)."),
        click.option("--output-dir", default=None, help="Where training writes checkpoints (default: saves/...)."),
        click.option("--dataset-dir", default=None,
                     help="Folder of dataset_info.json, relative to where launch.sh runs (default: data, "
                          "LLaMA-Factory's data/ when run from its checkout)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def emit_placeholders(**values: str | None) -> EmitPlaceholders:
    """The placeholders, a name or path holding a line break refused in one line (exit 2)."""
    try:
        return EmitPlaceholders(**values)
    except ValidationError as exc:
        raise InvalidConfigurationError(validation_message(exc)) from None


def check_out_dir(out: str | Path, force: bool = False) -> Path:
    """The --emit directory, refused in one line (exit 2) before any work when it is empty text,
    not a directory, or already holds files (unless --force)."""
    text = str(out)
    if not text.strip():
        raise InvalidConfigurationError("-o/--out is empty: name the directory for the --emit files, e.g. -o plan")
    if len(text) > MAX_NAME_CHARS or any(_breaks(c) for c in text):
        raise InvalidConfigurationError(f"-o/--out '{shown(text)}' is no directory name (at most {MAX_NAME_CHARS} "
                                        "characters, no line breaks): pass a plain path")
    directory = Path(text)
    try:
        if directory.exists() and not directory.is_dir():
            raise InvalidConfigurationError(f"-o/--out {shown(text)} is a file, not a directory: choose another -o/--out")
        if not force and directory.is_dir() and any(directory.iterdir()):
            raise InvalidConfigurationError(f"-o/--out {shown(text)} already holds files: choose a new or empty "
                                            "directory, or add --force to replace the plan's files there")
    except OSError as exc:
        raise ConfigFileError(f"cannot use {shown(text)} for -o/--out: {exc.strerror or exc}; choose another") from None
    return directory


def check_emit_options(emit: str | None = None, out: str | Path = DEFAULT_OUT_DIR, force: bool = False,
                       **placeholders) -> None:
    """Every --emit option refused before the search when it cannot be written (exit 2)."""
    if not emit:
        return
    check_out_dir(out, force)
    if emit != "deepspeed":
        emit_placeholders(**{k: placeholders.get(k) for k in ("dataset", "template", "model_path", "output_dir",
                                                                "dataset_dir")})


def write_emit(model: ModelSpec, gpus: GpuSet, config: TrainConfig, *, emit: str | None, out: str | Path = DEFAULT_OUT_DIR,
               dataset: str | None = None, template: str | None = None, model_path: str | None = None,
               output_dir: str | None = None, dataset_dir: str | None = None, reasons: dict[str, str] | None = None,
               force: bool = True, **_ignored) -> list[Path]:
    """Write the files of `--emit` into `out`; returns the paths written (none when emit is None).
    Without `force`, a directory that already holds files is refused (check_out_dir)."""
    if not emit:
        return []
    check_out_dir(out, force)
    if emit == "deepspeed":
        files = {DS_CONFIG_JSON: json.dumps(deepspeed_config(config, gpus, fill_auto=True, model=model), indent=2) + "\n"}
    else:
        placeholders = emit_placeholders(dataset=dataset, template=template, model_path=model_path,
                                         output_dir=output_dir, dataset_dir=dataset_dir)
        files = llamafactory_files(model, gpus, config, placeholders, reasons)
    directory = Path(out)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for name, content in files.items():
            path = directory / name
            path.write_text(content)
            if name == LAUNCH_SH:
                path.chmod(0o755)
            written.append(path)
    except OSError as exc:
        raise ConfigFileError(f"cannot write to {directory}: {exc.strerror or exc}; choose another -o/--out") from None
    return written
