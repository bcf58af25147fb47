"""The load: what a GPU and a node's host RAM hold before step 1, while LLaMA-Factory 0.9.5
(transformers 5.6, DeepSpeed 0.19.8) loads the checkpoint. Many out-of-memory reports happen
here, not in training.

What the code does (read in /work/main/.lfvenv; not run on a GPU):
- ZeRO-3 builds the model under `deepspeed.zero.Init`, partitioned as it is made, only when the
  model is not quantized: `needs_zero3_init = is_deepspeed_zero3_enabled() and not _is_quantized`
  (transformers modeling_utils.py:1525; get_init_context :3651-3665). A bitsandbytes QLoRA base
  and a pre-quantized checkpoint that LLaMA-Factory dequantizes at load (MXFP4 gpt-oss, FP8
  DeepSeek-V3: `Mxfp4Config(dequantize=True)` / `FineGrainedFP8Config(dequantize=True)`,
  LF model/model_utils/quantization.py:103-116, still a quantizer) are built whole instead.
  - bitsandbytes puts the whole quantized model on the rank's GPU when no device_map is given
    (quantizers/quantizer_bnb_4bit.py:102-105; LF sets none under ZeRO-3, quantization.py:184-192);
  - a dequantized checkpoint is loaded whole into the rank's host RAM in bf16 (no device_map under
    ZeRO-3, LF model/patcher.py:373-376), then DeepSpeed moves the whole module to the GPU before
    its ZeRO-3 optimizer partitions it (deepspeed runtime/engine.py:2077-2094: `self.module.to(
    self.device)` unless the model was made under zero.Init).
  So each GPU holds the whole model once, before any sharding: the `load` moment (peft's ZeRO-3
  + QLoRA caveats and bitsandbytes #1249 / peft #1844 report the same: "parameters are fully
  loaded on each GPU before sharding").
- Under zero.Init every rank merges all checkpoint files into one state dict on the CPU
  (modeling_utils.py:4294-4306). safetensors are memory-mapped (load_state_dict :341-353;
  checked with safetensors 0.8: file-backed pages, not anonymous memory), so the node's page
  cache holds the files once and the kernel can drop them: not counted. But where the checkpoint
  stores experts one by one (Mixtral and Qwen2-MoE layouts and the types mapped onto them,
  conversion_mapping.py:42-58, 209, 236), each rank stacks them into the fused 3-D tensors in
  new memory (integrations/deepspeed.py:383-420): every rank of a node holds all experts' 16-bit
  weights once more.
- Without ZeRO-3 LLaMA-Factory loads each rank straight onto its GPU (device_map {"": device},
  LF hparams/parser.py:517), which is the training layout: no peak beyond training's.
"""

from __future__ import annotations

from ..problem.config import TrainConfig
from ..specs.model import ModelSpec
from ..units import FP32_BYTES, HALF_BYTES
from .params import trainable_params
from .states import frozen_base_bytes
from .terms import Moment, Term, fixed

PHASE_LOAD = "load (before step 1)"
# Checkpoints whose experts transformers 5 fuses at load (conversion_mapping.py: the "mixtral" and
# "qwen2_moe" conversions and the model types mapped onto them).
EXPERTS_FUSED_AT_LOAD = frozenset({"mixtral", "qwen2_moe", "qwen3_moe", "deepseek_v2", "deepseek_v3", "glm4_moe"})


def built_whole_under_zero3(model: ModelSpec, config: TrainConfig) -> bool:
    """ZeRO-3 without zero.Init: a bitsandbytes base or a checkpoint dequantized at load."""
    return config.zero_stage == 3 and (config.bits != 16 or model.checkpoint_quantization is not None)


def loaded_whole_bytes(model: ModelSpec, config: TrainConfig) -> float:
    """One GPU's bytes when the whole model sits on it before ZeRO-3 partitions it: the quantized
    base (bitsandbytes) or every parameter in bf16 (dequantized checkpoint), plus peft's fp32
    adapters."""
    adapters = trainable_params(model, config) * FP32_BYTES if config.uses_lora else 0
    if config.bits != 16:
        return frozen_base_bytes(model, config) + adapters
    return model.total_params() * HALF_BYTES + adapters


def load_moment(model: ModelSpec, config: TrainConfig) -> Moment | None:
    """The load as a peak candidate on the GPU, when it holds more than training will."""
    if not built_whole_under_zero3(model, config):
        return None
    return Moment(name="load", phase=PHASE_LOAD,
                  terms={Term.weights_loaded_whole: fixed(loaded_whole_bytes(model, config))})


def load_host_ram_bytes(model: ModelSpec, config: TrainConfig, gpus_per_node: int) -> float:
    """Host RAM per node the load takes beyond the (reclaimable) page cache: every rank's bf16
    copy of a dequantized checkpoint, or every rank's fused experts under zero.Init."""
    if config.zero_stage != 3:
        return 0.0
    ranks = min(config.n_gpus, gpus_per_node)
    if config.bits == 16 and model.checkpoint_quantization is not None:
        return ranks * model.total_params() * HALF_BYTES
    if config.bits == 16 and model.model_type in EXPERTS_FUSED_AT_LOAD:
        return ranks * model.expert_params_total() * HALF_BYTES
    return 0.0
