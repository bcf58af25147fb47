"""A plan as files LLaMA-Factory 0.9.5 runs: `train.yaml`, `ds_config.json` (ZeRO 1-3) and
`launch.sh`.

Layout and keys follow LLaMA-Factory's `examples/train_lora/qwen3_lora_sft.yaml` and
`examples/train_full/qwen3_full_sft.yaml` (shared/reference/schemas.md A.3): sections `### model`,
`### method`, `### dataset`, `### output`, `### train`. Every key is one that `get_train_args`
accepts (catalogs/llamafactory_0.9.5_keys.yaml). Each value the plan decided carries a comment
saying why; values the tool cannot know (dataset, template, model path, output dir) are marked
PLACEHOLDER with the flag that sets them.

How each knob becomes a key (schemas.md A.1):
- precision: bf16 -> `bf16: true`; fp16 -> `fp16: true` (all pre-Ampere plans: P4/P40/V100/T4 have
  no bf16 hardware); pure_bf16 -> `pure_bf16: true`; fp32 -> neither flag. LF has no training
  dtype key: without a flag it infers the load dtype (`model/patcher.py` `infer_optim_dtype`, bf16
  where the device has it), which holds no more memory than the fp32 plan counts.
- attention: fa2 -> `flash_attn: fa2`, sdpa -> `sdpa`, eager -> `disabled`.
- checkpointing off -> `disable_gradient_checkpointing: true` (LF checkpoints by default).
- qlora -> `quantization_bit`, `quantization_method: bnb`, `double_quantization: true` (the NF4
  storage `memory/states.frozen_base_bytes` counts is the double-quantized one).
- optimizer -> HF `optim`: adamw -> `adamw_torch_fused` (the in-place fused step that
  `memory/states.optimizer_step_temporary_bytes` assumes: no foreach temporaries;
  llamafactory/vocabulary.py). Under CPU offload the DeepSpeed JSON's `optimizer` block makes HF
  ignore `optim` (transformers 5.6 `integrations/deepspeed.py` `deepspeed_optim_sched`: a
  `DummyOptim`) and DeepSpeed build `DeepSpeedCPUAdam` (deepspeed 0.19.8 `runtime/engine.py`
  `_configure_basic_optimizer`), so the file says `adamw_torch` (plain AdamW, what the block
  stands for) and its comment names what runs.
- data: `dataset_dir` (--dataset-dir, default `data`, LLaMA-Factory's own default,
  `hparams/data_args.py`) is opened relative to the directory training starts in
  (`data/parser.py` get_dataset_list; LLaMA-Factory never changes directory). launch.sh does not
  change directory either: run it from where `dataset_dir` and `output_dir` make sense (the
  LLaMA-Factory checkout, for its demo datasets); it finds train.yaml and ds_config.json beside
  itself and passes them by absolute path.
- text: every value is a YAML scalar (`yaml_scalar`, JSON-escaped when not plain) and every
  comment goes through `comment_text`, so no value can end a comment line and start a command.
- ZeRO 0 -> no `deepspeed:` key (plain DDP); 1-3 -> `deepspeed: ds_config.json`.
- the memory levers (issue 16; keys in llamafactory/vocabulary.py): Liger -> `enable_liger_kernel`,
  offloaded checkpoints -> `use_unsloth_gc`, `use_reentrant_gc: false` only when off (LF's default
  is on), the upcast flags, DoRA / PiSSA / rsLoRA / LoRA+ keys, `packing` / `neat_packing`;
  GaLore and APOLLO -> `use_galore` / `use_apollo`, `*_target: all`, `*_rank`, `*_layerwise` and
  `optim: adamw_torch` (their optimizer classes exist only for it, train/trainer_utils.py:239-246,
  330-333; HF's default adamw_torch_fused raises "Unknown optim"); BAdam -> `use_badam`,
  `badam_mode: layer` and LF's example switching; Adam-mini -> `use_adam_mini`.
- FSDP -> no `deepspeed:` key; `fsdp_config.yaml` and an `accelerate launch` launch.sh
  (llamafactory/write_accelerate.py).
"""

from __future__ import annotations

import json
import math
import shlex
import unicodedata

from pydantic import BaseModel, ConfigDict, field_validator

from ..errors import InvalidConfigurationError, shown
from ..problem import rules
from ..problem.config import TrainConfig, describe_launch
from ..problem.knobs import (
    LAYERWISE_OPTIMIZERS,
    PROJECTED_OPTIMIZERS,
    Attention,
    MemoryOptimizer,
    Method,
    Optimizer,
    Precision,
)
from ..specs.gpu import GpuSet
from ..specs.limits import MAX_NAME_CHARS
from ..specs.model import Family, ModelSpec
from .vocabulary import HF_OPTIM, HF_OPTIM_UNDER_DEEPSPEED_OPTIMIZER, KNOB_KEY, LF_FLASH_ATTN, MEMORY_OPTIMIZER_KEYS
from .write_accelerate import FSDP_CONFIG_YAML, LAUNCH_MODULE, accelerate_fsdp_config
from .write_deepspeed import builds_its_optimizer, deepspeed_config

TRAIN_YAML = "train.yaml"
DS_CONFIG_JSON = "ds_config.json"
LAUNCH_SH = "launch.sh"

# LLaMA-Factory examples: 1.0e-4 for LoRA (train_lora), 1.0e-5 for full (train_full).
LEARNING_RATE_ADAPTER = 1.0e-4
LEARNING_RATE_FULL = 1.0e-5
DEFAULT_DATASET = "identity,alpaca_en_demo"  # LF's demo datasets, shipped in its data/ folder
# LLaMA-Factory's default `dataset_dir` (hparams/data_args.py), relative to the launch directory:
# its git checkout's data/ (the demo datasets and dataset_info.json are not in the wheel).
DEFAULT_DATASET_DIR = "data"
DATASET_INFO = "dataset_info.json"  # LLaMA-Factory extras/constants.py DATA_CONFIG
MASTER_PORT = 29500


class EmitPlaceholders(BaseModel):
    """What fitplan cannot know; None = a marked placeholder."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str | None = None
    template: str | None = None
    model_path: str | None = None
    output_dir: str | None = None
    dataset_dir: str | None = None  # None = DEFAULT_DATASET_DIR

    @field_validator("*")
    @classmethod
    def _one_line(cls, value: str | None, info) -> str | None:
        """Names and paths go into YAML and shell lines: a line break or control character in
        one is refused, never written."""
        flag = "--" + info.field_name.replace("_", "-")
        if value is not None and any(breaks_a_line(c) for c in value):
            raise ValueError(f"{flag} {shown(repr(value))} holds a line break or control character: pass a plain name "
                             "or path")
        if value is not None and len(value) > MAX_NAME_CHARS:
            raise ValueError(f"{flag} '{shown(value)}' is longer than {MAX_NAME_CHARS} characters: pass a plain name "
                             "or path")
        return value


def default_template(model: ModelSpec) -> str:
    """LLaMA-Factory's chat template for the model: the catalog's, per named model (checked against
    LLaMA-Factory 0.9.5's registry, catalogs/llamafactory_0.9.5_templates.yaml), else the family's
    (`data/template.py` names) for a config.json the catalog does not know."""
    if model.template:
        return model.template
    name = model.name.lower()
    if model.family == Family.qwen:
        return "qwen"
    if model.family == Family.chatglm:
        return "chatglm3"
    if model.family == Family.phi3:
        return "phi"
    by_type = {"qwen2": "qwen", "qwen3": "qwen3", "mistral": "mistral", "gemma2": "gemma2", "gemma": "gemma"}
    if model.model_type in by_type:
        return by_type[model.model_type]
    if name.startswith("yi"):
        return "yi"
    if "llama-3" in name or "llama3" in name:
        return "llama3"
    if "llama" in name:
        return "llama2"
    return "default"


# ---- YAML text ---------------------------------------------------------------------------------

def breaks_a_line(char: str) -> bool:
    """Control characters and every character YAML 1.1 or a shell could take as a line break
    (NEL, LINE/PARAGRAPH SEPARATOR)."""
    return unicodedata.category(char) in ("Cc", "Zl", "Zp") or char == "\x85"


def comment_text(text: str) -> str:
    """`text` safe after a `#` in YAML or bash: line breaks and control characters are written
    as escapes (`\\n`), so a comment stays one line and can never start a command."""
    return "".join(char.encode("unicode_escape").decode("ascii") if breaks_a_line(char) else char
                   for char in text)


def yaml_scalar(value) -> str:
    """One YAML scalar that PyYAML, OmegaConf and ruamel all read back as the same type.

    Floats always have a dot and a signed exponent when small or large (`1.0e-4`): YAML 1.1
    loaders (PyYAML) read `1e-4` as a string (schemas.md A.2)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot write {value} as a YAML float")
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e7):
            mantissa, exponent = f"{value:e}".split("e")
            mantissa = mantissa.rstrip("0")
            mantissa = mantissa + "0" if mantissa.endswith(".") else mantissa
            sign = "-" if exponent.startswith("-") else "+"
            return f"{mantissa}e{sign}{int(exponent.lstrip('+-'))}"
        text = repr(value)
        return text if "." in text or "e" in text else text + ".0"
    text = str(value)
    plain_ok = text and all(c.isalnum() or c in "-_./,:@" for c in text) and not text[0] in "-:@"
    if plain_ok and text.lower() not in ("true", "false", "yes", "no", "on", "off", "null", "~"):
        try:
            float(text)
        except ValueError:
            return text
    return json.dumps(text)


class _Yaml:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.values: dict[str, object] = {}

    def section(self, title: str) -> None:
        self.lines.append(f"### {title}")

    def key(self, name: str, value, why: str = "") -> None:
        self.values[name] = value
        line = f"{name}: {yaml_scalar(value)}"
        self.lines.append(f"{line}  # {comment_text(why)}" if why else line)

    def comment(self, text: str) -> None:
        self.lines.append(f"# {comment_text(text)}")

    def knob(self, knob: str, value, reasons: dict[str, str]) -> None:
        """The key that carries `knob` (llamafactory/vocabulary.py), with the reason given for
        that key or, failing that, for the knob."""
        name = KNOB_KEY[knob]
        self.key(name, value, reasons.get(name) or reasons.get(knob, ""))

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


# ---- why each value was chosen -------------------------------------------------------------------

def default_reasons(model: ModelSpec, gpus: GpuSet, config: TrainConfig) -> dict[str, str]:
    """One short reason per decided knob, keyed by TrainConfig field name."""
    gpu = gpus.gpu
    reasons = {
        "method": "LoRA adapters on a bitsandbytes-quantized base (QLoRA)" if config.method == Method.qlora
                  else f"{config.method.value} fine-tuning",
        "lora_rank": "LoRA rank of the plan (LLaMA-Factory default 8)",
        "lora_targets": "adapters on these linear modules (all = every linear of each layer)",
        "freeze_layers": "the last N decoder layers train, the rest are frozen",
        "seq_len": "tokens per sample; memory is planned for samples filling cutoff_len",
        "micro_batch": "per-GPU micro batch of the plan",
        "grad_accum": f"global batch {config.global_batch} = micro {config.micro_batch} x accum "
                      f"{config.grad_accum} x {config.n_gpus} GPU(s)",
        "grad_ckpt": "checkpointing off: it fits without recomputation, so the step is faster",
        "attn": {Attention.fa2: f"FlashAttention-2 ({gpu.capability_label})",
                 Attention.sdpa: "PyTorch SDPA" + ("" if gpu.flash_attention_2 else
                                                  f" ({gpu.feature_gap('fa2')})"),
                 Attention.eager: "eager attention (the plan uses no fused kernel)"}[config.attn],
        "zero_stage": f"DeepSpeed ZeRO-{config.zero_stage}, the file beside this one; launch.sh passes its absolute "
                      "path (a relative path opens from the working directory)" if config.zero_stage else "",
        "optim": "fused AdamW: in-place step, no extra fp32 temporaries" if config.optim == Optimizer.adamw
                 else f"{config.optim.value} optimizer of the plan",
        **({"optim": "AdamW; what runs is DeepSpeed's CPU Adam (DeepSpeedCPUAdam, AdamW mode, fp32 states in "
                     "host RAM): ds_config.json's optimizer block makes HF ignore this key"}
           if builds_its_optimizer(config) else {}),
        "precision": {Precision.bf16: f"bf16 mixed precision ({gpu.name} has bf16 hardware)",
                      Precision.fp16: f"fp16 mixed precision: {gpu.name} has no bf16 hardware"
                      if not gpu.bf16_hardware else "fp16 mixed precision",
                      Precision.pure_bf16: "pure bf16: bf16 parameters and optimizer states, no AMP",
                      Precision.fp32: "fp32"}[config.precision],
        "bits": f"{config.bits}-bit bitsandbytes base weights (QLoRA)",
        "packing": "samples packed to exactly cutoff_len tokens, as planned",
        "liger": "Liger kernels: fused linear cross-entropy (no full logits), RMSNorm, SwiGLU, RoPE",
        "unsloth_gc": "checkpointed layer inputs kept in host RAM, back over PCIe in backward",
        "reentrant_gc": "non-reentrant gradient checkpointing",
        "neat_packing": "packed samples attend only to themselves",
        "dora": "DoRA: magnitude and direction adapters",
        "pissa": "PiSSA: adapters initialised from the weights' principal singular vectors",
        "rslora": "rank-stabilised LoRA scaling alpha / sqrt(r)",
        "loraplus_lr_ratio": "LoRA+: lora_B learns this many times faster than lora_A",
        "upcast_layernorm": "norm weights in fp32",
        "upcast_lmhead_output": "lm_head output cast to fp32",
        "memory_optimizer": {MemoryOptimizer.badam: "BAdam: one decoder layer trains at a time",
                             MemoryOptimizer.adam_mini: "Adam-mini: one second moment per block"}.get(
            config.memory_optimizer, "low-rank projected optimizer states"),
    }
    return reasons


def hf_optim(config: TrainConfig) -> str:
    """The `optim:` value: the optimizer HF builds, or under a DeepSpeed `optimizer` block the
    AdamW that block stands for (vocabulary.py)."""
    return HF_OPTIM_UNDER_DEEPSPEED_OPTIMIZER if builds_its_optimizer(config) else HF_OPTIM[config.optim]


def _memory_optimizer_keys(y: "_Yaml", config: TrainConfig, why: dict[str, str]) -> None:
    """GaLore / APOLLO / BAdam / Adam-mini keys (LLaMA-Factory 0.9.5 finetuning_args.py; the
    values beside the rank are LLaMA-Factory's examples/extras/{galore,apollo,badam})."""
    memory = config.memory_optimizer
    if memory == MemoryOptimizer.none:
        return
    key, layerwise_key, rank_key = MEMORY_OPTIMIZER_KEYS[memory]
    y.key(key, True, why.get("memory_optimizer", ""))
    if memory in PROJECTED_OPTIMIZERS:
        family = key.removeprefix("use_")
        y.key(f"{family}_target", "all", "every linear of the decoder layers")
        y.key(rank_key, config.projection_rank, "projection rank of the plan")
        y.key(layerwise_key, memory in LAYERWISE_OPTIMIZERS,
              "one optimizer step per parameter as its gradient is made" if memory in LAYERWISE_OPTIMIZERS else "")
    if memory == MemoryOptimizer.badam:
        y.key("badam_mode", "layer", "one decoder layer at a time")
        y.key("badam_switch_mode", "ascending")
        y.key("badam_switch_interval", 50, "steps per block (LLaMA-Factory's default)")
# Model types transformers implements itself whose Hub config.json also names remote code (auto_map).
HUB_CODE_NOT_MODELLED = frozenset({"deepseek_v2", "deepseek_v3"})


# ---- the three files -----------------------------------------------------------------------------

def train_yaml(model: ModelSpec, gpus: GpuSet, config: TrainConfig, placeholders: EmitPlaceholders,
               reasons: dict[str, str] | None = None) -> tuple[str, dict[str, object]]:
    """The LLaMA-Factory training YAML: (text, the key -> value mapping it holds)."""
    why = {**default_reasons(model, gpus, config), **(reasons or {})}
    y = _Yaml()
    y.section("model")
    model_path = placeholders.model_path or model.model_name_or_path
    y.key("model_name_or_path", model_path,
          "" if placeholders.model_path else "PLACEHOLDER: Hub id or local path of the weights (--model-path)")
    if model.model_type in HUB_CODE_NOT_MODELLED:
        # DeepSeek's Hub configs carry an auto_map: with trust_remote_code transformers would load the
        # Hub's own modelling code instead of its native class (models/auto/auto_factory.py:346-371 in
        # 5.6), whose memory is not what fitplan planned.
        y.key("trust_remote_code", False, "transformers' own class, as planned (not the Hub's remote code)")
    else:
        y.key("trust_remote_code", True, "needed by Qwen1/Baichuan/ChatGLM code; harmless for others")
    if config.moe_aux_loss_coef is not None:
        y.key("moe_aux_loss_coef", config.moe_aux_loss_coef, "router load-balancing loss: its logits are planned for")
    if config.method == Method.qlora:
        y.knob("bits", config.bits, why)
        y.key("quantization_method", "bnb", "bitsandbytes on-the-fly quantization")
        y.key("double_quantization", True, "NF4 constants quantized too, as planned")
    y.knob("attn", LF_FLASH_ATTN[config.attn], why)
    if not config.grad_ckpt:
        y.knob("grad_ckpt", True, why)
    for lever in ("liger", "unsloth_gc", "upcast_layernorm", "upcast_lmhead_output"):
        if getattr(config, lever):
            y.knob(lever, True, why)
    if config.grad_ckpt and not config.reentrant_gc:
        y.knob("reentrant_gc", False, why)

    y.section("method")
    y.key("stage", "sft", "supervised fine-tuning")
    y.key("do_train", True)
    y.knob("method", "lora" if config.uses_lora else config.method.value, why)
    if config.uses_lora:
        y.knob("lora_rank", config.lora_rank, why)
        y.knob("lora_targets", ",".join(config.lora_targets), why)
        for lever in ("dora", "pissa", "rslora"):
            if getattr(config, lever):
                y.knob(lever, True, why)
        if config.loraplus_lr_ratio is not None:
            y.knob("loraplus_lr_ratio", float(config.loraplus_lr_ratio), why)
    _memory_optimizer_keys(y, config, why)
    if config.method == Method.freeze:
        y.knob("freeze_layers", config.freeze_layers, why)
        y.key("freeze_trainable_modules", "all", "every module of those layers trains")
    if config.zero_stage:
        y.knob("zero_stage", DS_CONFIG_JSON, why)
    if config.fsdp_strategy is not None:
        y.lines.append("# FSDP: sharding, CPU offload and mixed precision are in fsdp_config.yaml (accelerate launch)")

    y.section("dataset")
    dataset_dir = placeholders.dataset_dir or DEFAULT_DATASET_DIR
    y.key("dataset", placeholders.dataset or DEFAULT_DATASET,
          "" if placeholders.dataset else f"PLACEHOLDER: names from {dataset_dir}/{DATASET_INFO} (--dataset)")
    y.key("dataset_dir", dataset_dir,
          "folder of dataset_info.json, relative to where training starts (--dataset-dir)"
          + (": LLaMA-Factory's data/ when run from its checkout" if not placeholders.dataset_dir else ""))
    y.key("template", placeholders.template or default_template(model),
          "" if placeholders.template else "PLACEHOLDER: the model's chat template (--template)")
    y.knob("seq_len", config.seq_len, why)
    if config.neat_packing:
        y.knob("neat_packing", True, why)
    elif config.packing:
        y.knob("packing", True, why)
    elif config.mean_sample_len:
        y.comment(f"memory planned for samples of {config.mean_sample_len} tokens on average "
                  "(fitplan --mean-sample-len; not a LLaMA-Factory key)")
    y.key("overwrite_cache", True)
    y.key("preprocessing_num_workers", 16)
    y.key("dataloader_num_workers", 4)

    y.section("output")
    method_dir = "lora" if config.uses_lora else config.method.value
    y.key("output_dir", placeholders.output_dir or f"saves/{model.name}/{method_dir}/sft",
          "" if placeholders.output_dir else "PLACEHOLDER: where checkpoints go (--output-dir)")
    y.key("logging_steps", 10)
    y.key("save_steps", 500)
    y.key("plot_loss", True)
    y.key("overwrite_output_dir", True)
    y.key("save_only_model", False)
    y.key("report_to", "none", "choices: [none, wandb, tensorboard, swanlab, mlflow]")

    y.section("train")
    y.knob("micro_batch", config.micro_batch, why)
    y.knob("grad_accum", config.grad_accum, why)
    y.key("learning_rate", LEARNING_RATE_ADAPTER if config.method in (Method.lora, Method.qlora) else LEARNING_RATE_FULL,
          "LLaMA-Factory example value for this method; tune for your data")
    y.key("num_train_epochs", 3.0)
    y.key("lr_scheduler_type", "cosine")
    y.key("warmup_ratio", 0.1)
    if config.memory_optimizer in PROJECTED_OPTIMIZERS and config.optim == Optimizer.adamw:
        y.key(KNOB_KEY["optim"], "adamw_torch", "GaLore / APOLLO build their AdamW only for this optim (LLaMA-Factory "
                                                "train/trainer_utils.py: Unknown optim otherwise)")
    else:
        y.knob("optim", hf_optim(config), why)
    precision_why = why.get("precision", "")
    if config.precision == Precision.bf16:
        y.key("bf16", True, precision_why)
    elif config.precision == Precision.fp16:
        y.key("fp16", True, precision_why)
    elif config.precision == Precision.pure_bf16:
        y.key("pure_bf16", True, precision_why)
    else:
        y.comment("fp32: neither bf16 nor fp16; LLaMA-Factory then loads the checkpoint's own dtype")
    y.key("ddp_timeout", 180000000, "LLaMA-Factory example value: long dataset preprocessing never times out")
    y.key("resume_from_checkpoint", None)
    return y.text(), y.values


def _node_layout(gpus: GpuSet, config: TrainConfig) -> tuple[int, int]:
    """(nodes used, processes per node) for `config.n_gpus` GPUs of this set."""
    nodes = max(1, -(-config.n_gpus // gpus.gpus_per_node))
    if config.n_gpus % nodes:
        raise InvalidConfigurationError(
            f"{config.n_gpus} GPUs cannot be split evenly over {nodes} nodes of {gpus.gpus_per_node}: "
            f"pin --n-gpus to a multiple of {nodes}"
        )
    return nodes, config.n_gpus // nodes


# launch.sh's lines that do not depend on the plan.
ALLOCATOR_LINES = (
    "# PyTorch's caching allocator grows expandable segments in place instead of cudaMalloc'ing a new",
    "# segment for each new sample length, so the fragmentation that max_memory_reserved shows with",
    "# variable-length samples largely disappears (PyTorch \"CUDA semantics\": expandable_segments).",
    "# LLaMA-Factory's torchrun launcher sets the same, over any value of yours unless OPTIM_TORCH=0 (launcher.py).",
    'export PYTORCH_CUDA_ALLOC_CONF="${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}"',
)
# NCCL across nodes (NCCL user guide, "Environment Variables"): which interface and adapters.
NCCL_LINES = (
    "# NCCL across nodes: set these for your network before the first run (NCCL user guide,",
    "# \"Environment Variables\"); NCCL_DEBUG=INFO prints the transport it picked (NET/IB or NET/Socket).",
    "# export NCCL_SOCKET_IFNAME=eth0   # the interface that reaches the other nodes (`ip addr`)",
    "# export NCCL_IB_HCA=mlx5          # InfiniBand / RoCE adapters to use (`ibstat`)",
    "# export NCCL_IB_DISABLE=1         # only on nodes without InfiniBand: sockets instead",
    "# export NCCL_DEBUG=INFO",
)


def _launch_preamble(summary: str, dataset_dir: str) -> list[str]:
    """The first lines of every launch.sh: what the plan is, where to run it from, the check that
    LLaMA-Factory will find its datasets there, and the allocator setting (ALLOCATOR_LINES).

    It never changes directory: `dataset_dir` and `output_dir` stay relative to where the user
    runs it (LLaMA-Factory opens them from the working directory), while the plan's files are
    found beside the script and passed by absolute path. A folder path with whitespace is refused:
    LLaMA-Factory's launcher joins its arguments with spaces and splits them again for torchrun
    (`launcher.py`)."""
    head = f"# fitplan plan: {comment_text(summary)}" if summary else "# fitplan plan"
    return ["#!/usr/bin/env bash", head,
            "# Run it from the directory dataset_dir and output_dir are relative to (the LLaMA-Factory checkout",
            "# for its demo datasets); it does not change directory. key=value arguments override train.yaml.",
            "set -euo pipefail",
            'PLAN_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"',
            'case "$PLAN_DIR" in *[[:space:]]*)',
            '  echo "launch.sh: move $PLAN_DIR to a path without spaces: llamafactory-cli splits its arguments on'
            ' whitespace" >&2; exit 2;; esac',
            f"DATASET_DIR={shlex.quote(dataset_dir)}",
            'for arg in "$@"; do case "$arg" in dataset_dir=*) DATASET_DIR="${arg#dataset_dir=}";; esac; done',
            'case "$DATASET_DIR" in ONLINE|REMOTE:*) ;; *)  # as LLaMA-Factory data/parser.py reads dataset_dir',
            f'  if [ ! -f "$DATASET_DIR/{DATASET_INFO}" ]; then',
            f'    echo "launch.sh: no $DATASET_DIR/{DATASET_INFO} under $(pwd): run this from the LLaMA-Factory'
            ' checkout, or pass dataset_dir=/path/to/data" >&2; exit 2',
            "  fi;; esac", "", *ALLOCATOR_LINES]


def _visible_devices(gpus: GpuSet, per_node: int) -> list[str]:
    if per_node >= gpus.gpus_per_node:
        return []
    devices = ",".join(str(i) for i in range(per_node))
    return [f"# the plan uses {per_node} of the {gpus.gpus_per_node} GPUs of each node",
            f"export CUDA_VISIBLE_DEVICES={devices}"]


def _run_on_every_node(nodes: int) -> str:
    others = f"1..{nodes - 1} on the others" if nodes > 2 else "1 on the other"
    return f"# run this script on each of the {nodes} nodes: NODE_RANK=0 on the master node, {others}"


def launch_script(gpus: GpuSet, config: TrainConfig, *, summary: str = "",
                  dataset_dir: str = DEFAULT_DATASET_DIR) -> str:
    """`launch.sh`: LLaMA-Factory's CLI under torchrun (FORCE_TORCHRUN=1, which DeepSpeed needs:
    schemas.md A.2 "Please use `FORCE_TORCHRUN=1` to launch DeepSpeed training."). train.yaml
    and ds_config.json go by absolute path (`deepspeed=` is a command-line override, which
    LLaMA-Factory reads after the file: `hparams/parser.py` `OmegaConf.from_cli(sys.argv[2:])`;
    the user's own `key=value` arguments follow it); the rest as `_launch_preamble` says.

    Multi-node uses LLaMA-Factory's documented variables NNODES, NODE_RANK, MASTER_ADDR,
    MASTER_PORT (README "Fine-Tuning" / `llamafactory-cli` `launcher`), run once on every node."""
    nodes, per_node = _node_layout(gpus, config)
    lines = _launch_preamble(summary, dataset_dir) + _visible_devices(gpus, per_node)
    lines.append(f"export FORCE_TORCHRUN=1 NPROC_PER_NODE={per_node}")
    if nodes > 1:
        lines += [_run_on_every_node(nodes),
                  f"export NNODES={nodes}",
                  'export NODE_RANK="${NODE_RANK:?set NODE_RANK (0 on the master node)}"',
                  'export MASTER_ADDR="${MASTER_ADDR:?set MASTER_ADDR to the address of node 0}"',
                  f'export MASTER_PORT="${{MASTER_PORT:-{MASTER_PORT}}}"']
        lines += list(NCCL_LINES)
    command = f'llamafactory-cli train "$PLAN_DIR/{TRAIN_YAML}"'
    if config.zero_stage:
        command += f' deepspeed="$PLAN_DIR/{DS_CONFIG_JSON}"'
    lines.append(command + ' "$@"')
    return "\n".join(lines) + "\n"


def fsdp_launch_script(gpus: GpuSet, config: TrainConfig, *, summary: str = "",
                       dataset_dir: str = DEFAULT_DATASET_DIR) -> str:
    """`launch.sh` of an FSDP plan: `accelerate launch --config_file fsdp_config.yaml -m
    llamafactory.launcher train.yaml`, once per node, as LLaMA-Factory's
    examples/extras/fsdp_qlora/train.sh runs it (llamafactory-cli train would start torchrun
    without the FSDP config). Multi-node passes NODE_RANK, MASTER_ADDR, MASTER_PORT as accelerate's
    flags; the preamble, devices and NCCL lines are launch_script's."""
    nodes, per_node = _node_layout(gpus, config)
    lines = _launch_preamble(summary, dataset_dir) + _visible_devices(gpus, per_node)
    flags = [f'--config_file "$PLAN_DIR/{FSDP_CONFIG_YAML}"']
    if nodes > 1:
        lines += [_run_on_every_node(nodes),
                  'NODE_RANK="${NODE_RANK:?set NODE_RANK (0 on the master node)}"',
                  'MASTER_ADDR="${MASTER_ADDR:?set MASTER_ADDR to the address of node 0}"',
                  f'MASTER_PORT="${{MASTER_PORT:-{MASTER_PORT}}}"']
        lines += list(NCCL_LINES)
        flags += ['--machine_rank "$NODE_RANK"', '--main_process_ip "$MASTER_ADDR"',
                  '--main_process_port "$MASTER_PORT"']
    lines.append(f'accelerate launch {" ".join(flags)} -m {LAUNCH_MODULE} "$PLAN_DIR/{TRAIN_YAML}" "$@"')
    return "\n".join(lines) + "\n"


def llamafactory_files(model: ModelSpec, gpus: GpuSet, config: TrainConfig, placeholders: EmitPlaceholders,
                       reasons: dict[str, str] | None = None) -> dict[str, str]:
    """filename -> content: `train.yaml`, `ds_config.json` (ZeRO 1-3 only) or `fsdp_config.yaml`
    (FSDP only), `launch.sh`.

    `reasons` (TrainConfig field or LLaMA-Factory key -> why) overrides the default comments."""
    problems = rules.hardware_problems(gpus, precision=config.precision, attn=config.attn)
    problems += rules.undocumented_problems(method=config.method, zero_stage=config.zero_stage, offload=config.offload)
    if problems:
        raise InvalidConfigurationError(f"the plan cannot run on {gpus.label()}: {problems[0]}")
    text, _values = train_yaml(model, gpus, config, placeholders, reasons)
    summary = describe_launch(model, gpus, config)
    files = {TRAIN_YAML: text}
    if config.zero_stage:
        files[DS_CONFIG_JSON] = json.dumps(deepspeed_config(config, gpus, fill_auto=False), indent=2) + "\n"
    if config.fsdp_strategy is not None:
        nodes, per_node = _node_layout(gpus, config)
        files[FSDP_CONFIG_YAML] = accelerate_fsdp_config(gpus, config, nodes)
        files[LAUNCH_SH] = fsdp_launch_script(gpus, config, summary=summary,
                                              dataset_dir=placeholders.dataset_dir or DEFAULT_DATASET_DIR)
        return files
    files[LAUNCH_SH] = launch_script(gpus, config, summary=summary,
                                     dataset_dir=placeholders.dataset_dir or DEFAULT_DATASET_DIR)
    return files
