"""Pre-quantized checkpoints (GPTQ, AWQ): read from config.json's `quantization_config`, their
stored weights and their kernels' working memory planned, what LLaMA-Factory 0.9.5 refuses on
them refused, and every method fitplan does not model refused in one line instead of a wrong
figure (issue 12)."""

from __future__ import annotations

import json
import math

import pytest
from paths import TEST_DATA

import fitplan
from fitplan.cli.main import main
from fitplan.solver.errors import ConfigFileError, InvalidConfigurationError
from fitplan.solver.memory.estimate import estimate
from fitplan.solver.memory.peak import step_moments
from fitplan.solver.memory.terms import Term
from fitplan.solver.memory.states import frozen_base_bytes
from fitplan.solver.problem.config import TrainConfig
from fitplan.solver.specs.catalog import load_model, parse_gpu_set
from fitplan.solver.specs.hf_config import model_from_config_file

CONFIGS = TEST_DATA / "configs"
GPTQ = CONFIGS / "llama-2-7b-gptq.json"
AWQ = CONFIGS / "llama-2-7b-awq.json"


def with_quantization(tmp_path, quantization: dict):
    cfg = json.loads((CONFIGS / "llama-2-7b.json").read_text())
    cfg["quantization_config"] = quantization
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    return path


def test_quantization_config_is_read():
    gptq = model_from_config_file(GPTQ).prequantized
    assert (gptq.method, gptq.bits, gptq.group_size) == ("gptq", 4, 128)
    awq = model_from_config_file(AWQ).prequantized
    assert (awq.method, awq.bits, awq.group_size) == ("awq", 4, 128)
    assert model_from_config_file(CONFIGS / "llama-2-7b.json").prequantized is None


@pytest.mark.parametrize("method", ["aqlm", "bitsandbytes", "hqq", "compressed-tensors", "eetq", ""])
def test_a_method_whose_storage_is_not_modelled_is_refused_in_one_line(tmp_path, method):
    path = with_quantization(tmp_path, {"quant_method": method, "bits": 2})
    with pytest.raises(ConfigFileError, match="does not model") as info:
        model_from_config_file(path)
    assert "\n" not in str(info.value)


def test_awq_other_than_4bit_gemm_is_refused(tmp_path):
    with pytest.raises(ConfigFileError, match="4-bit GEMM"):
        model_from_config_file(with_quantization(tmp_path, {"quant_method": "awq", "bits": 4, "group_size": 128,
                                                            "version": "gemv"}))


def gptqmodel_buffer_bytes(in_f: int, out_f: int, bits: int, group: int) -> int:
    """The GPTQ buffers gptqmodel 7.7.0 registers (`nn_modules/qlinear/__init__.py`
    `_register_gptq_buffers`), tensor by tensor: shape x element size."""
    tensors = [((math.ceil(in_f * bits / 32), out_f), 4),                        # qweight int32
               ((math.ceil(in_f / group), math.ceil(out_f * bits / 32)), 4),      # qzeros int32
               ((math.ceil(in_f / group), out_f), 2),                             # scales fp16
               ((in_f,), 4)]                                                      # g_idx int32
    return sum(math.prod(shape) * size for shape, size in tensors)


def test_gptq_storage_is_the_sum_of_its_buffers():
    model = model_from_config_file(GPTQ)
    config = TrainConfig()  # LoRA: the whole base is frozen
    layer = sum(gptqmodel_buffer_bytes(m.in_features, m.out_features, 4, 128) for m in model.linear_modules())
    rest = 2 * (model.total_params() - model.num_layers * sum(m.weight_params for m in model.linear_modules()))
    assert frozen_base_bytes(model, config) == pytest.approx(model.num_layers * layer + rest)
    # about 0.52 B per linear weight (facts.md B.5, derived): well under a third of the 16-bit base
    sixteen = frozen_base_bytes(load_model("llama-2-7b"), config)
    assert 0.25 < frozen_base_bytes(model, config) / sixteen < 0.33


def test_gptq_without_checkpointing_keeps_every_layers_dequantized_weights():
    # gptqmodel torch kernel: dequantize_weight() then matmul; autograd keeps the fp16 weight for backward
    model, gpus = model_from_config_file(GPTQ), parse_gpu_set("1xA100-80G")
    linear16 = 2 * model.num_layers * sum(m.weight_params for m in model.linear_modules())
    no_ckpt = estimate(model, gpus, TrainConfig(grad_ckpt=False))
    assert no_ckpt.breakdown_bytes["dequantized_weights"] == linear16
    # with checkpointing the forward saves nothing; the layer being recomputed keeps its own
    kept = {m.name: m.terms.get(Term.dequantized_weights) for m in step_moments(model, TrainConfig(grad_ckpt=True))}
    assert kept["loss"] is None and kept["forward_end"] is None
    assert kept["backward_first_layer"].at(1) == kept["backward_last_layer"].at(1) == linear16 // model.num_layers
    assert any("kept" in note and "gptqmodel" in note for note in no_ckpt.notes)


def test_awq_keeps_no_dequantized_weight_but_dequantizes_one_module_at_a_time():
    model, gpus = model_from_config_file(AWQ), parse_gpu_set("1xA100-80G")
    result = estimate(model, gpus, TrainConfig(grad_ckpt=False))
    assert "dequantized_weights" not in result.breakdown_bytes
    largest = max(m.in_features * m.out_features for m in model.linear_modules())
    assert result.breakdown_bytes["transient"] >= 2 * largest


def test_what_llamafactory_refuses_on_a_ptq_checkpoint_is_refused():
    model = model_from_config_file(GPTQ)
    for knobs, words in ((dict(method="full"), "only be used for the LoRA"),
                         (dict(method="qlora", bits=4), "ignores quantization_bit"),
                         (dict(zero_stage=3), "incompatible with PTQ-quantized models")):
        with pytest.raises(InvalidConfigurationError, match=words):
            fitplan.estimate(model, "2xA100-80G", **knobs)
    result = fitplan.recommend(model, "2xA10", settings=fitplan.SolverSettings(top_k=3))
    plans = [result.plan] + [r.plan for r in result.runners_up]
    assert all(p.method.value == "lora" and p.bits == 16 and p.zero_stage != 3 for p in plans)


def test_fp8_and_mxfp4_checkpoints_are_planned_as_16bit_models(tmp_path):
    # LLaMA-Factory loads them with dequantize=True (model_utils/quantization.py)
    model = model_from_config_file(with_quantization(tmp_path, {"quant_method": "fp8"}))
    assert model.prequantized.dequantized_at_load
    plain = load_model("llama-2-7b")
    config = TrainConfig(method="full", zero_stage=3, n_gpus=2)
    ours = estimate(model, parse_gpu_set("2xA100-80G"), config)
    assert ours.peak_bytes == estimate(plain, parse_gpu_set("2xA100-80G"), config).peak_bytes
    assert any("16-bit model" in note for note in ours.notes)


# ---- `check` on YAMLs that name a quantization method -----------------------------------------------

YAML = ("model_name_or_path: {model}\nstage: sft\ndo_train: true\nfinetuning_type: lora\nlora_target: all\n"
        "bf16: true\n{extra}")


def check(tmp_path, capsys, extra: str, *flags: str) -> tuple[int, str, str]:
    path = tmp_path / "train.yaml"
    path.write_text(YAML.format(model="meta-llama/Llama-2-7b-hf", extra=extra))
    code = main(["check", str(path), "--gpus", "1xA100-80G", "--no-nearest", *flags])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_check_reads_the_gptq_storage_from_the_models_config(tmp_path, capsys):
    # LLaMA-Factory's examples/train_qlora/llama3_lora_sft_gptq.yaml: no quantization keys, the checkpoint says
    code, out, _ = check(tmp_path, capsys, "", "--model", str(GPTQ))
    assert code == 0 and "GPTQ 4-bit, group size 128" in out
    code, out, _ = check(tmp_path, capsys, "quantization_bit: 4\n", "--model", str(GPTQ))
    assert code == 0 and "quantization_bit is ignored on a pre-quantized checkpoint" in out


def test_check_refuses_a_gptq_method_on_a_model_without_quantization_config(tmp_path, capsys):
    code, _, err = check(tmp_path, capsys, "quantization_method: gptq\n", "--model", "llama-2-7b")
    assert code == 2 and "pass --model with that checkpoint's config.json" in err


def test_gptq_method_with_quantization_bit_on_a_plain_checkpoint_loads_16bit(tmp_path, capsys):
    # facts.md B.5: no on-the-fly branch for gptq in LLaMA-Factory 0.9.5, so nothing is quantized
    code, out, _ = check(tmp_path, capsys, "quantization_method: gptq\nquantization_bit: 4\n", "--model", "llama-2-7b")
    assert code == 0 and "quantizes nothing" in out and "lora r8," in out and "4-bit" not in out.splitlines()[0]
