"""A GPU as the planner sees it (one catalog entry), and a set of them (`2x8xH100`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

# Nodes talk over this much network when neither the catalog nor the user says (--inter-node-gbps):
# one 100 Gb/s link per node (InfiniBand EDR / 100 GbE), fitplan's assumption for a typical cluster
# of PCIe machines (catalogs/gpus.yaml, source PCIE_NET_DEFAULT).
DEFAULT_INTER_NODE_GBIT_PER_S = 100.0


class GpuSpec(BaseModel):
    """One GPU model. Numbers are copied from the sources named in `sources` (catalogs/gpus.yaml).

    `vendor` decides how `compute_capability` reads: NVIDIA "X.Y", AMD the LLVM target ("gfx942",
    what torch reports as gcnArchName). Feature gates (bf16, FlashAttention-2, bitsandbytes) are
    per-entry flags for every vendor; no rule reads the compute capability. A `generic` card is a
    VRAM budget (`--gpus 1x24GiB`): memory and the stated features only, speed rates unknown."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str  # canonical id used on the command line, e.g. A100-80G
    display_name: str
    aliases: list[str] = Field(default_factory=list)
    vendor: Literal["nvidia", "amd", "generic"] = "nvidia"
    arch: str
    compute_capability: str  # NVIDIA "8.0"; AMD "gfx942"; generic ""
    memory_bytes: int = Field(gt=0)  # the smallest total the sources show (catalogs/gpus.yaml header)
    memory_note: str = ""
    tensor_cores: bool
    bf16_hardware: bool  # torch *reports* bf16 on V100/T4/P4 by emulation; this is the hardware fact
    flash_attention_2: bool  # FA2 needs compute capability >= 8.0
    bitsandbytes_4bit: bool
    fp16_tflops: float = Field(gt=0)  # dense fp16 matmul rate it can do (tensor cores; P4/P40: 1/64 of fp32)
    bf16_tflops: float | None = None  # dense bf16 tensor rate; None where there is no bf16 hardware
    fp32_tflops: float = Field(gt=0)  # non-tensor fp32
    memory_bandwidth_gbps: float = Field(gt=0)  # GB/s
    nvlink_gbps: float | None = None  # scale-up link (NVLink, AMD Infinity Fabric): total bidirectional GB/s per GPU as marketed; None = none
    # Fully connected meshes without a switch (MI300X: 7 Infinity Fabric links, one per peer): the
    # bidirectional GB/s of the one link to each peer, so a group of k < 8 GPUs gets k - 1 links,
    # not the whole mesh. None = a switched fabric (NVSwitch): every group gets the full rate.
    peer_link_gbps: float | None = None
    pcie_gen: int = Field(ge=3, le=6)
    pcie_lanes: int = 16
    # Network out of one node, all its compute-fabric NICs together, in GIGABITS per second (as
    # NICs are sold; the *_gbps fields above are gigabytes): the vendor's reference system for
    # this GPU (DGX H100: 8 x 400 Gb/s = 3200), else DEFAULT_INTER_NODE_GBIT_PER_S.
    inter_node_gbit_per_s_per_node: float = Field(default=DEFAULT_INTER_NODE_GBIT_PER_S, gt=0)
    inter_node_source: str = ""  # key of catalogs/gpus.yaml `sources` for the figure above
    rates_known: bool = True  # False for a VRAM budget: the TFLOPS and bandwidths are placeholders
    sources: list[str]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def compute_capability_major(self) -> int | None:
        """NVIDIA's major compute capability; None for AMD and generic cards."""
        return self.cc_at_least[0] if self.cc_at_least else None

    @property
    def cc_at_least(self) -> tuple[int, int] | None:
        """NVIDIA's (major, minor) compute capability; None for AMD and generic cards (their
        features are the entry's flags)."""
        if self.vendor != "nvidia":
            return None
        major, minor = self.compute_capability.split(".")
        return int(major), int(minor)

    @property
    def capability_label(self) -> str:
        """How the card's generation reads in a message: `compute capability 7.5`, `AMD gfx942`,
        `VRAM budget (bf16+fa2+bnb)`."""
        if self.vendor == "nvidia":
            return f"compute capability {self.compute_capability}"
        if self.vendor == "amd":
            return f"AMD {self.compute_capability}"
        return f"VRAM budget ({self.arch})"

    def feature_gap(self, feature: str) -> str:
        """Why the card lacks `feature` (bf16, fa2, bnb), in words for a one-line error."""
        if self.vendor == "generic":
            size = self.name.split(":")[0]
            return (f"the VRAM budget's features are {self.arch}; add {feature} with a suffix if the card has it, "
                    f"e.g. {size}:bf16+fa2+bnb")
        if self.vendor == "nvidia" and feature == "bf16":
            return f"bf16 needs compute capability >= 8.0 and {self.name} has {self.compute_capability}; torch only emulates it"
        if self.vendor == "nvidia" and feature == "fa2":
            return f"FlashAttention-2 needs compute capability >= 8.0 and {self.name} has {self.compute_capability}"
        return f"{self.name} ({self.capability_label}) has no {feature} support in the catalog"

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
    inter_node_gbit_per_s: float | None = Field(default=None, gt=0)  # --inter-node-gbps; None = the GPU's default

    @property
    def total_gpus(self) -> int:
        return self.nodes * self.gpus_per_node

    @property
    def network_gbit_per_s(self) -> float:
        """Gb/s out of each node: what the user said, else the GPU kind's catalog default."""
        return self.inter_node_gbit_per_s or self.gpu.inter_node_gbit_per_s_per_node

    def network_source(self) -> str:
        """Where `network_gbit_per_s` comes from, in words."""
        if self.inter_node_gbit_per_s:
            return "--inter-node-gbps"
        if self.gpu.inter_node_source:
            return f"{self.gpu.name} default, source {self.gpu.inter_node_source} (--inter-node-gbps to change)"
        return "fitplan's default for an unknown network (--inter-node-gbps to change)"

    def label(self) -> str:
        if self.nodes > 1:
            return f"{self.nodes}x{self.gpus_per_node}x{self.gpu.name}"
        return f"{self.gpus_per_node}x{self.gpu.name}"
