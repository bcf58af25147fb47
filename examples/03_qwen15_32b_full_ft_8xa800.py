#!/usr/bin/env python
"""Scenario 3: full fine-tuning of Qwen1.5-32B on one node of 8 A800-80G, at 2k and 4k tokens.
What runs out of memory with eager attention, SDPA and FlashAttention-2; how many nodes ZeRO-3
takes with and without CPU offload; and the same for Yi-34B.

Knobs not named are LLaMA-Factory's defaults (micro-batch 1, gradient checkpointing on unless
the table says off, AdamW, bf16). "fits" is estimate's verdict: required <= the card's memory, with
none of the 5% headroom the recommender keeps. Run: `python examples/03_qwen15_32b_full_ft_8xa800.py`."""

from _transcript import fitplan as run_fitplan
from _transcript import gib, say, table

import fitplan

MODELS = ("qwen1.5-32b", "yi-34b")
NODE = "8xA800-80G"
OFFLOADS = ("none", "optimizer", "all")


def attention_table(model: str) -> None:
    say(f"{model} on one {NODE} node, full fine-tuning with ZeRO-3: peak GiB per GPU (fits?)")
    rows = []
    for seq_len in (2048, 4096):
        for offload in OFFLOADS:
            for grad_ckpt in (True, False):
                row = [seq_len, offload, "on" if grad_ckpt else "off"]
                for attn in ("eager", "sdpa", "fa2"):
                    est = fitplan.estimate(model, NODE, seq_len=seq_len, method="full", zero_stage=3,
                                           offload=offload, attn=attn, grad_ckpt=grad_ckpt)
                    row.append(f"{gib(est.peak_bytes)} {'fits' if est.fits else 'OOM'}")
                rows.append(row)
    table(["seq", "offload", "checkpointing", "eager", "sdpa", "fa2"], rows)


def nodes_table(model: str) -> None:
    say(f"{model}, full fine-tuning with ZeRO-3 and FA2: fewest nodes of {NODE}")
    rows = []
    for seq_len in (2048, 4096):
        for offload in OFFLOADS:
            found = None
            for nodes in range(1, 9):
                gpu_set = NODE if nodes == 1 else f"{nodes}x{NODE}"
                est = fitplan.estimate(model, gpu_set, seq_len=seq_len, method="full", zero_stage=3,
                                       offload=offload, attn="fa2")
                if est.fits:
                    found = (nodes, est)
                    break
            if found is None:
                rows.append([seq_len, offload, "more than 8", "", ""])
            else:
                nodes, est = found
                rows.append([seq_len, offload, nodes, gib(est.peak_bytes),
                             gib(est.host_ram_bytes) if est.host_ram_bytes else "-"])
    table(["seq", "offload", "nodes", "peak GiB/GPU", "host RAM GiB/node"], rows)


def main() -> None:
    say("What the user ran: ZeRO-3 without offload, eager attention, 4k tokens:")
    run_fitplan("estimate --model qwen1.5-32b --gpus 8xA800-80G --method full --zero 3 --attn eager --seq-len 4096")
    for model in MODELS:
        attention_table(model)
    for model in MODELS:
        nodes_table(model)


if __name__ == "__main__":
    main()
