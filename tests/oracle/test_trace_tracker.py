"""The trace oracle's storage tracker, validated against a real run: the same training step on
real CPU tensors, measured by the same tracker, must give the fake trace's bytes exactly."""

import warnings

import pytest

pytest.importorskip("torch", reason="the trace oracle needs the [trace] extra: pip install 'fitplan[trace]'")
pytest.importorskip("transformers", reason="the trace oracle needs the [trace] extra")
pytest.importorskip("peft", reason="the trace oracle needs the [trace] extra")

from fitplan.solver.oracle.small_models import small_model  # noqa: E402
from fitplan.solver.oracle.step import trace_training_step  # noqa: E402
from fitplan.solver.problem.config import TrainConfig  # noqa: E402
from fitplan.solver.specs.model import Family  # noqa: E402

pytestmark = pytest.mark.trace

TINY = dict(hidden_size=64, num_layers=2, num_attention_heads=4, num_kv_heads=2, head_dim=16,
            intermediate_size=176, vocab_size=256)

CASES = [
    ("llama", dict(), dict(method="lora")),
    ("llama", dict(), dict(method="full", grad_accum=2, grad_ckpt=False)),
    ("qwen2", dict(model_type="qwen2", qkv_bias=True, tie_word_embeddings=True), dict(method="freeze", freeze_layers=1)),
    ("qwen3", dict(model_type="qwen3", qk_norm=True), dict(method="lora", precision="pure_bf16", attn="eager")),
    ("gemma2", dict(model_type="gemma2", norms_per_layer=4, final_logit_softcapping=30.0, tie_word_embeddings=True),
     dict(method="lora", attn="eager", precision="fp16")),
    ("phi3", dict(model_type="phi3", family=Family.phi3), dict(method="freeze", precision="fp32", freeze_layers=1)),
    ("qwen1", dict(model_type="qwen", family=Family.qwen, qkv_bias=True), dict(method="lora", grad_ckpt=False)),
    ("chatglm", dict(model_type="chatglm", family=Family.chatglm, qkv_bias=True), dict(method="full", attn="fa2")),
]


@pytest.mark.parametrize("impl", ["fused", "foreach"])
@pytest.mark.parametrize("family,arch,knobs", CASES, ids=[f"{c[0]}-{c[2]['method']}" for c in CASES])
def test_fake_trace_equals_real_cpu_run_to_the_byte(family, arch, knobs, impl):
    model = small_model(f"tiny-{family}", **{**TINY, **arch})
    config = TrainConfig(seq_len=32, micro_batch=2, **knobs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fake = trace_training_step(model, config, optimizer_impl=impl, fake=True)
        real = trace_training_step(model, config, optimizer_impl=impl, fake=False)
    assert fake.traced_peak_bytes == real.traced_peak_bytes
    assert fake.breakdown_bytes == real.breakdown_bytes
    assert fake.phase_peaks_bytes == real.phase_peaks_bytes
    assert (fake.peak_phase, fake.peak_op, fake.peak_layer) == (real.peak_phase, real.peak_op, real.peak_layer)


def test_steady_state_step_holds_optimizer_states_and_frees_every_gradient():
    model = small_model("tiny-llama", **TINY)
    trace = trace_training_step(model, TrainConfig(method="full", seq_len=32, grad_ckpt=False))
    # AdamW: two fp32 states per trainable fp32 parameter (+ one step scalar each, 512-B blocks)
    assert trace.breakdown_bytes["optimizer_states"] >= 2 * trace.breakdown_bytes["trainable_params"]
    assert set(trace.phase_peaks_bytes) == {"forward", "backward", "optimizer"}


def test_foreach_adamw_adds_a_sqrt_buffer_the_fused_one_does_not():
    model = small_model("tiny-llama", **TINY)
    config = TrainConfig(method="full", seq_len=32)
    fused = trace_training_step(model, config, optimizer_impl="fused").phase_peaks_bytes["optimizer"]
    foreach = trace_training_step(model, config, optimizer_impl="foreach").phase_peaks_bytes["optimizer"]
    trainable_fp32_bytes = 4 * model.total_params()
    assert foreach - fused >= 0.9 * trainable_fp32_bytes
