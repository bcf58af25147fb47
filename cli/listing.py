"""`fitplan models` and `fitplan gpus`: the catalogs, for people and for scripts."""

from __future__ import annotations

import json

import click

from fitplan.solver.catalog import gpu_catalog, model_catalog
from fitplan.solver.gpu_spec import GIB


@click.command("models")
@click.option("--json", "as_json", is_flag=True, help="A JSON list of objects.")
def models_command(as_json: bool) -> None:
    """List the catalog models (name, aliases, key numbers, source)."""
    models = list(model_catalog().values())
    if as_json:
        click.echo(json.dumps([m.model_dump(mode="json") | {"params": m.total_params()} for m in models], indent=2))
        return
    click.echo(f"{'name':<18} {'params':>8} {'layers':>6} {'hidden':>6} {'heads/kv':>8} {'vocab':>7}  aliases")
    for m in models:
        click.echo(f"{m.name:<18} {m.total_params() / 1e9:>7.2f}B {m.num_layers:>6} {m.hidden_size:>6} "
                   f"{m.num_attention_heads:>4}/{m.num_kv_heads:<3} {m.vocab_size:>7}  {', '.join(m.aliases[:3])}")


@click.command("gpus")
@click.option("--json", "as_json", is_flag=True, help="A JSON list of objects.")
def gpus_command(as_json: bool) -> None:
    """List the catalog GPUs (memory, compute capability, bf16/FA2, TFLOPS, bandwidth)."""
    gpus = list(gpu_catalog().values())
    if as_json:
        click.echo(json.dumps([g.model_dump(mode="json") for g in gpus], indent=2))
        return
    click.echo(f"{'name':<16} {'GiB':>6} {'cc':>4} {'bf16':>4} {'FA2':>4} {'fp16 TF':>8} {'fp32 TF':>7} {'GB/s':>6}  aliases")
    for g in gpus:
        click.echo(f"{g.name:<16} {g.memory_bytes / GIB:>6.1f} {g.compute_capability:>4} "
                   f"{'yes' if g.bf16_hardware else 'no':>4} {'yes' if g.flash_attention_2 else 'no':>4} "
                   f"{g.fp16_tflops:>8.1f} {g.fp32_tflops:>7.1f} {g.memory_bandwidth_gbps:>6.0f}  {', '.join(g.aliases[:3])}")
