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
    _forward_loss,
    MAX_GRAD_NORM,
    OptimizerImpl,
    TraceResult,
    _install_region_hooks,
    _no_packed_sequence_detection,
    require_trace_dependencies,
    step_and_label_states,
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
    if config.fsdp_version == 2 and config.fsdp_strategy not in (FsdpStrategy.full_shard,
                                                                  FsdpStrategy.shard_grad_op):
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


def _wrap_like_accelerate_fsdp1(built, config: TrainConfig, mesh):
    """accelerate 1.11 `prepare_model`, FSDP branch (accelerator.py:1843-1962) with LLaMA-Factory's
    example config: FullyShardedDataParallel over TRANSFORMER_BASED_WRAP (for a PEFT model
    transformers 5.6 swaps in peft's fsdp_auto_wrap_policy, which also wraps each LoRA A/B linear:
    integrations/fsdp.py update_fsdp_plugin_peft), MixedPrecision in the 16-bit dtype, BACKWARD_PRE,
    use_orig_params, limit_all_gathers; then every trainable flat parameter in fp32 (LLaMA-Factory
    has upcast them already). Returns the root FSDP module."""
    import functools

    import torch
    from torch.distributed.fsdp import BackwardPrefetch, MixedPrecision, ShardingStrategy
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy

    dtype = _param_dtype(config)
    if config.uses_lora:
        from peft.utils.other import fsdp_auto_wrap_policy

        policy = fsdp_auto_wrap_policy(built.model)
    else:
        policy = functools.partial(transformer_auto_wrap_policy, transformer_layer_cls={type(built.decoder_layers[0])})
    strategy = {FsdpStrategy.full_shard: ShardingStrategy.FULL_SHARD, FsdpStrategy.shard_grad_op:
                ShardingStrategy.SHARD_GRAD_OP, FsdpStrategy.no_shard: ShardingStrategy.NO_SHARD,
                FsdpStrategy.hybrid_shard: ShardingStrategy.HYBRID_SHARD}[config.fsdp_strategy]
    # use_orig_params=True (LLaMA-Factory's example) fails under fake tensors for SHARD_GRAD_OP and
    # NO_SHARD (a FakeTensor where FSDP expects a Parameter); it changes no bytes (research runs: 2 KB)
    orig = config.fsdp_strategy in (FsdpStrategy.full_shard, FsdpStrategy.hybrid_shard)
    root = FSDP(built.model, auto_wrap_policy=policy, sharding_strategy=strategy,
                mixed_precision=MixedPrecision(param_dtype=dtype, reduce_dtype=dtype, buffer_dtype=dtype),
                backward_prefetch=BackwardPrefetch.BACKWARD_PRE, forward_prefetch=False, use_orig_params=orig,
                limit_all_gathers=True, device_id=torch.device("cpu"), sync_module_states=False,
                device_mesh=mesh if config.fsdp_strategy == FsdpStrategy.hybrid_shard else None)
    for module in FSDP.fsdp_modules(root):
        flat = module._flat_param if module._has_params else None
        if flat is not None and flat.requires_grad and flat.dtype != torch.float32:
            flat.data = flat.data.to(torch.float32)
            module._handle._orig_param_dtype = torch.float32
    return root


@contextmanager
def _fsdp1_hooks(tracker, handles):
    """Label FSDP1's buffers: the unsharded flat gradient when its post-backward hook runs, and the
    fp32 sharded gradient it leaves (`_saved_grad_shard`). Patched before the first forward, which
    registers the hooks (torch/distributed/fsdp/_runtime_utils.py `_register_post_backward_hook`)."""
    import torch.distributed.fsdp._runtime_utils as runtime

    from .fsdp_tracker import UNSHARDED_GRADS
    from .tracker import GRADIENTS

    original = runtime._post_backward_hook

    def post_backward(state, handle, flat_param, *args):
        if handle.flat_param.grad is not None:
            tracker.track(handle.flat_param.grad, UNSHARDED_GRADS)
        result = original(state, handle, flat_param, *args)
        saved = getattr(handle.flat_param, "_saved_grad_shard", None)
        if saved is not None:
            tracker.track(saved, GRADIENTS)
        return result

    runtime._post_backward_hook = post_backward
    try:
        yield
    finally:
        runtime._post_backward_hook = original


def _tag_fsdp1_buffers(tracker, handles) -> None:
    """FSDP1's per-unit buffers exist after lazy init and are resized, never re-made: the padded
    unsharded flat parameter (gathered parameters) and the 16-bit shard the all-gather sends."""
    from .fsdp_tracker import ALL_GATHER, UNSHARDED_PARAMS

    for handle in handles:
        flat = handle.flat_param
        for name, category in (("_full_param_padded", UNSHARDED_PARAMS), ("_mp_shard", ALL_GATHER)):
            buffer = getattr(flat, name, None)
            if buffer is not None:
                tracker.track(buffer, category)


def _param_groups(model) -> list:
    groups = []
    for module in model.modules():
        state_of = getattr(module, "_get_fsdp_state", None)
        group = state_of()._fsdp_param_group if state_of is not None else None
        if group is not None and all(group is not g for g in groups):
            groups.append(group)
    return groups


def _fsdp1_handles(root) -> list:
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    return [m._handle for m in FSDP.fsdp_modules(root) if m._handle is not None]


def _with_fsdp1_wrappers(built, root):
    """The built model with each decoder layer's FSDP1 wrapper standing for the layer, so the region
    hooks run before the wrapper gathers it."""
    import dataclasses

    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

    wrappers = {id(m.module): m for m in FSDP.fsdp_modules(root)}
    return dataclasses.replace(built, decoder_layers=[wrappers.get(id(layer), layer) for layer in built.decoder_layers])


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
                    fake: bool = True, seed: int = 0, gpus_per_node: int = 8) -> TraceResult:
    """Traces two optimizer steps of `model` under FSDP (`config.fsdp_version`) on `config.n_gpus`
    fake ranks and reports rank 0's second. `fake=False` runs on real CPU tensors (tiny models
    only): the tracker must give the same bytes. `gpus_per_node` shapes HYBRID_SHARD's mesh."""
    problem = fsdp_trace_problem(config)
    if problem:
        raise InvalidConfigurationError(problem)
    require_trace_dependencies()
    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.distributed.device_mesh import init_device_mesh

    from .build import build_model, materialize
    from .fsdp_tracker import FsdpStorageTracker, local
    from .tracker import GRADIENTS, TRAINABLE, TRANSIENT, WEIGHTS

    impl: OptimizerImpl = optimizer_impl or DEFAULT_OPTIMIZER_IMPL
    started = time.perf_counter()
    built = build_model(model, config)
    hf = built.model
    v1 = config.fsdp_version == 1
    wrapped = ("FullyShardedDataParallel units per decoder layer (+ LoRA linears), MixedPrecision, BACKWARD_PRE, "
               "use_orig_params, forward under autocast" if v1 else
               "decoder layers + root, whole model cast to fp32 after sharding")
    notes = list(built.notes) + [
        f"FSDP{config.fsdp_version} {config.fsdp_strategy.value} traced as rank 0 of a fake process group of "
        f"{config.n_gpus} ranks, wrapped as accelerate 1.11 wraps it ({wrapped})."]
    if config.optim.value != "adamw":
        notes.append(f"optim {config.optim.value} traced as torch AdamW ({impl}); its states differ.")
    torch.manual_seed(seed)
    mode = FakeTensorMode() if fake else None

    def empty(shape, dtype):
        return torch.empty(shape, dtype=dtype, device="cpu") if fake else torch.zeros(shape, dtype=dtype)

    with fake_process_group(config.n_gpus):
        # outside FakeTensorMode: its rank tensor is real. HYBRID_SHARD: replicas x one node's GPUs
        per_node = min(config.n_gpus, gpus_per_node)
        shape = (config.n_gpus // per_node, per_node) if config.fsdp_strategy == FsdpStrategy.hybrid_shard \
            else (config.n_gpus,)
        mesh = init_device_mesh("cpu", shape)
        with mode or nullcontext():
            materialize(hf, empty)
            if v1:
                root = _wrap_like_accelerate_fsdp1(built, config, mesh)
            else:
                _shard_like_accelerate(built, config, mesh)
                root = hf
            trainable = [p for p in root.parameters() if p.requires_grad]
            input_ids = torch.randint(0, model.vocab_size, (config.micro_batch, config.seq_len))
            kwargs = {"fused": True} if impl == "fused" else {"foreach": True}
            optimizer = torch.optim.AdamW(trainable, lr=1e-5, **kwargs)
        groups = [] if v1 else _param_groups(hf)
        handles = _fsdp1_handles(root) if v1 else []
        tracker = FsdpStorageTracker()
        tracker.record_from_step = 2
        for p in {id(p): p for p in root.parameters()}.values():
            tracker.track(local(p), TRAINABLE if p.requires_grad else WEIGHTS)
        for h in handles:
            tracker.track(h.flat_param, TRAINABLE if h.flat_param.requires_grad else WEIGHTS)
        for b in root.buffers():
            tracker.track(local(b), WEIGHTS)
        tracker.track(input_ids, TRANSIENT)
        hooks = _install_region_hooks(_with_fsdp1_wrappers(built, root) if v1 else built, tracker, prepend=True)
        if not v1:
            hooks += [p.register_post_accumulate_grad_hook(lambda q: tracker.retag(q.grad, GRADIENTS))
                      for p in trainable]
        amp = _param_dtype(config) if v1 else None  # accelerate's prepare_model autocast (FSDP1 only)
        fsdp_hooks = _fsdp1_hooks(tracker, handles) if v1 else _fsdp_hooks(tracker)
        try:
            with _no_packed_sequence_detection(), fsdp_hooks, mode or nullcontext(), tracker:
                for step in (1, 2):
                    tracker.step = step
                    for micro in range(config.grad_accum):
                        sync = micro == config.grad_accum - 1
                        context = nullcontext() if (sync or not v1) else root.no_sync()
                        if not v1:
                            hf.set_requires_gradient_sync(sync)
                        tracker.phase, tracker.region = "forward", "embed"
                        with context:
                            loss = _forward_loss(root, input_ids, amp)
                            if config.grad_accum > 1:
                                loss = loss / config.grad_accum
                            tracker.phase, tracker.region = "backward", "head"
                            loss.backward()
                            del loss
                    tracker.phase, tracker.region = "optimizer", ""
                    if v1:
                        root.clip_grad_norm_(MAX_GRAD_NORM)
                    else:
                        torch.nn.utils.clip_grad_norm_(trainable, MAX_GRAD_NORM, foreach=True)
                    step_and_label_states(optimizer, tracker)
                    # autograd's gradients of the gathered parameters, as FSDP sizes them (known
                    # after the first forward's lazy init): in backward they are in flight
                    tracker.param_shapes = {(tuple(fp._orig_size), fp.param_dtype or fp.orig_dtype)
                                            for g in groups for fp in g.fsdp_params if fp.sharded_param.requires_grad}
                    if v1:
                        tracker.param_shapes = {(tuple(shape), _param_dtype(config)) for h in handles
                                                if h.flat_param.requires_grad for shape in h.flat_param._shapes}
                        _tag_fsdp1_buffers(tracker, handles)
        finally:
            for h in hooks:
                h.remove()
            tracker.detach_all()

    peak = tracker.peak
    if v1:
        n_trainable = sum(h.flat_param._unpadded_unsharded_size.numel() for h in handles if h.flat_param.requires_grad)
        n_total = sum(h.flat_param._unpadded_unsharded_size.numel() for h in handles)
    else:
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
