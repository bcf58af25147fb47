"""`recommend` on the trivial cases first (CP-SAT primer, "tests first for the trivial cases"):
nothing fits, exactly one thing fits, everything fits; then the JSON contract and exit codes.

Expected answers are computed here by `estimate` (the evaluator `fitplan estimate` uses), never
hard-coded: the memory model's constants may be recalibrated without these tests changing."""

import json

import pytest

from fitplan.cli.main import main
from fitplan.solver.errors import InvalidConfigurationError
from fitplan.solver.memory.estimate import estimate
from fitplan.solver.planner.recommend import recommend
from fitplan.solver.planner.search_space import search_space
from fitplan.solver.problem.instance import Instance, Pins, Workload
from fitplan.solver.problem.settings import SolverSettings, memory_budget_bytes
from fitplan.solver.specs.catalog import load_gpu, load_model
from fitplan.solver.specs.gpu import GpuSet
from fitplan.solver.specs.model import Family, ModelSpec
from fitplan.solver.units import GIB

PLAN_KEYS = {"method", "bits", "lora_rank", "micro_batch", "grad_accum", "grad_ckpt", "attn", "zero_stage", "offload",
             "optim", "precision", "n_gpus"}


def tiny_model() -> ModelSpec:
    """A 4-layer Llama-shaped model small enough that every test query is quick."""
    return ModelSpec(name="tiny-llama", model_type="llama", family=Family.llama, hidden_size=256, num_layers=4,
                     num_attention_heads=4, num_kv_heads=2, head_dim=64, intermediate_size=688, vocab_size=1000,
                     tie_word_embeddings=False, max_position_embeddings=4096, official_params=4_000_000,
                     official_params_source="test fixture", source="test fixture")


def gpus_with_memory(memory_bytes: int, count: int = 1, name: str = "A100-80G") -> GpuSet:
    gpu = load_gpu(name).model_copy(update={"memory_bytes": memory_bytes})
    return GpuSet(gpu=gpu, gpus_per_node=count)


PINNED_EXCEPT_MICRO_BATCH = Pins(method="lora", lora_rank=8, grad_ckpt=True, attn="sdpa", zero_stage=0, offload="none",
                                 optim="adamw", precision="bf16", n_gpus=1)


def _peaks_of_space(instance: Instance) -> list[tuple[int, object]]:
    space = search_space(instance)
    peaks = []
    for knobs in space.knob_combinations():
        for split in space.splits_for(knobs.n_gpus):
            config = space.config(knobs, split)
            peaks.append((estimate(instance.model, instance.gpus, config).peak_bytes, config))
    return peaks


def test_nothing_fits_on_a_gpu_smaller_than_the_cuda_context():
    instance = Instance(model=tiny_model(), gpus=gpus_with_memory(256 * 2**20), workload=Workload(seq_len=256),
                        pins=PINNED_EXCEPT_MICRO_BATCH)
    result = recommend(instance)
    assert result.status == "infeasible"
    assert result.plan is None and result.estimate is None
    assert "exceed" in result.explanation.binding
    assert result.to_json_dict()["plan"] is None


def test_exactly_one_thing_fits_when_the_gpu_holds_exactly_the_smallest_plan():
    # packed samples: no minimum free memory beside the headroom (problem/settings.py budget policy)
    probe = Instance(model=tiny_model(), gpus=gpus_with_memory(80 * GIB),
                     workload=Workload(seq_len=512, global_batch=8, packing=True), pins=PINNED_EXCEPT_MICRO_BATCH)
    peaks = sorted(_peaks_of_space(probe), key=lambda item: item[0])
    smallest, only_config = peaks[0]
    assert peaks[1][0] > smallest  # micro batch 1 is the unique smallest
    instance = probe.model_copy(update={"gpus": gpus_with_memory(smallest)})
    result = recommend(instance, SolverSettings(headroom_fraction=0))
    assert result.status == "optimal"
    assert result.plan == only_config
    assert result.estimate.peak_bytes == smallest


def test_everything_fits_then_the_largest_micro_batch_wins():
    instance = Instance(model=tiny_model(), gpus=gpus_with_memory(80 * GIB), workload=Workload(seq_len=512, global_batch=8),
                        pins=PINNED_EXCEPT_MICRO_BATCH)
    assert all(peak <= memory_budget_bytes(instance.gpus, 0.05) for peak, _ in _peaks_of_space(instance))
    result = recommend(instance)
    assert result.plan.micro_batch == 8 and result.plan.grad_accum == 1
    assert result.estimate.fits


def test_global_batch_is_split_exactly_over_micro_batch_accumulation_and_gpus():
    instance = Instance(model=tiny_model(), gpus=gpus_with_memory(80 * GIB, count=4),
                        workload=Workload(seq_len=256, global_batch=24))
    plan = recommend(instance).plan
    assert plan.micro_batch * plan.grad_accum * plan.n_gpus == 24


def test_same_query_gives_the_same_json_byte_for_byte():
    instance = Instance(model=tiny_model(), gpus=gpus_with_memory(8 * GIB, count=2), workload=Workload(seq_len=1024))
    first = json.dumps(recommend(instance, SolverSettings(top_k=3)).to_json_dict())
    second = json.dumps(recommend(instance, SolverSettings(top_k=3)).to_json_dict())
    assert first == second


def test_runners_up_are_distinct_and_no_faster_than_allowed():
    instance = Instance(model=tiny_model(), gpus=gpus_with_memory(8 * GIB, count=2), workload=Workload(seq_len=1024))
    result = recommend(instance, SolverSettings(top_k=4))
    plans = [result.plan, *[r.plan for r in result.runners_up]]
    assert len(result.runners_up) == 3
    assert len({p.model_dump_json() for p in plans}) == 4


def test_pins_the_gpu_cannot_run_are_bad_input_not_nothing_fits():
    instance = Instance(model=tiny_model(), gpus=GpuSet(gpu=load_gpu("P4"), gpus_per_node=1),
                        pins=Pins(precision="bf16"))
    with pytest.raises(InvalidConfigurationError, match="bf16"):
        recommend(instance)


def test_p4_plans_never_use_bf16_or_flash_attention():
    instance = Instance(model=load_model("qwen2.5-0.5b"), gpus=GpuSet(gpu=load_gpu("P4"), gpus_per_node=2),
                        workload=Workload(seq_len=512))
    result = recommend(instance, SolverSettings(top_k=3))
    for plan in [result.plan, *[r.plan for r in result.runners_up]]:
        assert plan.precision.value == "fp16" and plan.attn.value == "sdpa"


def test_cli_json_has_the_stable_keys(capsys):
    code = main(["recommend", "--model", "qwen2.5-0.5b", "--gpus", "1xA10", "--seq-len", "512", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert {"status", "plan", "estimate", "tokens_per_s"} <= set(data)
    assert PLAN_KEYS <= set(data["plan"])
    assert data["status"] in ("optimal", "feasible")
    assert data["estimate"]["fits"] is True


def test_cli_exits_3_and_says_why_when_nothing_fits(capsys):
    # Without CPU offload a 72B model's 4-bit weights alone (about 36 GB) exceed one P4.
    code = main(["recommend", "--model", "qwen2.5-72b", "--gpus", "1xP4", "--seq-len", "512", "--offload", "none"])
    out = capsys.readouterr().out
    assert code == 3
    assert "nothing fits" in out and "P4" in out


def test_cli_exits_2_on_a_pin_the_gpu_cannot_run(capsys):
    code = main(["recommend", "--model", "qwen2.5-0.5b", "--gpus", "1xT4", "--attn", "fa2"])
    assert code == 2
    assert "FlashAttention-2" in capsys.readouterr().err
