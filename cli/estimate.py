"""`fitplan estimate`: evaluate one fully specified configuration."""

from __future__ import annotations

import json

import click

from fitplan.solver.catalog import load_model, parse_gpu_set
from fitplan.solver.estimate import estimate
from fitplan.solver.instance import Instance, Pins, Workload, config_for_estimate

from .exit_codes import EXIT_NOTHING_FITS
from .options import data_shape_options, knob_options, model_and_gpus, pins_from_kwargs, workload_options
from .render import render_estimate


@click.command("estimate")
@model_and_gpus
@workload_options
@data_shape_options
@knob_options
@click.option("--json", "as_json", is_flag=True, help="Print the stable JSON object.")
def estimate_command(model: str, gpus: str, seq_len: int, global_batch: int | None, packing: bool,
                     mean_sample_len: int | None, as_json: bool, **knobs) -> None:
    """Per-GPU memory of one configuration, term by term, and whether it fits."""
    instance = Instance(model=load_model(model), gpus=parse_gpu_set(gpus),
                        workload=Workload(seq_len=seq_len, global_batch=global_batch, packing=packing,
                                          mean_sample_len=mean_sample_len),
                        pins=Pins(**pins_from_kwargs(knobs)))
    result = estimate(instance.model, instance.gpus, config_for_estimate(instance))
    if as_json:
        click.echo(json.dumps(result.to_json_dict(), indent=2))
    else:
        click.echo(render_estimate(result))
    if not result.fits:
        raise SystemExit(EXIT_NOTHING_FITS)
