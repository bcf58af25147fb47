"""Evaluate one fully specified configuration: per-GPU memory by term, where the peak happens,
overheads, whether it fits. The recommender uses `required_bytes_by_moment` for its
constraints, so both see the very same numbers."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from .affine import Affine
from .errors import InvalidConfigurationError
from .gpu_spec import GIB, GpuSet, to_gib
from .memory_peak import Moment, host_ram_bytes, step_moments
from .memory_states import frozen_params, trainable_params
from .model_spec import ModelSpec
from .overhead import allocator_reserve, overheads, variable_length_reserve_at
from .rules import violations
from .training_config import TrainConfig


class MomentBytes(BaseModel):
    name: str
    phase: str
    tensor_bytes: int
    required_bytes: int


class Estimate(BaseModel):
    """The memory picture of one configuration on one GPU of the set (all GPUs are alike)."""

    model_config = ConfigDict(frozen=True)

    model: str
    gpus: str
    gpu: str
    config: TrainConfig
    total_params: int
    trainable_params: int
    frozen_params: int
    capacity_bytes: int
    tensor_peak_bytes: int  # what torch.cuda.max_memory_allocated() would report
    reserved_peak_bytes: int  # + the allocator's steady reserve and workspaces: what it must hold
    max_reserved_bytes: int  # + reclaimable variable-length segments: max_memory_reserved
    peak_bytes: int  # + CUDA context and workspaces: what the GPU must hold
    peak_moment: str
    peak_phase: str
    breakdown_bytes: dict[str, int]  # tensor terms at the peak moment
    overhead_bytes: dict[str, int]
    moments: list[MomentBytes]
    host_ram_bytes: int
    fits: bool
    notes: list[str]

    @property
    def headroom_bytes(self) -> int:
        return self.capacity_bytes - self.peak_bytes

    def to_json_dict(self) -> dict:
        """The stable `--json` object (GiB = 2^30 bytes)."""
        return {
            "model": self.model,
            "gpus": self.gpus,
            "config": self.config.model_dump(mode="json"),
            "fits": self.fits,
            "peak_gib_per_gpu": to_gib(self.peak_bytes),
            "reserved_gib_per_gpu": to_gib(self.reserved_peak_bytes),
            "max_reserved_gib_per_gpu": to_gib(self.max_reserved_bytes),
            "tensor_peak_gib_per_gpu": to_gib(self.tensor_peak_bytes),
            "capacity_gib": to_gib(self.capacity_bytes),
            "headroom_gib": to_gib(self.headroom_bytes),
            "peak_moment": self.peak_moment,
            "peak_phase": self.peak_phase,
            "breakdown_gib": {k: to_gib(v) for k, v in self.breakdown_bytes.items()},
            "overhead_gib": {k: to_gib(v) for k, v in self.overhead_bytes.items()},
            "moments": [m.model_dump() for m in self.moments],
            "host_ram_gib": to_gib(self.host_ram_bytes),
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "notes": self.notes,
        }


def required_bytes_by_moment(model: ModelSpec, gpus: GpuSet, config: TrainConfig) -> list[tuple[Moment, Affine, Affine]]:
    """For each peak candidate: (moment, tensor bytes, required bytes), each affine in the micro
    batch; `config.micro_batch` is ignored here. Required = tensors + the allocator's steady
    reserve + workspaces + CUDA context and NCCL: what the GPU must hold, and what decides fits.

    The cached variable-length loss segments (solver/overhead.py) are not in it: they are whole
    free segments, which PyTorch's caching allocator releases (`release_cached_blocks`) and
    retries before it raises an OOM, so they raise `max_memory_reserved` but cannot make a run
    fail. `max_reserved_bytes_by_moment` gives that figure."""
    extra = overheads(model, gpus.gpu, config)
    fixed_overheads = extra.allocator_side() + extra.outside_allocator()
    result = []
    for moment in step_moments(model, config, gpus.gpus_per_node):
        tensor = moment.total()
        required = tensor + allocator_reserve(tensor, extra.allocator_reserve_fraction) + fixed_overheads
        result.append((moment, tensor, required))
    return result


def max_reserved_bytes_by_moment(model: ModelSpec, gpus: GpuSet, config: TrainConfig) -> list[Affine]:
    """What `torch.cuda.max_memory_reserved()` reaches at each moment: tensors, the steady
    reserve, allocator-side workspaces and the reclaimable variable-length segments (the figure
    calibrated against published measurements, docs/accuracy.md)."""
    extra = overheads(model, gpus.gpu, config)
    result = []
    for moment in step_moments(model, config, gpus.gpus_per_node):
        tensor = moment.total()
        blocks = variable_length_reserve_at(moment, extra.variable_length_blocks)
        result.append(tensor + allocator_reserve(tensor, extra.allocator_reserve_fraction, blocks)
                      + extra.allocator_side())
    return result


def check_runnable(model: ModelSpec, gpus: GpuSet, config: TrainConfig) -> None:
    """Raise the first reason the configuration cannot run at all (not about memory)."""
    problems = violations(model, gpus, config)
    if problems:
        raise InvalidConfigurationError(problems[0])


def estimate(model: ModelSpec, gpus: GpuSet, config: TrainConfig) -> Estimate:
    """Per-GPU memory of one configuration, and whether it fits."""
    check_runnable(model, gpus, config)
    mb = config.micro_batch
    rows = required_bytes_by_moment(model, gpus, config)
    moments = [MomentBytes(name=m.name, phase=m.phase, tensor_bytes=t.at(mb), required_bytes=r.at(mb))
               for m, t, r in rows]
    peak_index = max(range(len(rows)), key=lambda k: (rows[k][2].at(mb), -k))
    peak_moment, peak_tensor, peak_required = rows[peak_index]
    extra = overheads(model, gpus.gpu, config)
    overhead_bytes = {name: term.at(mb) for name, term in extra.terms.items()}
    # Reserved (hard) = what must be held inside the caching allocator; the reclaimable
    # variable-length segments come on top of it only in max_memory_reserved.
    steady_reserve = allocator_reserve(peak_tensor, extra.allocator_reserve_fraction).at(mb)
    overhead_bytes = {"allocator_reserve": steady_reserve, **overhead_bytes}
    reserved = peak_required.at(mb) - extra.outside_allocator().at(mb)
    capacity = gpus.gpu.memory_bytes
    # The cache grows only while the card has room: the allocator reserves at most what is free.
    reservable = capacity - extra.outside_allocator().at(mb)
    max_reserved = max(reserved, min(reservable, max(r.at(mb) for r in max_reserved_bytes_by_moment(model, gpus, config))))
    notes = []
    if max_reserved > reserved and not config.packing:
        assumption = ("assuming unpacked samples average seq_len tokens (--mean-sample-len sets yours)"
                      if config.mean_sample_len is None else f"with a mean sample length of {config.mean_sample_len}")
        notes.append(f"max_memory_reserved can reach {max_reserved / GIB:.1f} GiB with variable sample lengths, "
                     f"{assumption}; the allocator releases that cache before an OOM, so it does not decide fits")
    if config.seq_len > model.max_position_embeddings:
        notes.append(f"seq_len {config.seq_len} is beyond the model's {model.max_position_embeddings} "
                     "positions: set rope_scaling")
    if config.method.value == "qlora":
        notes.append("bitsandbytes storage is modelled by formula (blockwise NF4/int8 constants)")
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
    )
