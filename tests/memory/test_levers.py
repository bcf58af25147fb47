"""The memory levers (issue 16) outside the trace: Liger's chunking against liger-kernel's own
numbers, the rules LLaMA-Factory 0.9.5 enforces, what each lever changes in an estimate, and the
recommender proposing them (tests/oracle/test_trace_levers.py holds the bytes to the trace)."""

from __future__ import annotations

import pytest

import fitplan
from fitplan.solver.errors import FitplanError
from fitplan.solver.memory.estimate import estimate
from fitplan.solver.memory.liger import chunking
from fitplan.solver.problem.answers import plan_knobs
from fitplan.solver.problem.config import TrainConfig
from fitplan.solver.problem.knobs import FsdpStrategy
from fitplan.solver.specs.catalog import load_model, parse_gpu_set
from fitplan.solver.units import GIB


@pytest.mark.parametrize("tokens, hidden, vocab, expected", [
    # /work/notes/llamafactory/facts.md D.1, worked from liger-kernel 0.8.5
    # ops/fused_linear_cross_entropy.py:99-106: (inc_factor, chunk_size, num_chunks)
    (4096, 3584, 152064, (43, 128, 32)),  # Qwen2.5-7B
    (8192, 3584, 152064, (43, 256, 32)),
    (4096, 4096, 151936, (38, 128, 32)),  # Qwen3-8B
    (100, 4096, 2048, (1, 100, 1)),  # a vocabulary below the hidden size: one chunk, capped at BT (:104)
    (1000, 256, 8192, (32, 32, 32)),  # the last chunk is short (1000 = 31 x 32 + 8)
])
def test_chunking_is_liger_kernels(tokens, hidden, vocab, expected):
    c = chunking(tokens, hidden, vocab)
    assert (c.inc_factor, c.chunk_size, c.num_chunks) == expected


def test_liger_cuts_the_logits_term_and_says_where_each_number_comes_from():
    qwen, a100 = load_model("qwen2.5-7b"), parse_gpu_set("1xA100-80G")
    plain = estimate(qwen, a100, TrainConfig(seq_len=4096))
    liger = estimate(qwen, a100, TrainConfig(seq_len=4096, liger=True))
    assert liger.peak_bytes < plain.peak_bytes - 5 * GIB
    effect = next(e for e in liger.levers if e.lever == "enable_liger_kernel")
    loss = next(r for r in effect.rows if r.label.startswith("logits + loss at the loss"))
    # 12 B x 152,064 vocab x 4096 tokens of fp32 logits, log-softmax and grads -> grad_input 4096 x 3584 bf16
    assert loss.without_bytes == 12 * 152064 * 4096 and loss.with_bytes == 4096 * (2 * 3584)
    assert all(r.source for r in effect.rows)
    assert "32 chunk(s) of 128 rows" in effect.summary


def test_a_model_type_llamafactory_does_not_list_gets_no_liger():
    chatglm, a100 = load_model("chatglm3-6b"), parse_gpu_set("1xA100-80G")
    plain, liger = (estimate(chatglm, a100, TrainConfig(seq_len=2048, liger=on)) for on in (False, True))
    assert liger.peak_bytes == plain.peak_bytes
    assert any("applies no Liger kernel" in note for note in liger.notes)


def test_liger_needs_triton_hardware():
    with pytest.raises(FitplanError, match="compute capability 7.0"):
        fitplan.estimate("qwen2.5-0.5b", "1xP4", liger=True, precision="fp16")


@pytest.mark.parametrize("knobs, message", [
    (dict(method="lora", memory_optimizer="galore"), "Cannot use LoRA with GaLore"),
    (dict(method="full", memory_optimizer="galore", zero_stage=2, n_gpus=2), "incompatible with DeepSpeed"),
    (dict(method="full", memory_optimizer="galore_layerwise", n_gpus=2), "Distributed training does not support"),
    (dict(method="full", memory_optimizer="galore_layerwise", grad_accum=4), "does not support gradient accumulation"),
    (dict(method="full", memory_optimizer="apollo", optim="adamw_8bit"), "APOLLO builds its own optimizer only"),
    (dict(method="full", memory_optimizer="badam", n_gpus=2), "only supports DeepSpeed ZeRO-3"),
    (dict(method="full", dora=True), "only valid for LoRA"),
    (dict(method="qlora", bits=4, pissa=True), "pissa_init.py"),
    (dict(pissa=True, zero_stage=3, n_gpus=2), "pissa_init.py"),
    (dict(unsloth_gc=True, grad_ckpt=False), "needs --grad-ckpt"),
    (dict(neat_packing=True, attn="fa2", micro_batch=2), "bsz should be 1"),
])
def test_llamafactory_rejections_are_one_line(knobs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**knobs)


def test_neat_packing_packs():
    assert TrainConfig(neat_packing=True).packing


def test_the_lora_variants_without_a_memory_change_change_nothing():
    qwen, a100 = load_model("qwen2.5-7b"), parse_gpu_set("1xA100-80G")
    base = estimate(qwen, a100, TrainConfig(seq_len=2048)).peak_bytes
    for knobs in (dict(rslora=True), dict(loraplus_lr_ratio=16.0), dict(pissa=True)):
        result = estimate(qwen, a100, TrainConfig(seq_len=2048, **knobs))
        assert result.peak_bytes == base, knobs
        assert result.levers and "no memory change" in result.levers[0].summary or "same training memory" in \
            result.levers[0].summary


def test_offloaded_checkpoints_move_activations_to_host_ram():
    qwen, a100 = load_model("qwen2.5-7b"), parse_gpu_set("1xA100-80G")
    base = estimate(qwen, a100, TrainConfig(seq_len=4096, liger=True))
    offloaded = estimate(qwen, a100, TrainConfig(seq_len=4096, liger=True, unsloth_gc=True))
    # 28 layer inputs of 4096 x 3584 bf16 go to pinned host memory
    assert offloaded.host_ram_bytes == 28 * 4096 * 3584 * 2
    assert offloaded.breakdown_bytes.get("activations", 0) < base.breakdown_bytes.get("activations", 0)


def test_the_memory_optimizers_cut_full_fine_tuning_states():
    qwen, card = load_model("qwen3-8b"), parse_gpu_set("1xRTX4090")
    adamw = estimate(qwen, card, TrainConfig(method="full", precision="pure_bf16", seq_len=1024))
    for memory in ("galore_layerwise", "apollo_layerwise", "badam", "adam_mini"):
        result = estimate(qwen, card, TrainConfig(method="full", precision="pure_bf16", seq_len=1024,
                                                  memory_optimizer=memory))
        assert result.peak_bytes < adamw.peak_bytes, memory
    badam = estimate(qwen, card, TrainConfig(method="full", seq_len=1024, memory_optimizer="badam"))
    assert badam.trainable_params == qwen.layer_params()  # one decoder layer at a time


def test_the_json_plan_has_a_key_per_lever():
    keys = plan_knobs(TrainConfig(liger=True))
    assert keys["liger"] is True and keys["memory_optimizer"] == "none" and keys["dora"] is False
    assert plan_knobs(TrainConfig(method="full"))["dora"] is None  # no adapters, no LoRA variant


def test_recommend_finds_a_plain_lora_plan_with_liger_where_it_needed_zero3_offload():
    """Issue 16's done-when: Qwen3-8B LoRA at 4096 tokens on one RTX 4090. Without Liger the
    only plans that fit shard and offload the parameters to the CPU, by ZeRO-3 or (since issue 15)
    FSDP FULL_SHARD (the fp32 logits alone are 6.96 GiB)."""
    result = fitplan.recommend("qwen3-8b", "1xRTX4090", seq_len=4096, method="lora")
    assert result.plan.liger and result.plan.zero_stage == 0 and result.plan.offload.value == "none"
    without = fitplan.recommend("qwen3-8b", "1xRTX4090", seq_len=4096, method="lora", liger=False)
    full_shard = without.plan.zero_stage == 3 or without.plan.fsdp_strategy == FsdpStrategy.full_shard
    assert full_shard and without.plan.offload.value == "all"
    assert result.tokens_per_s > without.tokens_per_s


def test_recommend_packs_only_when_allowed():
    kwargs = dict(seq_len=4096, method="lora", mean_sample_len=600)
    assert not fitplan.recommend("qwen2.5-7b", "1xA100-80G", **kwargs).plan.packing
    allowed = fitplan.recommend("qwen2.5-7b", "1xA100-80G", allow_packing=True, **kwargs)
    assert allowed.plan.packing
    assert any("attend to each other" in note for note in allowed.estimate.notes)


def test_full_fine_tuning_on_a_small_card_falls_back_to_a_memory_optimizer():
    result = fitplan.recommend("qwen3-8b", "1xRTX4090", seq_len=1024, method="full")
    assert result.plan is not None and result.plan.memory_optimizer.value != "none"
    fits_plainly = fitplan.recommend("qwen2.5-0.5b", "1xA100-80G", seq_len=1024, method="full")
    assert fits_plainly.plan.memory_optimizer.value == "none"
