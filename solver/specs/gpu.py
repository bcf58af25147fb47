"""A GPU as the planner sees it (one catalog entry), and a set of them (`2x8xH100`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, computed_field


class GpuSpec(BaseModel):
    """One GPU model. Numbers are copied from the sources named in `sources` (catalogs/gpus.yaml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str  # canonical id used on the command line, e.g. A100-80G
    display_name: str
    aliases: list[str] = Field(default_factory=list)
    arch: str
    compute_capability: str  # "8.0"
    memory_bytes: int = Field(gt=0)  # total as the driver reports it (nvidia-smi "Total" MiB x 2^20)
    memory_note: str = ""
    tensor_cores: bool
    bf16_hardware: bool  # torch *reports* bf16 on V100/T4/P4 by emulation; this is the hardware fact
    flash_attention_2: bool  # FA2 needs compute capability >= 8.0
    bitsandbytes_4bit: bool
    fp16_tflops: float = Field(gt=0)  # dense fp16 matmul rate it can do (tensor cores; P4/P40: 1/64 of fp32)
    bf16_tflops: float | None = None  # dense bf16 tensor rate; None where there is no bf16 hardware
    fp32_tflops: float = Field(gt=0)  # non-tensor fp32
    memory_bandwidth_gbps: float = Field(gt=0)  # GB/s
    nvlink_gbps: float | None = None  # total bidirectional GB/s per GPU as marketed; None = no NVLink
    pcie_gen: int = Field(ge=3, le=6)
    pcie_lanes: int = 16
    sources: list[str]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def compute_capability_major(self) -> int:
        return int(self.compute_capability.split(".")[0])

    @property
    def cc_at_least(self) -> tuple[int, int]:
        major, minor = self.compute_capability.split(".")
        return int(major), int(minor)

    @property
    def pcie_gbps_per_direction(self) -> float:
        """PCIe payload bandwidth per direction, GB/s: 0.985 GB/s per gen-3 lane (128b/130b at
        8 GT/s), doubling each generation (PCI-SIG base specifications)."""
        return 0.985 * self.pcie_lanes * 2 ** (self.pcie_gen - 3)


class GpuSet(BaseModel):
    """`nodes` machines with `gpus_per_node` GPUs of one kind each."""

    model_config = ConfigDict(frozen=True)

    gpu: GpuSpec
    nodes: int = Field(default=1, ge=1)
    gpus_per_node: int = Field(ge=1)

    @property
    def total_gpus(self) -> int:
        return self.nodes * self.gpus_per_node

    def label(self) -> str:
        if self.nodes > 1:
            return f"{self.nodes}x{self.gpus_per_node}x{self.gpu.name}"
        return f"{self.gpus_per_node}x{self.gpu.name}"
