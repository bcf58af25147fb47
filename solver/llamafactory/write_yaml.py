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
  llamafactory/vocabulary.py).
- ZeRO 0 -> no `deepspeed:` key (plain DDP); 1-3 -> `deepspeed: ds_config.json`.
- FSDP -> no `deepspeed:` key; `fsdp_config.yaml` and an `accelerate launch` launch.sh
  (llamafactory/write_accelerate.py).
"""

from __future__ import annotations

import json
import math

from pydantic import BaseModel, ConfigDict

from ..errors import InvalidConfigurationError
from ..problem import rules
from ..problem.config import TrainConfig, describe_launch
from ..problem.knobs import Attention, Method, Optimizer, Precision
from ..specs.gpu import GpuSet
from ..specs.model import Family, ModelSpec
from .vocabulary import HF_OPTIM, KNOB_KEY, LF_FLASH_ATTN
from .write_accelerate import FSDP_CONFIG_YAML, accelerate_fsdp_config, fsdp_launch_script
from .write_deepspeed import deepspeed_config

TRAIN_YAML = "train.yaml"
DS_CONFIG_JSON = "ds_config.json"
LAUNCH_SH = "launch.sh"

# LLaMA-Factory examples: 1.0e-4 for LoRA (train_lora), 1.0e-5 for full (train_full).
LEARNING_RATE_ADAPTER = 1.0e-4
LEARNING_RATE_FULL = 1.0e-5
DEFAULT_DATASET = "identity,alpaca_en_demo"  # LF's demo datasets, shipped in its data/ folder
MASTER_PORT = 29500


class EmitPlaceholders(BaseModel):
    """What fitplan cannot know; None = a marked placeholder."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str | None = None
    template: str | None = None
    model_path: str | None = None
    output_dir: str | None = None


def default_template(model: ModelSpec) -> str:
    """LLaMA-Factory's chat template for the model's family (`data/template.py` names)."""
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
        self.lines.append(f"{line}  # {why}" if why else line)

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
        "attn": {Attention.fa2: f"FlashAttention-2 (compute capability {gpu.compute_capability} >= 8.0)",
                 Attention.sdpa: "PyTorch SDPA" + ("" if gpu.flash_attention_2 else
                                                  f" (no FlashAttention-2 below compute capability 8.0; "
                                                  f"{gpu.name} has {gpu.compute_capability})"),
                 Attention.eager: "eager attention (the plan uses no fused kernel)"}[config.attn],
        "zero_stage": f"DeepSpeed ZeRO-{config.zero_stage}" if config.zero_stage else "",
        "optim": "fused AdamW: in-place step, no extra fp32 temporaries" if config.optim == Optimizer.adamw
                 else f"{config.optim.value} optimizer of the plan",
        "precision": {Precision.bf16: f"bf16 mixed precision ({gpu.name} has bf16 hardware)",
                      Precision.fp16: f"fp16 mixed precision: {gpu.name} has no bf16 hardware"
                      if not gpu.bf16_hardware else "fp16 mixed precision",
                      Precision.pure_bf16: "pure bf16: bf16 parameters and optimizer states, no AMP",
                      Precision.fp32: "fp32"}[config.precision],
        "bits": f"{config.bits}-bit bitsandbytes base weights (QLoRA)",
        "packing": "samples packed to exactly cutoff_len tokens, as planned",
    }
    return reasons


# ---- the three files -----------------------------------------------------------------------------

def train_yaml(model: ModelSpec, gpus: GpuSet, config: TrainConfig, placeholders: EmitPlaceholders,
               reasons: dict[str, str] | None = None) -> tuple[str, dict[str, object]]:
    """The LLaMA-Factory training YAML: (text, the key -> value mapping it holds)."""
    why = {**default_reasons(model, gpus, config), **(reasons or {})}
    y = _Yaml()
    y.section("model")
    model_path = placeholders.model_path or model.hf_id or model.name
    y.key("model_name_or_path", model_path,
          "" if placeholders.model_path else "PLACEHOLDER: Hub id or local path of the weights (--model-path)")
    y.key("trust_remote_code", True, "needed by Qwen1/Baichuan/ChatGLM code; harmless for others")
    if config.method == Method.qlora:
        y.knob("bits", config.bits, why)
        y.key("quantization_method", "bnb", "bitsandbytes on-the-fly quantization")
        y.key("double_quantization", True, "NF4 constants quantized too, as planned")
    y.knob("attn", LF_FLASH_ATTN[config.attn], why)
    if not config.grad_ckpt:
        y.knob("grad_ckpt", True, why)

    y.section("method")
    y.key("stage", "sft", "supervised fine-tuning")
    y.key("do_train", True)
    y.knob("method", "lora" if config.uses_lora else config.method.value, why)
    if config.uses_lora:
        y.knob("lora_rank", config.lora_rank, why)
        y.knob("lora_targets", ",".join(config.lora_targets), why)
    if config.method == Method.freeze:
        y.knob("freeze_layers", config.freeze_layers, why)
        y.key("freeze_trainable_modules", "all", "every module of those layers trains")
    if config.zero_stage:
        y.knob("zero_stage", DS_CONFIG_JSON, why)
    if config.fsdp_strategy is not None:
        y.lines.append("# FSDP: sharding, CPU offload and mixed precision are in fsdp_config.yaml (accelerate launch)")

    y.section("dataset")
    y.key("dataset", placeholders.dataset or DEFAULT_DATASET,
          "" if placeholders.dataset else "PLACEHOLDER: names from data/dataset_info.json (--dataset)")
    y.key("template", placeholders.template or default_template(model),
          "" if placeholders.template else "PLACEHOLDER: the model's chat template (--template)")
    y.knob("seq_len", config.seq_len, why)
    if config.packing:
        y.knob("packing", True, why)
    elif config.mean_sample_len:
        y.lines.append(f"# memory planned for samples of {config.mean_sample_len} tokens on average "
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
    y.knob("optim", HF_OPTIM[config.optim], why)
    precision_why = why.get("precision", "")
    if config.precision == Precision.bf16:
        y.key("bf16", True, precision_why)
    elif config.precision == Precision.fp16:
        y.key("fp16", True, precision_why)
    elif config.precision == Precision.pure_bf16:
        y.key("pure_bf16", True, precision_why)
    else:
        y.lines.append("# fp32: neither bf16 nor fp16; LLaMA-Factory then loads the checkpoint's own dtype")
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


def launch_script(gpus: GpuSet, config: TrainConfig, *, summary: str = "") -> str:
    """`launch.sh`: LLaMA-Factory's CLI under torchrun (FORCE_TORCHRUN=1, which DeepSpeed needs:
    schemas.md A.2 "Please use `FORCE_TORCHRUN=1` to launch DeepSpeed training.").

    Multi-node uses LLaMA-Factory's documented variables NNODES, NODE_RANK, MASTER_ADDR,
    MASTER_PORT (README "Fine-Tuning" / `llamafactory-cli` `launcher`), run once on every node."""
    nodes, per_node = _node_layout(gpus, config)
    lines = ["#!/usr/bin/env bash", f"# fitplan plan: {summary}" if summary else "# fitplan plan",
             "set -euo pipefail", 'cd "$(dirname "$0")"  # train.yaml names ds_config.json relative to here', ""]
    if per_node < gpus.gpus_per_node:
        devices = ",".join(str(i) for i in range(per_node))
        lines.append(f"# the plan uses {per_node} of the {gpus.gpus_per_node} GPUs of each node")
        lines.append(f"export CUDA_VISIBLE_DEVICES={devices}")
    lines.append(f"export FORCE_TORCHRUN=1 NPROC_PER_NODE={per_node}")
    if nodes > 1:
        others = f"1..{nodes - 1} on the others" if nodes > 2 else "1 on the other"
        lines += [f"# run this script on each of the {nodes} nodes: NODE_RANK=0 on the master node, {others}",
                  f"export NNODES={nodes}",
                  'export NODE_RANK="${NODE_RANK:?set NODE_RANK (0 on the master node)}"',
                  'export MASTER_ADDR="${MASTER_ADDR:?set MASTER_ADDR to the address of node 0}"',
                  f'export MASTER_PORT="${{MASTER_PORT:-{MASTER_PORT}}}"']
    lines.append(f"llamafactory-cli train {TRAIN_YAML}")
    return "\n".join(lines) + "\n"


def llamafactory_files(model: ModelSpec, gpus: GpuSet, config: TrainConfig, placeholders: EmitPlaceholders,
                       reasons: dict[str, str] | None = None) -> dict[str, str]:
    """filename -> content: `train.yaml`, `ds_config.json` (ZeRO 1-3 only) or `fsdp_config.yaml`
    (FSDP only), `launch.sh`.

    `reasons` (TrainConfig field or LLaMA-Factory key -> why) overrides the default comments."""
    problems = rules.hardware_problems(gpus, precision=config.precision, attn=config.attn)
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
        files[LAUNCH_SH] = fsdp_launch_script(model, gpus, config, nodes=nodes, per_node=per_node,
                                              train_yaml=TRAIN_YAML, master_port=MASTER_PORT)
        return files
    files[LAUNCH_SH] = launch_script(gpus, config, summary=summary)
    return files
