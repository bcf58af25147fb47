"""The sharding engine as a knob: what the pins allow, what CP-SAT searches, the questions of
issue 15 (8 x P4, a 70B on 2 x RTX 4090), and the rules accelerate 1.11 / LLaMA-Factory 0.9.5 impose."""

import pytest

import fitplan
from fitplan.solver.errors import FitplanError
from fitplan.solver.planner.search_space import search_space
from fitplan.solver.problem.config import TrainConfig
from fitplan.solver.problem.instance import check_pins, config_for_estimate
from fitplan.solver.problem.knobs import FsdpStrategy, Offload, Sharding


def engines(gpus="8xA100-80G", **pins):
    space = search_space(fitplan.make_instance("qwen2.5-0.5b", gpus, **pins))
    return {(c.zero_stage, c.fsdp_strategy, c.fsdp_version, c.offload) for c in space.knob_combinations()}


def test_a_free_engine_searches_ddp_deepspeed_and_fsdp():
    found = engines()
    assert {stage for stage, *_ in found} >= {0, 2, 3}
    assert {strategy for _, strategy, *_ in found} >= {None, FsdpStrategy.full_shard, FsdpStrategy.shard_grad_op}
    assert (0, FsdpStrategy.full_shard, 1, Offload.all) in found
    assert FsdpStrategy.hybrid_shard not in {s for _, s, *_ in found}  # one node
    assert {v for _, s, v, _ in found if s} == {1}  # FSDP1 unless pinned


def test_hybrid_shard_is_searched_when_a_plan_spans_nodes():
    assert FsdpStrategy.hybrid_shard in {s for _, s, *_ in engines("2x4xA100-80G")}


@pytest.mark.parametrize("pins,expected", [
    (dict(sharding="none"), {(0, None)}),
    (dict(zero_stage=0), {(0, None)}),
    (dict(sharding="deepspeed"), {(2, None), (3, None)}),
    (dict(zero_stage=3), {(3, None)}),
    (dict(sharding="fsdp"), {(0, FsdpStrategy.full_shard), (0, FsdpStrategy.shard_grad_op)}),
    (dict(fsdp_strategy="shard_grad_op"), {(0, FsdpStrategy.shard_grad_op)}),
])
def test_pins_decide_the_engine(pins, expected):
    assert {(stage, strategy) for stage, strategy, _, _ in engines(**pins)} == expected


def test_a_pinned_fsdp_version_is_the_one_searched():
    assert {v for _, s, v, _ in engines(fsdp_version=2)} == {2}


@pytest.mark.parametrize("pins,words", [
    (dict(sharding="deepspeed", zero_stage=0), "--sharding deepspeed needs --zero 1, 2 or 3"),
    (dict(sharding="none", fsdp_strategy="full_shard"), "FSDP's: use --sharding fsdp"),
    (dict(sharding="none", zero_stage=2), "--zero 2 is DeepSpeed"),
    (dict(sharding="fsdp", zero_stage=3), "two sharding engines"),
    (dict(sharding="fsdp", offload="optimizer"), "use --offload all"),
    (dict(fsdp_version=2, method="qlora"), "use --fsdp-version 1"),
    (dict(fsdp_strategy="hybrid_shard"), "on one node it is full_shard"),
    (dict(fsdp_version=2, fsdp_strategy="no_shard"), "FSDP2 has no no_shard"),
    (dict(sharding="fsdp", method="qlora", bits=8), "Only 4-bit quantized model can use fsdp+qlora"),
    (dict(sharding="fsdp", precision="pure_bf16"), "bf16 or fp16 mixed precision"),
])
def test_pins_accelerate_or_llamafactory_refuse_are_bad_input(pins, words):
    with pytest.raises(FitplanError) as caught:
        check_pins(fitplan.make_instance("qwen2.5-0.5b", "8xA100-80G", **pins))
    assert words in str(caught.value)


def test_estimate_of_a_pinned_engine():
    fsdp = config_for_estimate(fitplan.make_instance("qwen2.5-0.5b", "8xA100-80G", sharding="fsdp"))
    assert (fsdp.sharding, fsdp.fsdp_strategy, fsdp.fsdp_version) == (Sharding.fsdp, FsdpStrategy.full_shard, 1)
    with pytest.raises(FitplanError, match="add --zero 1, 2 or 3"):
        config_for_estimate(fitplan.make_instance("qwen2.5-0.5b", "8xA100-80G", sharding="deepspeed"))
    assert TrainConfig(zero_stage=2, n_gpus=2).sharding == Sharding.deepspeed


def test_8_x_p4_considers_fsdp_and_the_published_qlora_fsdp_answer_fits():
    """The published answer for a 7B on 8 x Tesla P4 is QLoRA + FSDP in fp16: it fits at 1024
    tokens (the root unit, embedding and lm_head gathered whole, is what stops it at 2048)."""
    rec = fitplan.recommend("qwen2.5-7b", "8xP4", seq_len=1024, settings=fitplan.SolverSettings(top_k=3))
    assert rec.to_json_dict()["plan"]["sharding"] in ("none", "deepspeed", "fsdp")
    published = fitplan.recommend("qwen2.5-7b", "8xP4", seq_len=1024, method="qlora", bits=4, sharding="fsdp")
    assert published.plan is not None and published.estimate.fits
    assert published.plan.precision.value == "fp16" and published.plan.fsdp_strategy is not None
    assert published.tokens_per_s > 0


def test_a_70b_qlora_fits_two_rtx_4090_with_fsdp_and_cpu_offload_only():
    """LLaMA-Factory's README: FSDP + QLoRA fine-tunes a 70B on 2 x 24 GB. Without CPU offload each
    GPU would hold half the NF4 base (about 17 GiB) besides the gathered root and activations."""
    rec = fitplan.recommend("llama-3.1-70b", "2xRTX4090", method="qlora", sharding="fsdp")
    assert rec.plan is not None and rec.plan.offload == Offload.all and rec.plan.bits == 4
    without = fitplan.recommend("llama-3.1-70b", "2xRTX4090", method="qlora", sharding="fsdp", offload="none")
    assert without.plan is None and "base weights" in without.explanation.binding
