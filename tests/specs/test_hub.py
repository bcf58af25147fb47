"""Hugging Face ids: `--model ORG/NAME` reads the model's config.json from the local Hugging Face
cache (a real cache layout built on disk: models--ORG--NAME/snapshots/<commit>/config.json plus
refs/<revision>), offline; a catalog name or Hub id never touches huggingface_hub."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from paths import TEST_DATA

from fitplan.cli.main import main
from fitplan.solver.errors import ConfigFileError, UnknownModelError
from fitplan.solver.specs import hub
from fitplan.solver.specs.catalog import load_model, parse_gpu_set
from fitplan.solver.memory.estimate import estimate
from fitplan.solver.problem.config import TrainConfig

QWEN3_8B_CONFIG = TEST_DATA / "configs" / "qwen3-8b.json"  # Qwen/Qwen3-8B's config.json (configs/README.md)
COMMIT = "0123456789abcdef0123456789abcdef01234567"
OTHER_COMMIT = "fedcba9876543210fedcba9876543210fedcba98"


def cache_model(cache: Path, repo_id: str, config: Path | dict, *, commit: str = COMMIT, ref: str = "main") -> Path:
    """The layout huggingface_hub writes: the file under snapshots/<commit>/, the commit in refs/<ref>."""
    folder = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = folder / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    target = snapshot / "config.json"
    if isinstance(config, Path):
        shutil.copyfile(config, target)
    else:
        target.write_text(json.dumps(config))
    (folder / "refs").mkdir(exist_ok=True)
    (folder / "refs" / ref).write_text(commit)
    return target


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "hf" / "hub"
    root.mkdir(parents=True)
    monkeypatch.setenv("HF_HUB_CACHE", str(root))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return root


def test_a_cached_hub_id_outside_the_catalog_gives_the_catalog_entrys_estimate(cache):
    cache_model(cache, "acme-lab/my-sft-8b", QWEN3_8B_CONFIG)
    spec = load_model("acme-lab/my-sft-8b")
    assert (spec.name, spec.hf_id, spec.model_name_or_path) == ("acme-lab/my-sft-8b",) * 3
    catalog = load_model("qwen3-8b")
    gpus = parse_gpu_set("1xA100-80G")
    config = TrainConfig(method="lora", seq_len=2048)
    ours, theirs = estimate(spec, gpus, config), estimate(catalog, gpus, config)
    assert ours.to_json_dict() | {"model": None} == theirs.to_json_dict() | {"model": None}
    assert spec.total_params() == catalog.total_params() == 8_190_735_360  # the Hub count of Qwen/Qwen3-8B


def test_hf_home_is_honoured_when_hf_hub_cache_is_not_set(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    cache_model(tmp_path / "home" / "hub", "acme-lab/my-sft-8b", QWEN3_8B_CONFIG)
    assert hub.cache_dir() == str(tmp_path / "home" / "hub")
    assert load_model("acme-lab/my-sft-8b").num_layers == 36


def test_a_revision_picks_its_snapshot_by_branch_or_commit(cache):
    cfg = json.loads(QWEN3_8B_CONFIG.read_text())
    cache_model(cache, "acme-lab/my-sft-8b", cfg)
    cache_model(cache, "acme-lab/my-sft-8b", cfg | {"num_hidden_layers": 40}, commit=OTHER_COMMIT, ref="v2")
    assert load_model("acme-lab/my-sft-8b").num_layers == 36
    assert load_model("acme-lab/my-sft-8b", revision="v2").num_layers == 40
    assert load_model("acme-lab/my-sft-8b", revision=OTHER_COMMIT).num_layers == 40
    assert load_model("acme-lab/my-sft-8b", revision="v2").revision == "v2"


def test_offline_with_nothing_cached_is_one_line_saying_so_and_how_to_pass_a_config(cache):
    with pytest.raises(ConfigFileError) as err:
        load_model("acme-lab/not-downloaded")
    message = str(err.value)
    assert "\n" not in message
    assert "not in the Hugging Face cache" in message and "offline" in message
    assert "config.json" in message and "--model path/to/config.json" in message


def test_offline_miss_on_the_command_line_exits_2_with_one_line(cache, capsys):
    code = main(["estimate", "--model", "acme-lab/not-downloaded", "--gpus", "1xA100-80G"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "HF_HUB_OFFLINE" in err


def test_a_missing_revision_offline_says_which_revision(cache):
    cache_model(cache, "acme-lab/my-sft-8b", QWEN3_8B_CONFIG)
    with pytest.raises(ConfigFileError, match="revision 'v9'"):
        load_model("acme-lab/my-sft-8b", revision="v9")


def test_catalog_name_and_its_hub_id_give_byte_identical_estimates(capsys):
    outputs = []
    for model in ("Qwen/Qwen3-8B", "qwen3-8b"):
        assert main(["estimate", "--model", model, "--gpus", "1xA100-80G", "--json"]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1]
    for model in ("Qwen/Qwen3-8B", "qwen3-8b"):
        main(["estimate", "--model", model, "--gpus", "1xA100-80G"])
        outputs.append(capsys.readouterr().out)
    assert outputs[2] == outputs[3]


def test_a_catalog_hub_id_wins_without_the_cache_even_offline(cache):
    # Nothing is cached and the Hub is off: the catalog answers.
    assert load_model("Qwen/Qwen3-8B").name == "qwen3-8b"
    assert load_model("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B").template == "deepseekr1"


def test_a_catalog_model_at_a_revision_is_read_from_the_cache_with_its_template(cache):
    cache_model(cache, "Qwen/Qwen3-8B", QWEN3_8B_CONFIG, commit=OTHER_COMMIT, ref="main")
    spec = load_model("qwen3-8b", revision="main")
    assert (spec.hf_id, spec.revision, spec.template, spec.num_layers) == ("Qwen/Qwen3-8B", "main", "qwen3", 36)


def test_a_hub_id_llamafactory_registers_gets_its_template(cache):
    cfg = json.loads((TEST_DATA / "configs" / "qwen2.5-32b.json").read_text())
    cache_model(cache, "Qwen/Qwen2.5-32B-Instruct-GPTQ-Int4", cfg)
    assert load_model("Qwen/Qwen2.5-32B-Instruct-GPTQ-Int4").template == "qwen"
    cache_model(cache, "acme-lab/unregistered", cfg)
    assert load_model("acme-lab/unregistered").template is None  # the emitter falls back to the family's


def test_revision_with_a_local_path_is_refused(tmp_path):
    with pytest.raises(UnknownModelError, match="revision"):
        load_model(str(QWEN3_8B_CONFIG), revision="main")


def test_check_resolves_a_hub_id_model_name_or_path_from_the_cache(cache, tmp_path, capsys):
    cache_model(cache, "acme-lab/my-sft-8b", QWEN3_8B_CONFIG)
    yaml_path = tmp_path / "train.yaml"
    yaml_path.write_text("model_name_or_path: acme-lab/my-sft-8b\nfinetuning_type: lora\nbf16: true\n"
                         "per_device_train_batch_size: 1\ncutoff_len: 1024\n")
    code = main(["check", str(yaml_path), "--gpus", "1xA100-80G", "--json"])
    payload = json.loads(capsys.readouterr().out)
    assert code == 0 and payload["estimate"]["model"] == "acme-lab/my-sft-8b"


@pytest.mark.parametrize("command", [["estimate"], ["recommend"], ["sweep"], ["check", "x.yaml"], ["trace"]])
def test_every_model_command_takes_revision(command, capsys):
    assert main([*command, "--help"]) == 0
    assert "--revision" in capsys.readouterr().out


def test_catalog_names_never_import_huggingface_hub():
    code = ("import sys\nfrom fitplan.cli.main import main\n"
            "assert main(['estimate', '--model', 'qwen3-8b', '--gpus', '1xA100-80G', '--json']) == 0\n"
            "assert main(['estimate', '--model', 'Qwen/Qwen3-8B', '--gpus', '1xA100-80G', '--json']) == 0\n"
            "print('huggingface_hub' in sys.modules, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stderr.strip().splitlines()[-1] == "False"


@pytest.mark.parametrize("text, expected", [("Qwen/Qwen3-8B", True), ("acme-lab/my.sft_7b", True),
                                            ("qwen3-8b", False), ("a/b/c", False), ("../x", False), ("/abs/x", False)])
def test_what_counts_as_a_hub_id(text, expected):
    assert hub.looks_like_repo_id(text) is expected
