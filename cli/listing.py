"""`fitplan models` and `fitplan gpus`: the catalogs, for people and for scripts."""

from __future__ import annotations

import json

import click

from fitplan.solver.specs.catalog import gpu_catalog, model_catalog

from .exit_codes import EXIT_OK
from .render import render_gpus, render_models


@click.command("models")
@click.option("--json", "as_json", is_flag=True, help="A JSON list of objects.")
def models_command(as_json: bool) -> int:
    """List the catalog models (name, aliases, key numbers, source)."""
    models = list(model_catalog().values())
    if as_json:
        click.echo(json.dumps([m.model_dump(mode="json") | {"params": m.total_params()} for m in models], indent=2))
    else:
        click.echo(render_models(models))
    return EXIT_OK


@click.command("gpus")
@click.option("--json", "as_json", is_flag=True, help="A JSON list of objects.")
def gpus_command(as_json: bool) -> int:
    """List the catalog GPUs (memory, compute capability, bf16/FA2, TFLOPS, bandwidth)."""
    gpus = list(gpu_catalog().values())
    if as_json:
        click.echo(json.dumps([g.model_dump(mode="json") for g in gpus], indent=2))
    else:
        click.echo(render_gpus(gpus))
    return EXIT_OK
