"""An FSDP plan as the files LLaMA-Factory 0.9.5 runs it with: accelerate's `fsdp_config.yaml` and a
`launch.sh` that starts `accelerate launch` (train.yaml is write_yaml's, without `deepspeed:`).

Layout and keys follow LLaMA-Factory's own FSDP examples (v0.9.5):
- FSDP1 (accelerate's default `fsdp_version`, what `examples/accelerate/fsdp_config.yaml` runs and
  `examples/extras/fsdp_qlora/train.sh` launches): that file, key for key and in its order;
  `fsdp_offload_params: true` as in `fsdp_config_offload.yaml`;
- FSDP2: `examples/accelerate/fsdp2_config.yaml` (`fsdp_reshard_after_forward`, `fsdp_version: 2`).
Each key is one accelerate 1.11 reads (catalogs/accelerate_1.11_fsdp_keys.yaml; its config loader
checks only the top-level keys, so llamafactory/read_accelerate.py checks the rest).

The launch follows `examples/extras/fsdp_qlora/train.sh` (`accelerate launch --config_file
examples/accelerate/fsdp_config.yaml src/train.py <yaml>`). `src/train.py` exists only in a git
checkout; a pip install runs the same `run_exp()` as `python -m llamafactory.launcher <yaml>`
(llamafactory/launcher.py:182-185, which is also the file LLaMA-Factory's own torchrun launch
runs), and accelerate 1.11 launches modules with `-m` (commands/launch.py). `llamafactory-cli
train` starts torchrun and never reads an accelerate config, so it cannot run FSDP this way.
"""

from __future__ import annotations

from ..errors import InvalidConfigurationError
from ..problem.config import TrainConfig
from ..problem.knobs import FsdpStrategy, Offload
from ..specs.gpu import GpuSet
from .vocabulary import ACCELERATE_MIXED_PRECISION, ACCELERATE_SHARDING_STRATEGY

FSDP_CONFIG_YAML = "fsdp_config.yaml"
LAUNCH_MODULE = "llamafactory.launcher"


def _scalar(value) -> str:
    """The values written here are booleans, counts and accelerate's own constant names."""
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _line(lines: list[str], indent: str, key: str, value, why: str = "") -> None:
    text = f"{indent}{key}: {_scalar(value)}"
    lines.append(f"{text}  # {why}" if why else text)


def accelerate_fsdp_config(gpus: GpuSet, config: TrainConfig, nodes: int) -> str:
    """The text of `fsdp_config.yaml` for an FSDP plan over `nodes` nodes."""
    if config.fsdp_strategy is None:
        raise InvalidConfigurationError("the plan does not use FSDP: there is no accelerate FSDP config to write")
    offload = config.offload == Offload.all
    lines = ["# accelerate config for `accelerate launch --config_file fsdp_config.yaml` (LLaMA-Factory "
             "examples/accelerate/fsdp" + ("2" if config.fsdp_version == 2 else "") + "_config.yaml layout)",
             "compute_environment: LOCAL_MACHINE", "debug: false", "distributed_type: FSDP", "downcast_bf16: 'no'",
             "fsdp_config:"]
    ind = "  "
    wrap = "one FSDP unit per decoder layer (the model's _no_split_modules)"
    offload_why = ("parameters, gradients and the optimizer step in host RAM, as planned" if offload
                   else "states stay on the GPUs, as planned")
    loading = "only local rank 0 reads the checkpoint; the others get it broadcast"
    whole = "checkpoints saved whole, as LLaMA-Factory's example"
    if config.fsdp_version == 2:
        _line(lines, ind, "fsdp_auto_wrap_policy", "TRANSFORMER_BASED_WRAP", wrap)
        _line(lines, ind, "fsdp_cpu_ram_efficient_loading", True, loading)
        _line(lines, ind, "fsdp_offload_params", offload, offload_why)
        _line(lines, ind, "fsdp_reshard_after_forward", config.fsdp_strategy == FsdpStrategy.full_shard,
              "true = FULL_SHARD, false = SHARD_GRAD_OP (FSDP2 has only this switch)")
        _line(lines, ind, "fsdp_state_dict_type", "FULL_STATE_DICT", whole)
        _line(lines, ind, "fsdp_version", 2, "fully_shard")
    else:
        _line(lines, ind, "fsdp_auto_wrap_policy", "TRANSFORMER_BASED_WRAP", wrap)
        _line(lines, ind, "fsdp_backward_prefetch", "BACKWARD_PRE", "the next unit gathers during this one's backward")
        _line(lines, ind, "fsdp_forward_prefetch", False)
        _line(lines, ind, "fsdp_cpu_ram_efficient_loading", True, loading)
        _line(lines, ind, "fsdp_offload_params", offload, offload_why)
        _line(lines, ind, "fsdp_sharding_strategy", ACCELERATE_SHARDING_STRATEGY[config.fsdp_strategy],
              f"FSDP {config.fsdp_strategy.value} of the plan")
        _line(lines, ind, "fsdp_state_dict_type", "FULL_STATE_DICT", whole)
        _line(lines, ind, "fsdp_sync_module_states", True, "accelerate launch needs it with cpu_ram_efficient_loading")
        _line(lines, ind, "fsdp_use_orig_params", True)
    lines += [f"machine_rank: 0  # {'launch.sh passes --machine_rank on each node' if nodes > 1 else 'one node'}",
              "main_training_function: main"]
    _line(lines, "", "mixed_precision", ACCELERATE_MIXED_PRECISION[config.precision],
          "FSDP's param/reduce/buffer dtype" + ("" if gpus.gpu.bf16_hardware else f": {gpus.gpu.name} has no bf16"))
    _line(lines, "", "num_machines", nodes, "the number of nodes")
    _line(lines, "", "num_processes", config.n_gpus, "the number of GPUs in all nodes")
    lines += ["rdzv_backend: static", "same_network: true", "tpu_env: []", "tpu_use_cluster: false",
              "tpu_use_sudo: false", "use_cpu: false"]
    return "\n".join(lines) + "\n"
