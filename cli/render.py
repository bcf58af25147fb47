"""Text rendering of estimates and plans for people (scripts use --json)."""

from __future__ import annotations

from fitplan.solver.estimate import Estimate
from fitplan.solver.gpu_spec import GIB
from fitplan.solver.term_labels import TERM_LABELS  # noqa: F401  (re-exported for cli.check, cli.trace)



def gib(value: int) -> str:
    return f"{value / GIB:7.2f} GiB"


def describe_config(estimate: Estimate) -> str:
    c = estimate.config
    method = c.method.value
    if c.uses_lora:
        method += f" r{c.lora_rank}"
    if c.bits != 16:
        method += f" {c.bits}-bit"
    parts = [method, f"seq {c.seq_len}", f"micro-batch {c.micro_batch}", f"accum {c.grad_accum}",
             "ckpt" if c.grad_ckpt else "no ckpt", c.attn.value, c.precision.value, c.optim.value,
             f"ZeRO-{c.zero_stage}" if c.zero_stage else "no ZeRO"]
    if c.offload.value != "none":
        parts.append(f"offload {c.offload.value}")
    parts.append(f"{c.n_gpus} GPU{'s' if c.n_gpus > 1 else ''}")
    return ", ".join(parts)


def render_estimate(estimate: Estimate) -> str:
    lines = [f"{estimate.model} on {estimate.gpus}: {describe_config(estimate)}",
             f"trainable {estimate.trainable_params / 1e6:,.1f}M of {estimate.total_params / 1e9:.2f}B params",
             "",
             f"per GPU at the peak ({estimate.peak_phase}):"]
    for name, value in estimate.breakdown_bytes.items():
        lines.append(f"  {TERM_LABELS.get(name, name):<24}{gib(value)}")
    lines.append(f"  {'= tensors (allocated)':<24}{gib(estimate.tensor_peak_bytes)}")
    for name, value in estimate.overhead_bytes.items():
        lines.append(f"  {TERM_LABELS.get(name, name):<24}{gib(value)}")
    lines.append(f"  {'= required':<24}{gib(estimate.peak_bytes)}   (reserved {gib(estimate.reserved_peak_bytes).strip()}, "
                 f"max_memory_reserved up to {gib(estimate.max_reserved_bytes).strip()})")
    lines.append(f"  {'capacity':<24}{gib(estimate.capacity_bytes)}")
    verdict = "FITS" if estimate.fits else "DOES NOT FIT"
    lines.append(f"  {'headroom':<24}{gib(estimate.headroom_bytes)}   {verdict}")
    if estimate.host_ram_bytes:
        lines.append(f"host RAM per node for offload: {gib(estimate.host_ram_bytes).strip()}")
    for note in estimate.notes:
        lines.append(f"note: {note}")
    return "\n".join(lines)
