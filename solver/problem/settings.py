"""How to search (`SolverSettings`) and the budget policy, stated once: how much of each GPU a
plan may use, and how much host RAM per node offload may assume."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ..specs.gpu import GpuSet
from ..units import GIB

# Host RAM per node when the user does not say (--host-ram-gib): twice the node's GPU memory, at
# least 64 GiB. NVIDIA's DGX systems ship 1.6x (DGX A100: 1 TB for 8 x 80 GB) to 3.2x (DGX H100:
# 2 TB for 8 x 80 GB) their GPU memory as system memory (DGX user guides, hardware overview).
HOST_RAM_PER_GPU_MEMORY = 2
HOST_RAM_MIN_BYTES = 64 * GIB


class SolverSettings(BaseModel):
    """How to search: time limit, determinism, the headroom kept free, how many plans."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    time_limit_s: float = Field(default=10.0, gt=0)
    workers: int = Field(default=1, ge=1)  # 1 = deterministic search
    headroom_fraction: float = Field(default=0.05, ge=0, lt=1)  # of each GPU's memory, kept free
    top_k: int = Field(default=1, ge=1)  # plans returned: the best and top_k - 1 runners-up
    quality_tolerance: float = Field(default=0.01, ge=0, lt=1)  # speed band of the quality tie-break
    host_ram_bytes: int | None = Field(default=None, gt=0)  # per node; None = default_host_ram_bytes


def memory_budget_bytes(gpus: GpuSet, headroom_fraction: float) -> int:
    """Bytes a plan may require per GPU: the capacity less the headroom, rounded down."""
    return int(gpus.gpu.memory_bytes * (1 - headroom_fraction))


def default_host_ram_bytes(gpus: GpuSet) -> int:
    return max(HOST_RAM_MIN_BYTES, HOST_RAM_PER_GPU_MEMORY * gpus.gpus_per_node * gpus.gpu.memory_bytes)


def host_ram_limit_bytes(gpus: GpuSet, settings: SolverSettings) -> int:
    return settings.host_ram_bytes if settings.host_ram_bytes is not None else default_host_ram_bytes(gpus)
