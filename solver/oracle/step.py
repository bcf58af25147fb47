"""The trace oracle: runs one real training step of Hugging Face model code on fake tensors on
the CPU and measures the tensor memory it holds, the way `torch.cuda.max_memory_allocated`
would on a GPU. It is the ground truth the memory formula (`solver/memory/estimate.py`) is held to.

What the trace mimics, per `TrainConfig.precision` (LLaMA-Factory + HF Trainer on a GPU):
- bf16 / fp16: the model is loaded in that dtype, trainable parameters are upcast to fp32
  (LLaMA-Factory model/adapter.py), and the forward including the loss runs under
  `torch.autocast` (accelerate wraps `model.forward`, then converts the outputs to fp32).
- pure_bf16: everything bf16, no autocast.  fp32: everything fp32.
Then backward, `clip_grad_norm_(1.0)` (HF Trainer's default max_grad_norm), AdamW, and
`zero_grad(set_to_none=True)`; twice, and the second (steady-state) step is reported.

torch is imported only inside the functions here, so `estimate` and `recommend` never need it;
`TraceResult` can be imported without torch.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..problem.config import TrainConfig
from ..problem.knobs import Method, Precision
from ..specs.model import ModelSpec

OptimizerImpl = Literal["foreach", "fused"]

# The formula assumes HF's default optimizer, `adamw_torch_fused` (HF Trainer >= 4.x default on
# CUDA), so the default trace does too. `foreach` adds a 4-byte-per-trainable-parameter
# `_foreach_sqrt` temporary during the step (the trace shows it; see the report).
DEFAULT_OPTIMIZER_IMPL: OptimizerImpl = "fused"

MAX_GRAD_NORM = 1.0  # HF TrainingArguments.max_grad_norm default

TRACE_CANNOT_SEE = (
    "CUDA context (driver, kernels, cuBLAS/cuDNN handles: ~0.3-1 GiB per process, outside the allocator)",
    "caching-allocator reserve and fragmentation (max_memory_reserved - max_memory_allocated; "
    "only the 512-B block rounding is modelled)",
    "kernel workspaces that are not op outputs: flash-attention backward's fp32 dq accumulator, "
    "cuBLAS/cuBLASLt workspaces",
    "NCCL, DDP bucket, FSDP and DeepSpeed ZeRO buffers (the trace is one process, one GPU)",
    "bitsandbytes 4/8-bit kernels (QLoRA is traced with a 16-bit base) and 8-bit optimizers",
    "Liger's Triton kernels themselves (their allocation pattern is traced: solver/oracle/liger.py), "
    "torch.compile and other custom kernels",
    "data-dependent memory: padding, packing (fakes carry no values; MoE routing changes nothing under "
    "transformers' grouped_mm, which keeps tokens x top-k rows whatever the routing)",
    "flash-linear-attention and other Triton kernels (Qwen3-Next's linear attention is not modelled)",
)


class TraceResult(BaseModel):
    """Tensor memory of one steady-state training step, as traced. Bytes, rounded per storage
    to the CUDA caching allocator's 512-B blocks."""

    model_config = ConfigDict(frozen=True)

    model: str
    config: dict
    hf_class: str
    attn_implementation: str
    optimizer_impl: OptimizerImpl
    fake: bool = True
    traced_peak_bytes: int
    peak_phase: str  # forward / backward / optimizer
    peak_op: str  # the aten op whose output made the peak
    peak_layer: str  # "embed", "layer 12", "head" or "" (optimizer)
    phase_peaks_bytes: dict[str, int]
    region_peaks_bytes: dict[str, int]  # "forward/head", "backward/layer 0", "optimizer", ...
    breakdown_bytes: dict[str, int]  # category -> bytes live at the peak (the formula's terms)
    activations_by_region_bytes: dict[str, int]  # at the peak: "embed", "layer 0", ..., "head"
    trainable_params: int
    frozen_params: int
    micro_steps_per_step: int
    elapsed_s: float
    notes: list[str] = Field(default_factory=list)
    world_size: int = 1  # ranks of the (fake) process group: > 1 for an FSDP trace (oracle/fsdp_step.py)
    # Only with record_events=True: the tracker's allocation log (StorageTracker.events).
    events: list[tuple] | None = Field(default=None, exclude=True)
    cannot_see: list[str] = Field(default_factory=lambda: list(TRACE_CANNOT_SEE))


class TraceUnavailableError(RuntimeError):
    """torch / transformers / peft are not installed."""


def require_trace_dependencies() -> None:
    """Raises TraceUnavailableError with the install line if the [trace] extra is missing."""
    try:
        # torch first: transformers, which peft imports, prints a warning without it (not sorted)
        import torch  # noqa: F401, I001
        import transformers  # noqa: F401
        import peft  # noqa: F401
    except ImportError as exc:
        raise TraceUnavailableError(
            f"fitplan trace needs torch, transformers and peft ({exc.name} is missing): "
            "install with pip install 'fitplan[trace]'") from None


@contextmanager
def _no_packed_sequence_detection():
    """HF 5 treats FakeTensors as tracing and then assumes packed sequences, materializing the
    4D mask and dropping SDPA's is_causal (pitfall P2). A real unpadded batch is not packed."""
    import transformers.masking_utils as mu

    original = mu.find_packed_sequence_indices
    mu.find_packed_sequence_indices = lambda position_ids: None
    try:
        yield
    finally:
        mu.find_packed_sequence_indices = original


def _autocast_dtype(config: TrainConfig):
    import torch

    return {Precision.bf16: torch.bfloat16, Precision.fp16: torch.float16}.get(config.precision)


def trace_training_step(model: ModelSpec, config: TrainConfig, *, optimizer_impl: OptimizerImpl | None = None,
                        fake: bool = True, seed: int = 0, record_events: bool = False) -> TraceResult:
    """Traces two optimizer steps (each `grad_accum` micro-steps) of `model` under `config` and
    reports the second. `fake=False` runs on real CPU tensors (tiny models only): the tracker
    must then give the same bytes, which is how the fake trace is validated. `record_events`
    keeps the ordered allocation log, marked "step S micro K" and "step S optimizer"."""
    require_trace_dependencies()
    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode

    from .build import build_model, materialize
    from .tracker import GRADIENTS, TRAINABLE, TRANSIENT, WEIGHTS, StorageTracker

    impl: OptimizerImpl = optimizer_impl or DEFAULT_OPTIMIZER_IMPL
    started = time.perf_counter()
    built = build_model(model, config)
    hf = built.model
    notes = list(built.notes)
    if config.zero_stage or config.n_gpus > 1 or config.offload.value != "none":
        notes.append("Traced as one process on one GPU: ZeRO sharding, offload and data-parallel "
                     "buffers are not traced (the formula handles them).")
    if config.optim.value != "adamw":
        notes.append(f"optim {config.optim.value} traced as torch AdamW ({impl}); its states differ.")

    mode = FakeTensorMode() if fake else None
    torch.manual_seed(seed)

    def empty(shape, dtype):
        return torch.empty(shape, dtype=dtype, device="cpu") if fake else torch.zeros(shape, dtype=dtype)

    def in_mode():
        return mode if mode is not None else _null()

    with in_mode():
        materialize(hf, empty)
        trainable = [p for p in hf.parameters() if p.requires_grad]
        input_ids = torch.randint(0, model.vocab_size, (config.micro_batch, config.seq_len))
        kwargs = {"fused": True} if impl == "fused" else {"foreach": True}
        optimizer = torch.optim.AdamW(trainable, lr=1e-5, **kwargs)

    tracker = StorageTracker()
    tracker.record_from_step = 2
    if record_events:
        tracker.record_events()
    tracker.param_shapes = {(tuple(p.shape), p.dtype) for p in trainable if p.dim() >= 2}
    seen: set[int] = set()
    for p in hf.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            tracker.track(p, TRAINABLE if p.requires_grad else WEIGHTS)
    for b in hf.buffers():
        tracker.track(b, WEIGHTS)
    tracker.track(input_ids, TRANSIENT)
    hooks = _install_region_hooks(built, tracker)
    for p in trainable:
        hooks.append(p.register_post_accumulate_grad_hook(lambda param: tracker.retag(param.grad, GRADIENTS)))

    amp = _autocast_dtype(config)
    loss_scale = 65536.0 if config.precision == Precision.fp16 else None
    try:
        with _no_packed_sequence_detection(), in_mode(), tracker:
            for step in (1, 2):
                tracker.step = step
                for micro in range(config.grad_accum):
                    tracker.mark(f"step {step} micro {micro}")
                    tracker.phase, tracker.region = "forward", "embed"
                    loss = _forward_loss(hf, input_ids, amp)
                    if config.grad_accum > 1:
                        loss = loss / config.grad_accum
                    if loss_scale is not None:
                        loss = loss * loss_scale  # GradScaler.scale
                    tracker.phase, tracker.region = "backward", "head"
                    loss.backward()
                    del loss
                tracker.mark(f"step {step} optimizer")
                tracker.phase, tracker.region = "optimizer", ""
                grads = [p.grad for p in trainable if p.grad is not None]
                if loss_scale is not None:
                    found_inf = torch.zeros((), dtype=torch.float32)
                    torch._amp_foreach_non_finite_check_and_unscale_(
                        grads, found_inf, torch.full((), 1.0 / loss_scale, dtype=torch.float32))
                    del found_inf
                del grads
                torch.nn.utils.clip_grad_norm_(trainable, MAX_GRAD_NORM, foreach=True)
                step_and_label_states(optimizer, tracker)
    finally:
        for h in hooks:
            h.remove()
        tracker.detach_all()

    if config.method == Method.qlora:
        pass  # note added by build_model
    peak = tracker.peak
    n_trainable = sum(p.numel() for p in trainable)
    n_total = sum(p.numel() for p in {id(p): p for p in hf.parameters()}.values())
    return TraceResult(
        model=model.name, config=config.model_dump(mode="json"), hf_class=built.hf_class,
        attn_implementation=built.attn_implementation, optimizer_impl=impl, fake=fake,
        traced_peak_bytes=peak.bytes, peak_phase=peak.phase, peak_op=peak.op, peak_layer=peak.layer,
        phase_peaks_bytes=dict(tracker.phase_peaks), region_peaks_bytes=dict(tracker.region_peaks), breakdown_bytes=peak.breakdown,
        activations_by_region_bytes=peak.activations_by_region,
        trainable_params=n_trainable, frozen_params=n_total - n_trainable,
        micro_steps_per_step=config.grad_accum, elapsed_s=round(time.perf_counter() - started, 3),
        notes=notes, events=tracker.events)


def step_and_label_states(optimizer, tracker) -> None:
    """The optimizer step, its states labelled as such, and `zero_grad(set_to_none=True)`."""
    import torch

    from .tracker import OPTIMIZER_STATES

    optimizer.step()
    for state in optimizer.state.values():
        for value in state.values():
            if isinstance(value, torch.Tensor):
                tracker.retag(value, OPTIMIZER_STATES)
    optimizer.zero_grad(set_to_none=True)


@contextmanager
def _null():
    yield


def _forward_loss(hf, input_ids, amp_dtype):
    """The forward as HF Trainer + accelerate run it: under autocast for AMP, outputs converted
    to fp32 (accelerate `convert_outputs_to_fp32`), only the loss kept."""
    import torch

    if amp_dtype is None:
        return hf(input_ids=input_ids, labels=input_ids, use_cache=False).loss
    with torch.autocast("cpu", dtype=amp_dtype):
        out = hf(input_ids=input_ids, labels=input_ids, use_cache=False)
    logits = out.logits.float() if out.logits is not None else None  # accelerate's convert_outputs_to_fp32
    loss = out.loss.float()
    del logits, out
    return loss


def _install_region_hooks(built, tracker, *, prepend: bool = False) -> list:
    """Tells the tracker where in the model the current op runs. Decoder layers are hooked on
    their children too, because HF 5 checkpoints `forward` (not `__call__`), so only the
    children's hooks run again in the recompute (pitfall P8). Backward enters layer k when the
    gradient of its output is computed. `prepend` runs the region hooks before hooks already
    there (FSDP's pre-forward, which gathers the layer, then counts as the layer's)."""
    hooks = []

    def set_region(name):
        def hook(module, args, kwargs=None):
            tracker.region = name
        return hook

    hooks.append(built.embed_tokens.register_forward_pre_hook(set_region("embed"), prepend=prepend))
    for k, layer in enumerate(built.decoder_layers):
        name = f"layer {k}"
        hooks.append(layer.register_forward_pre_hook(set_region(name), prepend=prepend))
        for child in layer.children():
            hooks.append(child.register_forward_pre_hook(set_region(name)))

        def on_output(module, args, output, name=name):
            out = output[0] if isinstance(output, tuple) else output
            if tracker.phase == "forward" and getattr(out, "requires_grad", False):
                def entering_backward(grad, name=name):
                    tracker.region = name
                out.register_hook(entering_backward)
        hooks.append(layer.register_forward_hook(on_output))
    # The final norm counts with the activations (the formula's saved_activations_per_token);
    # the head starts at lm_head.
    hooks.append(built.lm_head.register_forward_pre_hook(set_region("head")))
    return hooks
