"""`fitplan estimate`: evaluate one fully specified configuration."""

from __future__ import annotations

import json

import click

import fitplan

from .exit_codes import EXIT_NOTHING_FITS, EXIT_OK
from .options import (
    BoundedCommand,
    data_shape_options,
    knob_options,
    model_and_gpus,
    moe_kwargs,
    moe_options,
    pins_from_kwargs,
    workload_options,
)
from .render import render_estimate


@click.command("estimate", cls=BoundedCommand)
@model_and_gpus
@workload_options
@data_shape_options
@moe_options
@knob_options
@click.option("--json", "as_json", is_flag=True, help="Print the stable JSON object.")
def estimate_command(model: str, gpus: str, revision: str | None, seq_len: int, global_batch: int | None,
                     packing: bool, mean_sample_len: int | None, as_json: bool, **knobs) -> int:
    """Per-GPU memory of one configuration, term by term, and whether it fits."""
    result = fitplan.estimate(model, gpus, seq_len=seq_len, global_batch=global_batch, packing=packing,
                              mean_sample_len=mean_sample_len, revision=revision,
                              neat_packing=knobs["neat_packing"], **pins_from_kwargs(knobs), **moe_kwargs(knobs))
    if as_json:
        click.echo(json.dumps(result.to_json_dict(), indent=2))
    else:
        click.echo(render_estimate(result))
    return EXIT_OK if result.fits else EXIT_NOTHING_FITS
