#!/usr/bin/env python
"""Scenario 4: a 7B model (Llama-2-7B) on 8 Tesla P4 (8 GB each, no bf16, no FlashAttention-2,
slow fp16). What fits (method, bits, sequence length, batch), and the LLaMA-Factory YAML to run it.

Run: `python examples/04_7b_on_8x_tesla_p4.py` (the files are written to a temporary folder and
printed)."""

import tempfile
from pathlib import Path

from _transcript import fitplan as run_fitplan
from _transcript import say, table, working_directory

import fitplan

MODEL, GPUS = "llama-2-7b", "8xP4"
SEQ_LENS = [256, 512, 1024, 2048, 4096]


def what_fits() -> None:
    for label, pins in [("every knob free", {}),
                        ("without sharding (plain DDP, --sharding none)", {"sharding": "none"})]:
        say(f"{MODEL} on {GPUS}, {label}: the fastest plan at each sequence length")
        rows, reasons = [], []
        for row in fitplan.sweep([MODEL], [GPUS], seq_lens=SEQ_LENS, **pins):
            if row.fits:
                engine = {"none": "none", "deepspeed": f"ZeRO-{row.zero_stage}",
                          "fsdp": f"FSDP{row.fsdp_version} {row.fsdp_strategy}"}[row.sharding]
                rows.append([row.seq_len, row.method, row.bits, row.lora_rank, row.micro_batch, row.grad_accum,
                             engine, row.offload, row.precision, row.attn, row.peak_gib, row.tokens_per_s])
            else:
                rows.append([row.seq_len, "nothing fits"] + [""] * 10)
                reasons.append(f"seq {row.seq_len}: {row.reason}")
        table(["seq", "method", "bits", "rank", "micro", "accum", "sharding", "offload", "precision", "attn",
               "peak GiB", "tokens/s"], rows)
        for reason in reasons:
            say(reason)
            say()


def main() -> None:
    what_fits()
    say("Without ZeRO-3 every P4 holds the whole 16-bit base; why that cannot fit:")
    run_fitplan(f"recommend --model {MODEL} --gpus {GPUS} --seq-len 1024 --zero 0 --bits 16")
    say("The plan at 1024 tokens, written as LLaMA-Factory files:")
    with tempfile.TemporaryDirectory() as folder, working_directory(folder):
        run_fitplan(f"recommend --model {MODEL} --gpus {GPUS} --seq-len 1024 --emit llamafactory -o p4_plan")
        for path in sorted(Path("p4_plan").iterdir()):
            say(f"--- {path.as_posix()} ---")
            say(path.read_text().rstrip("\n"))
            say()


if __name__ == "__main__":
    main()
