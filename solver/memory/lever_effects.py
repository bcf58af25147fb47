"""What each memory lever that is on does to an estimate (issue 16), term by term: the same
configuration evaluated without the lever, through the same `memory_by_moment`, beside the
lever's own terms and where each number comes from. `estimate` attaches these; the CLI prints
them under the breakdown. `evaluate` is memory/estimate.py's `memory_by_moment`, passed in
(estimate imports this module).
"""

from __future__ import annotations

from ..problem.answers import LeverEffect, LeverRow
from ..problem.config import TrainConfig
from ..problem.knobs import MemoryOptimizer
from ..specs.gpu import GpuSet
from ..specs.model import ModelSpec
from . import levers, liger, optimizers
from .terms import Term

LIGER_LF = "LLaMA-Factory 0.9.5 model/model_utils/liger_kernel.py"
NORM_SOURCE = ("liger-kernel 0.8.5 ops/rms_norm.py:674 saves (X, W, RSTD), not an fp32 copy; ops/swiglu.py:272 "
               "saves (a, b), not act(a)")


def _moments(evaluate, model: ModelSpec, gpus: GpuSet, config: TrainConfig) -> dict:
    return {row.moment.name: row for row in evaluate(model, gpus, config)}


def _peak(rows: dict, mb: int) -> int:
    return max(row.required.at(mb) for row in rows.values())


def _term(rows: dict, name: str, term: Term, mb: int) -> int:
    row = rows.get(name)
    return row.moment.bytes_at(mb).get(term.value, 0) if row else 0


def _peak_row(with_rows: dict, without_rows: dict, mb: int) -> LeverRow:
    return LeverRow(label="required per GPU at the peak", with_bytes=_peak(with_rows, mb),
                    without_bytes=_peak(without_rows, mb), source="memory/estimate.py memory_by_moment")


def _liger(evaluate, model: ModelSpec, gpus: GpuSet, config: TrainConfig) -> LeverEffect:
    kernels = liger.applied(model, config)
    if kernels is None:
        return LeverEffect(lever="enable_liger_kernel", summary=(
            f"LLaMA-Factory 0.9.5 applies no Liger kernel to model type {model.model_type!r} (\"Current model "
            f"does not support liger kernel.\", {LIGER_LF}:91-92): estimated without, nothing changes"))
    mb = config.micro_batch
    with_rows = _moments(evaluate, model, gpus, config)
    without_rows = _moments(evaluate, model, gpus, config.model_copy(update={"liger": False}))
    names = [name for name, on in (("fused linear cross-entropy", kernels.fused_linear_cross_entropy),
                                   ("RMSNorm", kernels.rms_norm), ("SwiGLU/GeGLU", kernels.gated_mlp),
                                   ("RoPE", kernels.rope)) if on]
    summary = (f"Liger kernels LLaMA-Factory applies to {model.model_type}: {', '.join(names)} ({LIGER_LF}; "
               "liger-kernel 0.8.5 transformers/monkey_patch.py defaults)")
    rows = []
    if kernels.fused_linear_cross_entropy:
        tokens = mb * config.seq_len
        split = liger.chunking(tokens, model.hidden_size, model.vocab_size)
        summary += (f"; fused loss: {tokens} tokens in {split.num_chunks} chunk(s) of {split.chunk_size} rows, "
                    f"inc_factor {split.inc_factor} = ceil({model.vocab_size} / {model.hidden_size}) "
                    "(ops/fused_linear_cross_entropy.py:99-106)")
        for name, where in (("loss", "at the loss (start of backward)"), ("forward_end", "in the chunk loop")):
            rows.append(LeverRow(label=f"logits + loss {where}", with_bytes=_term(with_rows, name, Term.logits_loss, mb),
                                 without_bytes=_term(without_rows, name, Term.logits_loss, mb),
                                 source=Term.logits_loss.source))
            dims = {Term.fused_loss_grad_input: f"{tokens} x {model.hidden_size}",
                    Term.fused_loss_logits_chunk: f"{split.chunk_size} x {model.vocab_size}",
                    Term.fused_loss_vectors: f"{tokens} each",
                    Term.fused_loss_weight_gradient: f"{model.vocab_size} x {model.hidden_size}",
                    Term.fused_loss_weight_cast: f"{model.vocab_size} x {model.hidden_size}"}
            for key, value in with_rows[name].moment.term_bytes_at(mb).items():
                term = Term(key)
                if key.startswith("fused_loss") and value:
                    rows.append(LeverRow(label=f"{term.detail_label} {dims[term]}", with_bytes=value,
                                         source=term.source, detail=True))
    if kernels.rms_norm or kernels.gated_mlp:
        rows.append(LeverRow(label="activations at the loss", with_bytes=_term(with_rows, "loss", Term.activations, mb),
                             without_bytes=_term(without_rows, "loss", Term.activations, mb), source=NORM_SOURCE))
    rows.append(_peak_row(with_rows, without_rows, mb))
    return LeverEffect(lever="enable_liger_kernel", summary=summary, rows=rows)


def _compared(evaluate, model: ModelSpec, gpus: GpuSet, config: TrainConfig, lever: str, off: dict, summary: str,
              terms: tuple[tuple[str, Term, str], ...]) -> LeverEffect:
    """A lever compared with the same configuration without it, at the named moments and terms."""
    mb = config.micro_batch
    with_rows = _moments(evaluate, model, gpus, config)
    without_rows = _moments(evaluate, model, gpus, config.model_copy(update=off))
    rows = [LeverRow(label=f"{term.label} at {moment.replace('_', ' ')}", with_bytes=_term(with_rows, moment, term, mb),
                     without_bytes=_term(without_rows, moment, term, mb), source=source)
            for moment, term, source in terms]
    rows.append(_peak_row(with_rows, without_rows, mb))
    return LeverEffect(lever=lever, summary=summary, rows=rows)


def lever_effects(model: ModelSpec, gpus: GpuSet, config: TrainConfig, evaluate) -> list[LeverEffect]:
    """One effect per lever that is on, in the order users reach for them."""
    effects = []
    if config.liger:
        effects.append(_liger(evaluate, model, gpus, config))
    if config.unsloth_gc:
        effects.append(_compared(evaluate, model, gpus, config, "use_unsloth_gc", {"unsloth_gc": False},
                                 levers.UNSLOTH_SUMMARY,
                                 (("loss", Term.activations, levers.UNSLOTH_SOURCE),
                                  ("backward_first_layer", Term.activations, levers.UNSLOTH_SOURCE))))
    if config.dora:
        effects.append(_compared(evaluate, model, gpus, config, "use_dora", {"dora": False}, levers.DORA_SUMMARY,
                                 (("loss", Term.activations, levers.DORA_SOURCE),
                                  ("loss", Term.trainable_params, levers.DORA_SOURCE),
                                  ("backward_first_layer", Term.transient, levers.DORA_SOURCE))))
    for on, lever, summary in ((config.pissa, "pissa_init", levers.PISSA_SUMMARY),
                               (config.rslora, "use_rslora", levers.RSLORA_SUMMARY),
                               (config.loraplus_lr_ratio is not None, "loraplus_lr_ratio", levers.LORAPLUS_SUMMARY)):
        if on:
            effects.append(LeverEffect(lever=lever, summary=summary))
    if config.memory_optimizer != MemoryOptimizer.none:
        effects.append(_compared(evaluate, model, gpus, config, optimizers.lf_key(config.memory_optimizer),
                                 {"memory_optimizer": MemoryOptimizer.none}, optimizers.summary(model, config),
                                 (("optimizer", Term.optimizer_states, optimizers.SOURCE),
                                  ("optimizer", Term.gradients, optimizers.SOURCE),
                                  ("optimizer", Term.trainable_params, optimizers.SOURCE))))
    upcasts = (("upcast_layernorm", levers.UPCAST_LAYERNORM_SUMMARY, (("loss", Term.weights), ("loss", Term.activations))),
               ("upcast_lmhead_output", levers.UPCAST_LMHEAD_SUMMARY,
                (("forward_end", Term.logits_loss), ("loss", Term.logits_loss))))
    for flag, summary, rows in upcasts:
        if getattr(config, flag):
            effects.append(_compared(evaluate, model, gpus, config, flag, {flag: False}, summary,
                                     tuple((moment, term, levers.UPCAST_SOURCE) for moment, term in rows)))
    if config.neat_packing and config.attn.value != "fa2":
        effects.append(_compared(evaluate, model, gpus, config, "neat_packing", {"neat_packing": False},
                                 levers.NEAT_PACKING_SUMMARY,
                                 (("loss", Term.activations, levers.NEAT_PACKING_SOURCE),)))
    return effects
