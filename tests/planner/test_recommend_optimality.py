"""Property: on unpinned and lightly pinned queries (0-2 pins; 0.5B-72B catalog models; 1-64 GPUs)
the CP-SAT plan is the optimum of an exhaustive search of the same knob space.

The exhaustive side shares nothing with the candidate builder (planner/candidates.py: its
fastest-first bound, leanest-sibling pruning, memory groups and tables): it takes the space's
knob values (planner/search_space.py, the one documented space) and every allowed batch split,
prices every (combination, split) with the speed model and, fastest first, evaluates each with
the plain evaluator (memory/estimate.py memory_by_moment, the peak `estimate` reports, and host
RAM) until the speeds fall below the tie-break band of the fastest plan that fits; then the stated quality order picks among the fitting plans in the band. That stop is
exact: a slower plan can never be chosen. The builder's shortcuts (the micro batch's speed bound,
a combination's memory from its smallest micro batch, leaner siblings first) are what this test
checks, because it takes none of them."""

import random

from fitplan.solver.memory.estimate import memory_by_moment
from fitplan.solver.memory.peak import host_ram_bytes
from fitplan.solver.planner.candidates import SPEED_SCALE, quality_key
from fitplan.solver.planner.cpsat_model import speed_floor
from fitplan.solver.planner.recommend import recommend
from fitplan.solver.planner.search_space import memory_optimizers_may_help, search_space
from fitplan.solver.problem.instance import Instance, Pins, Workload
from fitplan.solver.problem.rules import liger_allowed
from fitplan.solver.problem.settings import SolverSettings, host_ram_limit_bytes, memory_budget_bytes
from fitplan.solver.specs.catalog import load_gpu, load_model
from fitplan.solver.specs.gpu import GpuSet
from fitplan.solver.speed.step_time import step_time

MODELS = ["qwen2.5-0.5b", "llama-3.2-1b", "qwen2.5-1.5b", "gemma-2-2b", "qwen2.5-3b", "phi-3-mini", "qwen2.5-7b",
          "llama-3.1-8b", "mistral-7b", "qwen2.5-14b", "qwen2.5-32b", "llama-3.1-70b", "qwen2.5-72b"]
GPUS = ["P4", "T4", "V100-32G", "A10", "L4", "RTX4090", "A100-40G", "A100-80G", "H100"]
# (nodes, GPUs per node): 1 to 64 GPUs
SHAPES = [(1, 1), (1, 1), (1, 1), (1, 1), (1, 2), (1, 2), (1, 4), (1, 8), (2, 4), (2, 8), (8, 8)]
SEQS = [256, 512, 1024, 2048, 4096]
GLOBAL_BATCHES = [None, 4, 8, 16]  # None: 8 per GPU of the set
LARGE_SET_GLOBAL_BATCHES = [4, 8, 16]  # above 2 GPUs (the default, 8 per GPU, makes 5,000-50,000 options)
PIN_CHOICES = {
    "method": ["full", "lora", "qlora"],
    "lora_rank": [8, 64],
    "grad_ckpt": [True, False],
    "zero_stage": [0, 2, 3],
    "optim": ["adamw", "adamw_8bit"],
    "n_gpus": [1, 2, 8],
    "liger": [True, False],
}
QUERIES = 200


def random_instance(rng: random.Random) -> Instance:
    nodes, per_node = rng.choice(SHAPES)
    gpus = GpuSet(gpu=load_gpu(rng.choice(GPUS)), nodes=nodes, gpus_per_node=per_node)
    names = rng.sample(sorted(PIN_CHOICES), k=rng.choice([0, 1, 1, 2, 2]))
    pins = {name: rng.choice(PIN_CHOICES[name]) for name in names}
    if pins.get("method") == "full":
        pins.pop("lora_rank", None)
    if pins.get("n_gpus", 0) > gpus.total_gpus:
        pins.pop("n_gpus")
    if pins.get("liger") and not liger_allowed(gpus):
        pins.pop("liger")  # a pin the GPU rules out is bad input, not a query
    return Instance(model=load_model(rng.choice(MODELS)), gpus=gpus,
                    workload=Workload(seq_len=rng.choice(SEQS), global_batch=rng.choice(
                        GLOBAL_BATCHES if gpus.total_gpus <= 2 else LARGE_SET_GLOBAL_BATCHES)),
                    pins=Pins(**pins))


def _best_in_space(instance: Instance, settings: SolverSettings, with_memory_optimizers: bool):
    space = search_space(instance, with_memory_optimizers)
    budget = memory_budget_bytes(instance.gpus, settings.headroom_fraction,
                                 variable_length=not instance.workload.packing)
    host_limit = host_ram_limit_bytes(instance.gpus, settings)
    priced = []
    for order, knobs in enumerate(space.knob_combinations()):
        for split in space.splits_allowed(knobs):
            config = space.config(knobs, split)
            units = int(step_time(instance.model, instance.gpus, config).tokens_per_s * SPEED_SCALE)
            priced.append((units, order, knobs, split, config))
    priced.sort(key=lambda item: -item[0])
    fitting, floor = [], None
    for units, order, knobs, split, config in priced:
        if floor is not None and units < floor:
            break  # below the band of the fastest fitting plan: never chosen
        peak = max(row.required.at(split.micro_batch)
                   for row in memory_by_moment(instance.model, instance.gpus, config))
        if peak > budget or host_ram_bytes(instance.model, config, instance.gpus.gpus_per_node) > host_limit:
            continue
        if floor is None:
            floor = speed_floor(units, settings.quality_tolerance)
        fitting.append((quality_key(knobs, split, budget - peak, units, order), config))
    best = max(fitting, key=lambda item: item[0])[1] if fitting else None
    return best, len(priced)


def exhaustive_plan(instance: Instance, settings: SolverSettings):
    """The plan by brute force, with recommend's one fallback: GaLore, APOLLO, BAdam and Adam-mini
    when plain full fine-tuning fits nowhere (planner/solve.py)."""
    best, size = _best_in_space(instance, settings, False)
    if best is None and memory_optimizers_may_help(instance):
        best, more = _best_in_space(instance, settings, True)
        size = max(size, more)
    return best, size


def test_cpsat_matches_exhaustive_search_on_200_unpinned_or_lightly_pinned_queries():
    rng = random.Random(18)
    settings = SolverSettings()
    outcomes, sizes = [], []
    for _ in range(QUERIES):
        instance = random_instance(rng)
        expected, size = exhaustive_plan(instance, settings)
        sizes.append(size)
        result = recommend(instance, settings, explain_failure=False)
        label = f"{instance.model.name} on {instance.gpus.label()} seq {instance.workload.seq_len} {instance.pins.pinned()}"
        if expected is None:
            assert result.plan is None, f"{label}: recommend found {result.plan} where nothing fits"
            outcomes.append("infeasible")
            continue
        assert result.plan == expected, f"{label}: {result.plan} != {expected}"
        outcomes.append("plan")
    # Both answers are exercised, and the spaces are the large ones (unpinned: hundreds to thousands
    # of (combination, split) options), not the heavily pinned property test's handful.
    assert outcomes.count("plan") >= 100 and outcomes.count("infeasible") >= 10, (outcomes.count("plan"),
                                                                                  outcomes.count("infeasible"))
    assert sorted(sizes)[len(sizes) // 2] >= 200, sorted(sizes)[len(sizes) // 2]
