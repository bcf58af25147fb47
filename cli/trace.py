"""`fitplan trace`: run one real training step of the Hugging Face model code on fake tensors
and print its tensor-memory peak beside the formula's, term by term. With `--sharding fsdp` the
step is FSDP's (FSDP1, or FSDP2 with --fsdp-version 2), as rank 0 of a fake process group of
--n-gpus ranks.

Needs the [trace] extra (torch, transformers, peft); everything else in fitplan does not."""

from __future__ import annotations

import json

import click

import fitplan
from fitplan.solver.memory.estimate import estimate
from fitplan.solver.problem.instance import config_for_estimate

from .exit_codes import EXIT_BAD_INPUT, EXIT_OK
from .options import (
    MODEL_HELP,
    BoundedCommand,
    ShortChoice,
    knob_options,
    pins_from_kwargs,
    revision_option,
    workload_options,
)
from .render_trace import comparison, render


@click.command("trace", cls=BoundedCommand)
@click.option("--model", "model", required=True, help=MODEL_HELP)
@revision_option
@click.option("--gpus", "gpus", default="1xA100-80G", show_default=True,
              help="GPU set for the formula side (the trace itself runs on this CPU); an FSDP trace runs "
                   "--n-gpus ranks (default all of them).")
@workload_options
@knob_options
@click.option("--optimizer-impl", type=ShortChoice(["fused", "foreach"]), default="fused", show_default=True,
              help="torch AdamW implementation to trace (HF's default adamw_torch_fused = fused).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object (bytes).")
def trace_command(model: str, revision: str | None, gpus: str, seq_len: int, global_batch: int | None,
                  optimizer_impl: str, as_json: bool, **knobs) -> int:
    """Trace one real training step of the model code on fake tensors (no GPU, no weights) and
    compare its tensor-memory peak with the formula's, term by term."""
    # the input first (fast, one line), then the heavy trace dependencies
    instance = fitplan.make_instance(model, gpus, seq_len=seq_len, global_batch=global_batch, revision=revision,
                                     **pins_from_kwargs(knobs))
    config = config_for_estimate(instance)
    formula = estimate(instance.model, instance.gpus, config)
    from fitplan.solver.oracle.step import TraceUnavailableError, require_trace_dependencies, trace_training_step

    try:
        require_trace_dependencies()
    except TraceUnavailableError as exc:
        click.echo(f"error: {exc}", err=True)
        return EXIT_BAD_INPUT
    if config.fsdp_strategy is not None:
        from fitplan.solver.oracle.fsdp_step import trace_fsdp_step

        traced = trace_fsdp_step(instance.model, config, optimizer_impl=optimizer_impl,
                                 gpus_per_node=instance.gpus.gpus_per_node)
    else:
        traced = trace_training_step(instance.model, config, optimizer_impl=optimizer_impl)
    data = comparison(traced, formula)
    click.echo(json.dumps(data, indent=2) if as_json else render(data))
    return EXIT_OK
