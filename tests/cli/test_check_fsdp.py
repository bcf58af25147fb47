"""`fitplan check train.yaml --accelerate-config fsdp_config.yaml`: an FSDP run is estimated as
FSDP, never as the plain DDP its train.yaml alone would say; an FSDP config beside the YAML without
--accelerate-config is refused with one line."""

from __future__ import annotations

import json

from emit_grid import fsdp_grid

from fitplan.cli.emit_options import write_emit
from fitplan.cli.main import main
from fitplan.solver.memory.estimate import estimate


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_check_reproduces_the_estimate_of_every_emitted_fsdp_plan(tmp_path, capsys):
    for index, (model, gpus, config) in enumerate(fsdp_grid()[::9]):
        out = tmp_path / str(index)
        write_emit(model, gpus, config, emit="llamafactory", out=out)
        code, stdout, _ = run(capsys, "check", str(out / "train.yaml"), "--gpus", gpus.label(), "--json",
                              "--no-nearest", "--accelerate-config", str(out / "fsdp_config.yaml"))
        payload = json.loads(stdout)
        expected = estimate(model, gpus, config)
        assert payload["estimate"]["peak_gib_per_gpu"] == expected.to_json_dict()["peak_gib_per_gpu"], config
        assert payload["accelerate_file"].endswith("fsdp_config.yaml") and code in (0, 3)


def test_an_fsdp_config_beside_the_yaml_is_not_silently_estimated_as_ddp(tmp_path, capsys):
    model, gpus, config = fsdp_grid()[0]
    write_emit(model, gpus, config, emit="llamafactory", out=tmp_path)
    code, stdout, stderr = run(capsys, "check", str(tmp_path / "train.yaml"), "--gpus", gpus.label())
    assert code == 2 and stdout == ""
    assert len(stderr.strip().splitlines()) == 1 and "--accelerate-config" in stderr and "FSDP" in stderr
    code, stdout, _ = run(capsys, "check", str(tmp_path / "train.yaml"), "--gpus", gpus.label(),
                          "--accelerate-config", "none", "--no-nearest")
    assert code in (0, 3) and "FSDP" not in stdout.splitlines()[0]


def test_a_typo_in_the_accelerate_config_is_reported_and_exits_2(tmp_path, capsys):
    model, gpus, config = fsdp_grid()[0]
    write_emit(model, gpus, config, emit="llamafactory", out=tmp_path)
    accelerate = tmp_path / "fsdp_config.yaml"
    accelerate.write_text(accelerate.read_text().replace("fsdp_offload_params:", "fsdp_offload_param:"))
    code, _, stderr = run(capsys, "check", str(tmp_path / "train.yaml"), "--gpus", gpus.label(),
                          "--accelerate-config", str(accelerate), "--no-nearest")
    assert code == 2 and "fsdp_offload_param is not an FSDP setting" in stderr
