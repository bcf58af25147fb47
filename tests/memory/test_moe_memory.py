"""What mixture-of-experts and the other 2025 layouts add to `estimate`: every expert's weights,
the routed activations, the load-time peak on the GPU and in host RAM, the ZeRO-3 MoE block,
the aux loss, the capacity factor, and the JSON keys. The bytes themselves are held to the trace
in tests/oracle/test_trace_modern.py; these tests pin the mechanics against numbers derived from
the config (each derivation written out)."""

import json

import pytest
from paths import TEST_DATA

from fitplan.cli.main import main
from fitplan.solver.errors import InvalidConfigurationError
from fitplan.solver.memory.estimate import estimate
from fitplan.solver.memory.load import load_host_ram_bytes
from fitplan.solver.memory.peak import step_moments
from fitplan.solver.memory.terms import Term
from fitplan.solver.oracle.small_models import MODERN_SMALL_MODELS
from fitplan.solver.problem.config import make_config
from fitplan.solver.specs.catalog import parse_gpu_set
from fitplan.solver.specs.hf_config import model_from_config_file
from fitplan.solver.units import GIB

CONFIGS = TEST_DATA / "configs"
QWEN3_MOE = CONFIGS / "qwen3-30b-a3b.json"
GPT_OSS = CONFIGS / "gpt-oss-20b.json"


def _model(path):
    return model_from_config_file(path)


def test_lora_keeps_every_expert_on_every_gpu_unless_zero3_shards_them():
    model = _model(QWEN3_MOE)
    experts = model.expert_params_total() * 2  # bf16
    ddp = estimate(model, parse_gpu_set("8xH100"), make_config(n_gpus=8))
    zero3 = estimate(model, parse_gpu_set("8xH100"), make_config(n_gpus=8, zero_stage=3))
    assert ddp.term_bytes[Term.expert_weights.value] == experts
    assert zero3.term_bytes[Term.expert_weights.value] == experts // 8
    # ZeRO-3 gathers a whole MoE block (LLaMA-Factory's leaf module): all 128 experts of a layer
    assert zero3.term_bytes[Term.zero3_gathered_moe_block.value] >= 2 * model.expert_params(model.last_layer_kind)


def test_qlora_leaves_the_fused_experts_in_16_bit():
    """bitsandbytes replaces nn.Linear modules only (transformers 5.6 integrations/bitsandbytes.py:184)."""
    model = _model(QWEN3_MOE)
    qlora = estimate(model, parse_gpu_set("1xH100"), make_config(method="qlora", bits=4, seq_len=512))
    assert qlora.term_bytes[Term.expert_weights.value] == model.expert_params_total() * 2
    assert qlora.breakdown_bytes["weights"] > model.expert_params_total() * 2


def test_routed_activations_scale_with_top_k_rows_and_the_capacity_factor():
    model = MODERN_SMALL_MODELS["qwen3_moe"]
    gpus = parse_gpu_set("1xA100-80G")
    base = make_config(seq_len=256, grad_ckpt=False)
    routed = estimate(model, gpus, base).term_bytes[Term.routed_activations.value]
    # tiny qwen3_moe: 2 MoE layers, k = 2, m = 128, h = 256, bf16 routing weights (findings section 3):
    # k (6m + 2h + 24) + 2k bytes per token per layer
    assert routed == 2 * 256 * (2 * (6 * 128 + 2 * 256 + 24) + 2 * 2)
    wider = estimate(model, gpus, base.model_copy(update={"capacity_factor": 1.25}))
    assert wider.term_bytes[Term.routed_activations.value] > routed
    assert any("capacity factor 1.25 is your margin" in note for note in wider.notes)
    assert not any("capacity factor" in note for note in estimate(model, gpus, base).notes)


def test_aux_loss_keeps_the_router_logits_of_every_moe_layer_where_llamafactory_turns_it_on():
    gpus = parse_gpu_set("1xA100-80G")
    mixtral = MODERN_SMALL_MODELS["mixtral"]  # 3 MoE layers, 8 experts
    on = make_config(seq_len=256, moe_aux_loss_coef=0.001)
    loss = {m.name: m for m in step_moments(mixtral, on)}["loss"]
    assert loss.terms[Term.aux_loss_logits].at(1) == 2 * 8 * 3 * 256  # traced: 2E B/token/MoE layer
    gpt_oss = MODERN_SMALL_MODELS["gpt_oss"]  # not in LLaMA-Factory's output_router_logits list
    assert Term.aux_loss_logits not in {m.name: m for m in step_moments(gpt_oss, on)}["loss"].terms


def test_qlora_under_zero3_peaks_at_the_load_with_the_whole_model_on_each_gpu():
    model = _model(QWEN3_MOE)
    result = estimate(model, parse_gpu_set("8xA100-40G"),
                      make_config(method="qlora", bits=4, n_gpus=8, zero_stage=3))
    load = next(m for m in result.moments if m.name == "load")
    assert result.peak_moment == "load"
    assert load.tensor_bytes > 54 * GIB  # the 16-bit experts alone, whole, before ZeRO-3 shards anything
    assert not result.fits  # 40 GB GPUs cannot hold it, although training would need far less
    training = max(m.required_bytes for m in result.moments if m.name != "load")
    assert training < result.capacity_bytes
    assert any("before ZeRO-3 shards it" in note for note in result.notes)


def test_a_dequantized_mxfp4_checkpoint_loads_whole_in_bf16_under_zero3():
    model = _model(GPT_OSS)
    config = make_config(n_gpus=4, zero_stage=3)
    result = estimate(model, parse_gpu_set("4xRTX3090"), config)
    load = next(m for m in result.moments if m.name == "load")
    assert load.tensor_bytes >= model.total_params() * 2  # 41.8 GB of bf16 weights on a 24 GB card
    assert not result.fits and result.peak_moment == "load"
    # and every rank holds its bf16 copy in host RAM first
    assert load_host_ram_bytes(model, config, 4) == 4 * model.total_params() * 2
    assert any("dequantized to bf16" in note for note in result.notes)


def test_zero3_fuses_per_expert_checkpoints_in_every_ranks_host_ram():
    model = _model(QWEN3_MOE)
    config = make_config(n_gpus=8, zero_stage=3)
    assert load_host_ram_bytes(model, config, 8) == 8 * model.expert_params_total() * 2
    assert load_host_ram_bytes(model, make_config(n_gpus=8, zero_stage=2), 8) == 0


def test_host_ram_per_node_binds_a_zero3_plan(capsys):
    code = main(["estimate", "--model", str(QWEN3_MOE), "--gpus", "8xH100", "--zero", "3", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["host_ram_gib"] == pytest.approx(8 * 28_991_029_248 * 2 / GIB, rel=1e-3)


def test_estimate_json_reports_total_and_active_params_and_the_moe_terms(capsys):
    code = main(["estimate", "--model", str(CONFIGS / "mixtral-8x7b-v0.1.json"), "--gpus", "8xA100-80G",
                 "--zero", "3", "--no-grad-ckpt", "--seq-len", "1024", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert data["total_params"] == 46_702_792_704  # every expert (Hub count)
    assert data["active_params"] == 12_879_925_248  # top-2 of 8 (Mistral: "12.9B active")
    assert {"expert_weights", "routed_activations", "router_activations"} <= set(data["terms_gib"])
    assert data["layers"] == "32 MoE layers"
    assert any("not the routed experts" in note for note in data["notes"])


def test_dense_models_report_active_equal_to_total(capsys):
    main(["estimate", "--model", "qwen2.5-7b", "--gpus", "1xA100-80G", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert data["active_params"] == data["total_params"]


def test_full_fine_tuning_an_moe_under_amp_without_deepspeed_is_refused_on_cuda():
    """fp32 experts reach grouped_mm, which torch documents as bf16-only on CUDA (problem/rules.py)."""
    model = MODERN_SMALL_MODELS["mixtral"]
    gpus = parse_gpu_set("1xA100-80G")
    with pytest.raises(InvalidConfigurationError, match="grouped_mm takes bf16 only"):
        estimate(model, gpus, make_config(method="full"))
    estimate(model, gpus, make_config(method="full", precision="pure_bf16"))
    estimate(model, parse_gpu_set("2xA100-80G"), make_config(method="full", zero_stage=2, n_gpus=2))


def test_flash_attention_past_llama4s_chunk_is_refused():
    model = _model(CONFIGS / "llama-4-scout-17b-16e-instruct.abridged.json")
    with pytest.raises(InvalidConfigurationError, match="attention_chunk_size 8192"):
        estimate(model, parse_gpu_set("8xH100"), make_config(attn="fa2", seq_len=16384, n_gpus=8, zero_stage=3))


def test_deepseek_v2_under_zero3_is_refused_with_the_llamafactory_line():
    model = _model(CONFIGS / "deepseek-v2-lite.json")
    with pytest.raises(InvalidConfigurationError, match="DeepseekV2MoE"):
        estimate(model, parse_gpu_set("2xA100-80G"), make_config(zero_stage=3, n_gpus=2))


def test_a_vision_tower_is_frozen_weights_on_its_own_line():
    model = MODERN_SMALL_MODELS["gemma3"]
    result = estimate(model, parse_gpu_set("1xA100-80G"), make_config(method="full", seq_len=128))
    assert result.term_bytes[Term.vision_weights.value] == model.vision_params * 2
    assert result.trainable_params == model.total_params() - model.vision_params
