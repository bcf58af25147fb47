#!/usr/bin/env python
"""Scenario 7: FSDP or DeepSpeed? The published answer for a 7B on 8 Tesla P4 is QLoRA + FSDP;
LLaMA-Factory's README says FSDP + QLoRA fine-tunes a 70B on 2 x 24 GB. The recommender weighs
plain DDP, DeepSpeed ZeRO and FSDP; here each engine's fastest plan is put beside the chosen one,
and the files of an FSDP plan are printed.

Run: `python examples/07_fsdp_or_deepspeed.py` (files go to a temporary folder and are printed)."""

import tempfile
from pathlib import Path

from _transcript import fitplan as run_fitplan
from _transcript import say, table, working_directory

import fitplan


def engines(model: str, gpus: str, seq_len: int, **pins) -> None:
    pinned = ", ".join(f"{k}={v}" for k, v in pins.items()) or "every knob free"
    say(f"{model} on {gpus} at {seq_len} tokens ({pinned}): the fastest plan of each engine")
    rows = []
    for label, engine in [("chosen", {}), ("DDP", {"sharding": "none"}), ("DeepSpeed", {"sharding": "deepspeed"}),
                          ("FSDP", {"sharding": "fsdp"}), ("QLoRA+FSDP", {"sharding": "fsdp", "method": "qlora",
                                                                           "bits": 4})]:
        rec = fitplan.recommend(model, gpus, seq_len=seq_len, **{**pins, **engine})
        if rec.plan is None:
            rows.append([label, "nothing fits"] + [""] * 8)
            continue
        p = rec.plan
        engine_text = {"none": "DDP", "deepspeed": f"ZeRO-{p.zero_stage}",
                       "fsdp": f"FSDP{p.fsdp_version} {p.fsdp_strategy.value if p.fsdp_strategy else ''}"}
        rows.append([label, p.method.value, p.bits, p.lora_rank if p.uses_lora else "", p.micro_batch,
                     engine_text[p.sharding.value], p.offload.value, p.precision.value,
                     round(rec.estimate.peak_bytes / 2**30, 2), round(rec.tokens_per_s)])
    table(["engine", "method", "bits", "rank", "micro", "sharding", "offload", "precision", "peak GiB",
           "tokens/s"], rows)
    say()


def main() -> None:
    engines("qwen2.5-7b", "8xP4", 2048)
    engines("qwen2.5-7b", "8xP4", 1024)
    say("Why FSDP does not fit at 2048 tokens on the P4: the root unit (embedding + lm_head) stays gathered")
    run_fitplan("recommend --model qwen2.5-7b --gpus 8xP4 --seq-len 2048 --sharding fsdp --method qlora")
    engines("llama-3.1-70b", "2xRTX4090", 2048, method="qlora")
    say("Without CPU offload the 70B's sharded 4-bit base alone is most of a 24 GB card:")
    run_fitplan("recommend --model llama-3.1-70b --gpus 2xRTX4090 --method qlora --sharding fsdp --offload none")
    say("The QLoRA + FSDP plan for the 7B on 8 x P4 at 1024 tokens, as files:")
    with tempfile.TemporaryDirectory() as folder, working_directory(folder):
        run_fitplan("recommend --model qwen2.5-7b --gpus 8xP4 --seq-len 1024 --sharding fsdp --method qlora "
                    "--emit llamafactory -o p4_fsdp")
        for name in ("fsdp_config.yaml", "launch.sh"):
            say(f"--- p4_fsdp/{name} ---")
            say((Path("p4_fsdp") / name).read_text().rstrip("\n"))
            say()


if __name__ == "__main__":
    main()
