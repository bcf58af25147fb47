"""The adversarial battery of issue 18: every input a hostile or careless user can type, each of
which must end in one line on stderr (`error: ...`), exit code 2, within a second, whatever its
size. tests/test_hostile_input.py runs it in-process (click, fast); benchmarks/hostile_inputs.py
runs it as real subprocesses and prints count ok / max seconds.

A case is a name, the command line (``{tmp}`` is a fresh folder holding the case's `files`), and
the files. Paths such as /dev/zero are used as they are."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

LLAMA_CONFIG = {
    "_name_or_path": "meta-llama/Llama-2-7b-hf", "model_type": "llama", "hidden_size": 4096,
    "intermediate_size": 11008, "max_position_embeddings": 4096, "num_attention_heads": 32,
    "num_hidden_layers": 32, "num_key_value_heads": 32, "tie_word_embeddings": False, "vocab_size": 32000,
}
CHATGLM_CONFIG = {
    "_name_or_path": "THUDM/chatglm3-6b", "model_type": "chatglm", "add_bias_linear": False, "add_qkv_bias": True,
    "ffn_hidden_size": 13696, "hidden_size": 4096, "kv_channels": 128, "multi_query_attention": True,
    "num_attention_heads": 32, "num_layers": 28, "padded_vocab_size": 65024, "seq_length": 8192,
}
TRAIN_YAML = ("model_name_or_path: Qwen/Qwen2.5-0.5B\nstage: sft\ndo_train: true\nfinetuning_type: lora\n"
              "dataset: identity\ntemplate: qwen\ncutoff_len: 1024\noutput_dir: saves/x\n"
              "per_device_train_batch_size: 1\ngradient_accumulation_steps: 1\nbf16: true\n")


def llama_with(**changes) -> str:
    """A Llama config.json with some values replaced (None removes the key)."""
    cfg = {**LLAMA_CONFIG, **changes}
    return json.dumps({k: v for k, v in cfg.items() if v is not None}, allow_nan=True)


def chatglm_without(key: str) -> str:
    return json.dumps({k: v for k, v in CHATGLM_CONFIG.items() if k != key})


def billion_laughs_yaml() -> str:
    """Nine levels of nine aliases: 9^9 strings if a reader expands them."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, 10):
        refs = ",".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "\n".join(lines) + "\nmodel_name_or_path: *a9\n"


@dataclass(frozen=True)
class Case:
    name: str
    argv: tuple[str, ...]
    files: dict[str, str | bytes] = field(default_factory=dict)
    expected_code: int = 2


def _estimate(*extra: str, model: str = "qwen2.5-0.5b", gpus: str = "1xA100-80G") -> tuple[str, ...]:
    return ("estimate", "--model", model, "--gpus", gpus, *extra)


def _recommend(*extra: str, model: str = "qwen2.5-0.5b", gpus: str = "1xA100-80G") -> tuple[str, ...]:
    return ("recommend", "--model", model, "--gpus", gpus, "--time-limit", "2", *extra)


def _sweep(*extra: str, models: str = "qwen2.5-0.5b", gpus: str = "1xA100-80G") -> tuple[str, ...]:
    return ("sweep", "--models", models, "--gpus", gpus, "--jobs", "1", *extra)


def _check(yaml_name: str = "train.yaml", *extra: str) -> tuple[str, ...]:
    return ("check", f"{{tmp}}/{yaml_name}", "--gpus", "1xA100-80G", *extra)


CFG = "{tmp}/config.json"
BAD_CONFIGS = {
    "string_hidden_size": llama_with(hidden_size="wide"),
    "list_hidden_size": llama_with(hidden_size=[4096]),
    "nan_hidden_size": llama_with(hidden_size=float("nan")),
    "float_layers": llama_with(num_hidden_layers=32.5),
    "bool_layers": llama_with(num_hidden_layers=True),
    "zero_heads": llama_with(num_attention_heads=0),
    "negative_vocab": llama_with(vocab_size=-1),
    "billion_layers": llama_with(num_hidden_layers=10**9),
    "huge_hidden_size": llama_with(hidden_size=10**30),
    "chatglm_missing_group_num": chatglm_without("multi_query_group_num"),
    "deeply_nested_json": '{"model_type": "llama", "x": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "json_list_not_object": "[1, 2, 3]",
    "string_head_dim": llama_with(head_dim="128"),
    "dict_model_type": llama_with(model_type={"a": 1}),
    "layer_types_not_list": json.dumps({**LLAMA_CONFIG, "model_type": "gpt_oss", "num_local_experts": 32,
                                        "num_experts_per_tok": 4, "layer_types": 7}),
}

CASES: list[Case] = [
    # ---- names and paths ----
    Case("model_name_300_chars", _estimate(model="a" * 300)),
    Case("model_name_100000_chars", _estimate(model="x" * 100_000)),
    Case("model_name_with_newline", _estimate(model="qwen\nrm -rf /")),
    Case("model_revision_100000_chars", _estimate("--revision", "r" * 100_000, model="Qwen/Qwen3-8B")),
    Case("hub_id_300_chars", _estimate(model="a/" + "b" * 300)),
    Case("lora_target_100000_chars", _estimate("--lora-target", "t" * 100_000)),
    Case("method_100000_chars", _estimate("--method", "m" * 100_000)),
    Case("unknown_option_100000_chars", _estimate("--" + "o" * 100_000)),
    Case("extra_argument_100000_chars", _estimate("a" * 100_000)),
    Case("check_path_100000_chars", ("check", "p" * 100_000, "--gpus", "1xA100-80G")),
    Case("check_accelerate_path_100000_chars", _check("train.yaml", "--accelerate-config", "q" * 100_000),
         {"train.yaml": TRAIN_YAML}),
    Case("gpu_name_120000_chars", _estimate(gpus="1x" + "9" * 120_000 + "x")),
    Case("gpu_name_120000_letters", _estimate(gpus="1x" + "A" * 120_000)),
    Case("gpu_count_billion", _recommend(gpus=f"{10**9}xH100")),
    Case("gpu_nodes_billion", _estimate(gpus=f"{10**9}x8xH100")),
    Case("gpu_budget_huge", _estimate(gpus="1x" + "9" * 400 + "GiB")),
    # ---- config.json values ----
    *[Case(f"config_{name}", _estimate(model=CFG), {"config.json": text}) for name, text in BAD_CONFIGS.items()],
    Case("check_config_string_hidden_size", _check("train.yaml", "--model", CFG),
         {"train.yaml": TRAIN_YAML, "config.json": BAD_CONFIGS["string_hidden_size"]}),
    Case("sweep_config_billion_layers", _sweep(models=CFG), {"config.json": BAD_CONFIGS["billion_layers"]}),
    Case("sweep_config_nested", _sweep(models=CFG), {"config.json": BAD_CONFIGS["deeply_nested_json"]}),
    Case("config_huge_file", _estimate(model=CFG), {"config.json": " " * (9 << 20) + "{}"}),
    Case("config_dev_zero", _estimate(model="/dev/zero")),
    # ---- numbers on the command line ----
    *[Case(f"recommend_{flag.strip('-')}_{value}", _recommend(flag, value))
      for flag in ("--headroom", "--time-limit", "--host-ram-gib") for value in ("nan", "inf", "1e308")],
    *[Case(f"recommend_epochs_{value}", _recommend("--epochs", value, "--dataset-samples", "1000"))
      for value in ("nan", "inf", "1e308")],
    *[Case(f"sweep_{flag.strip('-')}_{value}", _sweep(flag, value))
      for flag in ("--headroom", "--time-limit", "--host-ram-gib") for value in ("nan", "inf")],
    Case("estimate_loraplus_nan", _estimate("--loraplus-lr-ratio", "nan")),
    Case("estimate_capacity_factor_inf", _estimate("--capacity-factor", "inf")),
    Case("recommend_mean_sample_len_above_seq_len", _recommend("--seq-len", "512", "--mean-sample-len", "4096")),
    Case("sweep_mean_sample_len_above_seq_len", _sweep("--seq-lens", "512", "--mean-sample-len", "4096")),
    Case("estimate_mean_sample_len_above_seq_len", _estimate("--seq-len", "512", "--mean-sample-len", "4096")),
    Case("recommend_seq_len_1e12", _recommend("--seq-len", str(10**12))),
    Case("estimate_seq_len_1e12", _estimate("--seq-len", str(10**12))),
    Case("sweep_seq_lens_1e12", _sweep("--seq-lens", str(10**12))),
    Case("sweep_seq_lens_superscript", _sweep("--seq-lens", "²")),
    Case("sweep_seq_lens_huge_list", _sweep("--seq-lens", ",".join(["1024"] * 20_000))),
    Case("recommend_global_batch_1e9", _recommend("--global-batch", str(10**9))),
    Case("recommend_global_batch_1e12", _recommend("--global-batch", str(10**12))),
    Case("sweep_global_batch_1e12", _sweep("--global-batch", str(10**12))),
    Case("estimate_micro_batch_1e12", _estimate("--micro-batch", str(10**12))),
    Case("estimate_lora_rank_1e12", _estimate("--lora-rank", str(10**12))),
    Case("recommend_top_1e9", _recommend("--top", str(10**9))),
    Case("recommend_tokens_1e30", _recommend("--tokens", str(10**30))),
    Case("recommend_n_gpus_1e9", _recommend("--n-gpus", str(10**9))),
    # ---- check: files that are not YAML ----
    Case("check_binary_file", _check("train.yaml"), {"train.yaml": bytes(range(256)) * 64}),
    Case("check_dev_zero", ("check", "/dev/zero", "--gpus", "1xA100-80G")),
    Case("check_dev_urandom", ("check", "/dev/urandom", "--gpus", "1xA100-80G")),
    Case("check_billion_laughs", _check("train.yaml"), {"train.yaml": billion_laughs_yaml()}),
    Case("check_deeply_nested_yaml", _check("train.yaml"), {"train.yaml": "a: " + "[" * 50_000 + "]" * 50_000 + "\n"}),
    Case("check_huge_yaml", _check("train.yaml"), {"train.yaml": "# pad\n" * (2 << 20) + TRAIN_YAML}),
    Case("check_micro_batch_1e9", _check("train.yaml"),
         {"train.yaml": TRAIN_YAML.replace("per_device_train_batch_size: 1", "per_device_train_batch_size: 1000000000")}),
    Case("check_cutoff_len_1e12", _check("train.yaml"),
         {"train.yaml": TRAIN_YAML.replace("cutoff_len: 1024", "cutoff_len: 1000000000000")}),
    Case("check_errors_only_on_stderr", _check("train.yaml"), {"train.yaml": TRAIN_YAML + "no_such_key: 1\n"}),
    Case("check_accelerate_dev_zero", _check("train.yaml", "--accelerate-config", "/dev/zero"),
         {"train.yaml": TRAIN_YAML}),
    # ---- impossible pins: exit 2 in every command ----
    *[Case(f"{command.__name__.strip('_')}_{label}", command(*pins))
      for command in (_estimate, _recommend, _sweep)
      for label, pins in (("paged_8bit_with_offload_all", ("--optim", "paged_adamw_8bit", "--offload", "all")),
                          ("full_with_4_bits", ("--method", "full", "--bits", "4")))],
    # ---- pins that cannot take effect ----
    *[Case(f"{command.__name__.strip('_')}_full_with_lora_rank", command("--method", "full", "--lora-rank", "64"))
      for command in (_estimate, _recommend)],
    *[Case(f"{command.__name__.strip('_')}_batch_split_mismatch",
           command("--global-batch", "64", "--micro-batch", "1", "--grad-accum", "1"))
      for command in (_estimate, _recommend)],
    # ---- emit ----
    Case("emit_into_empty_name", _recommend("--emit", "llamafactory", "-o", "")),
    Case("emit_into_non_empty_folder", _recommend("--emit", "llamafactory", "-o", "{tmp}/plan"),
         {"plan/keep.txt": "the user's own file\n"}),
    Case("emit_dataset_100000_chars", _recommend("--emit", "llamafactory", "-o", "{tmp}/new", "--dataset", "d" * 100_000)),
    Case("emit_dataset_with_newline", _recommend("--emit", "llamafactory", "-o", "{tmp}/new",
                                                 "--dataset", "a\nrm -rf ~")),
    # ---- trace ----
    Case("trace_unknown_model", ("trace", "--model", "no-such-model-anywhere")),
    Case("trace_model_100000_chars", ("trace", "--model", "y" * 100_000)),
]


def materialise(case: Case, tmp: Path) -> list[str]:
    """Write the case's files under `tmp`; its argv with {tmp} filled in."""
    for name, content in case.files.items():
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return [arg.replace("{tmp}", str(tmp)) for arg in case.argv]
