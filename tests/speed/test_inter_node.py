"""The network between nodes: a per-GPU-kind default from catalogs/gpus.yaml (the vendor's
reference system, cited), `--inter-node-gbps` (Gb/s, bits) to override, and the figure printed
with every multi-node plan."""

from __future__ import annotations

import json

import pytest

import fitplan
from fitplan.cli.main import main
from fitplan.solver.problem.config import TrainConfig
from fitplan.solver.speed import constants as K
from fitplan.solver.speed.step_time import collective_bytes_per_s, step_time
from fitplan.solver.specs.catalog import load_model, parse_gpu_set


def test_across_nodes_the_ring_runs_at_the_nodes_network():
    # DGX H100: 8 x 400 Gb/s = 3200 Gb/s = 400 GB/s per direction (catalog source DGX_H100_NET).
    gpus = parse_gpu_set("2x8xH100")
    assert collective_bytes_per_s(gpus, 16) == pytest.approx(3200e9 / 8 * K.NCCL_LINK_EFFICIENCY)
    slow = gpus.model_copy(update={"inter_node_gbit_per_s": 100.0})
    assert collective_bytes_per_s(slow, 16) == pytest.approx(100e9 / 8 * K.NCCL_LINK_EFFICIENCY)
    assert collective_bytes_per_s(slow, 8) == collective_bytes_per_s(gpus, 8)  # inside a node: NVLink


def test_a_slower_network_makes_a_multi_node_step_slower():
    model, config = load_model("llama-3.1-8b"), TrainConfig(method="full", zero_stage=3, n_gpus=16, micro_batch=1)
    fast = step_time(model, parse_gpu_set("2x8xH100"), config)
    slow = step_time(model, parse_gpu_set("2x8xH100").model_copy(update={"inter_node_gbit_per_s": 100.0}), config)
    assert slow.communication_s == pytest.approx(fast.communication_s * 32)
    assert slow.step_time_s > fast.step_time_s


def test_an_infinity_fabric_group_gets_one_link_per_peer():
    # MI300X: 7 links x 64 GB/s per direction, one per peer (ML_ENG Infinity Fabric table).
    gpus = parse_gpu_set("8xMI300X")
    assert collective_bytes_per_s(gpus, 2) == pytest.approx(64e9 * K.NCCL_LINK_EFFICIENCY)
    assert collective_bytes_per_s(gpus, 8) == pytest.approx(448e9 * K.NCCL_LINK_EFFICIENCY)


def test_the_figure_is_printed_with_a_multi_node_plan_and_is_in_the_json(capsys):
    argv = ["recommend", "--model", "qwen2.5-7b", "--gpus", "2x8xA100-80G", "--method", "lora", "--seq-len", "1024"]
    assert main(argv) == 0
    assert "inter-node network: 1,600 Gb/s per node (A100-80G default, source DGX_A100_NET" in capsys.readouterr().out
    assert main([*argv, "--inter-node-gbps", "400", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["inter_node_gbit_per_s_per_node"] == 400 and payload["inter_node_source"] == "--inter-node-gbps"
    assert main(["recommend", "--model", "qwen2.5-7b", "--gpus", "1xA100-80G", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["inter_node_gbit_per_s_per_node"] is None  # one node: no network


def test_the_api_keyword_and_sweep_take_the_figure():
    rec = fitplan.recommend("qwen2.5-7b", "2x8xA100-80G", method="lora", seq_len=1024, inter_node_gbps=800)
    assert rec.inter_node_gbit_per_s == 800
    rows = list(fitplan.sweep(["qwen2.5-7b"], ["2x8xA100-80G"], seq_lens=[1024], method="lora", zero_stage=3,
                              n_gpus=16, micro_batch=1, search=True, inter_node_gbps=100))
    fast = list(fitplan.sweep(["qwen2.5-7b"], ["2x8xA100-80G"], seq_lens=[1024], method="lora", zero_stage=3,
                              n_gpus=16, micro_batch=1, search=True))
    assert rows[0].tokens_per_s < fast[0].tokens_per_s


def test_a_non_positive_figure_is_refused(capsys):
    assert main(["recommend", "--model", "qwen2.5-7b", "--gpus", "2x8xH100", "--inter-node-gbps", "0"]) == 2
    with pytest.raises(fitplan.FitplanError):
        fitplan.recommend("qwen2.5-7b", "2x8xH100", inter_node_gbps=-1)
