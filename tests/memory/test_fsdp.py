"""FSDP's memory behaviour, as its sources describe it (solver/memory/fsdp.py cites them): what is
sharded, what every GPU keeps whole, what CPU offload moves, how FSDP1 and FSDP2 differ under
accelerate 1.11. The figures themselves are held to the FSDP trace in
tests/oracle/test_fsdp_trace_vs_formula.py; these are the relations that must hold at any size."""

import pytest

from fitplan.solver.memory.estimate import estimate
from fitplan.solver.memory.fsdp import fsdp_load, fsdp_model_states, root_params, shard_group_size
from fitplan.solver.memory.peak import host_ram_bytes, step_moments
from fitplan.solver.memory.states import model_states
from fitplan.solver.memory.terms import Term
from fitplan.solver.problem.config import TrainConfig
from fitplan.solver.specs.catalog import load_model, parse_gpu_set
from fitplan.solver.units import HALF_BYTES

QWEN7 = load_model("qwen2.5-7b")  # untied embeddings, vocabulary 152,064


def fsdp(**knobs) -> TrainConfig:
    return TrainConfig(**{"fsdp_strategy": "full_shard", "n_gpus": 8, **knobs})


def moment(config, name, model=QWEN7, gpus_per_node=8):
    return next(m for m in step_moments(model, config, gpus_per_node) if m.name == name)


def test_full_shard_divides_every_model_state_by_the_gpus():
    two, eight = (fsdp_model_states(QWEN7, fsdp(method="full", n_gpus=n), 8) for n in (2, 8))
    for field in ("trainable_params", "optimizer_states", "gradients"):
        assert getattr(two, field) == pytest.approx(4 * getattr(eight, field))


def test_fsdp_keeps_no_16_bit_copy_beside_the_fp32_master_unlike_zero3():
    # ZeRO-3: 16-bit params + fp32 master + states; FSDP's fp32 shard is the master (torch _fsdp_api.py)
    zero3 = model_states(QWEN7, TrainConfig(method="full", zero_stage=3, n_gpus=8), 8)
    full_shard = fsdp_model_states(QWEN7, fsdp(method="full"), 8)
    assert full_shard.trainable_params + full_shard.optimizer_states < zero3.trainable_params + zero3.optimizer_states


def test_hybrid_shard_shards_inside_a_node_only():
    config = fsdp(method="full", fsdp_strategy="hybrid_shard", n_gpus=16)
    assert shard_group_size(config, gpus_per_node=8) == 8
    hybrid = fsdp_model_states(QWEN7, config, 8)
    across = fsdp_model_states(QWEN7, fsdp(method="full", n_gpus=16), 8)
    assert hybrid.optimizer_states == pytest.approx(2 * across.optimizer_states)


def test_no_shard_and_one_gpu_shard_nothing():
    assert shard_group_size(fsdp(fsdp_strategy="no_shard"), 8) == 1
    assert shard_group_size(fsdp(n_gpus=1, offload="all"), 8) == 1  # FSDP1 clamps to NO_SHARD (_init_utils.py)


def test_cpu_offload_moves_shards_gradients_and_optimizer_to_the_host():
    on_gpu = fsdp_model_states(QWEN7, fsdp(method="full"), 8)
    offloaded = fsdp_model_states(QWEN7, fsdp(method="full", offload="all"), 8)
    assert (offloaded.trainable_params, offloaded.optimizer_states, offloaded.gradients) == (0, 0, 0)
    per_node = on_gpu.trainable_params + on_gpu.optimizer_states + on_gpu.gradients + on_gpu.weights
    assert offloaded.host_ram == pytest.approx(8 * per_node)
    assert host_ram_bytes(QWEN7, fsdp(method="full", offload="all"), 8) > 0


def test_fsdp2_under_accelerate_1_11_keeps_frozen_lora_weights_as_fp32_shards():
    # fsdp2_prepare_model casts the whole model to fp32 after fully_shard (accelerate 1.11 fsdp_utils.py:702-707)
    v1 = fsdp_model_states(QWEN7, fsdp(method="lora", fsdp_version=1), 8)
    v2 = fsdp_model_states(QWEN7, fsdp(method="lora", fsdp_version=2), 8)
    assert v2.weights == pytest.approx(2 * v1.weights)


def test_nf4_constants_are_kept_whole_on_every_gpu():
    # quant_state is a module attribute, not a parameter: FSDP shards the packed weights only
    two, eight = (fsdp_model_states(QWEN7, fsdp(method="qlora", bits=4, n_gpus=n), 8).weights for n in (2, 8))
    assert two < 4 * eight


def test_the_root_unit_is_gathered_whole_from_the_first_forward_to_the_loss():
    root = HALF_BYTES * root_params(QWEN7)
    for name in ("forward_last_layer", "forward_end", "loss"):
        assert moment(fsdp(), name).terms[Term.unsharded_params].at(1) >= root


def test_shard_grad_op_holds_every_layer_gathered_at_the_end_of_the_forward():
    full, sgo = (moment(fsdp(fsdp_strategy=s), "forward_end").terms[Term.unsharded_params].at(1)
                 for s in ("full_shard", "shard_grad_op"))
    assert sgo - full >= QWEN7.num_layers * HALF_BYTES * QWEN7.layer_params() * 0.99


def test_gradient_accumulation_keeps_unsharded_gradients_between_micro_steps():
    one = moment(fsdp(method="full", grad_accum=1), "forward_last_layer").total().at(1)
    many = moment(fsdp(method="full", grad_accum=4), "forward_last_layer")
    assert many.terms[Term.unsharded_grads].at(1) >= HALF_BYTES * QWEN7.total_params()
    assert many.total().at(1) > one


def test_fsdp_computes_in_16_bit_so_autocast_caches_no_weight_copies():
    assert any(Term.autocast_weight_copies in m.terms for m in step_moments(QWEN7, TrainConfig(method="full"), 8))
    for m in step_moments(QWEN7, fsdp(method="full"), 8):
        assert Term.autocast_weight_copies not in m.terms


def test_fsdp_estimate_reports_its_terms_with_their_labels():
    est = estimate(QWEN7, parse_gpu_set("8xA100-80G"), fsdp(seq_len=2048))
    assert est.breakdown_bytes.get(Term.unsharded_params.value, 0) > 0
    assert Term.unsharded_params.label == "FSDP gathered params"


def test_the_fsdp_load_is_a_moment_the_plan_must_fit():
    """At 256 tokens the activations are small and wrapping binds: the largest unit (the root:
    embedding + lm_head) sits on the GPU twice, moved whole and flattened, on top of the shards."""
    est = estimate(QWEN7, parse_gpu_set("8xA100-80G"), fsdp(seq_len=256))
    load = fsdp_load(QWEN7, fsdp(seq_len=256), 8)
    assert est.peak_moment == "load" and est.tensor_peak_bytes == pytest.approx(load.gpu_bytes, rel=1e-9)
    assert est.breakdown_bytes[Term.fsdp_unit_flattened.value] == pytest.approx(2 * HALF_BYTES * root_params(QWEN7),
                                                                               rel=1e-9)


def test_loading_reads_the_checkpoint_once_per_node_only_with_cpu_ram_efficient_loading():
    config = fsdp(method="qlora", bits=4)
    once = fsdp_load(QWEN7, config, 8, cpu_ram_efficient_loading=True)
    every = fsdp_load(QWEN7, config, 8, cpu_ram_efficient_loading=False)
    assert every.host_ram_bytes == pytest.approx(8 * once.host_ram_bytes)
    assert once.gpu_bytes > 2 * HALF_BYTES * root_params(QWEN7)
