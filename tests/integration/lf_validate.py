"""Validate fitplan's emitted files with LLaMA-Factory's and DeepSpeed's own code.

Runs inside .lfvenv (LLaMA-Factory 0.9.5, DeepSpeed 0.19.8), not in fitplan's venv; called by
test_llamafactory_validation.py. Recipe: shared/reference/schemas.md A.4 and B.5.

    python lf_validate.py --hidden-size H train1.yaml ...        (no `deepspeed:` key)
    torchrun --nproc_per_node=1 --master_addr 127.0.0.1 ... lf_validate.py --hidden-size H ...
    python lf_validate.py --deepspeed-only ds1.json=WORLD ...     (`--emit deepspeed` files, GPUs)
    python lf_validate.py --accelerate fsdp_config.yaml ...       (FSDP plans: the folder's launch.sh
                                                                    and train.yaml with it)

Prints one JSON line per file: {"path", "ok", "error"}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from pathlib import Path
from types import SimpleNamespace


def _argv_form(config: dict) -> list[str]:
    """The argv path of get_train_args, which (unlike the dict path) checks types and choices."""
    argv = []
    for key, value in config.items():
        if value is None:
            continue
        argv += [f"--{key}", str(value).lower() if isinstance(value, bool) else str(value)]
    return argv


def validate_yaml(path: Path, hidden_size: int) -> None:
    import llamafactory.hparams.parser as lf_parser
    from omegaconf import OmegaConf

    # pure_bf16 is refused on a device without bf16 (this CPU); the check is the device's, not the
    # file's (schemas.md A.4: monkeypatch to reach the rest of the rules).
    lf_parser.is_torch_bf16_gpu_available = lambda: True
    # exactly what `llamafactory-cli train x.yaml` does: OmegaConf.load -> dict -> parse_dict
    config = OmegaConf.to_container(OmegaConf.load(path.absolute()))
    config["use_cpu"] = True
    cwd = os.getcwd()
    os.chdir(path.parent)  # `deepspeed: ds_config.json` is resolved against the working directory
    try:
        model_args, data_args, training_args, finetuning_args, _ = lf_parser.get_train_args(dict(config))
        lf_parser.get_train_args(_argv_form(config))
        if data_args.template not in template_names():
            raise ValueError(f"template {data_args.template!r} is not a LLaMA-Factory template")
        if training_args.deepspeed:
            hf_ds = training_args.hf_deepspeed_config
            stub_model = SimpleNamespace(config=SimpleNamespace(hidden_size=hidden_size))
            hf_ds.trainer_config_finalize(training_args, stub_model, num_training_steps=100)
            validate_deepspeed_dict(hf_ds.config)
    finally:
        os.chdir(cwd)


def template_names() -> set[str]:
    """Names registered in llamafactory/data/template.py, read from its source: importing it
    needs torchaudio, which the minimal install leaves out."""
    import re

    import llamafactory

    source = (Path(llamafactory.__file__).parent / "data" / "template.py").read_text()
    return set(re.findall(r'register_template\(\s*name="([^"]+)"', source))


def validate_deepspeed_dict(config: dict, world_size: int | None = None) -> None:
    """DeepSpeedConfig on a config with every "auto" resolved; `world_size` stands in for the
    launched processes (outside torch.distributed DeepSpeed assumes 1)."""
    import deepspeed.runtime.config as ds_config_module
    from deepspeed.runtime.config import DeepSpeedConfig

    if world_size is not None:
        ds_config_module.dist = SimpleNamespace(get_rank=lambda *a: 0, get_world_size=lambda *a: world_size)
    text = json.dumps(config)
    if '"auto"' in text:
        raise ValueError(f"an \"auto\" is left after HF filled the config: {text}")
    DeepSpeedConfig(json.loads(text))


FSDP_ENV_PREFIXES = ("ACCELERATE_", "FSDP_")


def launch_arguments(launch_sh: Path) -> list[str]:
    """The arguments launch.sh gives `accelerate launch`, its variables set as on node 0, its own
    folder as $PLAN_DIR and no extra `key=value` arguments ("$@")."""
    import shlex

    line = next(line for line in launch_sh.read_text().splitlines() if line.startswith("accelerate launch "))
    values = {"NODE_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
    for name, value in values.items():
        line = line.replace(f'"${name}"', value)
    line = line.replace("$PLAN_DIR", str(launch_sh.parent.resolve()))
    return [arg for arg in shlex.split(line)[2:] if arg != "$@"]


def validate_accelerate(config_path: Path, hidden_size: int) -> None:
    """An emitted FSDP plan, checked by accelerate 1.11's own code: the config loader
    (`load_config_from_file`), every fsdp_config key against the `fsdp_*` arguments of `accelerate
    launch` (which the loader does not check: launch keeps unknown ones silently), launch.sh's
    command line through `accelerate launch`'s parser and `_validate_launch_command`, the
    environment `prepare_multi_gpu_env` builds (it raises on contradictory FSDP flags), and the
    FullyShardedDataParallelPlugin that environment makes. Then the training YAML through
    LLaMA-Factory's get_train_args with that environment, and the module the launch runs."""
    import importlib.util

    import accelerate.utils.dataclasses as accelerate_dataclasses
    import torch
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_multi_gpu_env

    loaded = load_config_from_file(str(config_path))
    if str(loaded.distributed_type) not in ("DistributedType.FSDP", "FSDP"):
        raise ValueError(f"distributed_type is {loaded.distributed_type}, not FSDP")
    parser = launch_command_parser()
    launch_fsdp_args = {a.dest for a in parser._actions if a.dest.startswith("fsdp_")} | {"fsdp_ignored_modules"}
    unknown = [k for k in loaded.fsdp_config if (k if k.startswith("fsdp") else f"fsdp_{k}") not in launch_fsdp_args]
    if unknown:
        raise ValueError(f"fsdp_config keys accelerate launch does not read: {unknown}")
    folder = config_path.parent
    args = parser.parse_args(launch_arguments(folder / "launch.sh"))
    if Path(args.config_file) != config_path.resolve() or not args.module or args.training_script != "llamafactory.launcher":
        raise ValueError(f"launch.sh does not run llamafactory.launcher with {config_path.name}: {args}")
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        args, _defaults, _mp = _validate_launch_command(args)
        env = prepare_multi_gpu_env(args)
    finally:
        os.chdir(cwd)
    saved = {k: v for k, v in os.environ.items() if k.startswith(FSDP_ENV_PREFIXES)}
    os.environ.update({k: v for k, v in env.items() if k.startswith(FSDP_ENV_PREFIXES)})
    # sync_module_states looks up the current accelerator device: this CPU's, not the file's
    accelerate_dataclasses.is_cuda_available = lambda: True
    torch.cuda.current_device = lambda: 0
    try:
        accelerate_dataclasses.FullyShardedDataParallelPlugin()
        validate_yaml(folder / args.training_script_args[0], hidden_size)
    finally:
        for key in [k for k in os.environ if k.startswith(FSDP_ENV_PREFIXES)]:
            del os.environ[key]
        os.environ.update(saved)
    spec = importlib.util.find_spec("llamafactory.launcher")
    if spec is None or "run_exp()" not in Path(spec.origin).read_text().split('if __name__ == "__main__":')[-1]:
        raise ValueError("llamafactory.launcher does not run run_exp() as a module")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hidden-size", type=int, default=896)
    parser.add_argument("--deepspeed-only", action="store_true")
    parser.add_argument("--accelerate", action="store_true")
    parser.add_argument("paths", nargs="+")
    args = parser.parse_args()
    for item in args.paths:
        path = Path(item.split("=")[0])
        try:
            if args.accelerate:
                validate_accelerate(path, args.hidden_size)
            elif args.deepspeed_only:
                validate_deepspeed_dict(json.loads(path.read_text()), world_size=int(item.split("=")[1]))
            else:
                validate_yaml(path, args.hidden_size)
            result = {"path": str(path), "ok": True, "error": ""}
        except BaseException as exc:  # ValueError, AssertionError, SystemExit (argparse), PackageNotFoundError
            last = traceback.format_exception_only(type(exc), exc)[-1].strip()
            result = {"path": str(path), "ok": False, "error": last}
        print("FITPLAN-RESULT " + json.dumps(result), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
