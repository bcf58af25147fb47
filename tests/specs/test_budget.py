"""A VRAM budget as a GPU (`--gpus 1x24GiB`, `2x80GB`): a generic card of that memory with a stated
feature set and unknown speed, in estimate, recommend, sweep and --max-seq-len."""

from __future__ import annotations

import json

import pytest

import fitplan
from fitplan.cli.main import main
from fitplan.solver.errors import InvalidConfigurationError, UnknownGpuError
from fitplan.solver.specs.catalog import load_gpu, parse_gpu_set
from fitplan.solver.units import GIB


@pytest.mark.parametrize("text, nodes, per_node, memory", [
    ("1x24GiB", 1, 1, 24 * GIB), ("2x80GB", 1, 2, 80 * 10**9), ("24gib", 1, 1, 24 * GIB),
    ("2x8x80GB", 2, 8, 80 * 10**9), ("1x22.5GiB", 1, 1, int(22.5 * GIB)),
])
def test_gib_is_two_to_the_thirty_and_gb_is_ten_to_the_nine(text, nodes, per_node, memory):
    gpus = parse_gpu_set(text)
    assert (gpus.nodes, gpus.gpus_per_node, gpus.gpu.memory_bytes) == (nodes, per_node, memory)
    assert gpus.gpu.vendor == "generic" and not gpus.gpu.rates_known


def test_the_default_features_are_bf16_fa2_and_bitsandbytes_and_a_suffix_changes_them():
    default = parse_gpu_set("1x24GiB").gpu
    assert default.bf16_hardware and default.flash_attention_2 and default.bitsandbytes_4bit
    fp16 = parse_gpu_set("1x16GiB:fp16").gpu
    assert not fp16.bf16_hardware and not fp16.flash_attention_2 and fp16.bitsandbytes_4bit
    bare = parse_gpu_set("1x16GiB:none").gpu
    assert not (bare.bf16_hardware or bare.flash_attention_2 or bare.bitsandbytes_4bit)
    assert parse_gpu_set("1x16GiB:bf16+bnb").gpu.flash_attention_2 is False


def test_an_unknown_feature_is_one_line_naming_the_features():
    with pytest.raises(UnknownGpuError, match="bf16, fa2, bnb"):
        parse_gpu_set("1x24GiB:tf32")


def test_a_budget_is_no_catalog_name():
    with pytest.raises(UnknownGpuError):
        load_gpu("24GiB")


def test_estimate_on_a_budget_uses_exactly_its_bytes(capsys):
    est = fitplan.estimate("qwen2.5-7b", "1x24GiB", method="lora", seq_len=1024)
    assert est.capacity_bytes == 24 * GIB and est.gpus == "1x24GiB"
    assert main(["estimate", "--model", "qwen2.5-7b", "--gpus", "1x24GiB", "--method", "lora"]) in (0, 3)
    assert "capacity" in capsys.readouterr().out


def test_a_budget_without_bf16_refuses_bf16_and_says_how_to_state_it():
    with pytest.raises(InvalidConfigurationError) as err:
        fitplan.estimate("qwen2.5-7b", "1x16GiB:fp16", precision="bf16")
    assert "16GiB:bf16+fa2+bnb" in str(err.value)


def test_recommend_on_a_budget_ranks_by_memory_fit_and_says_so(capsys):
    code = main(["recommend", "--model", "qwen2.5-1.5b", "--gpus", "1x24GiB", "--seq-len", "1024", "--json"])
    payload = json.loads(capsys.readouterr().out)
    assert code == 0 and payload["plan"] is not None
    assert payload["speed_known"] is False and payload["tokens_per_s"] is None and payload["step_time_s"] is None
    assert "memory fit" in payload["ranking"]
    code = main(["recommend", "--model", "qwen2.5-1.5b", "--gpus", "1x24GiB", "--seq-len", "1024"])
    text = capsys.readouterr().out
    assert "speed: unknown" in text and "memory fit" in text and "tokens/s" not in text


def test_a_budget_ranks_plans_as_its_reference_card_with_that_memory_would():
    # specs/budget.py: a budget has no rates of its own; its plans are ranked on the reference
    # card's rates (A100-80G with bf16), so the plan is the one that card would get with 24 GiB.
    budget = fitplan.recommend("qwen2.5-1.5b", "1x24GiB", seq_len=1024, method="lora", lora_rank=8)
    a100 = fitplan.parse_gpu_set("1xA100-80G")
    a100_24 = a100.model_copy(update={"gpu": a100.gpu.model_copy(update={"memory_bytes": 24 * 2**30})})
    reference = fitplan.recommend("qwen2.5-1.5b", a100_24, seq_len=1024, method="lora", lora_rank=8)
    knobs = ("method", "lora_rank", "micro_batch", "grad_accum", "grad_ckpt", "zero_stage", "offload", "optim")
    assert [getattr(budget.plan, k) for k in knobs] == [getattr(reference.plan, k) for k in knobs]
    assert budget.tokens_per_s is None and reference.tokens_per_s > 0


def test_max_seq_len_works_on_a_budget(capsys):
    assert main(["recommend", "--model", "qwen2.5-7b", "--gpus", "1x24GiB", "--method", "qlora",
                 "--max-seq-len", "--json"]) == 0
    longest = json.loads(capsys.readouterr().out)["max_seq_len"]
    assert longest and longest > 1024
    assert main(["recommend", "--model", "qwen2.5-7b", "--gpus", "1x48GiB", "--method", "qlora",
                 "--max-seq-len", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["max_seq_len"] >= longest


def test_sweep_rows_on_budgets_have_no_speed_and_say_why():
    rows = list(fitplan.sweep(["qwen2.5-0.5b"], ["1x24GiB", "1xA10"], seq_lens=[512], method="lora"))
    budget, a10 = rows
    assert budget.fits and budget.tokens_per_s is None and "speed unknown" in budget.reason
    assert a10.fits and a10.tokens_per_s is not None and a10.reason == ""


def test_sweep_command_reads_budgets(capsys):
    code = main(["sweep", "--models", "qwen2.5-0.5b", "--gpus", "1x24GiB,2x80GB", "--seq-lens", "512",
                 "--no-search", "--format", "jsonl"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0 and [r["gpus"] for r in rows] == ["1x24GiB", "2x80GB"] and all(r["fits"] for r in rows)
