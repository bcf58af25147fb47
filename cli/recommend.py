"""`fitplan recommend`: the fastest configuration that fits, its runners-up, or why nothing fits."""

from __future__ import annotations

import json

import click

import fitplan
from fitplan.solver.errors import InvalidConfigurationError
from fitplan.solver.planner.questions import max_seq_len, min_gpus
from fitplan.solver.planner.recommend import recommend
from fitplan.solver.problem.settings import SolverSettings
from fitplan.solver.specs import limits
from fitplan.solver.units import GIB

from .emit_options import EMIT_OPTION_NAMES, check_emit_options, emit_options, write_emit
from .exit_codes import EXIT_NOTHING_FITS, EXIT_OK
from .options import (
    BoundedCommand,
    FiniteFloat,
    allow_packing_option,
    count,
    data_shape_options,
    inter_node_option,
    knob_options,
    model_and_gpus,
    moe_kwargs,
    moe_options,
    pins_from_kwargs,
    workload_options,
)
from .render import render_answers, render_recommendation


def _tokens(tokens: int | None, epochs: float | None, dataset_samples: int | None, seq_len: int) -> int | None:
    if epochs is not None or dataset_samples is not None:
        if epochs is None or dataset_samples is None:
            raise InvalidConfigurationError("--epochs needs --dataset-samples (and the other way round)")
        # Every sample counted at seq_len tokens: the upper end for unpacked data.
        return int(epochs * dataset_samples * seq_len)
    return tokens


@click.command("recommend", cls=BoundedCommand)
@model_and_gpus
@workload_options
@data_shape_options
@allow_packing_option
@moe_options
@knob_options
@click.option("--top", "top_k", type=count(1, limits.MAX_TOP_K), default=1, show_default=True,
              help="Show the best plan and the next K-1 runners-up.")
@click.option("--headroom", type=FiniteFloat(0, 0.9), default=0.05, show_default=True,
              help="Fraction of each GPU's memory kept free.")
@click.option("--host-ram-gib", type=FiniteFloat(1, limits.MAX_HOST_RAM_GIB), default=None,
              help="Host RAM per node for CPU offload (default: 2x the node's GPU memory, at least 64 GiB).")
@click.option("--max-seq-len", "ask_max_seq_len", is_flag=True, help="Answer: the longest --seq-len at which something fits.")
@click.option("--min-gpus", "ask_min_gpus", is_flag=True, help="Answer: the fewest GPUs of this kind on which something fits.")
@click.option("--time-limit", type=FiniteFloat(0.1, limits.MAX_TIME_LIMIT_S), default=10.0, show_default=True,
              help="CP-SAT time limit per solve, seconds.")
@click.option("--tokens", type=count(1, limits.MAX_TRAIN_TOKENS), default=None, help="Report the time to train on this many tokens.")
@click.option("--epochs", type=FiniteFloat(0, limits.MAX_EPOCHS, low_open=True), default=None,
              help="With --dataset-samples: report the time for this many epochs.")
@click.option("--dataset-samples", type=count(1, limits.MAX_DATASET_SAMPLES), default=None, help="Samples in the dataset.")
@inter_node_option
@click.option("--compare-engines/--no-compare-engines", "compare_engines", default=True, show_default=True,
              help="With the sharding engine free: put the other engines' fastest plans (plain DDP, DeepSpeed "
                   "ZeRO, FSDP) beside the chosen one, with why each loses.")
@click.option("--json", "as_json", is_flag=True, help="Print the stable JSON object.")
@emit_options
def recommend_command(model: str, gpus: str, revision: str | None, seq_len: int, global_batch: int | None,
                      packing: bool, mean_sample_len: int | None, top_k: int, headroom: float,
                      host_ram_gib: float | None, ask_max_seq_len: bool, ask_min_gpus: bool, time_limit: float,
                      tokens: int | None, epochs: float | None, dataset_samples: int | None,
                      inter_node_gbps: float | None, compare_engines: bool, as_json: bool, **knobs) -> int:
    """The fastest configuration that fits (knob flags pin a choice), or why nothing fits."""
    emit = {name: knobs[name] for name in EMIT_OPTION_NAMES}
    check_emit_options(**emit)  # an unwritable -o or placeholder is refused before the search
    instance = fitplan.make_instance(model, gpus, seq_len=seq_len, global_batch=global_batch, packing=packing,
                                     mean_sample_len=mean_sample_len, revision=revision,
                                     inter_node_gbps=inter_node_gbps, neat_packing=knobs["neat_packing"],
                                     allow_packing=knobs["allow_packing"], **pins_from_kwargs(knobs),
                                     **moe_kwargs(knobs))
    settings = SolverSettings(time_limit_s=time_limit, headroom_fraction=headroom, top_k=top_k,
                              host_ram_bytes=int(host_ram_gib * GIB) if host_ram_gib else None)
    train_tokens = _tokens(tokens, epochs, dataset_samples, seq_len)
    if ask_max_seq_len or ask_min_gpus:
        answers = {}
        if ask_max_seq_len:
            answers["max_seq_len"] = max_seq_len(instance, settings)
        if ask_min_gpus:
            answers["min_gpus"] = min_gpus(instance, settings)
        click.echo(json.dumps(answers, indent=2) if as_json else render_answers(answers))
        return EXIT_NOTHING_FITS if any(value is None for value in answers.values()) else EXIT_OK
    result = recommend(instance, settings, other_engines=compare_engines)
    if as_json:
        payload = result.to_json_dict()
        if train_tokens and result.tokens_per_s:
            payload["time_to_train_s"] = round(result.time_to_train_s(train_tokens), 1)
        click.echo(json.dumps(payload, indent=2))
    else:
        click.echo(render_recommendation(result, train_tokens))
    if result.plan is not None:
        for path in write_emit(instance.model, instance.gpus, result.plan, **emit):
            click.echo(f"wrote {path}", err=as_json)  # keep stdout pure JSON under --json
    return EXIT_OK if result.plan is not None else EXIT_NOTHING_FITS
