"""How to search (`SolverSettings`) and the budget policy, stated once: how much of each GPU a
plan may use, and how much host RAM per node offload may assume.

The budget policy, printed with every plan (cli/render.py):
- headroom: `headroom_fraction` (default 5 %) of each GPU stays free of the required peak
  (tensors + steady allocator reserve + workspaces + CUDA context, memory/estimate.py);
- with variable-length samples (no packing), at least MIN_FREE_BYTES_VARIABLE_LENGTH stays free
  as well, whatever the fraction: on small cards 5 % is less than that (an 8 GB P4: 0.37 GiB);
- the cached variable-length segments (memory/overheads.py) are reported as max_memory_reserved
  but do not decide fits: the caching allocator frees them and retries before it raises an OOM,
  and launch.sh sets `expandable_segments:True`, which removes most of the fragmentation.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError

from ..errors import InvalidConfigurationError, validation_message
from ..specs import limits
from ..specs.gpu import GpuSet
from ..units import GIB

# Host RAM per node when the user does not say (--host-ram-gib): twice the node's GPU memory, at
# least 64 GiB. NVIDIA's DGX systems ship 1.6x (DGX A100: 1 TB for 8 x 80 GB) to 3.2x (DGX H100:
# 2 TB for 8 x 80 GB) their GPU memory as system memory (DGX user guides, hardware overview).
HOST_RAM_PER_GPU_MEMORY = 2
HOST_RAM_MIN_BYTES = 64 * GIB
# Free bytes kept on each GPU beside the required peak when samples vary in length: the lead's
# policy for issue 12 ("plans with < 0.5 GiB free when variable-length samples are expected" are
# thin margins an expert would not run), a policy figure, not a measurement.
MIN_FREE_BYTES_VARIABLE_LENGTH = GIB // 2


class SolverSettings(BaseModel):
    """How to search: time limit, determinism, the headroom kept free, how many plans."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # bounds: solver/specs/limits.py; NaN and infinities refused, counts are ints (never 2.5 or True)
    time_limit_s: Annotated[float, Strict()] = Field(default=10.0, gt=0, le=limits.MAX_TIME_LIMIT_S,
                                                     allow_inf_nan=False)
    workers: Annotated[int, Strict()] = Field(default=1, ge=1, le=limits.MAX_JOBS)  # 1 = deterministic search
    headroom_fraction: Annotated[float, Strict()] = Field(default=0.05, ge=0, lt=1, allow_inf_nan=False)  # kept free
    top_k: Annotated[int, Strict()] = Field(default=1, ge=1, le=limits.MAX_TOP_K)  # the best and top_k - 1 runners-up
    quality_tolerance: Annotated[float, Strict()] = Field(default=0.01, ge=0, lt=1, allow_inf_nan=False)  # speed band
    host_ram_bytes: Annotated[int, Strict()] | None = Field(default=None, gt=0, le=int(limits.MAX_HOST_RAM_GIB * GIB))

    def __init__(self, **data) -> None:
        """A bad setting is one line (FitplanError), as everywhere in the API."""
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise InvalidConfigurationError(f"SolverSettings {validation_message(exc)}") from None


def min_free_bytes(variable_length: bool) -> int:
    """Bytes kept free beside the headroom fraction (module docstring)."""
    return MIN_FREE_BYTES_VARIABLE_LENGTH if variable_length else 0


def memory_budget_bytes(gpus: GpuSet, headroom_fraction: float, *, variable_length: bool = False) -> int:
    """Bytes a plan may require per GPU: the capacity less the headroom, rounded down, and with
    variable-length samples at least MIN_FREE_BYTES_VARIABLE_LENGTH below the capacity."""
    capacity = gpus.gpu.memory_bytes
    return min(int(capacity * (1 - headroom_fraction)), capacity - min_free_bytes(variable_length))


def default_host_ram_bytes(gpus: GpuSet) -> int:
    return max(HOST_RAM_MIN_BYTES, HOST_RAM_PER_GPU_MEMORY * gpus.gpus_per_node * gpus.gpu.memory_bytes)


def host_ram_limit_bytes(gpus: GpuSet, settings: SolverSettings) -> int:
    return settings.host_ram_bytes if settings.host_ram_bytes is not None else default_host_ram_bytes(gpus)
