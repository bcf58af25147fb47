"""A battery of CLI outputs (text and --json; estimate, recommend, sweep, check; dense, MoE, FSDP,
multi-node, infeasible), run in one process, written to one file: the byte-for-byte reference a
speed change is diffed against (a speedup must not change a plan, a number or a message).

    .venv/bin/python benchmarks/cli_snapshot.py /tmp/before.txt
    ... change ...
    .venv/bin/python benchmarks/cli_snapshot.py /tmp/after.txt && diff /tmp/before.txt /tmp/after.txt
"""

from __future__ import annotations

import contextlib
import io
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "tests" / "data" / "configs"

BATTERY = [
    "estimate --model qwen2.5-7b --gpus 1xA100-80G --seq-len 2048",
    "estimate --model qwen2.5-7b --gpus 1xA100-80G --seq-len 2048 --json",
    "estimate --model llama-3.1-8b --gpus 8xA100-80G --method full --fsdp-strategy full_shard --json",
    "estimate --model llama-3.1-8b --gpus 4xA10 --method lora --zero 3 --offload optimizer",
    f"estimate --model {CONFIGS}/qwen3-30b-a3b.json --gpus 8xH100 --method lora --json",
    f"estimate --model {CONFIGS}/mixtral-8x7b-v0.1.json --gpus 8xA100-80G --method qlora --bits 4",
    "recommend --model qwen2.5-7b --gpus 8xP4",
    "recommend --model qwen2.5-7b --gpus 8xP4 --json",
    "recommend --model qwen2.5-7b --gpus 8xP4 --seq-len 512",
    "recommend --model llama-3.1-8b --gpus 8xA100-80G --seq-len 4096",
    "recommend --model llama-3.1-8b --gpus 8xA100-80G --seq-len 4096 --json",
    "recommend --model qwen2.5-1.5b --gpus 1xT4 --seq-len 1024",
    "recommend --model qwen2.5-72b --gpus 1xT4",
    "recommend --model qwen2.5-72b --gpus 1xT4 --json",
    "recommend --model qwen2.5-72b --gpus 8xA100-80G --method full",
    "recommend --model llama-3.1-70b --gpus 2x8xH100 --method full",
    "recommend --model llama-3.1-8b --gpus 2x8xA100-80G --global-batch 32 --json",
    "recommend --model qwen2.5-7b --gpus 4xRTX4090 --method full",
    "recommend --model qwen2.5-7b --gpus 4xRTX4090 --sharding fsdp --json",
    "recommend --model gemma-2-2b --gpus 1xL4 --allow-packing",
    f"recommend --model {CONFIGS}/qwen3-30b-a3b.json --gpus 8xH100",
    f"recommend --model {CONFIGS}/qwen1.5-moe-a2.7b.json --gpus 2xA10 --json",
    f"recommend --model {CONFIGS}/mixtral-8x7b-v0.1.json --gpus 1xRTX4090",
    "recommend --model qwen2.5-0.5b --gpus 1x12GiB:none --seq-len 4096",
    "recommend --model qwen2.5-14b --gpus 3xRTX3090 --global-batch 24",
    "recommend --model qwen2.5-7b --gpus 1xP4 --method full --json",
    "recommend --model llama-3.2-1b --gpus 8xV100-32G --global-batch 1000",
    "sweep --models qwen2.5-0.5b,qwen2.5-7b --gpus 1xT4,8xP4 --seq-lens 1024,4096",
    "sweep --models qwen2.5-0.5b,qwen2.5-72b --gpus 1xA10",
    "recommend --model qwen2.5-7b --gpus 1xA10 --method full --optim adamw",
    "recommend --model qwen2.5-72b --gpus 2xA100-80G --micro-batch 4 --grad-ckpt",
]


def run(line: str) -> str:
    from fitplan.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(shlex.split(line))
    return f"$ fitplan {line}\n{out.getvalue()}[stderr]\n{err.getvalue()}[exit {code}]\n\n"


def check_lines(out: Path) -> list[str]:
    """Emit three plans, then check each file (fitting, too small, FSDP)."""
    lines = []
    for name, emit, gpus in (("dense", "recommend --model qwen2.5-7b --gpus 4xA10", "4xA10"),
                             ("small", "recommend --model qwen2.5-7b --gpus 4xA10", "1xA10"),
                             ("fsdp", "recommend --model qwen2.5-7b --gpus 4xRTX4090 --sharding fsdp", "4xRTX4090")):
        lines.append(f"{emit} --emit llamafactory -o {out / name}")
        config = f" --accelerate-config {out / name / 'fsdp_config.yaml'}" if name == "fsdp" else ""
        lines.append(f"check {out / name / 'train.yaml'} --gpus {gpus}{config}")
        lines.append(f"check {out / name / 'train.yaml'} --gpus {gpus}{config} --json")
    return lines


def main(argv: list[str]) -> int:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        lines = BATTERY + check_lines(Path(tmp))
        text = "".join(run(line).replace(tmp, "<TMP>").replace(str(ROOT), "<ROOT>") for line in lines)
    Path(argv[0]).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
