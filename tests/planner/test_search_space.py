"""The search space hands out configurations that are copies of one validated configuration
(planner/search_space.py `SearchSpace.config`): each copy must equal what validating that
combination and split from scratch gives, across the spaces whose levers change what a
configuration holds (pinned levers, neat packing, packing searched, FSDP, memory optimizers,
a mean sample length)."""

import pytest

from fitplan.solver.planner.search_space import search_space
from fitplan.solver.problem.instance import Instance, Pins, Workload
from fitplan.solver.specs.catalog import load_model, parse_gpu_set

SPACES = [
    ("qwen2.5-7b", "8xP4", dict(seq_len=2048), {}),
    ("llama-3.1-8b", "2x8xA100-80G", dict(seq_len=4096, global_batch=32), {}),
    ("qwen2.5-1.5b", "1xRTX4090", dict(seq_len=1024, mean_sample_len=300, allow_packing=True), {}),
    ("qwen2.5-1.5b", "2xA100-80G", dict(seq_len=1024, neat_packing=True), {"method": "full"}),
    ("qwen2.5-3b", "4xA10", dict(seq_len=512), {"method": "lora", "dora": True, "unsloth_gc": True}),
    ("qwen2.5-3b", "4xRTX4090", dict(seq_len=512), {"sharding": "fsdp", "fsdp_version": 2}),
]


@pytest.mark.parametrize("model, gpus, workload, pins", SPACES)
def test_every_configuration_equals_a_validated_one(model, gpus, workload, pins):
    instance = Instance(model=load_model(model), gpus=parse_gpu_set(gpus), workload=Workload(**workload),
                        pins=Pins(**pins))
    for with_memory_optimizers in (False, True):
        space = search_space(instance, with_memory_optimizers)
        combos = space.knob_combinations()
        assert combos
        for knobs in combos:
            for split in space.splits_allowed(knobs):
                assert space.config(knobs, split) == space._config(knobs, split)
