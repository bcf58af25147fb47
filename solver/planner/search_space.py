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
- fp32 precision, SGD, Adafactor and paged 8-bit AdamW: chosen by the user, not for speed;
  except fp32 for a model whose fp16 is broken, on a card without bf16 (problem/cautions.py).
- Known-worse choices an expert avoids when there is a choice (problem/cautions.py): SDPA on
  Gemma-2 (no soft-capping: FA2, else eager, as LLaMA-Factory's `flash_attn: auto` does), and
  bitsandbytes 8-bit below compute capability 7.5 (a slow fallback the speed model does not see);
  pinned, they are planned with the caution printed.
- The memory levers (issue 16): Liger is searched (on and off) wherever LLaMA-Factory applies
  kernels to the model type and Triton runs on the GPU; packing only with --allow-packing (it
  changes what a step trains on); GaLore, APOLLO, BAdam and Adam-mini only for --method full
  with the optimizer free, and only when plain full fine-tuning fits nowhere (planner/solve.py); offloaded
  checkpoints, DoRA, PiSSA, rsLoRA, LoRA+ and the upcast flags only when pinned.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

from ..problem.cautions import fp16_overflow, sdpa_drops_softcapping, slow_int8
from ..problem.config import TrainConfig
from ..problem.instance import Instance, pinned_sharding
from ..problem.knobs import (
    DEFAULT_FSDP_VERSION,
    LLAMAFACTORY_DEFAULT_FREEZE_LAYERS,
    Attention,
    FsdpStrategy,
    MemoryOptimizer,
    Method,
    Offload,
    Optimizer,
    Precision,
    Sharding,
)
from ..problem.rules import (
    attention_allowed,
    attention_length_problem,
    bits_allowed,
    combination_problems,
    fp32_experts_problem,
    gpu_count_launchable,
    liger_allowed,
    memory_optimizer_problems,
    precision_allowed,
    split_problems,
    undocumented_problems,
    zero_stage_problem,
)
from ..specs.gpu import GpuSet
from ..specs.liger_kernels import liger_kernels

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
    liger: bool = False
    packing: bool = False
    memory_optimizer: MemoryOptimizer = MemoryOptimizer.none
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
    ligers: tuple[bool, ...] = (False,)
    packings: tuple[bool, ...] = (False,)
    memory_optimizers: tuple[MemoryOptimizer, ...] = (MemoryOptimizer.none,)
    fixed_levers: tuple[tuple[str, object], ...] = ()  # pinned levers the search does not vary
    # (method, ZeRO stage, precision) the model cannot run (problem/rules.py fp32_experts_problem)
    excluded: tuple[tuple[Method, int, Precision], ...] = ()
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

    def splits_allowed(self, knobs: "Knobs") -> tuple[BatchSplit, ...]:
        """This combination's splits that its levers allow (layer-wise GaLore / APOLLO: no
        accumulation; neat packing under FA2: micro batch 1; problem/rules.py split_problems)."""
        allowed = self.__dict__.setdefault("_splits_allowed_memo", {})
        if knobs not in allowed:
            allowed[knobs] = self._splits_allowed(knobs)
        return allowed[knobs]

    def _splits_allowed(self, knobs: "Knobs") -> tuple[BatchSplit, ...]:
        neat = dict(self.data_shape).get("neat_packing", False)
        return tuple(s for s in self.splits_for(knobs.n_gpus)
                     if not split_problems(memory_optimizer=knobs.memory_optimizer, neat_packing=neat, attn=knobs.attn,
                                           micro_batch=s.micro_batch, grad_accum=s.grad_accum))

    def engines(self) -> list[tuple[int, FsdpStrategy | None, int, Offload]]:
        """(ZeRO stage, FSDP strategy, FSDP version, offload): DDP/DeepSpeed first, then FSDP."""
        plain = [(stage, None, DEFAULT_FSDP_VERSION, offload) for stage, offload in self.zero_offloads]
        return plain + [(0, strategy, version, offload) for strategy, offload in self.fsdp_offloads
                        for version in self.fsdp_versions]

    def knob_combinations(self) -> list[Knobs]:
        """Every combination LLaMA-Factory and the hardware accept, in a fixed order."""
        return list(self._combinations)

    @cached_property
    def _combinations(self) -> tuple[Knobs, ...]:
        """knob_combinations, enumerated once per space (the candidate builder, the leanest
        optimizers and the questions each ask)."""
        result = []
        fixed = dict(self.fixed_levers)
        for n in self.n_gpus_values:
            for method, bits in self.methods:
                ranks = self.lora_ranks if method in (Method.lora, Method.qlora) else self.lora_ranks[:1]
                for rank in ranks:
                    for stage, strategy, version, offload in self.engines():
                        if strategy == FsdpStrategy.hybrid_shard and not 0 < self.gpus_per_node < n:
                            continue  # HYBRID_SHARD needs a plan that spans nodes
                        for precision in self.precisions:
                            if (method, stage, precision) in self.excluded and strategy is None:
                                continue  # experts the model cannot run in this precision under this stage
                            for optim in self.optims:
                                for ckpt in self.grad_ckpt:
                                    for attn in self.attns:
                                        for liger, packing, memory in self._lever_values(method):
                                            if not engine_allowed(n, method, bits, stage, offload, optim, precision,
                                                                  memory, strategy, version):
                                                continue
                                            if not levers_allowed(method, ckpt, stage, fixed):
                                                continue
                                            result.append(Knobs(method, bits, rank, ckpt, attn, stage, offload, optim,
                                                                precision, n, liger=liger, packing=packing,
                                                                memory_optimizer=memory, fsdp_strategy=strategy,
                                                                fsdp_version=version))
        return tuple(result)

    def _lever_values(self, method: Method) -> list[tuple[bool, bool, MemoryOptimizer]]:
        memories = self.memory_optimizers if method == Method.full else (MemoryOptimizer.none,)
        return [(liger, packing, memory) for memory in memories for packing in self.packings for liger in self.ligers]

    def config(self, knobs: Knobs, split: BatchSplit) -> TrainConfig:
        """The full configuration of one candidate. The first one asked for is validated; the others
        are copies of it with their knobs and split: every enumerated combination has passed
        `combination_allowed` and every split `split_problems`, the rules TrainConfig's validators
        ask beyond what all configurations of this space share (the data shape, pinned levers), so
        validating each again would only repeat them (tests/planner/test_search_space.py checks that
        every copy equals a validated configuration). A split the rules refuse is validated, and
        raises what TrainConfig raises."""
        configs = self.__dict__.setdefault("_config_memo", {})
        key = (knobs, split)
        hit = configs.get(key)
        if hit is None:
            first = self.__dict__.get("_first_config")
            neat = dict(self.data_shape).get("neat_packing", False)
            if first is None or split_problems(memory_optimizer=knobs.memory_optimizer, neat_packing=neat,
                                               attn=knobs.attn, micro_batch=split.micro_batch,
                                               grad_accum=split.grad_accum):
                hit = self._config(knobs, split)  # validated (raises what TrainConfig raises)
                self.__dict__.setdefault("_first_config", hit)
            else:
                hit = first.model_copy(update=self._fields(knobs, split))
            configs[key] = hit
        return hit

    def _fields(self, knobs: Knobs, split: BatchSplit) -> dict:
        """What differs between two configurations of this space: the knobs and the split."""
        data = dict(self.data_shape)
        packing = data.get("packing", False) or data.get("neat_packing", False) or knobs.packing
        return dict(method=knobs.method, bits=knobs.bits, lora_rank=knobs.lora_rank, micro_batch=split.micro_batch,
                    grad_accum=split.grad_accum, grad_ckpt=knobs.grad_ckpt, attn=knobs.attn,
                    zero_stage=knobs.zero_stage, offload=knobs.offload, optim=knobs.optim,
                    precision=knobs.precision, n_gpus=knobs.n_gpus, liger=knobs.liger, packing=packing,
                    memory_optimizer=knobs.memory_optimizer, fsdp_strategy=knobs.fsdp_strategy,
                    fsdp_version=knobs.fsdp_version)

    def _config(self, knobs: Knobs, split: BatchSplit) -> TrainConfig:
        """One configuration validated from scratch, built field by field apart from `_fields` on
        purpose: tests/planner/test_search_space.py compares the copies with it."""
        data = dict(self.data_shape)
        data["packing"] = data.get("packing", False) or knobs.packing
        return TrainConfig(method=knobs.method, bits=knobs.bits, lora_rank=knobs.lora_rank,
                           lora_targets=self.lora_targets, freeze_layers=self.freeze_layers,
                           **data, micro_batch=split.micro_batch, grad_accum=split.grad_accum,
                           grad_ckpt=knobs.grad_ckpt, attn=knobs.attn, zero_stage=knobs.zero_stage,
                           offload=knobs.offload, optim=knobs.optim, precision=knobs.precision,
                           n_gpus=knobs.n_gpus, liger=knobs.liger, memory_optimizer=knobs.memory_optimizer,
                           fsdp_strategy=knobs.fsdp_strategy, fsdp_version=knobs.fsdp_version,
                           **dict(self.fixed_levers))


def combination_allowed(knobs: Knobs, fixed_levers: dict | None = None) -> bool:
    """Whether LLaMA-Factory, DeepSpeed and accelerate run this combination (problem/rules.py), and
    whether it is worth searching: DeepSpeed and FSDP on one GPU only for offload (they shard
    nothing on one GPU)."""
    return engine_allowed(knobs.n_gpus, knobs.method, knobs.bits, knobs.zero_stage, knobs.offload, knobs.optim,
                          knobs.precision, knobs.memory_optimizer, knobs.fsdp_strategy, knobs.fsdp_version) \
        and levers_allowed(knobs.method, knobs.grad_ckpt, knobs.zero_stage, fixed_levers or {})


@lru_cache(maxsize=65536)
def engine_allowed(n_gpus: int, method: Method, bits: int, zero_stage: int, offload: Offload, optim: Optimizer,
                   precision: Precision, memory_optimizer: MemoryOptimizer, fsdp_strategy: FsdpStrategy | None,
                   fsdp_version: int) -> bool:
    """The part of `combination_allowed` that reads the method, engine, optimizer and precision:
    asked once per distinct set of these (a query enumerates them for every LoRA rank, checkpointing
    choice and lever; the rules are pure functions of their arguments, so the cache is exact)."""
    sharded = zero_stage > 0 or fsdp_strategy is not None
    if n_gpus == 1 and sharded and offload == Offload.none:
        return False
    if undocumented_problems(method=method, zero_stage=zero_stage, offload=offload):
        return False  # never propose what no framework documents (problem/rules.py)
    if combination_problems(method=method, bits=bits, zero_stage=zero_stage, offload=offload, optim=optim,
                            precision=precision, fsdp_strategy=fsdp_strategy, fsdp_version=fsdp_version):
        return False
    return not memory_optimizer_problems(method=method, memory_optimizer=memory_optimizer, zero_stage=zero_stage,
                                         offload=offload, optim=optim, n_gpus=n_gpus, fsdp_strategy=fsdp_strategy)


def levers_allowed(method: Method, grad_ckpt: bool, zero_stage: int, fixed: dict) -> bool:
    """The pinned levers' rules (problem/rules.py lever_problems) a combination can break."""
    if fixed.get("unsloth_gc") and not grad_ckpt:
        return False
    lora_only = fixed.get("dora") or fixed.get("pissa") or fixed.get("rslora") or fixed.get("loraplus_lr_ratio")
    if lora_only and method not in (Method.lora, Method.qlora):
        return False
    return not (fixed.get("pissa") and (method == Method.qlora or zero_stage == 3))


def default_global_batch(gpus: GpuSet) -> int:
    return DEFAULT_SAMPLES_PER_GPU * gpus.total_gpus


def _divisors(value: int) -> list[int]:
    """Every divisor of `value`, ascending, from the pairs (d, value // d) with d <= sqrt(value):
    a --global-batch of 10^12 takes a million steps, not 10^12."""
    small, large = [], []
    d = 1
    while d * d <= value:
        if value % d == 0:
            small.append(d)
            if d * d != value:
                large.append(value // d)
        d += 1
    return small + large[::-1]


def batch_splits(instance: Instance) -> tuple[tuple[BatchSplit, ...], int | None]:
    """Every (n_gpus, micro_batch, grad_accum) the pins allow, and the global batch they make.

    With a global batch (given, or the default of 8 per GPU of the set), the product must equal it
    exactly: n_gpus must divide it. Without one but with --grad-accum pinned, the global batch is
    free and the micro batch ranges over FREE_MICRO_BATCHES. A free GPU count is one node's or
    whole nodes (problem/rules.py gpu_count_launchable)."""
    pins = instance.pins
    total = instance.gpus.total_gpus
    n_values = [pins.n_gpus] if pins.n_gpus is not None else \
        [n for n in range(1, total + 1) if gpu_count_launchable(instance.gpus, n)]
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


# Levers the search never varies: the pin, else LLaMA-Factory's default (problem/config.py).
FIXED_LEVERS = ("unsloth_gc", "reentrant_gc", "dora", "pissa", "rslora", "loraplus_lr_ratio", "projection_rank",
                "upcast_layernorm", "upcast_lmhead_output")


def memory_optimizers_may_help(instance: Instance) -> bool:
    """GaLore, APOLLO, BAdam and Adam-mini are a fallback of --method full when the optimizer is
    free (module docstring): they replace or wrap it, so a pinned --optim rules them out."""
    pins = instance.pins
    return pins.method == Method.full and pins.memory_optimizer is None and pins.optim is None


def search_space(instance: Instance, with_memory_optimizers: bool = False) -> SearchSpace:
    """The candidate values of each knob: the pin if given, else the free choices the GPU allows
    (`with_memory_optimizers`: also GaLore, APOLLO, BAdam and Adam-mini for full fine-tuning)."""
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
    if instance.model.prequantized is not None and instance.model.prequantized.quantized_in_training:
        # a GPTQ/AWQ base trains with LoRA on its own storage, never under ZeRO-3 (problem/rules.py)
        methods = [(m, b) for m, b in methods if (m, b) == (Method.lora, 16)]
    if pins.bits is None:
        methods = [(m, b) for m, b in methods if not slow_int8(gpus, b)] or methods
    if pins.lora_rank is not None:
        ranks = (pins.lora_rank,)
    else:
        ranks = tuple(r for r in LORA_RANKS if r <= instance.model.hidden_size) or (LORA_RANKS[0],)
    ckpt = (pins.grad_ckpt,) if pins.grad_ckpt is not None else (False, True)
    if pins.attn is not None:
        attns = (pins.attn,)
    elif attention_allowed(gpus, Attention.fa2) and not attention_length_problem(
            instance.model, Attention.fa2, instance.workload.seq_len):
        attns = (Attention.fa2,)
    else:
        attns = (Attention.eager,) if sdpa_drops_softcapping(instance.model, Attention.sdpa) else (Attention.sdpa,)
    engine = pinned_sharding(pins.pinned())
    zero_offloads = tuple((s, o) for s, o in FREE_ZERO_OFFLOAD
                          if (pins.zero_stage is None or s == pins.zero_stage)
                          and (pins.offload is None or o == pins.offload)
                          and engine in (None, Sharding.deepspeed if s else Sharding.none)
                          and not zero_stage_problem(instance.model, s))
    if not zero_offloads and pins.zero_stage is not None and engine != Sharding.fsdp:  # e.g. --zero 1
        offloads = [pins.offload] if pins.offload is not None else [Offload.none, Offload.optimizer]
        zero_offloads = tuple((pins.zero_stage, o) for o in offloads)
    fsdp_offloads: tuple[tuple[FsdpStrategy, Offload], ...] = ()
    if engine in (None, Sharding.fsdp):
        pairs = FREE_FSDP if pins.fsdp_strategy is None else \
            [(pins.fsdp_strategy, o) for o in (Offload.none, Offload.all)]
        fsdp_offloads = tuple((s, o) for s, o in pairs if pins.offload is None or o == pins.offload)
    fsdp_versions = (pins.fsdp_version,) if pins.fsdp_version is not None else (DEFAULT_FSDP_VERSION,)
    if instance.model.prequantized is not None and instance.model.prequantized.quantized_in_training:
        # "DeepSpeed ZeRO-3 or FSDP is incompatible with PTQ-quantized models" (problem/rules.py)
        zero_offloads = tuple((s, o) for s, o in zero_offloads if s != 3)
        fsdp_offloads = ()
    optims = (pins.optim,) if pins.optim is not None else FREE_OPTIMIZERS
    if pins.precision is not None:
        precisions = (pins.precision,)
    elif precision_allowed(gpus, Precision.bf16):
        precisions = (Precision.bf16, Precision.pure_bf16)
    elif (overflow := fp16_overflow(instance.model)) is not None and overflow.unusable:
        precisions = (Precision.fp32,)
    else:
        precisions = (Precision.fp16,)
    precisions = tuple(p for p in precisions if precision_allowed(gpus, p))
    splits, global_batch = batch_splits(instance)
    if pins.liger is not None:
        ligers = (pins.liger,)
    else:
        ligers = (False, True) if liger_kernels(instance.model.model_type) and liger_allowed(gpus) else (False,)
    workload = instance.workload
    packings = (False, True) if workload.allow_packing and not (workload.packing or workload.neat_packing) else (False,)
    if pins.memory_optimizer is not None:
        memories = (pins.memory_optimizer,)
    elif with_memory_optimizers:
        memories = tuple(MemoryOptimizer)
    else:
        memories = (MemoryOptimizer.none,)
    fixed = {k: v for k, v in pins.pinned().items() if k in FIXED_LEVERS}
    excluded = tuple((method, stage, precision) for method, _ in methods for stage, _ in zero_offloads
                     for precision in precisions
                     if fp32_experts_problem(instance.model, gpus, method=method, precision=precision, zero_stage=stage))
    return SearchSpace(
        methods=tuple(methods), lora_ranks=ranks, grad_ckpt=ckpt, attns=attns, zero_offloads=zero_offloads,
        optims=optims, precisions=precisions, splits=splits, global_batch=global_batch,
        data_shape=tuple(instance.workload.data_shape().items()),
        lora_targets=pins.lora_targets or ("all",),
        freeze_layers=pins.freeze_layers or LLAMAFACTORY_DEFAULT_FREEZE_LAYERS,
        ligers=ligers, packings=packings, memory_optimizers=memories, fixed_levers=tuple(sorted(fixed.items())),
        excluded=excluded,
        fsdp_offloads=fsdp_offloads, fsdp_versions=fsdp_versions, gpus_per_node=gpus.gpus_per_node,
    )
