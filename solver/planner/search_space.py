"""The values the recommender may choose for each knob, given the user's pins and the hardware
rules (solver/problem/rules.py), and the ways to split the global batch over GPUs and micro-steps.

Both the CP-SAT model and the exhaustive check in the tests enumerate this one space, so what
is left out here is left out of both. What is left out when not pinned, and why:
- `freeze`: it trains a different, much smaller set of weights (the last layers); speed alone
  cannot weigh that against LoRA, so it is planned only when asked for (`--method freeze`).
- eager attention: it keeps the s x s probabilities (more memory) and computes the full square
  (slower) than the fused kernels, so it never wins; SDPA and FA2 have the same memory terms
  and speed, so one stands for both: FA2 where the GPU runs it (what LLaMA-Factory users
  expect on Ampere+), else SDPA.
- ZeRO-1: the memory model gives it exactly ZeRO-2's per-GPU memory (DeepSpeed's estimator
  treats stages 1 and 2 alike) and no speed advantage; ZeRO-2 stands for both.
- FSDP: FULL_SHARD (with and without CPU offload) and SHARD_GRAD_OP, HYBRID_SHARD when a plan
  spans nodes; FSDP1, the version LLaMA-Factory's FSDP examples run (FSDP2 only when pinned).
  NO_SHARD only when pinned: it is DDP without DDP's buckets, and torch deprecates it.
- fp32 precision, SGD, Adafactor and paged 8-bit AdamW: chosen by the user, not for speed.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..problem.config import TrainConfig
from ..problem.instance import Instance, pinned_sharding
from ..problem.knobs import DEFAULT_FSDP_VERSION, LLAMAFACTORY_DEFAULT_FREEZE_LAYERS, Attention, FsdpStrategy, Method
from ..problem.knobs import Offload, Optimizer, Precision, Sharding
from ..problem.rules import attention_allowed, bits_allowed, combination_problems, precision_allowed
from ..specs.gpu import GpuSet

LORA_RANKS = (8, 16, 32, 64, 128, 256)
FREE_METHODS = ((Method.full, 16), (Method.lora, 16), (Method.qlora, 8), (Method.qlora, 4))
FREE_ZERO_OFFLOAD = ((0, Offload.none), (2, Offload.none), (2, Offload.optimizer), (3, Offload.none),
                     (3, Offload.optimizer), (3, Offload.all))
FREE_FSDP = ((FsdpStrategy.full_shard, Offload.none), (FsdpStrategy.full_shard, Offload.all),
             (FsdpStrategy.shard_grad_op, Offload.none), (FsdpStrategy.hybrid_shard, Offload.none))
FREE_OPTIMIZERS = (Optimizer.adamw, Optimizer.adamw_8bit)
# Free global batch (no --global-batch, --grad-accum pinned): micro batches tried.
FREE_MICRO_BATCHES = (1, 2, 4, 8, 16, 32, 64)
# Without --global-batch: 8 samples per GPU of the set per optimizer step, LLaMA-Factory's
# example recipe (examples/train_lora/*.yaml: per_device_train_batch_size 1 x
# gradient_accumulation_steps 8).
DEFAULT_SAMPLES_PER_GPU = 8


@dataclass(frozen=True)
class Knobs:
    """One discrete choice of everything except how the batch is split."""

    method: Method
    bits: int
    lora_rank: int
    grad_ckpt: bool
    attn: Attention
    zero_stage: int
    offload: Offload
    optim: Optimizer
    precision: Precision
    n_gpus: int
    fsdp_strategy: FsdpStrategy | None = None  # None: DDP or DeepSpeed (zero_stage)
    fsdp_version: int = DEFAULT_FSDP_VERSION


@dataclass(frozen=True)
class BatchSplit:
    """micro_batch x grad_accum x n_gpus samples per optimizer step."""

    n_gpus: int
    micro_batch: int
    grad_accum: int


@dataclass(frozen=True)
class SearchSpace:
    """Candidate values per knob (first = preferred on exact ties) and the batch splits."""

    methods: tuple[tuple[Method, int], ...]
    lora_ranks: tuple[int, ...]
    grad_ckpt: tuple[bool, ...]
    attns: tuple[Attention, ...]
    zero_offloads: tuple[tuple[int, Offload], ...]
    optims: tuple[Optimizer, ...]
    precisions: tuple[Precision, ...]
    splits: tuple[BatchSplit, ...]
    global_batch: int | None  # None: free (grad_accum pinned, no --global-batch)
    data_shape: tuple[tuple[str, object], ...]  # seq_len, packing, mean_sample_len (Workload.data_shape)
    lora_targets: tuple[str, ...]
    freeze_layers: int
    # FSDP (strategy, offload) pairs and versions; empty = FSDP not searched
    fsdp_offloads: tuple[tuple[FsdpStrategy, Offload], ...] = ()
    fsdp_versions: tuple[int, ...] = (DEFAULT_FSDP_VERSION,)
    gpus_per_node: int = 0  # 0 = unknown: HYBRID_SHARD is then never searched

    @property
    def seq_len(self) -> int:
        return dict(self.data_shape)["seq_len"]

    @property
    def n_gpus_values(self) -> tuple[int, ...]:
        return tuple(sorted({s.n_gpus for s in self.splits}))

    def splits_for(self, n_gpus: int) -> tuple[BatchSplit, ...]:
        return tuple(s for s in self.splits if s.n_gpus == n_gpus)

    def engines(self) -> list[tuple[int, FsdpStrategy | None, int, Offload]]:
        """(ZeRO stage, FSDP strategy, FSDP version, offload): DDP/DeepSpeed first, then FSDP."""
        plain = [(stage, None, DEFAULT_FSDP_VERSION, offload) for stage, offload in self.zero_offloads]
        return plain + [(0, strategy, version, offload) for strategy, offload in self.fsdp_offloads
                        for version in self.fsdp_versions]

    def knob_combinations(self) -> list[Knobs]:
        """Every combination LLaMA-Factory and the hardware accept, in a fixed order."""
        result = []
        for n in self.n_gpus_values:
            for method, bits in self.methods:
                ranks = self.lora_ranks if method in (Method.lora, Method.qlora) else self.lora_ranks[:1]
                for rank in ranks:
                    for stage, strategy, version, offload in self.engines():
                        if strategy == FsdpStrategy.hybrid_shard and not 0 < self.gpus_per_node < n:
                            continue  # HYBRID_SHARD needs a plan that spans nodes
                        for precision in self.precisions:
                            for optim in self.optims:
                                for ckpt in self.grad_ckpt:
                                    for attn in self.attns:
                                        knobs = Knobs(method, bits, rank, ckpt, attn, stage, offload, optim,
                                                      precision, n, strategy, version)
                                        if combination_allowed(knobs):
                                            result.append(knobs)
        return result

    def config(self, knobs: Knobs, split: BatchSplit) -> TrainConfig:
        """The full configuration of one candidate (validated)."""
        return TrainConfig(method=knobs.method, bits=knobs.bits, lora_rank=knobs.lora_rank,
                           lora_targets=self.lora_targets, freeze_layers=self.freeze_layers,
                           **dict(self.data_shape), micro_batch=split.micro_batch, grad_accum=split.grad_accum,
                           grad_ckpt=knobs.grad_ckpt, attn=knobs.attn, zero_stage=knobs.zero_stage,
                           offload=knobs.offload, optim=knobs.optim, precision=knobs.precision,
                           n_gpus=knobs.n_gpus, fsdp_strategy=knobs.fsdp_strategy,
                           fsdp_version=knobs.fsdp_version)


def combination_allowed(knobs: Knobs) -> bool:
    """Whether LLaMA-Factory, DeepSpeed and accelerate run this combination (problem/rules.py), and
    whether it is worth searching: DeepSpeed and FSDP on one GPU only for offload (they shard
    nothing on one GPU)."""
    sharded = knobs.zero_stage > 0 or knobs.fsdp_strategy is not None
    if knobs.n_gpus == 1 and sharded and knobs.offload == Offload.none:
        return False
    return not combination_problems(method=knobs.method, bits=knobs.bits, zero_stage=knobs.zero_stage,
                                    offload=knobs.offload, optim=knobs.optim, precision=knobs.precision,
                                    fsdp_strategy=knobs.fsdp_strategy, fsdp_version=knobs.fsdp_version)


def default_global_batch(gpus: GpuSet) -> int:
    return DEFAULT_SAMPLES_PER_GPU * gpus.total_gpus


def _divisors(value: int) -> list[int]:
    return [d for d in range(1, value + 1) if value % d == 0]


def batch_splits(instance: Instance) -> tuple[tuple[BatchSplit, ...], int | None]:
    """Every (n_gpus, micro_batch, grad_accum) the pins allow, and the global batch they make.

    With a global batch (given, or the default of 8 per GPU of the set), the product must equal it
    exactly: n_gpus must divide it. Without one but with --grad-accum pinned, the global batch is
    free and the micro batch ranges over FREE_MICRO_BATCHES."""
    pins = instance.pins
    total = instance.gpus.total_gpus
    n_values = [pins.n_gpus] if pins.n_gpus is not None else list(range(1, total + 1))
    global_batch = instance.workload.global_batch
    if global_batch is None and pins.grad_accum is not None:
        micro = [pins.micro_batch] if pins.micro_batch is not None else list(FREE_MICRO_BATCHES)
        return tuple(BatchSplit(n, mb, pins.grad_accum) for n in n_values for mb in micro), None
    if global_batch is None:
        global_batch = default_global_batch(instance.gpus)
    splits = []
    for n in n_values:
        if global_batch % n:
            continue
        for mb in _divisors(global_batch // n):
            accum = global_batch // (n * mb)
            if pins.micro_batch is not None and mb != pins.micro_batch:
                continue
            if pins.grad_accum is not None and accum != pins.grad_accum:
                continue
            splits.append(BatchSplit(n, mb, accum))
    return tuple(splits), global_batch


def search_space(instance: Instance) -> SearchSpace:
    """The candidate values of each knob: the pin if given, else the free choices the GPU allows."""
    pins = instance.pins
    gpus = instance.gpus
    if pins.method is not None or pins.bits is not None:
        if pins.method is not None and pins.bits is not None:
            methods = [(pins.method, pins.bits)]
        elif pins.method is not None:
            bits_for = {Method.qlora: (8, 4)}.get(pins.method, (16,))
            methods = [(pins.method, b) for b in bits_for]
        else:
            methods = [(Method.qlora, pins.bits)] if pins.bits != 16 else [(Method.full, 16), (Method.lora, 16)]
    else:
        methods = list(FREE_METHODS)
    methods = [(m, b) for m, b in methods if bits_allowed(gpus, b)]
    if pins.lora_rank is not None:
        ranks = (pins.lora_rank,)
    else:
        ranks = tuple(r for r in LORA_RANKS if r <= instance.model.hidden_size) or (LORA_RANKS[0],)
    ckpt = (pins.grad_ckpt,) if pins.grad_ckpt is not None else (False, True)
    if pins.attn is not None:
        attns = (pins.attn,)
    else:
        attns = (Attention.fa2,) if attention_allowed(gpus, Attention.fa2) else (Attention.sdpa,)
    engine = pinned_sharding(pins.pinned())
    zero_offloads = tuple((s, o) for s, o in FREE_ZERO_OFFLOAD
                          if (pins.zero_stage is None or s == pins.zero_stage)
                          and (pins.offload is None or o == pins.offload)
                          and engine in (None, Sharding.deepspeed if s else Sharding.none))
    if not zero_offloads and pins.zero_stage is not None and engine != Sharding.fsdp:  # e.g. --zero 1
        offloads = [pins.offload] if pins.offload is not None else [Offload.none, Offload.optimizer]
        zero_offloads = tuple((pins.zero_stage, o) for o in offloads)
    fsdp_offloads: tuple[tuple[FsdpStrategy, Offload], ...] = ()
    if engine in (None, Sharding.fsdp):
        pairs = FREE_FSDP if pins.fsdp_strategy is None else \
            [(pins.fsdp_strategy, o) for o in (Offload.none, Offload.all)]
        fsdp_offloads = tuple((s, o) for s, o in pairs if pins.offload is None or o == pins.offload)
    fsdp_versions = (pins.fsdp_version,) if pins.fsdp_version is not None else (DEFAULT_FSDP_VERSION,)
    optims = (pins.optim,) if pins.optim is not None else FREE_OPTIMIZERS
    if pins.precision is not None:
        precisions = (pins.precision,)
    elif precision_allowed(gpus, Precision.bf16):
        precisions = (Precision.bf16, Precision.pure_bf16)
    else:
        precisions = (Precision.fp16,)
    precisions = tuple(p for p in precisions if precision_allowed(gpus, p))
    splits, global_batch = batch_splits(instance)
    return SearchSpace(
        methods=tuple(methods), lora_ranks=ranks, grad_ckpt=ckpt, attns=attns, zero_offloads=zero_offloads,
        optims=optims, precisions=precisions, splits=splits, global_batch=global_batch,
        data_shape=tuple(instance.workload.data_shape().items()),
        lora_targets=pins.lora_targets or ("all",),
        freeze_layers=pins.freeze_layers or LLAMAFACTORY_DEFAULT_FREEZE_LAYERS,
        fsdp_offloads=fsdp_offloads, fsdp_versions=fsdp_versions, gpus_per_node=gpus.gpus_per_node,
    )
