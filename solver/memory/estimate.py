"""Evaluate one fully specified configuration: per-GPU memory by term, where the peak happens,
overheads, whether it fits. The recommender uses `required_bytes_by_moment` for its
constraints, so both see the very same numbers."""

from __future__ import annotations

from dataclasses import dataclass

from ..problem.answers import Estimate, MomentBytes
from ..problem.cautions import cautions
from ..problem.config import TrainConfig, check_runnable
from ..specs.gpu import GpuSet
from ..specs.model import ModelSpec
from ..units import format_gib
from . import liger
from .fsdp import fsdp_load
from .lever_effects import lever_effects
from .moe import moe_notes
from .overheads import allocator_reserve, overheads, variable_length_reserve_at
from .params import frozen_params, trainable_params
from .peak import host_ram_bytes, step_moments
from .prequantized import prequantized_notes
from .terms import Affine, Moment, Term


@dataclass(frozen=True)
class MomentMemory:
    """One peak candidate's figures, each affine in the micro batch."""

    moment: Moment
    tensor: Affine  # what torch.cuda.max_memory_allocated() sees
    required: Affine  # + steady allocator reserve, workspaces, CUDA context, NCCL: decides fits
    max_reserved: Affine  # + reclaimable variable-length segments, - outside-allocator terms


def memory_by_moment(model: ModelSpec, gpus: GpuSet, config: TrainConfig, *, moments: list[Moment] | None = None,
                     mean_length_fraction: float | None = None) -> list[MomentMemory]:
    """Every peak candidate's tensor, required and max-reserved bytes (`config.micro_batch` is
    ignored: each figure is affine in it).

    Required = tensors + the allocator's steady reserve + workspaces + CUDA context and NCCL:
    what the GPU must hold. The cached variable-length loss segments (solver/memory/overheads.py) are
    only in max_reserved, what `torch.cuda.max_memory_reserved()` reaches (the calibrated
    figure, docs/accuracy.md): they are whole free segments, which PyTorch's caching allocator
    releases (`release_cached_blocks`) and retries with before it raises an OOM, so they cannot
    make a run fail.

    `moments` replaces the step's peak candidates (a framework profile adds its own tensors,
    calibration/framework_profiles.py); `mean_length_fraction` replaces the data's mean sample
    length / seq_len for the variable-length segments."""
    extra = overheads(model, gpus.gpu, config, mean_length_fraction)
    rows = []
    if moments is None:
        moments = step_moments(model, config, gpus.gpus_per_node, gpus.gpu.compute_capability_major or 8)
    for moment in moments:
        tensor = moment.total()
        held = tensor + allocator_reserve(tensor, extra.allocator_reserve_fraction) + extra.allocator_side()
        blocks = variable_length_reserve_at(moment, extra.variable_length_blocks)
        rows.append(MomentMemory(moment=moment, tensor=tensor, required=held + extra.outside_allocator(),
                                 max_reserved=held + blocks))
    return rows


def required_bytes_by_moment(model: ModelSpec, gpus: GpuSet, config: TrainConfig) -> list[tuple[Moment, Affine, Affine]]:
    """(moment, tensor bytes, required bytes) per peak candidate: what the recommender
    constrains, the same numbers `estimate` reports."""
    return [(row.moment, row.tensor, row.required) for row in memory_by_moment(model, gpus, config)]


def estimate(model: ModelSpec, gpus: GpuSet, config: TrainConfig) -> Estimate:
    """Per-GPU memory of one configuration, and whether it fits."""
    check_runnable(model, gpus, config)
    mb = config.micro_batch
    rows = memory_by_moment(model, gpus, config)
    moments = [MomentBytes(name=r.moment.name, phase=r.moment.phase, tensor_bytes=r.tensor.at(mb),
                           required_bytes=r.required.at(mb)) for r in rows]
    peak = max(rows, key=lambda r: r.required.at(mb))  # max() keeps the earliest of tied moments
    peak_moment, peak_tensor, peak_required = peak.moment, peak.tensor, peak.required
    extra = overheads(model, gpus.gpu, config)
    # Reserved (hard) = what must be held inside the caching allocator; the reclaimable
    # variable-length segments come on top of it only in max_memory_reserved.
    steady_reserve = allocator_reserve(peak_tensor, extra.allocator_reserve_fraction).at(mb)
    overhead_bytes = {Term.allocator_reserve.value: steady_reserve, **{n.value: t.at(mb) for n, t in extra.terms.items()}}
    reserved = peak_required.at(mb) - extra.outside_allocator().at(mb)
    capacity = gpus.gpu.memory_bytes
    # The cache grows only while the card has room: the allocator reserves at most what is free.
    reservable = capacity - extra.outside_allocator().at(mb)
    max_reserved = max(reserved, min(reservable, max(r.max_reserved.at(mb) for r in rows)))
    notes = []
    if max_reserved > reserved and not config.packing:
        assumption = ("assuming unpacked samples average seq_len tokens (--mean-sample-len sets yours)"
                      if config.mean_sample_len is None else f"with a mean sample length of {config.mean_sample_len}")
        notes.append(f"max_memory_reserved can reach {format_gib(max_reserved, digits=1)} with variable sample lengths, "
                     f"{assumption}; the allocator releases that cache before an OOM, so it does not decide fits")
    if config.seq_len > model.max_position_embeddings:
        notes.append(f"seq_len {config.seq_len} is beyond the model's {model.max_position_embeddings} "
                     "positions: set rope_scaling")
    if config.method.value == "qlora":
        notes.append("bitsandbytes storage is modelled by formula (blockwise NF4/int8 constants)")
    notes += prequantized_notes(model, config)
    notes += cautions(model, gpus, config)
    notes += lever_notes(model, config)
    notes += moe_notes(model, gpus, config)
    if config.fsdp_strategy is not None:
        load = fsdp_load(model, config, gpus.gpus_per_node)
        notes.append(f"loading under FSDP (fsdp_cpu_ram_efficient_loading): local rank 0 of each node reads the "
                     f"checkpoint into host RAM, up to {format_gib(load.host_ram_bytes, digits=1)} (16-bit bytes; "
                     f"not in the host RAM figure), and each GPU briefly holds {format_gib(load.gpu_bytes, digits=1)} "
                     "while the units are wrapped (the load moment above)")
    return Estimate(
        model=model.name,
        gpus=gpus.label(),
        gpu=gpus.gpu.name,
        config=config,
        total_params=model.total_params(),
        trainable_params=trainable_params(model, config),
        frozen_params=frozen_params(model, config),
        capacity_bytes=capacity,
        tensor_peak_bytes=peak_tensor.at(mb),
        reserved_peak_bytes=reserved,
        max_reserved_bytes=max_reserved,
        peak_bytes=peak_required.at(mb),
        peak_moment=peak_moment.name,
        peak_phase=peak_moment.phase,
        breakdown_bytes={k: v for k, v in peak_moment.bytes_at(mb).items() if v},
        overhead_bytes=overhead_bytes,
        moments=moments,
        host_ram_bytes=host_ram_bytes(model, config, gpus.gpus_per_node),
        fits=peak_required.at(mb) <= capacity,
        notes=notes,
        levers=lever_effects(model, gpus, config, memory_by_moment),
        active_params=model.active_params(),
        active_params_excluding_embedding=model.active_params(include_embedding=False),
        term_bytes={k: v for k, v in peak_moment.term_bytes_at(mb).items() if v},
        layers=model.describe_layers(),
    )


def lever_notes(model: ModelSpec, config: TrainConfig) -> list[str]:
    """What an estimate with levers on should say beside its numbers."""
    notes = []
    if config.liger and liger.applied(model, config) is None:
        notes.append(f"LLaMA-Factory 0.9.5 applies no Liger kernel to model type {model.model_type!r}: "
                     "enable_liger_kernel changes nothing here")
    if config.packing and not config.neat_packing:
        notes.append("plain packing lets the samples packed into one row attend to each other; neat_packing "
                     "(--neat-packing) isolates them")
    if config.packing and config.mean_sample_len:
        per_row = config.seq_len / config.mean_sample_len
        notes.append(f"packed: each row holds about {per_row:.1f} samples of {config.mean_sample_len} tokens, so a "
                     f"step of {config.global_batch} rows trains on about {config.global_batch * per_row:.0f} samples")
    return notes


def tensor_peak(model: ModelSpec, gpus: GpuSet, config: TrainConfig) -> tuple[int, str]:
    """The tensor bytes at the peak and the peak's moment, exactly as `estimate` picks them but
    without refusing what a rule rules out (problem/rules.py): the trace comparisons hold the
    memory formula to the trace also where a GPU kernel would refuse to run (fp32 grouped GEMMs)."""
    mb = config.micro_batch
    peak = max(memory_by_moment(model, gpus, config), key=lambda r: r.required.at(mb))
    return peak.tensor.at(mb), peak.moment.name
