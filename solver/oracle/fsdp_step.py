"""The FSDP trace: one FSDP2 (`fully_shard`) training step of the real Hugging Face model code on
fake tensors, in ONE process, as rank 0 of PyTorch's fake process group of `n_gpus` ranks
(torch.testing._internal.distributed.fake_pg: collectives return at once, but their input and
output tensors are real allocations a TorchDispatchMode sees; torch's own FSDPMemTracker is built
on it). What rank 0 holds is what every rank holds.

The model is prepared as LLaMA-Factory 0.9.5 + accelerate 1.11 prepare it (the versions it pins):
- LLaMA-Factory: gradient checkpointing non-reentrant (forced under FSDP2,
  model_utils/checkpointing.py:157-162), LoRA or freezing, trainable parameters upcast to fp32
  (oracle/build.py);
- accelerate 1.11 `fsdp2_prepare_model` (utils/fsdp_utils.py:602-716): `fully_shard` on every
  decoder layer (TRANSFORMER_BASED_WRAP, the model's `_no_split_modules`), then on the root, each
  with `reshard_after_forward` (FULL_SHARD: true, SHARD_GRAD_OP: false) and
  `MixedPrecisionPolicy(param_dtype, reduce_dtype, output_dtype)` = the 16-bit dtype
  (`set_mixed_precision`); then `model.to(torch.float32)`;
- no autocast: accelerate never passes an FSDP2 model through `prepare_model` (accelerator.py
  `_prepare_fsdp2`), so mixed precision is the policy alone.
Then forward, backward, `clip_grad_norm_(1.0)`, AdamW, `zero_grad`; twice, the second reported.
Gradient accumulation runs all micro-steps but the last without gradient sync, as accelerate's
`no_sync` does for FSDP2 (`set_requires_gradient_sync(False)`).

Not traced: CPU offload (host and device are one here), FSDP1, HYBRID_SHARD / NO_SHARD (FSDP2 has
neither under accelerate 1.11), bitsandbytes (no fake kernels). See docs/fsdp.md.
"""

from __future__ import annotations

import time
from contextlib import contextmanager, nullcontext

from ..errors import InvalidConfigurationError
from ..problem.config import TrainConfig
from ..problem.knobs import FsdpStrategy, Method, Offload, Precision
from ..specs.model import ModelSpec
from .step import (
    DEFAULT_OPTIMIZER_IMPL,
    MAX_GRAD_NORM,
    OptimizerImpl,
    TraceResult,
    _install_region_hooks,
    _no_packed_sequence_detection,
    require_trace_dependencies,
)

FSDP_TRACE_CANNOT_SEE = (
    "CUDA context, caching-allocator reserve and fragmentation (only the 512-B block rounding is modelled)",
    "NCCL buffers and the CUDA streams FSDP overlaps its collectives on (one stream here)",
    "CPU offload (host and device are the same memory here)",
    "bitsandbytes 4/8-bit kernels (QLoRA is traced with a 16-bit base) and 8-bit optimizers",
    "data-dependent memory: padding, packing, MoE routing (fakes carry no values)",
)


def fsdp_trace_problem(config: TrainConfig) -> str | None:
    """Why this configuration cannot be traced as an FSDP2 step, or None."""
    if config.fsdp_strategy is None:
        return "not an FSDP configuration: use --sharding fsdp"
    if config.fsdp_version != 2:
        return ("the FSDP trace runs FSDP2 (fully_shard), what torch's fake process group supports best: "
                "add --fsdp-version 2 (FSDP1 is modelled by formula, docs/fsdp.md)")
    if config.fsdp_strategy not in (FsdpStrategy.full_shard, FsdpStrategy.shard_grad_op):
        return f"FSDP2 has no {config.fsdp_strategy.value}: trace full_shard or shard_grad_op"
    if config.n_gpus < 2:
        return "an FSDP trace needs --n-gpus 2 or more (the fake process group's world size)"
    if config.offload != Offload.none:
        return "CPU offload cannot be traced on a CPU, where host and device are one memory: --offload none"
    if config.precision not in (Precision.bf16, Precision.fp16):
        return "FSDP is traced with bf16 or fp16 mixed precision"
    return None


@contextmanager
def fake_process_group(world_size: int):
    """Rank 0 of a fake process group of `world_size` ranks, torn down afterwards."""
    import torch.distributed as dist
    from torch.testing._internal.distributed.fake_pg import FakeStore

    if dist.is_initialized():
        raise RuntimeError("a torch.distributed process group is already initialized in this process")
    dist.init_process_group("fake", rank=0, world_size=world_size, store=FakeStore())
    try:
        yield
    finally:
        dist.destroy_process_group()


def _param_dtype(config: TrainConfig):
    import torch

    return torch.float16 if config.precision == Precision.fp16 else torch.bfloat16


def _shard_like_accelerate(built, config: TrainConfig, mesh) -> None:
    """accelerate 1.11 `fsdp2_prepare_model` (module docstring)."""
    import torch
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    dtype = _param_dtype(config)
    kwargs = dict(mesh=mesh, reshard_after_forward=config.fsdp_strategy == FsdpStrategy.full_shard,
                  mp_policy=MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=dtype, output_dtype=dtype))
    for layer in built.decoder_layers:
        fully_shard(layer, **kwargs)
    fully_shard(built.model, **kwargs)
    built.model.to(torch.float32)  # fsdp_utils.py:702-707: the whole model, after sharding


def _param_groups(model) -> list:
    groups = []
    for module in model.modules():
        state_of = getattr(module, "_get_fsdp_state", None)
        group = state_of()._fsdp_param_group if state_of is not None else None
        if group is not None and all(group is not g for g in groups):
            groups.append(group)
    return groups


@contextmanager
def _fsdp_hooks(tracker):
    """Label FSDP's buffers at its own hook points: the per-parameter all-gather outputs (the
    gathered parameters compute reads) when a unit is unsharded, and the gathered parameters'
    gradients before the unit's post-backward reduces them."""
    from torch.distributed.fsdp._fully_shard._fsdp_param_group import FSDPParamGroup

    from .fsdp_tracker import UNSHARDED_GRADS, UNSHARDED_PARAMS

    original = {name: getattr(FSDPParamGroup, name) for name in ("wait_for_unshard", "post_backward")}

    def wait_for_unshard(self, *args, **kwargs):
        result = original["wait_for_unshard"](self, *args, **kwargs)
        for fsdp_param in self.fsdp_params:
            for tensor in fsdp_param.all_gather_outputs:
                if tensor.untyped_storage().nbytes():
                    tracker.track(tensor, UNSHARDED_PARAMS)
        return result

    def post_backward(self, *args, **kwargs):
        for fsdp_param in self.fsdp_params:
            unsharded = getattr(fsdp_param, "_unsharded_param", None)
            if unsharded is not None and unsharded.grad is not None:
                tracker.track(unsharded.grad, UNSHARDED_GRADS)
        return original["post_backward"](self, *args, **kwargs)

    FSDPParamGroup.wait_for_unshard = wait_for_unshard
    FSDPParamGroup.post_backward = post_backward
    try:
        yield
    finally:
        for name, function in original.items():
            setattr(FSDPParamGroup, name, function)


def trace_fsdp_step(model: ModelSpec, config: TrainConfig, *, optimizer_impl: OptimizerImpl | None = None,
                    fake: bool = True, seed: int = 0) -> TraceResult:
    """Traces two optimizer steps of `model` under FSDP2 on `config.n_gpus` fake ranks and reports
    rank 0's second. `fake=False` runs on real CPU tensors (tiny models only): the tracker must
    give the same bytes."""
    problem = fsdp_trace_problem(config)
    if problem:
        raise InvalidConfigurationError(problem)
    require_trace_dependencies()
    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.distributed.device_mesh import init_device_mesh

    from .build import build_model, materialize
    from .fsdp_tracker import FsdpStorageTracker, local
    from .tracker import GRADIENTS, OPTIMIZER_STATES, TRAINABLE, TRANSIENT, WEIGHTS

    impl: OptimizerImpl = optimizer_impl or DEFAULT_OPTIMIZER_IMPL
    started = time.perf_counter()
    built = build_model(model, config)
    hf = built.model
    notes = list(built.notes) + [
        f"FSDP2 {config.fsdp_strategy.value} traced as rank 0 of a fake process group of {config.n_gpus} ranks, "
        "wrapped as accelerate 1.11 wraps it (decoder layers + root, whole model cast to fp32 after sharding)."]
    if config.optim.value != "adamw":
        notes.append(f"optim {config.optim.value} traced as torch AdamW ({impl}); its states differ.")
    torch.manual_seed(seed)
    mode = FakeTensorMode() if fake else None

    def empty(shape, dtype):
        return torch.empty(shape, dtype=dtype, device="cpu") if fake else torch.zeros(shape, dtype=dtype)

    with fake_process_group(config.n_gpus):
        mesh = init_device_mesh("cpu", (config.n_gpus,))  # outside FakeTensorMode: its rank tensor is real
        with mode or nullcontext():
            materialize(hf, empty)
            _shard_like_accelerate(built, config, mesh)
            trainable = [p for p in hf.parameters() if p.requires_grad]
            input_ids = torch.randint(0, model.vocab_size, (config.micro_batch, config.seq_len))
            kwargs = {"fused": True} if impl == "fused" else {"foreach": True}
            optimizer = torch.optim.AdamW(trainable, lr=1e-5, **kwargs)
        groups = _param_groups(hf)
        tracker = FsdpStorageTracker()
        tracker.record_from_step = 2
        for p in {id(p): p for p in hf.parameters()}.values():
            tracker.track(local(p), TRAINABLE if p.requires_grad else WEIGHTS)
        for b in hf.buffers():
            tracker.track(local(b), WEIGHTS)
        tracker.track(input_ids, TRANSIENT)
        hooks = _install_region_hooks(built, tracker, prepend=True)
        hooks += [p.register_post_accumulate_grad_hook(lambda q: tracker.retag(q.grad, GRADIENTS)) for p in trainable]
        try:
            with _no_packed_sequence_detection(), _fsdp_hooks(tracker), mode or nullcontext(), tracker:
                for step in (1, 2):
                    tracker.step = step
                    for micro in range(config.grad_accum):
                        hf.set_requires_gradient_sync(micro == config.grad_accum - 1)
                        tracker.phase, tracker.region = "forward", "embed"
                        loss = hf(input_ids=input_ids, labels=input_ids, use_cache=False).loss
                        if config.grad_accum > 1:
                            loss = loss / config.grad_accum
                        tracker.phase, tracker.region = "backward", "head"
                        loss.backward()
                        del loss
                    tracker.phase, tracker.region = "optimizer", ""
                    torch.nn.utils.clip_grad_norm_(trainable, MAX_GRAD_NORM, foreach=True)
                    optimizer.step()
                    for state in optimizer.state.values():
                        for value in state.values():
                            if isinstance(value, torch.Tensor):
                                tracker.retag(value, OPTIMIZER_STATES)
                    optimizer.zero_grad(set_to_none=True)
                    # autograd's gradients of the gathered parameters, as FSDP sizes them (known
                    # after the first forward's lazy init): in backward they are in flight
                    tracker.param_shapes = {(tuple(fp._orig_size), fp.param_dtype or fp.orig_dtype)
                                            for g in groups for fp in g.fsdp_params if fp.sharded_param.requires_grad}
        finally:
            for h in hooks:
                h.remove()
            tracker.detach_all()

    peak = tracker.peak
    n_trainable = sum(p.numel() for p in trainable)
    n_total = sum(fp._orig_size.numel() for g in groups for fp in g.fsdp_params)
    if config.method == Method.qlora:
        notes.append("the 4-bit base is traced in 16 bits: its sharded and gathered bytes are the formula's")
    return TraceResult(
        model=model.name, config=config.model_dump(mode="json"), hf_class=built.hf_class,
        attn_implementation=built.attn_implementation, optimizer_impl=impl, fake=fake,
        traced_peak_bytes=peak.bytes, peak_phase=peak.phase, peak_op=peak.op, peak_layer=peak.layer,
        phase_peaks_bytes=dict(tracker.phase_peaks), region_peaks_bytes=dict(tracker.region_peaks),
        breakdown_bytes={k: v for k, v in peak.breakdown.items() if v},
        activations_by_region_bytes=peak.activations_by_region,
        trainable_params=n_trainable, frozen_params=n_total - n_trainable,
        micro_steps_per_step=config.grad_accum, elapsed_s=round(time.perf_counter() - started, 3),
        notes=notes, cannot_see=list(FSDP_TRACE_CANNOT_SEE), world_size=config.n_gpus)
