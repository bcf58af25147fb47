"""Liger and packing against the one published comparison there is: ms-swift's
`examples/train/liger/sft.sh` (modelscope/ms-swift, added in 7b709960f, unchanged in its settings
up to 3602360a; /work/notes/llamafactory/facts.md E quotes the header and every flag):

    # test env: 4 * A100
    # Using use_liger_kernel and packing: 4 * 42GB, 1 hour 35 minutes
    # Not using use_liger_kernel: 4 * 54GB, 1 hour 40 minutes
    # Not using use_liger_kernel and packing: 4 * 52GB, 3 hours 30 minutes

The setting modelled: Qwen/Qwen2.5-7B, full fine-tuning, DeepSpeed ZeRO-3 without offload over
4 x A100 80 GB (54 GB per GPU rules out the 40 GB card), max_length 8192, micro batch 1,
gradient accumulation 2, bf16 under DeepSpeed, flash-attn, gradient checkpointing on (ms-swift's
default), AdamW. The published rows compare no-Liger-no-packing (52), packing (54) and
Liger + packing (42); there is no Liger-without-packing row. How ms-swift measured the GB is not
stated; its own log field is `torch.cuda.max_memory_reserved` in GiB, which fitplan's "max
reserved" predicts (its "required" adds the CUDA context and NCCL, what nvidia-smi would show).

    .venv/bin/python benchmarks/liger.py

What the model captures: the fused loss removing the fp32 logits (the largest term of the packed
run), the peak moving to the backward, the LM head's gradient made in the forward (1 GiB, not
sharded until backward), the speed-up from the fused kernels' DRAM traffic. What it does not:
the dataset's length distribution (the unpacked run's memory is predicted at the longest sample,
every sample at 8192 tokens, and its speed needs a mean length ms-swift does not state: the last
table shows the packing speed-up it would imply), the liger-kernel version ms-swift ran (not
stated; the chunking modelled is 0.8.5's), and ms-swift's own loss code path.
"""

from __future__ import annotations

from fitplan.solver.memory.estimate import estimate
from fitplan.solver.problem.config import TrainConfig
from fitplan.solver.specs.catalog import load_model, parse_gpu_set
from fitplan.solver.speed.step_time import step_time
from fitplan.solver.units import GIB

MODEL = load_model("qwen2.5-7b")
GPUS = parse_gpu_set("4xA100-80G")
SETTING = dict(method="full", zero_stage=3, n_gpus=4, seq_len=8192, micro_batch=1, grad_accum=2, attn="fa2",
               precision="bf16", grad_ckpt=True)
# (row, levers, published GB per GPU, published minutes)
ROWS = [("no Liger, no packing", {}, 52, 210), ("packing, no Liger", {"packing": True}, 54, 100),
        ("Liger + packing", {"packing": True, "liger": True}, 42, 95)]


def main() -> None:
    print(f"ms-swift examples/train/liger: {MODEL.name}, {GPUS.label()}, "
          + ", ".join(f"{k} {v}" for k, v in SETTING.items()))
    print(f"{'row':<22} {'published':>9} {'max reserved':>13} {'required':>9} {'peak at':>22} {'tokens/s':>9}")
    results = {}
    for name, levers, published_gb, minutes in ROWS:
        config = TrainConfig(**SETTING, **levers)
        est = estimate(MODEL, GPUS, config)
        speed = step_time(MODEL, GPUS, config).tokens_per_s
        results[name] = (est, speed, published_gb, minutes)
        print(f"{name:<22} {published_gb:>7} GB {est.max_reserved_bytes / GIB:>9.1f} GiB {est.peak_bytes / GIB:>5.1f} GiB"
              f" {est.peak_moment:>22} {speed:>9,.0f}")
    packed, liger = results["packing, no Liger"], results["Liger + packing"]
    print()
    print(f"Liger + packing / packing, memory: predicted {liger[0].max_reserved_bytes / packed[0].max_reserved_bytes:.2f} "
          f"(max reserved), published {liger[2] / packed[2]:.2f}")
    print(f"Liger + packing / packing, speed:  predicted {liger[1] / packed[1]:.3f}, published {packed[3] / liger[3]:.3f} "
          "(100 min / 95 min)")
    effect = next(e for e in liger[0].levers if e.lever == "enable_liger_kernel")
    for row in effect.rows:
        if not row.detail:
            before = f"{row.without_bytes / GIB:.2f} -> " if row.without_bytes is not None else ""
            print(f"  {row.label:<42} {before}{row.with_bytes / GIB:.2f} GiB")
    print()
    print("packing's speed-up over unpacked micro-steps, by the data's mean sample length (ms-swift states none;")
    print(f"published: {results['no Liger, no packing'][3]} min unpacked vs {packed[3]} min packed = "
          f"{results['no Liger, no packing'][3] / packed[3]:.2f}x):")
    for mean in (1024, 2048, 3072, 4096, 6144):
        unpacked = step_time(MODEL, GPUS, TrainConfig(**SETTING, mean_sample_len=mean)).tokens_per_s
        print(f"  mean {mean:>5} tokens: {packed[1] / unpacked:.2f}x")


if __name__ == "__main__":
    main()
