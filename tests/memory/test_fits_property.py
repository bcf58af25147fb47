"""Property: `estimate` never says "fits" when its own reserved memory plus the CUDA context
(what the GPU must hold) exceeds the card, over random configurations."""

import random

from fitplan.solver.errors import FitplanError
from fitplan.solver.memory.estimate import estimate
from fitplan.solver.memory.overheads import CUDA_CONTEXT_BYTES
from fitplan.solver.problem.config import make_config
from fitplan.solver.specs.catalog import load_model, parse_gpu_set

MODELS = ["qwen-1.8b", "qwen-7b", "qwen2.5-7b", "llama-2-13b", "qwen2.5-0.5b"]
GPUS = ["1xA100-80G", "1xA10", "2xA100-80G", "1xT4", "4xA10"]


def test_fits_is_never_reported_above_usable_memory():
    rng = random.Random(7)
    checked = 0
    for _ in range(300):
        method = rng.choice(["lora", "qlora", "full", "freeze"])
        knobs = dict(method=method, seq_len=rng.choice([256, 1024, 2048, 4096, 8192]),
                     micro_batch=rng.choice([1, 2, 4, 8]), grad_accum=rng.choice([1, 8]),
                     grad_ckpt=rng.random() < 0.6, attn=rng.choice(["sdpa", "fa2", "eager"]),
                     lora_rank=rng.choice([8, 64]))
        if method == "qlora":
            knobs["bits"] = rng.choice([4, 8])
        gpus = parse_gpu_set(rng.choice(GPUS))
        knobs["n_gpus"] = gpus.total_gpus
        if knobs["n_gpus"] > 1:
            knobs["zero_stage"] = rng.choice([0, 2, 3])
        try:
            result = estimate(load_model(rng.choice(MODELS)), gpus, make_config(**knobs))
        except FitplanError:
            continue  # not runnable at all (hardware rule), nothing to check
        checked += 1
        assert result.reserved_peak_bytes <= result.peak_bytes
        if result.fits:
            assert result.reserved_peak_bytes + CUDA_CONTEXT_BYTES <= result.capacity_bytes
            assert result.peak_bytes <= result.capacity_bytes
    assert checked > 100
