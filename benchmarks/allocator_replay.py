"""Replay traced training steps through a model of PyTorch's CUDA caching allocator, at the sample
lengths a published run really saw, and compare the simulated `max_memory_reserved` with the
measured one. This is the mechanism behind fitplan's fitted variable-length reserve
(solver/overhead.py VARIABLE_LENGTH_BLOCK_FACTOR): it checks whether the allocator's own rules,
fed with the traced allocation order, give the excess over the tensor peak that ms-swift measured.

    .venv/bin/python benchmarks/allocator_replay.py            # every row the replay can model
    .venv/bin/python benchmarks/allocator_replay.py --rows 0-9 --seeds 5
    .venv/bin/python benchmarks/allocator_replay.py --bnb-load   # row 22: does NF4 loading fragment?

How (solver/allocator_replay.py): each configuration is traced on fake tensors with its
allocation log; the run is replayed through solver/allocator_sim.py with micro-steps at lengths
drawn from the run's length distribution (solver/framework_profiles.py: log-normal, over-length
samples deleted) in a seeded random order, as many as the run had (the dataset's 4,959 samples,
or 1,000 sampled when max_length > 2048: ms-swift scripts/benchmark/test_memory_time/
run_single.py@4312aeb). Micro batches > 1 are padded to their longest sample. Each seed is
another data order; the spread between seeds is part of the answer.

Needs the [trace] extra (torch==2.13.0, transformers, peft). Differences from the measured runs
that the replay does not remove: the trace runs transformers 5's Llama-family code (Qwen1 mapped
onto it, solver/trace_models.py), not Qwen1's remote code under transformers 4.36; CPU kernels
stand in for flash-attention's; small per-step tensors (batch inputs, the loss scalar) go to the
small pool and are kept.
"""

from __future__ import annotations

import argparse
import random

from fitplan.solver.calibration.allocator_replay import (
    ReplayResult,
    StepTemplate,
    build_template,
    replay,
    sample_lengths,
)
from fitplan.solver.calibration.allocator_sim import CachingAllocatorSim
from fitplan.solver.calibration.framework_profiles import MS_SWIFT_2024_01, FrameworkProfile
from fitplan.solver.memory.overheads import CUDA_CONTEXT_BYTES
from fitplan.solver.problem.config import TrainConfig
from fitplan.solver.problem.knobs import Attention, Method
from fitplan.solver.specs.model import ModelSpec
from fitplan.solver.units import GIB

DATASET_SAMPLES = 4959  # cls-fudan-news-zh, ms-swift docs "支持的模型和数据集"@4312aeb
SUBSAMPLE_ABOVE_2048 = 1000  # run_single.py: train_dataset_sample=1000 when max_length > 2048


def run_samples(config: TrainConfig) -> int:
    return SUBSAMPLE_ABOVE_2048 if config.seq_len > 2048 else DATASET_SAMPLES


def simulate_row(template: StepTemplate, config: TrainConfig, profile: FrameworkProfile, seed: int,
                 capacity_bytes: int | None) -> ReplayResult:
    rng = random.Random(seed)
    lengths = sample_lengths(profile.lengths, config.seq_len, run_samples(config), config.micro_batch, rng)
    return replay(template, lengths, config.grad_accum, capacity_bytes)


def bnb_nf4_load(model: ModelSpec) -> CachingAllocatorSim:
    """Loading a bf16 checkpoint into bitsandbytes NF4 with double quantisation, weight by weight,
    as transformers 4.36 + bitsandbytes 0.41 do (`Params4bit.cuda`: `.half().cuda()`, then
    `quantize_4bit`: packed 4-bit data, fp32 absmax per 64-block, re-quantised to uint8 with an
    fp32 absmax per 256 of those; the fp16 copy and the first absmax are freed). Tests whether
    loading leaves the 4.6 GiB that row 22 (bnb) measures above row 20 (GPTQ)."""
    sim = CachingAllocatorSim()
    for _ in range(1 if model.tie_word_embeddings else 2):  # 16-bit embeddings and lm_head
        sim.malloc(model.vocab_size * model.hidden_size * 2)
    for _ in range(model.num_layers):
        for module in model.linear_modules():
            n = module.in_features * module.out_features
            half, absmax = sim.malloc(n * 2), sim.malloc(n // 64 * 4)
            sim.malloc(n // 2), sim.malloc(n // 64), sim.malloc(max(1, n // 64 // 256 * 4))
            sim.free(absmax)
            sim.free(half)
    return sim


def _parse_rows(text: str) -> set[int]:
    rows: set[int] = set()
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        rows.update(range(int(lo), int(hi or lo) + 1))
    return rows


def main(argv: list[str] | None = None) -> int:
    from fitplan.solver.calibration.published_runs import GPU, predict_all
    from fitplan.solver.specs.catalog import parse_gpu_set

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="0-18,23-38", help="calibration rows, e.g. 0-9,23")
    parser.add_argument("--seeds", type=int, default=5, help="data orders simulated per row")
    parser.add_argument("--bnb-load", action="store_true",
                        help="only replay loading Qwen-7B into bitsandbytes NF4 (row 22's question)")
    args = parser.parse_args(argv)
    if args.bnb_load:
        from fitplan.solver.specs.catalog import load_model

        sim = bnb_nf4_load(load_model("qwen-7b"))
        print(f"Qwen-7B NF4 load: allocated {sim.allocated_bytes / GIB:.2f} GiB, "
              f"max reserved {sim.max_reserved_bytes / GIB:.2f} GiB "
              f"(fragmentation {(sim.max_reserved_bytes - sim.allocated_bytes) / GIB:.2f} GiB)")
        return 0
    wanted = _parse_rows(args.rows)
    gpu = parse_gpu_set(f"1x{GPU}").gpu
    capacity = gpu.memory_bytes - CUDA_CONTEXT_BYTES  # what the allocator can reserve next to the context
    predictions, _ = predict_all()
    profile = MS_SWIFT_2024_01
    templates: dict[tuple, StepTemplate] = {}
    inside = compared = 0
    print(f"{'#':>3} {'row':<52} {'meas':>6} {'fitplan':>7} {'replay min   med   max':>21} {'alloc':>6} "
          f"{'med err':>7}  measured")
    for p in predictions:
        row = p.row
        if row.index not in wanted:
            continue
        config = profile.config(row.config)
        if config.method == Method.qlora or config.attn == Attention.eager:
            print(f"{row.index:>3} {row.label:<52} not replayed: "
                  f"{'quantized kernels (GPTQ, bitsandbytes) are not traced' if config.method == Method.qlora else 'eager scores are quadratic in the length'}")
            continue
        impl = "foreach" if profile.foreach_adamw else "fused"
        key = (row.model.name, config.model_copy(update={"seq_len": 1, "grad_accum": 1}).model_dump_json())
        if key not in templates:
            templates[key] = build_template(row.model, config, impl)
        results = [simulate_row(templates[key], config, profile, seed, capacity) for seed in range(args.seeds)]
        reserved = sorted(r.max_reserved_bytes / GIB for r in results)
        lo, mid, hi = reserved[0], reserved[len(reserved) // 2], reserved[-1]
        where = "inside" if lo <= row.measured_gib <= hi else ("below" if row.measured_gib < lo else "above")
        inside += where == "inside"
        compared += 1
        print(f"{row.index:>3} {row.label:<52} {row.measured_gib:6.2f} {p.compared_gib:7.2f} "
              f"{lo:6.2f} {mid:6.2f} {hi:6.2f} {results[0].max_allocated_bytes / GIB:6.2f} "
              f"{mid / row.measured_gib - 1:+7.1%}  {where}", flush=True)
    print(f"\nmeasured value inside the replayed range of {args.seeds} data orders: {inside} of {compared} rows")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
