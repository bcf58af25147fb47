"""The memory levers beside Liger (memory/liger.py) and the optimizers (memory/optimizers.py):
offloaded checkpoints, DoRA, PiSSA / rsLoRA / LoRA+, the upcast flags and neat packing (issue 16).
memory/activations.py and memory/peak.py ask these; the trace checks them (solver/oracle/levers.py,
tests/oracle/test_trace_levers.py).

Sources (LLaMA-Factory 0.9.5 unless named; /work/notes/llamafactory/facts.md D.2-D.4):
- `use_unsloth_gc` (`model/model_utils/checkpointing.py:43-77`): each checkpointed layer's input
  goes to host RAM (`.to("cpu", non_blocking=True)`, :55; pinned, PyTorch `_to_copy`
  `pin_out = non_blocking && self.is_cuda() && options.device().is_cpu()`), the layer runs without
  grad, and the input comes back in that layer's backward (:67-68). Only layers with trainable
  parameters go through it (:80-103). So the GPU keeps no checkpoint but the one being
  recomputed; the host keeps every layer's, per GPU process.
- DoRA (peft `tuners/lora/dora.py:66-101`, `variants.py:213-240`): a trainable magnitude per output
  feature of each adapted linear, and in every forward the weight norm recomputed from the full
  weight and the adapter's product (`x_eye` in x in through lora_A, lora_B), detached; autograd
  keeps the base and adapter results for the magnitude products.
- PiSSA (`pissa_init`, peft `layer.py:318-348`): an SVD of each adapted weight at initialisation
  (fp32), then ordinary LoRA tensors: the training step's memory is LoRA's.
- rsLoRA (`use_rslora`, peft `layer.py:200-201`): scaling `alpha / sqrt(r)`, a scalar.
- LoRA+ (`loraplus_lr_ratio`, `train/trainer_utils.py:372-409`): four parameter groups with
  their own learning rates; the same states.
- `upcast_layernorm` (`checkpointing.py:151-155`): 1-D norm weights in fp32.
- `upcast_lmhead_output` (`checkpointing.py:137-140, 180-184`): lm_head's output cast to fp32 by
  a forward hook (nothing under Liger's fused loss, which never calls lm_head).
- `neat_packing` without FlashAttention-2 (`data/collator.py:480-531`): a (batch, 1, L, L)
  block-diagonal causal mask in the compute dtype.
"""

from __future__ import annotations

from ..problem.config import TrainConfig
from ..problem.knobs import Attention
from ..specs.model import LinearModule, ModelSpec
from ..units import FP32_BYTES

# DoRA, settled by the trace of peft's own DoRA (qwen2/llama-shaped lora sdpa, with and without
# checkpointing, with --liger so the layers' moments are the peak):
# - saved per token per adapted linear: the base and the adapter output (`result_dora` products,
#   dora.py:99), 2 x the compute dtype per output feature (+43.5 KB/token on qwen2-shaped nockpt
#   = 4.02 B x 10,800 adapted outputs);
# - per forward of a layer: the weight norm's buffers of its largest adapted linear: `x_eye`
#   (in x in, the adapter dtype), the adapter product and the combined weight (in x out), about
#   4 in^2 + 10 in out bytes with fp32 adapters (qwen2-shaped down_proj 1352 x 256: 9.3 MB
#   traced, 10.8 MB here; llama-shaped 688 x 256: 3.4 MB traced, 3.7 MB here).
DORA_SAVED_OUTPUTS = 2
DORA_NORM_BYTES_PER_IN_OUT = 10

UNSLOTH_SOURCE = ("LLaMA-Factory 0.9.5 model/model_utils/checkpointing.py:55-59 (layer input to pinned host RAM), "
                  ":67-68 (back in that layer's backward)")
UNSLOTH_SUMMARY = ("offloaded checkpoints (use_unsloth_gc): every layer's checkpointed input lives in pinned host RAM "
                   "and crosses PCIe twice per micro-step; the GPU keeps only the one being recomputed")
DORA_SOURCE = "peft tuners/lora/dora.py:66-101, variants.py:213-240 (traced with peft's own DoRA)"
DORA_SUMMARY = ("DoRA (use_dora): a trainable magnitude per adapted output feature; each forward recomputes the "
                "weight norms and keeps the base and adapter outputs for the magnitude products")
PISSA_SUMMARY = ("PiSSA (pissa_init): an fp32 SVD of each adapted weight at start-up, then LoRA's tensors: the same "
                 "training memory as LoRA (peft tuners/lora/layer.py:318-348)")
RSLORA_SUMMARY = "rsLoRA (use_rslora): scaling alpha / sqrt(r), a scalar: no memory change (peft tuners/lora/layer.py:200-201)"
LORAPLUS_SUMMARY = ("LoRA+ (loraplus_lr_ratio): B matrices at a higher learning rate, four parameter groups, the "
                    "same optimizer states: no memory change (LLaMA-Factory train/trainer_utils.py:372-409)")
UPCAST_SOURCE = "LLaMA-Factory 0.9.5 model/model_utils/checkpointing.py:137-140, 151-155, 180-184 (traced)"
UPCAST_LAYERNORM_SUMMARY = "upcast_layernorm: the 1-D norm weights in fp32"
UPCAST_LMHEAD_SUMMARY = "upcast_lmhead_output: lm_head's output cast to fp32 by a forward hook"
NEAT_PACKING_SOURCE = "LLaMA-Factory 0.9.5 data/collator.py:93, 524-525 prepare_4d_attention_mask"
NEAT_PACKING_SUMMARY = ("neat_packing without FlashAttention-2: a (batch, 1, L, L) block-diagonal mask in the compute "
                        "dtype (with fa2 it is dropped and sequence boundaries come from position_ids)")


def offloads_checkpoints(config: TrainConfig) -> bool:
    return config.unsloth_gc and config.grad_ckpt


def checkpoint_host_bytes(model: ModelSpec, config: TrainConfig, checkpoint_bytes_per_token: int,
                          gpus_per_node: int) -> int:
    """Pinned host RAM per node for offloaded checkpoints: every layer's input, per GPU process
    of the node, at the config's micro batch."""
    if not offloads_checkpoints(config):
        return 0
    per_process = model.num_layers * config.micro_batch * config.seq_len * checkpoint_bytes_per_token
    return per_process * min(config.n_gpus, gpus_per_node)


def dora_saved_per_token(targets: list[LinearModule], compute_bytes: int) -> int:
    """What DoRA adds to one layer's saved tensors per token (the base and adapter outputs)."""
    return sum(DORA_SAVED_OUTPUTS * compute_bytes * m.out_features * m.count for m in targets)


def dora_weight_norm_bytes(targets: list[LinearModule], adapter_bytes: int) -> int:
    """The weight-norm recompute's buffers while one adapted linear runs its forward."""
    scale = adapter_bytes / FP32_BYTES
    return int(max((adapter_bytes * m.in_features ** 2 + scale * DORA_NORM_BYTES_PER_IN_OUT * m.in_features
                    * m.out_features) for m in targets)) if targets else 0


def neat_packing_mask_per_token(config: TrainConfig, compute_bytes: int) -> int:
    """The block-diagonal 4D mask per token (L x L per sample / L tokens), without FA2."""
    if not config.neat_packing or config.attn == Attention.fa2:
        return 0
    return compute_bytes * config.seq_len
