"""What comes back: the answer types of `estimate`, `recommend`, its explanation and `sweep`,
each with its stable JSON object (`--json`; GiB = 2^30 bytes). Built by memory/ and planner/,
read by the CLI, the API and the page."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..units import to_gib
from .config import TrainConfig
from .knobs import Sharding


def plan_knobs(config: TrainConfig) -> dict:
    """A plan's decided knobs as JSON values: the `plan` of `recommend --json` and the knob
    columns of a sweep row (lora_rank is null when the plan has no adapters)."""
    return {"method": config.method.value, "bits": config.bits,
            "lora_rank": config.lora_rank if config.uses_lora else None,
            "micro_batch": config.micro_batch, "grad_accum": config.grad_accum, "grad_ckpt": config.grad_ckpt,
            "attn": config.attn.value, "zero_stage": config.zero_stage, "offload": config.offload.value,
            "optim": config.optim.value, "precision": config.precision.value, "n_gpus": config.n_gpus,
            "sharding": config.sharding.value,
            "fsdp_strategy": config.fsdp_strategy.value if config.fsdp_strategy else None,
            "fsdp_version": config.fsdp_version if config.fsdp_strategy else None,
            **lever_knobs(config)}


def lever_knobs(config: TrainConfig) -> dict:
    """The memory levers of a plan as JSON values (issue 16): `liger` is true/false; the LoRA
    variants are null without adapters, `projection_rank` is null unless GaLore/APOLLO runs."""
    projected = config.memory_optimizer.value.startswith(("galore", "apollo"))
    lora = config.uses_lora
    return {"liger": config.liger, "unsloth_gc": config.unsloth_gc, "packing": config.packing,
            "neat_packing": config.neat_packing, "memory_optimizer": config.memory_optimizer.value,
            "projection_rank": config.projection_rank if projected else None,
            "dora": config.dora if lora else None, "pissa": config.pissa if lora else None,
            "rslora": config.rslora if lora else None, "loraplus_lr_ratio": config.loraplus_lr_ratio if lora else None,
            "upcast_layernorm": config.upcast_layernorm, "upcast_lmhead_output": config.upcast_lmhead_output}


class MomentBytes(BaseModel):
    name: str
    phase: str
    tensor_bytes: int
    required_bytes: int


class LeverRow(BaseModel):
    """One figure a lever changes: bytes without the lever, with it (None: not compared), and
    where the number comes from."""

    model_config = ConfigDict(frozen=True)

    label: str
    with_bytes: int
    without_bytes: int | None = None
    source: str = ""
    detail: bool = False  # a part of the row above it


class LeverEffect(BaseModel):
    """What one memory lever (issue 16) does to this estimate, term by term."""

    model_config = ConfigDict(frozen=True)

    lever: str  # the LLaMA-Factory key
    summary: str
    rows: list[LeverRow] = Field(default_factory=list)

    def to_json_dict(self) -> dict:
        return {"lever": self.lever, "summary": self.summary,
                "rows": [{"label": r.label, "gib": to_gib(r.with_bytes),
                          "without_gib": None if r.without_bytes is None else to_gib(r.without_bytes),
                          "source": r.source} for r in self.rows]}


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
    levers: list[LeverEffect] = Field(default_factory=list)
    active_params: int | None = None  # parameters one token uses (MoE: top-k experts); total for dense models
    active_params_excluding_embedding: int | None = None  # the same without the input embedding (OpenAI's, DeepSeek's convention)
    term_bytes: dict[str, int] = Field(default_factory=dict)  # every named term at the peak, parts unsummed
    layers: str = ""  # the layer kinds with their counts ("1 dense + 26 MoE layers")

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
            "active_params": self.active_params if self.active_params is not None else self.total_params,
            "active_params_excluding_embedding": self.active_params_excluding_embedding,
            "trainable_params": self.trainable_params,
            "layers": self.layers,
            "terms_gib": {k: to_gib(v) for k, v in self.term_bytes.items() if v},
            "notes": self.notes,
            **({"levers": [e.to_json_dict() for e in self.levers]} if self.levers else {}),
        }


class Explanation(BaseModel):
    """Why nothing fits, and what would."""

    model_config = ConfigDict(frozen=True)

    binding: str  # the constraint that binds, with numbers
    closest_plan: TrainConfig | None = None
    closest_required_bytes: int | None = None
    max_seq_len: int | None = None  # longest sequence at which something fits (same GPUs, pins)
    min_gpus: int | None = None  # fewest GPUs of this kind on which something fits (pins but --n-gpus)
    suggestions: list[str] = Field(default_factory=list)

    def to_json_dict(self) -> dict:
        return {
            "binding": self.binding,
            "closest_plan": self.closest_plan.model_dump(mode="json") if self.closest_plan else None,
            "closest_required_gib": to_gib(self.closest_required_bytes) if self.closest_required_bytes else None,
            "max_seq_len": self.max_seq_len,
            "min_gpus": self.min_gpus,
            "suggestions": self.suggestions,
        }


class PlanExplanation(BaseModel):
    """Why the plan is what it is, for a mixture-of-experts model: the term that binds it."""

    model_config = ConfigDict(frozen=True)

    binding: Literal["expert_weights", "routed_activations", "load"]
    line: str  # the words every report prints
    term_bytes: dict[str, int] = Field(default_factory=dict)  # the MoE terms compared, per GPU

    def to_json_dict(self) -> dict:
        return {"binding": self.binding, "line": self.line,
                "terms_gib": {k: to_gib(v) for k, v in self.term_bytes.items()}}


class RunnerUp(BaseModel):
    model_config = ConfigDict(frozen=True)

    plan: TrainConfig
    tokens_per_s: float
    step_time_s: float
    peak_bytes: int


class EngineAlternative(BaseModel):
    """The fastest plan of a sharding engine the chosen plan does not use, and in words why the
    chosen plan beats it (planner/engine_comparison.py)."""

    model_config = ConfigDict(frozen=True)

    sharding: Sharding
    plan: TrainConfig | None = None  # None: nothing fits with this engine
    tokens_per_s: float | None = None
    peak_bytes: int | None = None
    line: str  # the words every report prints

    def to_json_dict(self, speed_known: bool) -> dict:
        return {"sharding": self.sharding.value,
                "plan": self.plan.model_dump(mode="json") if self.plan is not None else None,
                "tokens_per_s": round(self.tokens_per_s, 1) if self.tokens_per_s is not None and speed_known else None,
                "peak_gib": to_gib(self.peak_bytes) if self.peak_bytes is not None else None,
                "line": self.line}


# What a recommendation on a VRAM budget (`--gpus 1x24GiB`) is ranked by, said in the text and JSON.
RANKING_BY_MEMORY = ("memory fit, then the plans' speed relative to each other on a reference card's rates "
                     "(a VRAM budget has no rates of its own, so no speed figure is reported), then the quality order")


class Recommendation(BaseModel):
    """What `recommend` answers. `plan` is None when nothing fits; `explanation` then says why."""

    model_config = ConfigDict(frozen=True)

    status: Literal["optimal", "feasible", "infeasible"]
    plan: TrainConfig | None = None
    estimate: Estimate | None = None
    tokens_per_s: float | None = None
    step_time_s: float | None = None
    step_time_breakdown_s: dict[str, float] = Field(default_factory=dict)
    global_batch: int | None = None
    runners_up: list[RunnerUp] = Field(default_factory=list)
    explanation: Explanation | None = None
    plan_explanation: PlanExplanation | None = None  # MoE: which term binds the plan, in words
    headroom_fraction: float
    memory_budget_bytes: int
    host_ram_limit_bytes: int
    min_free_bytes: int = 0  # kept free beside the headroom with variable-length samples (settings.py)
    # False for a VRAM budget (`--gpus 1x24GiB`): no rates, so plans are ranked by memory fit and
    # the quality order only, and tokens/s is not reported.
    speed_known: bool = True
    inter_node_gbit_per_s: float | None = None  # multi-node sets: network per node the speed model assumed (Gb/s)
    inter_node_source: str = ""
    # the other engines' fastest plans, when the engine was free and asked for (--json and text
    # reports of `fitplan recommend`); empty otherwise
    other_engines: list[EngineAlternative] = Field(default_factory=list)

    def time_to_train_s(self, tokens: int) -> float | None:
        """Seconds to train on `tokens` tokens at the plan's speed."""
        return tokens / self.tokens_per_s if self.tokens_per_s and self.speed_known else None

    def to_json_dict(self) -> dict:
        """The stable `recommend --json` object."""
        plan = None
        if self.plan is not None:
            plan = {**plan_knobs(self.plan), "seq_len": self.plan.seq_len, "global_batch": self.plan.global_batch}
        known = self.speed_known
        return {
            "status": self.status,
            "plan": plan,
            "estimate": self.estimate.to_json_dict() if self.estimate else None,
            "tokens_per_s": round(self.tokens_per_s, 1) if self.tokens_per_s is not None and known else None,
            "step_time_s": round(self.step_time_s, 4) if self.step_time_s is not None and known else None,
            "step_time_breakdown_s": {k: round(v, 4) for k, v in self.step_time_breakdown_s.items()} if known else {},
            "speed_known": known,
            "ranking": "speed, then the quality order" if known else RANKING_BY_MEMORY,
            "inter_node_gbit_per_s_per_node": self.inter_node_gbit_per_s,
            "inter_node_source": self.inter_node_source,
            "headroom_fraction": self.headroom_fraction,
            "memory_budget_gib": to_gib(self.memory_budget_bytes),
            "min_free_gib": to_gib(self.min_free_bytes),
            "host_ram_limit_gib": to_gib(self.host_ram_limit_bytes),
            "runners_up": [{"plan": r.plan.model_dump(mode="json"),
                            "tokens_per_s": round(r.tokens_per_s, 1) if known else None,
                            "step_time_s": round(r.step_time_s, 4) if known else None, "peak_gib": to_gib(r.peak_bytes)}
                           for r in self.runners_up],
            "explanation": self.explanation.to_json_dict() if self.explanation else None,
            "plan_explanation": self.plan_explanation.to_json_dict() if self.plan_explanation else None,
            "other_engines": [alternative.to_json_dict(known) for alternative in self.other_engines],
        }


class SweepRow(BaseModel):
    """One combination's answer. Knob columns are empty when nothing fits.

    status: recommend's `optimal` / `feasible` / `infeasible`, or for `search=False` `fits` /
    `oom`; `invalid` when the pins cannot run on that hardware at all (bf16 on a P4, ...).
    `fits` is the one column to filter on in every mode."""

    model_config = ConfigDict(frozen=True)

    model: str
    gpus: str
    seq_len: int
    status: str
    fits: bool
    method: str | None = None
    bits: int | None = None
    lora_rank: int | None = None
    micro_batch: int | None = None
    grad_accum: int | None = None
    global_batch: int | None = None
    grad_ckpt: bool | None = None
    attn: str | None = None
    zero_stage: int | None = None
    offload: str | None = None
    optim: str | None = None
    precision: str | None = None
    n_gpus: int | None = None
    sharding: str | None = None  # none, deepspeed or fsdp
    fsdp_strategy: str | None = None
    fsdp_version: int | None = None
    peak_gib: float | None = None  # required per GPU incl. CUDA context and allocator reserve, GiB = 2^30 B
    capacity_gib: float | None = None
    host_ram_gib: float | None = None  # per node, for CPU offload
    tokens_per_s: float | None = None
    step_time_s: float | None = None
    reason: str = ""


COLUMNS = list(SweepRow.model_fields)
