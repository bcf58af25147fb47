"""How far the memory formula is from the trace oracle on catalog models (0.5B to 72B).

For each row: trace one steady-state training step of the real Hugging Face model code on fake
tensors (no GPU, no weights), evaluate `fitplan.solver.estimate.estimate` for the same
configuration, and print both tensor peaks (GiB) and the formula's relative error. Ends with the
median and maximum |error|.

    .venv/bin/python benchmarks/trace_accuracy.py            # full grid (~10 min on 2 cores)
    .venv/bin/python benchmarks/trace_accuracy.py --quick    # one point per model
    .venv/bin/python benchmarks/trace_accuracy.py --families # the model types of issue 13 only

The model types of issue 13 (MoE, MLA, windows, composite models) are held to the trace on a
grid per family: the tiny config of each (solver/oracle/small_models.py MODERN_SMALL_MODELS) at
LoRA / full x checkpointing on / off x SDPA / eager x seq 256 / 512, and the published configs in
tests/data/configs/ at full size for two LoRA points. The summary gives the largest |error| per
family.
    .venv/bin/python benchmarks/trace_accuracy.py --fsdp     # FSDP2 and FSDP1 on fake process groups (~15 min)

The FSDP rows trace rank 0 of a fake process group of 2 or 8 ranks (solver/oracle/fsdp_step.py)
and print, besides both peaks, each term of the formula's moment for the traced peak minus the
traced term, as a fraction of the traced peak.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings

import itertools
from pathlib import Path

from fitplan.solver.memory.estimate import tensor_peak
from fitplan.solver.oracle.small_models import MODERN_SMALL_MODELS
from fitplan.solver.oracle.step import trace_training_step
from fitplan.solver.problem.config import TrainConfig
from fitplan.solver.specs.catalog import load_model, parse_gpu_set
from fitplan.solver.units import GIB

MODELS = ["qwen2.5-0.5b", "llama-3.2-1b", "qwen2.5-1.5b", "gemma-2-2b", "phi-3-mini", "chatglm3-6b",
          "qwen-7b", "baichuan2-7b", "llama-2-7b", "mistral-7b", "qwen2.5-7b", "qwen3-8b", "llama-3.1-8b",
          "gemma-2-9b", "qwen2.5-14b", "qwen2.5-32b", "llama-2-70b", "qwen2.5-72b"]
BIG = {"qwen2.5-32b", "llama-2-70b", "qwen2.5-72b"}  # LoRA points only: keeps the run short

POINTS = [
    dict(method="lora", seq_len=2048, micro_batch=1),
    dict(method="lora", seq_len=1024, micro_batch=2, grad_ckpt=False),
    dict(method="lora", seq_len=512, micro_batch=4, attn="eager"),
    dict(method="full", seq_len=2048, micro_batch=1),
    dict(method="freeze", seq_len=1024, micro_batch=2, grad_ckpt=False),
]
GPUS = parse_gpu_set("1xA100-80G")  # the formula's tensor peak does not depend on the GPU

FAMILY_GRID = [dict(method=m, grad_ckpt=c, attn=a, seq_len=s)
               for m, c, a, s in itertools.product(["lora", "full"], [True, False], ["sdpa", "eager"], [256, 512])]
CONFIGS = Path(__file__).resolve().parent.parent / "tests" / "data" / "configs"
# Published configs traced at full size (fake tensors: no memory is allocated), two LoRA points each.
FULL_SIZE = ["qwen3-30b-a3b.json", "qwen1.5-moe-a2.7b.json", "mixtral-8x7b-v0.1.json", "gpt-oss-20b.json",
             "deepseek-v2-lite.json", "llama-4-scout-17b-16e-instruct.abridged.json", "gemma-3-1b-it.json",
             "gemma-3-4b-it.reconstructed.json", "phi-4.json", "olmo-2-1124-7b.json"]
FULL_SIZE_POINTS = [dict(method="lora", seq_len=1024), dict(method="lora", seq_len=512, grad_ckpt=False)]
# FSDP: two families (llama, qwen2), tied and untied embeddings, LoRA and full, 2 and 8 ranks
FSDP_ROWS = [(name, method, world, version) for version in (2, 1)
             for name, methods in (("qwen2.5-0.5b", ("lora", "full")), ("llama-3.2-1b", ("lora", "full")),
                                   ("qwen2.5-7b", ("lora",)), ("llama-2-7b", ("lora",)))
             for method in methods for world in (2, 8)]
FSDP_SEQ_LEN = 1024
GPUS_PER_NODE = 8


def rows(quick: bool):
    for name in MODELS:
        points = POINTS[:1] if quick else (POINTS[:3] if name in BIG else POINTS)
        for knobs in points:
            yield name, knobs


def family_rows(quick: bool):
    """(family, model, knobs) of the issue-13 grid."""
    for family, model in MODERN_SMALL_MODELS.items():
        for knobs in FAMILY_GRID[:1] if quick else FAMILY_GRID:
            yield family, model, knobs
    if not quick:
        for fixture in FULL_SIZE:
            model = load_model(str(CONFIGS / fixture))
            for knobs in FULL_SIZE_POINTS:
                yield f"{model.model_type} (full size)", model, knobs
def _fsdp_moment(trace, moments: dict, micro_batch: int) -> str:
    """The formula moment for the traced peak: the nearest total among the traced phase's."""
    forward = ("forward_first_unit", "forward_last_layer", "forward_end")
    if trace.peak_phase == "optimizer":
        names = ["optimizer"]
    elif trace.peak_phase == "forward":
        names = [n for n in forward if n in moments]
    else:
        names = [n for n in moments if n != "optimizer" and n not in forward]
    return min(names, key=lambda n: abs(moments[n].total().at(micro_batch) - trace.traced_peak_bytes))


def fsdp_main() -> int:
    from fitplan.solver.memory.load import PHASE_LOAD
    from fitplan.solver.memory.peak import step_moments
    from fitplan.solver.oracle.fsdp_step import trace_fsdp_step

    errors, worst_term = [], 0.0
    print(f"{'model':<13} {'config':<24} {'formula GiB':>11} {'traced GiB':>10} {'error':>7}  traced peak -> "
          "formula moment; terms (formula - traced) / traced peak")
    for name, method, world, version in FSDP_ROWS:
        model = load_model(name)
        config = TrainConfig(method=method, seq_len=FSDP_SEQ_LEN, micro_batch=1, n_gpus=world,
                             fsdp_strategy="full_shard", fsdp_version=version)
        started = time.perf_counter()
        trace = trace_fsdp_step(model, config, gpus_per_node=GPUS_PER_NODE)
        # the traced step against the step's moments: the load (before step 1) is not traced
        moments = {m.name: m for m in step_moments(model, config, GPUS_PER_NODE) if m.phase != PHASE_LOAD}
        peak = max(m.total().at(1) for m in moments.values())
        error = peak / trace.traced_peak_bytes - 1
        errors.append(abs(error))
        matched = _fsdp_moment(trace, moments, 1)
        formula_terms, traced_terms = moments[matched].bytes_at(1), trace.breakdown_bytes
        if version == 1:  # FSDP1's in-flight per-parameter gradients: transient in the trace
            formula_terms = dict(formula_terms)
            traced_terms = dict(traced_terms)
            for side in (formula_terms, traced_terms):
                side["transient"] = side.get("transient", 0) + side.pop("unsharded_grads", 0)
        deltas = {t: (formula_terms.get(t, 0) - traced_terms.get(t, 0)) / trace.traced_peak_bytes
                  for t in sorted(set(formula_terms) | set(traced_terms))}
        worst_term = max([worst_term] + [abs(d) for d in deltas.values()])
        shown = " ".join(f"{t}{d:+.2%}" for t, d in deltas.items() if abs(d) >= 0.0005) or "all terms within 0.05%"
        label = f"FSDP{version} {method} w{world} s{FSDP_SEQ_LEN}"
        print(f"{name:<13} {label:<24} {peak / GIB:11.3f} {trace.traced_peak_bytes / GIB:10.3f} {error:+7.2%}  "
              f"{trace.peak_phase}/{trace.peak_layer} -> {matched}; {shown} "
              f"({time.perf_counter() - started:.0f} s)", flush=True)
    print(f"\n{len(errors)} FSDP rows: median |peak error| {statistics.median(errors):.2%}, max {max(errors):.2%}; "
          f"largest term difference {worst_term:.2%} of the traced peak")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one point per model")
    parser.add_argument("--families", action="store_true", help="only the model types of issue 13")
    parser.add_argument("--fsdp", action="store_true", help="the FSDP rows (fake process groups) instead")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    if args.fsdp:
        return fsdp_main()
    errors = []
    by_family: dict[str, list[float]] = {}
    print(f"{'model':<14} {'config':<34} {'formula GiB':>11} {'traced GiB':>10} {'error':>8}  "
          f"{'formula moment':<20} traced peak (s)")
    catalog = [] if args.families else [(name, load_model(name), knobs) for name, knobs in rows(args.quick)]
    for name, model, knobs in catalog + list(family_rows(args.quick)):
        config = TrainConfig(**knobs)
        started = time.perf_counter()
        trace = trace_training_step(model, config)
        formula_peak, formula_moment = tensor_peak(model, GPUS, config)  # as `estimate`, no runnability rules
        error = formula_peak / trace.traced_peak_bytes - 1
        errors.append(abs(error))
        by_family.setdefault(name, []).append(abs(error))
        label = (f"{config.method.value} s{config.seq_len} b{config.micro_batch} "
                 f"{'ckpt' if config.grad_ckpt else 'no-ckpt'} {config.attn.value}")
        print(f"{name:<14} {label:<34} {formula_peak / GIB:11.3f} {trace.traced_peak_bytes / GIB:10.3f} "
              f"{error:+8.2%}  {formula_moment:<20} {trace.peak_phase}/{trace.peak_layer} "
              f"({time.perf_counter() - started:.0f} s)", flush=True)
    print(f"\n{len(errors)} rows: median |error| {statistics.median(errors):.2%}, max |error| {max(errors):.2%}")
    for name, family_errors in by_family.items():
        if name in MODERN_SMALL_MODELS or name.endswith("(full size)"):
            print(f"  {name:<28} {len(family_errors):>3} points, max |error| {max(family_errors):.2%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
