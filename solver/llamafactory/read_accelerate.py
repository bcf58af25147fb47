"""Read the FSDP settings of a run: an accelerate config file (`accelerate launch --config_file`), or
HF Trainer's own `fsdp:` / `fsdp_config:` keys in the training YAML, into fitplan's FSDP knobs.

What accelerate 1.11 would refuse or silently ignore is an *error*; what it runs but fitplan does
not model is a *warning* with what was assumed. accelerate's config loader checks only the
top-level keys ("The config file at ... had unknown keys"); `accelerate launch` copies every
`fsdp_config` key onto an argument of the same name and keeps one no argument has without a word
(commands/launch.py `_validate_launch_command`), so a typo there is checked here, against the keys
accelerate 1.11 reads (catalogs/accelerate_1.11_fsdp_keys.yaml, scripts/generate_accelerate_fsdp_keys.py).
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict

from ..errors import ConfigFileError
from ..problem.knobs import DEFAULT_FSDP_VERSION, FsdpStrategy, Offload, Precision
from ..specs.files import load_yaml_bounded, read_bounded_text
from .vocabulary import ACCELERATE_MIXED_PRECISION_TO_FITPLAN, ACCELERATE_SHARDING_STRATEGY_TO_FITPLAN


@lru_cache(maxsize=1)
def accelerate_fsdp_keys() -> dict:
    """{'top_level': [...], 'fsdp_keys': {name: {default, choices?, boolean?}}} of accelerate 1.11."""
    text = resources.files("fitplan.catalogs").joinpath("accelerate_1.11_fsdp_keys.yaml").read_text()
    data = yaml.safe_load(text)
    return {"top_level": data["top_level"], "fsdp_keys": data["fsdp_keys"]}


class FsdpRun(BaseModel):
    """The FSDP part of a run, as fitplan models it."""

    model_config = ConfigDict(frozen=True)

    source: str
    strategy: FsdpStrategy
    version: int = DEFAULT_FSDP_VERSION
    offload: Offload = Offload.none
    precision: Precision | None = None  # accelerate's mixed_precision; None = not set there
    num_processes: int | None = None
    num_machines: int | None = None
    cpu_ram_efficient_loading: bool = True
    activation_checkpointing: bool = False
    errors: list[str] = []
    warnings: list[str] = []


_TRUE = ("true", "yes", "1", "on", "t", "y")
_FALSE = ("false", "no", "0", "off", "f", "n")


def _boolean(value, key: str, errors: list[str], default: bool) -> bool:
    if value is None:
        return default
    text = str(value).lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    errors.append(f"{key}: {value!r} is not true or false (accelerate: invalid truth value)")
    return default


def _strategy_of_name(name: str, where: str) -> FsdpStrategy:
    upper = str(name).upper()
    if upper == "HYBRID_SHARD_ZERO2":
        raise ConfigFileError(f"{where}: HYBRID_SHARD_ZERO2 is not modelled by fitplan (it keeps gathered what "
                              "HYBRID_SHARD frees): use HYBRID_SHARD or SHARD_GRAD_OP")
    if upper not in ACCELERATE_SHARDING_STRATEGY_TO_FITPLAN:
        raise ConfigFileError(f"{where}: sharding strategy {name!r} is not one of FULL_SHARD, SHARD_GRAD_OP, "
                              "NO_SHARD, HYBRID_SHARD")
    return ACCELERATE_SHARDING_STRATEGY_TO_FITPLAN[upper]


def _wrap_policy(policy, where: str, warnings: list[str]) -> None:
    if policy in (None, "TRANSFORMER_BASED_WRAP"):
        return
    if policy == "NO_WRAP":
        raise ConfigFileError(f"{where}: fsdp_auto_wrap_policy NO_WRAP gathers the whole model as one unit, which "
                              "fitplan does not model: use TRANSFORMER_BASED_WRAP")
    warnings.append(f"{where}: fsdp_auto_wrap_policy {policy} is estimated as one unit per decoder layer "
                    "(TRANSFORMER_BASED_WRAP)")


def fsdp_from_accelerate_mapping(raw: dict, *, source: str) -> FsdpRun | None:
    """The FSDP run an accelerate config describes; None when it is not an FSDP config
    (MULTI_GPU / NO: plain DDP). DEEPSPEED is refused: fitplan reads DeepSpeed from train.yaml."""
    catalog = accelerate_fsdp_keys()
    errors: list[str] = []
    warnings: list[str] = []
    unknown = [k for k in raw if k not in catalog["top_level"]]
    if unknown:  # accelerate's own loader (config_args.py from_yaml_file) raises on these
        raise ConfigFileError(f"{source}: the config file had unknown keys ({', '.join(map(str, unknown))}) "
                              "(accelerate 1.11 refuses it)")
    if "distributed_type" not in raw:
        raise ConfigFileError(f"{source}: A `distributed_type` must be specified in the config file (accelerate)")
    kind = str(raw["distributed_type"]).upper()
    if kind == "DEEPSPEED":
        raise ConfigFileError(f"{source}: distributed_type DEEPSPEED: fitplan reads DeepSpeed runs from train.yaml's "
                              "`deepspeed:` file, not from the accelerate config; drop --accelerate-config")
    if kind != "FSDP":
        return None
    block = raw.get("fsdp_config") or {}
    if not isinstance(block, dict):
        raise ConfigFileError(f"{source}: fsdp_config must be a mapping of fsdp_* keys")
    keys = catalog["fsdp_keys"]
    values = {}
    for key, value in block.items():
        name = key if str(key).startswith("fsdp") else f"fsdp_{key}"  # accelerate adds the prefix (launch.py)
        if name not in keys:
            errors.append(f"fsdp_config.{key} is not an FSDP setting of accelerate 1.11 (accelerate launch ignores "
                          f"it silently): choose from {', '.join(sorted(keys))}")
            continue
        choices = keys[name].get("choices")
        if choices and value is not None and str(value) not in choices and str(value).upper() not in choices:
            errors.append(f"fsdp_config.{key}: {value!r} is not one of {', '.join(choices)}")
            continue
        values[name] = value
    version = int(str(values.get("fsdp_version", DEFAULT_FSDP_VERSION)))
    where = f"{source}: fsdp_config"
    if version == 2:
        if "fsdp_sharding_strategy" in values:
            warnings.append("fsdp_sharding_strategy is deprecated under fsdp_version 2 (accelerate uses "
                            "fsdp_reshard_after_forward)")
        if _boolean(values.get("fsdp_forward_prefetch"), "fsdp_forward_prefetch", errors, False):
            # accelerate 1.11 reads FSDP_FORWARD_PREFETCH only for FSDP1 (utils/dataclasses.py:1897-1900)
            warnings.append("fsdp_forward_prefetch is ignored under fsdp_version 2 (accelerate reads it for FSDP1 "
                            "only); FSDP2 prefetches in backward only")
        reshard = _boolean(values.get("fsdp_reshard_after_forward"), "fsdp_reshard_after_forward", errors, True)
        strategy = FsdpStrategy.full_shard if reshard else FsdpStrategy.shard_grad_op
    else:
        name = values.get("fsdp_sharding_strategy")
        if name is None and values.get("fsdp_reshard_after_forward") not in (None, True, False, "true", "false"):
            name = values["fsdp_reshard_after_forward"]  # FSDP1 fallback (utils/dataclasses.py)
        strategy = _strategy_of_name(name or "FULL_SHARD", where)
        if values.get("fsdp_backward_prefetch") in ("BACKWARD_POST", "NO_PREFETCH"):
            warnings.append(f"fsdp_backward_prefetch {values['fsdp_backward_prefetch']} gathers less than the "
                            "BACKWARD_PRE estimated")
    _wrap_policy(values.get("fsdp_auto_wrap_policy"), where, warnings)
    loading = _boolean(values.get("fsdp_cpu_ram_efficient_loading"), "fsdp_cpu_ram_efficient_loading", errors, True)
    sync = _boolean(values.get("fsdp_sync_module_states"), "fsdp_sync_module_states", errors, True)
    if loading and not sync:  # accelerate 1.11 utils/launch.py prepare_multi_gpu_env
        errors.append("When using `--fsdp_cpu_ram_efficient_loading` set `--fsdp_sync_module_states` to `True` "
                      "(accelerate launch)")
    if not loading:
        warnings.append("fsdp_cpu_ram_efficient_loading false: every process loads the whole model into host RAM, "
                        "and LLaMA-Factory's FSDP checks (4-bit only, no GPTQ/AWQ) do not run")
    offload = Offload.all if _boolean(values.get("fsdp_offload_params"), "fsdp_offload_params", errors, False) \
        else Offload.none
    mixed = raw.get("mixed_precision")
    precision = None
    if mixed not in (None, "no"):
        if str(mixed) not in ACCELERATE_MIXED_PRECISION_TO_FITPLAN:
            raise ConfigFileError(f"{source}: mixed_precision {mixed!r} is not modelled under FSDP: use bf16 or fp16")
        precision = ACCELERATE_MIXED_PRECISION_TO_FITPLAN[str(mixed)]
    elif mixed == "no":
        warnings.append("mixed_precision no: FSDP then gathers fp32 parameters; the training YAML's bf16/fp16 "
                        "flag decides the estimate (HF sets ACCELERATE_MIXED_PRECISION from it)")

    def count(key: str) -> int | None:
        value = raw.get(key)
        if value is None or int(value) < 1:
            return None
        return int(value)

    return FsdpRun(source=source, strategy=strategy, version=version, offload=offload, precision=precision,
                   num_processes=count("num_processes"), num_machines=count("num_machines"),
                   cpu_ram_efficient_loading=loading,
                   activation_checkpointing=_boolean(values.get("fsdp_activation_checkpointing"),
                                                     "fsdp_activation_checkpointing", errors, False),
                   errors=errors, warnings=warnings)


def fsdp_from_training_args(raw: dict, *, source: str) -> FsdpRun | None:
    """HF Trainer's own FSDP (`fsdp: full_shard auto_wrap` and `fsdp_config:` in the training
    YAML), as transformers 5.6 `TrainingArguments._process_fsdp_args` turns them into accelerate's
    plugin (training_args.py:2786-2850). None when the YAML sets no `fsdp`."""
    options = raw.get("fsdp")
    if options in (None, "", [], False):
        return None
    words = options.split() if isinstance(options, str) else [str(o) for o in options]
    block = raw.get("fsdp_config") or {}
    if not isinstance(block, dict):
        raise ConfigFileError(f"{source}: fsdp_config must be a mapping (or a JSON file path, which fitplan does "
                              "not read)")
    warnings = ["FSDP set by the training YAML (HF Trainer's fsdp: keys) is estimated as accelerate's FSDP "
                "with one unit per decoder layer"]
    sharding = next((w for w in words if w.upper() in ("FULL_SHARD", "SHARD_GRAD_OP", "NO_SHARD", "HYBRID_SHARD",
                                                        "HYBRID_SHARD_ZERO2")), "full_shard")
    if "auto_wrap" not in words:
        raise ConfigFileError(f"{source}: fsdp without auto_wrap gathers the whole model as one unit, which fitplan "
                              "does not model: add auto_wrap to fsdp")
    version = int(block.get("version", block.get("fsdp_version", 1)))
    strategy = _strategy_of_name(sharding, f"{source}: fsdp")
    if version == 2:
        reshard = str(block.get("reshard_after_forward", strategy != FsdpStrategy.shard_grad_op)).lower() in _TRUE
        strategy = FsdpStrategy.full_shard if reshard else FsdpStrategy.shard_grad_op
    elif str(block.get("backward_prefetch", "NO_PREFETCH")).upper() != "BACKWARD_PRE":
        warnings.append("HF's FSDP default backward_prefetch NO_PREFETCH gathers less than the BACKWARD_PRE estimated")
    loading = str(block.get("cpu_ram_efficient_loading", "false")).lower() in _TRUE
    return FsdpRun(source=source, strategy=strategy, version=version,
                   offload=Offload.all if "offload" in words else Offload.none,
                   cpu_ram_efficient_loading=loading, warnings=warnings)


def sibling_fsdp_config(yaml_path: Path) -> Path | None:
    """An accelerate FSDP config beside a training YAML (how fitplan's --emit and LLaMA-Factory's
    examples lay a run out), found to tell a user whose run may launch with it."""
    folder = yaml_path.parent
    for candidate in sorted(folder.glob("*.y*ml"))[:32]:
        if candidate.resolve() == yaml_path.resolve():
            continue
        try:
            data = load_yaml_bounded(read_bounded_text(candidate, "accelerate config"), candidate)
        except (OSError, ConfigFileError):
            continue
        if isinstance(data, dict) and str(data.get("distributed_type", "")).upper() == "FSDP":
            return candidate
    return None
