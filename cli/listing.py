"""`fitplan models` and `fitplan gpus`: the catalogs, for people and for scripts."""

from __future__ import annotations

import json

import click

from fitplan.solver.specs.catalog import gpu_catalog, model_catalog, named_models

from .exit_codes import EXIT_OK
from .options import BoundedCommand
from .render import render_gpus, render_models


def model_listing(spec) -> dict:
    """One named model as `fitplan models --json` lists it: every ModelSpec field (its Hub id,
    chat template, the architecture and the sources of its numbers) and the computed count; a
    variant also says which entry's architecture it has (`variant_of`) and why (`variant_source`)."""
    row = spec.model_dump(mode="json", exclude={"variants", "local_dir", "revision"}) | {"params": spec.total_params()}
    if spec.variant_of:
        entry = model_catalog()[spec.variant_of]
        row["variant_source"] = next(v.source for v in entry.variants if v.name == spec.name) or (
            f"same config.json architecture as {entry.name} ({entry.hf_id})")
    return row


@click.command("models", cls=BoundedCommand)
@click.option("--json", "as_json", is_flag=True, help="A JSON list of objects.")
def models_command(as_json: bool) -> int:
    """List every named model of the catalog (base and chat/instruct releases): Hub id, chat
    template, key numbers, sources."""
    models = list(named_models().values())
    if as_json:
        click.echo(json.dumps([model_listing(m) for m in models], indent=2))
    else:
        click.echo(render_models(models))
    return EXIT_OK


@click.command("gpus", cls=BoundedCommand)
@click.option("--json", "as_json", is_flag=True, help="A JSON list of objects.")
def gpus_command(as_json: bool) -> int:
    """List the catalog GPUs (memory, compute capability, bf16/FA2, TFLOPS, bandwidth)."""
    gpus = list(gpu_catalog().values())
    if as_json:
        click.echo(json.dumps([g.model_dump(mode="json") for g in gpus], indent=2))
    else:
        click.echo(render_gpus(gpus))
    return EXIT_OK
