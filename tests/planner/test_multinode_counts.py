"""Plans on multi-node sets are launchable: a free GPU count is one node's or whole nodes
(problem/rules.py gpu_count_launchable), so `--emit` never meets 9 GPUs over 2 nodes."""

from fitplan.cli.main import main
from fitplan.solver.planner.search_space import search_space
from fitplan.solver.problem.instance import Instance, Workload
from fitplan.solver.problem.rules import gpu_count_launchable
from fitplan.solver.specs.catalog import load_model, parse_gpu_set


def test_gpu_counts_of_2x8_are_one_node_or_whole_nodes():
    gpus = parse_gpu_set("2x8xH100")
    assert [n for n in range(1, 17) if gpu_count_launchable(gpus, n)] == [1, 2, 3, 4, 5, 6, 7, 8, 16]
    single = parse_gpu_set("6xA10")
    assert all(gpu_count_launchable(single, n) for n in range(1, 7))


def test_search_space_of_a_multi_node_set_has_no_partial_node_counts():
    instance = Instance(model=load_model("qwen2.5-7b"), gpus=parse_gpu_set("4x8xA100-80G"),
                        workload=Workload(global_batch=720))
    counts = search_space(instance).n_gpus_values
    assert counts == (1, 2, 3, 4, 5, 6, 8, 16, 24)  # the divisors of 720 within a node, 2 and 3 whole nodes


def test_global_batch_9_on_2x8xh100_plans_one_node_and_emits(tmp_path, capsys):
    code = main(["recommend", "--model", "qwen2.5-7b", "--gpus", "2x8xH100", "--global-batch", "9",
                 "--emit", "llamafactory", "-o", str(tmp_path / "plan")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "9 GPUs" not in captured.out.splitlines()[0]
    assert (tmp_path / "plan" / "launch.sh").exists() and (tmp_path / "plan" / "train.yaml").exists()
