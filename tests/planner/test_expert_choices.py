"""Choices an expert would not make (issue 12), each refused, avoided or stated with its source:
undocumented ZeRO-3 offload of a 4-bit base, thin margins with variable-length samples, fp16 on
models known to overflow, bitsandbytes 8-bit below compute capability 7.5, an invalid pin answered
with a length, SDPA on Gemma-2."""

from __future__ import annotations

import pytest

import fitplan
from fitplan.cli.main import main
from fitplan.solver.errors import InvalidConfigurationError
from fitplan.solver.llamafactory.write_yaml import EmitPlaceholders, llamafactory_files
from fitplan.solver.planner.search_space import search_space
from fitplan.solver.problem.knobs import Attention, Precision
from fitplan.solver.problem.rules import undocumented_problems
from fitplan.solver.problem.settings import MIN_FREE_BYTES_VARIABLE_LENGTH, SolverSettings, memory_budget_bytes
from fitplan.solver.specs.catalog import load_model, parse_gpu_set
from fitplan.solver.units import GIB


def plans_of(result) -> list:
    return [result.plan] + [r.plan for r in result.runners_up]


# ---- ZeRO-3 + CPU offload of a bitsandbytes 4-bit base: undocumented, never proposed ----------

def _undocumented(config) -> bool:
    return bool(undocumented_problems(method=config.method, zero_stage=config.zero_stage, offload=config.offload))


@pytest.mark.parametrize("model,gpus", [("qwen2.5-14b", "1xT4"), ("qwen2.5-7b", "8xP4"),
                                        ("llama-3.1-70b", "2xA100-80G")])
def test_zero3_offload_of_a_4bit_base_is_never_proposed(model, gpus):
    instance = fitplan.make_instance(model, gpus)
    assert not [k for k in search_space(instance).knob_combinations() if _undocumented(k)]
    result = fitplan.recommend(model, gpus, settings=SolverSettings(top_k=4))
    assert result.plan is not None and not [p for p in plans_of(result) if _undocumented(p)]


def test_zero3_offload_of_a_4bit_base_pinned_is_refused_with_its_sources(capsys):
    for command in ("estimate", "recommend"):
        code = main([command, "--model", "qwen2.5-14b", "--gpus", "1xT4", "--method", "qlora", "--zero", "3",
                     "--offload", "all"])
        err = capsys.readouterr().err
        assert code == 2 and "PEFT" in err and "#5595" in err and len(err.strip().splitlines()) == 1, err
    # --offload all implies ZeRO-3 (instance.check_pins): the same refusal
    assert main(["recommend", "--model", "qwen2.5-14b", "--gpus", "1xT4", "--method", "qlora", "--offload",
                 "optimizer", "--zero", "3"]) == 2
    with pytest.raises(InvalidConfigurationError, match="undocumented"):
        fitplan.estimate("qwen2.5-14b", "1xT4", method="qlora", zero_stage=3, offload="optimizer")


def test_check_of_such_a_file_warns_that_the_estimate_is_low(tmp_path, capsys):
    (tmp_path / "ds.json").write_text('{"train_micro_batch_size_per_gpu": "auto", "zero_optimization": {"stage": 3, '
                                      '"offload_param": {"device": "cpu"}, "offload_optimizer": {"device": "cpu"}}}')
    (tmp_path / "train.yaml").write_text("model_name_or_path: Qwen/Qwen2.5-14B\nstage: sft\ndo_train: true\n"
                                         "finetuning_type: lora\nquantization_bit: 4\ndeepspeed: ds.json\nfp16: true\n")
    main(["check", str(tmp_path / "train.yaml"), "--gpus", "1xT4", "--no-nearest"])
    out = capsys.readouterr().out
    assert "warning: ZeRO-3 with CPU offload of a bitsandbytes-quantized base is undocumented" in out
    assert "likely too low" in out


# ---- thin margins: the budget policy ------------------------------------------------------------

def test_variable_length_samples_keep_half_a_gib_free_even_on_small_cards():
    p4 = parse_gpu_set("1xP4")  # 7.4 GiB: 5 % headroom is less than 0.5 GiB
    capacity = p4.gpu.memory_bytes
    assert capacity * 0.05 < MIN_FREE_BYTES_VARIABLE_LENGTH == GIB // 2
    assert memory_budget_bytes(p4, 0.05, variable_length=True) == capacity - GIB // 2
    assert memory_budget_bytes(p4, 0.05, variable_length=False) == int(capacity * 0.95)
    h100 = parse_gpu_set("1xH100")
    assert memory_budget_bytes(h100, 0.05, variable_length=True) == int(h100.gpu.memory_bytes * 0.95)


def test_no_recommended_plan_has_less_than_half_a_gib_free_with_variable_lengths():
    result = fitplan.recommend("qwen2.5-7b", "8xP4", seq_len=1024, settings=SolverSettings(top_k=4))
    capacity = result.estimate.capacity_bytes
    assert capacity - result.estimate.peak_bytes >= GIB // 2
    assert all(capacity - r.peak_bytes >= GIB // 2 for r in result.runners_up)
    assert result.min_free_bytes == GIB // 2 and result.to_json_dict()["min_free_gib"] == 0.5
    packed = fitplan.recommend("qwen2.5-7b", "8xP4", seq_len=1024, packing=True)
    assert packed.min_free_bytes == 0


def test_the_budget_policy_is_printed_with_the_plan(capsys):
    main(["recommend", "--model", "qwen2.5-7b", "--gpus", "8xP4", "--seq-len", "1024"])
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("memory budget per GPU"))
    assert "5% headroom" in line and "at least 0.50 GiB free" not in line and "at least 0.5 GiB free" in line
    assert "freed before an OOM" in line


def test_a_plan_whose_max_memory_reserved_nears_the_card_says_why_it_is_still_safe():
    # issue 12: plans reaching max_memory_reserved within 1-3 % of the card; the reserve above the
    # required figure is cached variable-length segments, which the allocator frees before an OOM
    # (without Liger, whose fused loss leaves no vocabulary-sized segments to cache)
    result = fitplan.recommend("llama-3.1-70b", "2x8xH100", method="full", seq_len=4096, liger=False)
    est = result.estimate
    assert est.max_reserved_bytes > 0.97 * est.capacity_bytes and est.peak_bytes <= result.memory_budget_bytes
    assert any("releases that cache before an OOM" in note for note in est.notes)


# ---- fp16 on models known to overflow -------------------------------------------------------------

def test_fp16_on_qwen2_is_stated_with_its_source_and_bf16_chosen_where_the_card_has_it():
    t4 = fitplan.recommend("qwen2.5-7b", "1xT4")
    assert t4.plan.precision == Precision.fp16  # no bf16 on a T4: fp16 AMP, fp32 master weights
    note = next(n for n in t4.estimate.notes if "overflow in fp16" in n)
    assert "QwenLM/Qwen3 #670" in note and "--precision fp32" in note
    a100 = fitplan.recommend("qwen2.5-7b", "1xA100-80G")
    assert a100.plan.precision in (Precision.bf16, Precision.pure_bf16)
    assert not [n for n in a100.estimate.notes if "overflow in fp16" in n]
    pinned = fitplan.estimate("qwen2.5-7b", "1xA100-80G", precision="fp16")
    assert any("use --precision bf16" in n for n in pinned.notes)
    llama = fitplan.estimate("llama-2-7b", "1xT4")
    assert not [n for n in llama.notes if "overflow in fp16" in n]  # no source: no claim


def test_a_model_whose_fp16_is_broken_trains_in_fp32_on_a_card_without_bf16():
    # Gemma-3 (transformers #36822); built from the Gemma-2 entry, the architecture reader for
    # gemma3 is another issue's
    gemma3 = load_model("gemma-2-2b").model_copy(update={"name": "gemma3-like", "model_type": "gemma3"})
    t4 = fitplan.recommend(gemma3, "1xT4")
    assert t4.plan is not None and t4.plan.precision == Precision.fp32
    assert fitplan.recommend(gemma3, "1xA100-80G").plan.precision in (Precision.bf16, Precision.pure_bf16)
    pinned = fitplan.estimate(gemma3, "1xT4", precision="fp16")
    assert any("transformers #36822" in n and "--precision fp32" in n for n in pinned.notes)


# ---- bitsandbytes 8-bit below compute capability 7.5 ---------------------------------------------

@pytest.mark.parametrize("gpus", ["1xV100-16G", "1xP4"])
def test_8bit_below_cc_7_5_runs_with_a_speed_caution_and_is_not_chosen_freely(gpus):
    # bitsandbytes >= 0.37 runs LLM.int8 on SM60+ with a slow fallback (notes facts B.2): accepted, stated
    est = fitplan.estimate("qwen2.5-1.5b", gpus, bits=8)
    assert any("slow fp32 fallback" in n and "SM60+ minimum" in n for n in est.notes)
    free = fitplan.recommend("qwen2.5-1.5b", gpus, settings=SolverSettings(top_k=3))
    assert free.plan is not None and all(p.bits != 8 for p in plans_of(free))
    pinned = fitplan.recommend("qwen2.5-1.5b", gpus, bits=8)
    assert pinned.plan is not None and pinned.plan.bits == 8
    assert not [n for n in fitplan.estimate("qwen2.5-1.5b", "1xT4", bits=8).notes if "slow fp32" in n]


# ---- an invalid pin is answered with its error, not a length ----------------------------------------

@pytest.mark.parametrize("question", ["--max-seq-len", "--min-gpus"])
def test_a_question_with_an_invalid_pin_answers_the_pins_error(question, capsys):
    code = main(["recommend", "--model", "qwen2.5-7b", "--gpus", "1xT4", "--attn", "fa2", question])
    captured = capsys.readouterr()
    assert code == 2 and "FlashAttention-2 needs compute capability >= 8.0" in captured.err
    assert "max seq len" not in captured.out and "min gpus" not in captured.out


# ---- Gemma-2 and SDPA: follow LLaMA-Factory -----------------------------------------------------------

def test_gemma2_is_never_planned_with_sdpa():
    t4 = fitplan.recommend("gemma-2-2b", "1xT4")
    assert t4.plan.attn == Attention.eager  # no FA2 below cc 8.0: LLaMA-Factory's `auto` runs eager
    values = llamafactory_files(load_model("gemma-2-2b"), parse_gpu_set("1xT4"), t4.plan, EmitPlaceholders())
    assert "flash_attn: disabled" in values["train.yaml"]
    assert fitplan.recommend("gemma-2-2b", "1xA100-80G").plan.attn == Attention.fa2
    assert fitplan.estimate("gemma-2-2b", "1xT4").config.attn == Attention.eager
    pinned = fitplan.estimate("gemma-2-2b", "1xT4", attn="sdpa")
    assert any("SDPA attention does not support it" in n for n in pinned.notes)
    assert not [n for n in fitplan.estimate("qwen2.5-0.5b", "1xT4", attn="sdpa").notes if "soft-capping" in n]
