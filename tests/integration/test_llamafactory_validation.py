"""Emitted configs, validated by the real parsers: LLaMA-Factory 0.9.5's `get_train_args` (the
dict path `llamafactory-cli train` uses, and the argv path, which also checks types and choices),
HF's DeepSpeed "auto" filling, and DeepSpeed 0.19.8's `DeepSpeedConfig`.

Needs .lfvenv (create it with `.ci/llamafactory_env.sh`, about a minute); skipped without it.
Recipe: shared/reference/schemas.md A.4 (use_cpu injected; DeepSpeed YAMLs under a one-process
torchrun on 127.0.0.1) and B.5."""

from __future__ import annotations

import json
import re
import socket
import subprocess
from pathlib import Path

import pytest
from emit_grid import covering_grid, fsdp_grid, full_grid, lever_grid, optimizer_grid  # noqa: E402
from paths import REPO

from fitplan.cli.emit_options import write_emit  # noqa: E402
from fitplan.solver.llamafactory.read_yaml import _type_problem, read_yaml_mapping  # noqa: E402

LFVENV = REPO / ".lfvenv"
# The packages LLaMA-Factory's parser requires for the memory levers (`check_version(...,
# mandatory=True)`: liger-kernel, galore_torch, apollo_torch, badam, adam-mini), installed
# without their dependencies by .ci/llamafactory_env.sh: the parser reads only their metadata.
LFEXTRAS = REPO / ".lfextras"
VALIDATOR = Path(__file__).with_name("lf_validate.py")
SHARED_LF_ARGS = REPO.parent / "shared" / "reference" / "llamafactory-0.9.5-train-args.json"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not (LFVENV / "bin" / "python").exists(),
                       reason=".lfvenv is absent: run .ci/llamafactory_env.sh to install LLaMA-Factory 0.9.5 "
                              "and DeepSpeed 0.19.8 for this test"),
]


@pytest.fixture(scope="module", autouse=True)
def _only_when_selected(request):
    """Minutes, not seconds: runs only when asked for with `-m integration`."""
    if "integration" not in (request.config.getoption("-m") or ""):
        pytest.skip("integration test: run with `pytest -m integration` (after .ci/llamafactory_env.sh)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_validator(args: list[str], *, torchrun: bool = False, cwd: Path) -> dict[str, dict]:
    if torchrun:
        command = [str(LFVENV / "bin" / "torchrun"), "--nproc_per_node=1", "--master_addr", "127.0.0.1",
                   "--master_port", str(free_port()), str(VALIDATOR), *args]
    else:
        command = [str(LFVENV / "bin" / "python"), str(VALIDATOR), *args]
    env = {"PATH": f"{LFVENV / 'bin'}:/usr/bin:/bin", "HOME": str(cwd), "DISABLE_VERSION_CHECK": "0"}
    if LFEXTRAS.is_dir():
        env["PYTHONPATH"] = str(LFEXTRAS)
    completed = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=1800, env=env)
    results = {}
    for line in completed.stdout.splitlines():
        if line.startswith("FITPLAN-RESULT "):
            row = json.loads(line.removeprefix("FITPLAN-RESULT "))
            results[row["path"]] = row
    assert results, completed.stdout[-3000:] + completed.stderr[-3000:]
    return results


def plans() -> list[tuple]:
    return (covering_grid() + full_grid() + full_grid("qwen2.5-0.5b", "2x4xP4")
            + full_grid("qwen2.5-7b", "2x8xH100")[::5] + optimizer_grid() + lever_grid())


@pytest.fixture(scope="module")
def emitted(tmp_path_factory):
    root = tmp_path_factory.mktemp("emitted")
    rows = []
    for index, (model, gpus, config) in enumerate(plans()):
        out = root / f"plan{index}"
        write_emit(model, gpus, config, emit="llamafactory", out=out)
        ds_only = None
        if config.zero_stage:
            ds_only = root / f"ds{index}"
            write_emit(model, gpus, config, emit="deepspeed", out=ds_only)
        rows.append((model, gpus, config, out / "train.yaml", ds_only))
    return root, rows


def test_the_lever_packages_are_installed_for_the_parser():
    assert LFEXTRAS.is_dir(), (".lfextras is absent: run .ci/llamafactory_env.sh (it installs liger-kernel, galore-torch, "
                               "apollo-torch, badam and adam-mini without dependencies for LLaMA-Factory's parser)")


def test_the_grid_covers_every_choice(emitted):
    _, rows = emitted
    configs = [r[2] for r in rows]
    for knob in ("method", "zero_stage", "offload", "precision", "attn", "optim", "bits", "grad_ckpt"):
        values = {getattr(c, knob) for c in configs}
        field = type(configs[0]).model_fields[knob]
        choices = list(field.annotation) if hasattr(field.annotation, "__members__") else None
        assert choices is None or values == set(choices), (knob, values)
    assert {c.zero_stage for c in configs} == {0, 1, 2, 3} and {c.bits for c in configs} == {4, 8, 16}


def test_types_and_choices_match_the_argument_list(emitted):
    # get_train_args' dict path does not check these (schemas.md A.2 layer 1)
    arguments = json.loads(SHARED_LF_ARGS.read_text())["fields"] if SHARED_LF_ARGS.is_file() else None
    if arguments is None:
        pytest.skip("shared/reference is not beside the checkout")
    for *_, path, _ in emitted[1]:
        values = read_yaml_mapping(path)
        assert set(values) <= set(arguments)
        assert not [p for k, v in values.items() for p in [_type_problem(k, v, arguments[k])] if p]


def test_llamafactory_accepts_every_emitted_yaml_without_deepspeed(emitted):
    root, rows = emitted
    paths = [str(r[3]) for r in rows if not r[2].zero_stage]
    results = run_validator(paths, cwd=root)
    bad = {p: results.get(p, {"error": "no result"})["error"] for p in paths if not results.get(p, {}).get("ok")}
    assert not bad, bad


@pytest.mark.parametrize("hidden", ["qwen2.5-0.5b", "qwen2.5-7b"])
def test_llamafactory_and_deepspeed_accept_every_emitted_deepspeed_yaml(emitted, hidden):
    root, rows = emitted
    chosen = [r for r in rows if r[2].zero_stage and r[0].name == hidden]
    paths = [str(r[3]) for r in chosen]
    results = run_validator(["--hidden-size", str(chosen[0][0].hidden_size), *paths], torchrun=True, cwd=root)
    bad = {p: results.get(p, {"error": "no result"})["error"] for p in paths if not results.get(p, {}).get("ok")}
    assert not bad, bad


def test_deepspeed_accepts_every_deepspeed_only_emit(emitted):
    root, rows = emitted
    items = [f"{r[4] / 'ds_config.json'}={r[2].n_gpus}" for r in rows if r[4] is not None]
    results = run_validator(["--deepspeed-only", *items], cwd=root)
    bad = {i: results.get(i.split("=")[0], {"error": "no result"})["error"] for i in items
           if not results.get(i.split("=")[0], {}).get("ok")}
    assert not bad, bad


def test_the_harness_rejects_what_llamafactory_and_deepspeed_reject(emitted):
    """Negative controls: the validator must fail on the errors schemas.md reproduced."""
    root, rows = emitted
    base = next(r for r in rows if not r[2].zero_stage)[3]
    typo = root / "typo" / "train.yaml"
    typo.parent.mkdir()
    typo.write_text(base.read_text() + "lora_rnak: 8\n")
    bad_choice = root / "choice" / "train.yaml"
    bad_choice.parent.mkdir()
    bad_choice.write_text(base.read_text().replace("flash_attn: sdpa", "flash_attn: flash_attention_2")
                          .replace("flash_attn: fa2", "flash_attn: flash_attention_2"))
    results = run_validator([str(typo), str(bad_choice)], cwd=root)
    assert "lora_rnak" in results[str(typo)]["error"]
    # the dict path accepts it (schemas.md A.2); the argv path's argparse refuses it (exit 2)
    assert results[str(bad_choice)]["error"] == "SystemExit: 2"
    ds_row = next(r for r in rows if r[4] is not None)
    ds = json.loads((ds_row[4] / "ds_config.json").read_text())
    ds["zero_optimization"]["overlap_com"] = False
    bad_ds = root / "bad_ds.json"
    bad_ds.write_text(json.dumps(ds))
    results = run_validator(["--deepspeed-only", f"{bad_ds}={ds_row[2].n_gpus}"], cwd=root)
    assert "Extra inputs are not permitted" in results[str(bad_ds)]["error"]


# ---- FSDP plans: accelerate 1.11's loader, launcher and plugin, and LLaMA-Factory's parser ---------


@pytest.fixture(scope="module")
def emitted_fsdp(tmp_path_factory):
    root = tmp_path_factory.mktemp("emitted_fsdp")
    rows = []
    for index, (model, gpus, config) in enumerate(fsdp_grid()[::3]):
        out = root / f"fsdp{index}"
        write_emit(model, gpus, config, emit="llamafactory", out=out)
        rows.append((model, gpus, config, out / "fsdp_config.yaml"))
    return root, rows


def test_the_fsdp_grid_covers_every_strategy_version_and_offload(emitted_fsdp):
    configs = [r[2] for r in emitted_fsdp[1]]
    assert {(c.fsdp_strategy.value, c.fsdp_version) for c in configs} == {
        ("full_shard", 1), ("shard_grad_op", 1), ("hybrid_shard", 1), ("no_shard", 1), ("full_shard", 2),
        ("shard_grad_op", 2)}
    assert {c.offload.value for c in configs} == {"none", "all"}
    assert {c.precision.value for c in configs} == {"bf16", "fp16"}


@pytest.mark.parametrize("hidden", ["qwen2.5-0.5b", "qwen2.5-7b"])
def test_accelerate_and_llamafactory_accept_every_emitted_fsdp_plan(emitted_fsdp, hidden):
    root, rows = emitted_fsdp
    chosen = [r for r in rows if r[0].name == hidden]
    paths = [str(r[3]) for r in chosen]
    results = run_validator(["--accelerate", "--hidden-size", str(chosen[0][0].hidden_size), *paths], cwd=root)
    bad = {p: results.get(p, {"error": "no result"})["error"] for p in paths if not results.get(p, {}).get("ok")}
    assert not bad, bad


def test_the_fsdp_harness_rejects_what_accelerate_rejects(emitted_fsdp):
    """Negative controls: each of these is refused by accelerate 1.11's own code (or, for the typo
    its loader passes, by the key check against `accelerate launch`'s arguments)."""
    root, rows = emitted_fsdp
    v1 = next(r for r in rows if r[2].fsdp_version == 1 and r[2].fsdp_strategy.value == "full_shard")[3]
    v2 = next(r for r in rows if r[2].fsdp_version == 2)[3]
    cases = {
        "typo": (v1, lambda t: t.replace("fsdp_offload_params:", "fsdp_offload_param:"), "does not read"),
        "top": (v1, lambda t: t + "num_gpus: 2\n", "unknown keys"),
        "sync": (v1, lambda t: t.replace("fsdp_sync_module_states: true", "fsdp_sync_module_states: false"),
                 "fsdp_sync_module_states"),
        "reshard": (v2, lambda t: re.sub(r"fsdp_reshard_after_forward: (true|false)",
                                         "fsdp_reshard_after_forward: FULL_SHARD", t), "truth value"),
    }
    paths = {}
    for name, (source, change, _) in cases.items():
        folder = root / f"bad_{name}"
        folder.mkdir()
        for sibling in source.parent.iterdir():
            (folder / sibling.name).write_text(sibling.read_text())
        (folder / "fsdp_config.yaml").write_text(change(source.read_text()))
        paths[name] = str(folder / "fsdp_config.yaml")
    results = run_validator(["--accelerate", *paths.values()], cwd=root)
    for name, (_, _, words) in cases.items():
        assert not results[paths[name]]["ok"] and words in results[paths[name]]["error"], (name, results[paths[name]])
