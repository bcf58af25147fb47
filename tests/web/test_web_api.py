"""The JSON API answers exactly what `fitplan estimate|recommend --json` prints, and refuses bad
input with HTTP 422 and the same one-line message the library raises."""

from __future__ import annotations

import io
import json
import shlex
import zipfile
from pathlib import Path

import pytest

import fitplan
from fitplan.cli.main import main

CONFIGS = Path(__file__).resolve().parents[1] / "data" / "configs"
P4_QUESTION = {"model": "qwen2.5-7b", "gpus": "8xP4", "seq_len": 1024}


def _cli_json(capsys, argv: list[str]) -> dict:
    capsys.readouterr()
    main(argv + ["--json"])
    return json.loads(capsys.readouterr().out)


def _error_of(call) -> str:
    try:
        call()
    except fitplan.FitplanError as exc:
        return str(exc)
    raise AssertionError("no FitplanError")


def test_api_estimate_answers_what_estimate_json_prints(client, capsys):
    answer = client.post("/api/estimate", json={"model": "qwen2.5-7b", "gpus": "1xA100-80G", "seq_len": 2048,
                                                "method": "lora", "lora_rank": 16})
    assert answer.status_code == 200
    assert answer.json() == _cli_json(capsys, ["estimate", "--model", "qwen2.5-7b", "--gpus", "1xA100-80G",
                                               "--seq-len", "2048", "--method", "lora", "--lora-rank", "16"])


def test_api_recommend_answers_what_recommend_json_prints_for_8xp4(client, capsys):
    answer = client.post("/api/recommend", json=P4_QUESTION)
    assert answer.status_code == 200
    assert answer.json() == _cli_json(capsys, ["recommend", "--model", "qwen2.5-7b", "--gpus", "8xP4",
                                               "--seq-len", "1024"])
    # 16-bit LoRA under ZeRO-3 + offload: ZeRO-3 offload of a 4-bit base is never proposed (problem/rules.py)
    assert answer.json()["plan"]["method"] == "lora"


def test_api_takes_the_cli_names_and_the_python_names_alike(client):
    by_flag = client.post("/api/estimate", json={**P4_QUESTION, "zero": 3, "lora_target": "q_proj,v_proj"})
    by_keyword = client.post("/api/estimate", json={**P4_QUESTION, "zero_stage": 3, "lora_targets": ["q_proj", "v_proj"]})
    assert by_flag.status_code == by_keyword.status_code == 200
    assert by_flag.json() == by_keyword.json()
    assert by_flag.json()["config"]["zero_stage"] == 3


def test_recommend_max_seq_len_answers_like_the_cli(client, capsys):
    body = {"model": "qwen2.5-0.5b", "gpus": "1xP4", "method": "qlora", "max_seq_len": True}
    answer = client.post("/api/recommend", json=body)
    assert answer.json() == _cli_json(capsys, ["recommend", "--model", "qwen2.5-0.5b", "--gpus", "1xP4",
                                               "--method", "qlora", "--max-seq-len"])


@pytest.mark.parametrize("body,expected", [
    ({"model": "qwen2.5-7", "gpus": "8xP4"}, lambda: _error_of(lambda: fitplan.load_model("qwen2.5-7"))),
    ({"model": "qwen2.5-7b", "gpus": "8xP5"}, lambda: _error_of(lambda: fitplan.parse_gpu_set("8xP5"))),
    ({**P4_QUESTION, "precision": "bf16"},
     lambda: _error_of(lambda: fitplan.recommend("qwen2.5-7b", "8xP4", seq_len=1024, precision="bf16"))),
    ({**P4_QUESTION, "method": "qlora2"},
     lambda: _error_of(lambda: fitplan.recommend("qwen2.5-7b", "8xP4", method="qlora2"))),
    ({**P4_QUESTION, "seq_len": 0}, lambda: "seq_len: Input should be greater than or equal to 1"),
    ({**P4_QUESTION, "micro_batch": 0}, lambda: "micro_batch: Input should be greater than or equal to 1"),
    ({**P4_QUESTION, "zero": 4}, lambda: "zero: Input should be less than or equal to 3"),
    ({**P4_QUESTION, "seq_len": "long"}, lambda: "seq_len: Input should be a valid integer, unable to parse string as an integer"),
    ({**P4_QUESTION, "sequence_length": 1}, lambda: "sequence_length: Extra inputs are not permitted"),
    ({"gpus": "8xP4"}, lambda: "model: give a catalog name or Hub id (model), or a config.json (config_json), not both"),
])
def test_bad_input_is_422_with_the_one_line_message(client, body, expected):
    answer = client.post("/api/recommend", json=body)
    assert answer.status_code == 422
    assert answer.json() == {"error": expected()}
    assert "\n" not in answer.json()["error"]


def test_a_body_that_is_not_a_json_object_is_422(client):
    assert client.post("/api/estimate", content=b"{not json").status_code == 422
    answer = client.post("/api/estimate", json=["qwen2.5-7b", "8xP4"])
    assert answer.status_code == 422 and "JSON object of option names" in answer.json()["error"]


def test_a_model_name_that_is_a_server_path_is_refused_not_read(client, tmp_path):
    config = tmp_path / "config.json"
    config.write_text((CONFIGS / "llama-2-7b.json").read_text())
    for name in (str(config), "/etc/passwd", str(tmp_path)):
        answer = client.post("/api/estimate", json={"model": name, "gpus": "1xA10"})
        assert answer.status_code == 422
        assert "read no files on the server" in answer.json()["error"]


def test_an_uploaded_config_json_is_the_model_it_describes(client):
    text = (CONFIGS / "llama-2-7b.json").read_text()
    answer = client.post("/api/estimate", json={"config_json": json.loads(text), "gpus": "1xA100-80G"})
    direct = fitplan.estimate(str(CONFIGS / "llama-2-7b.json"), "1xA100-80G").to_json_dict()
    assert answer.status_code == 200
    got = answer.json()
    assert {k: v for k, v in got.items() if k != "model"} == {k: v for k, v in direct.items() if k != "model"}


def test_an_unreadable_upload_names_the_upload_not_a_server_path(client):
    answer = client.post("/api/estimate", json={"config_json": "{broken", "gpus": "1xA10"})
    assert answer.status_code == 422
    assert answer.json()["error"].startswith("'uploaded config.json' is not valid JSON")
    assert "/tmp" not in answer.json()["error"]


def test_a_body_over_the_limit_is_413_with_or_without_a_length(client):
    big = b'{"model": "' + b"x" * (3 << 20) + b'"}'
    assert client.post("/api/estimate", content=big).status_code == 413
    chunked = client.post("/api/estimate", content=iter([big[: 1 << 20], big[1 << 20:]]))
    assert chunked.status_code == 413


def test_the_zip_holds_the_files_recommend_emit_writes(client, tmp_path, capsys):
    answer = client.post("/api/emit", json={**P4_QUESTION, "dataset": "my_data"})
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/zip"
    main(["recommend", "--model", "qwen2.5-7b", "--gpus", "8xP4", "--seq-len", "1024", "--dataset", "my_data",
          "--emit", "llamafactory", "-o", str(tmp_path)])
    written = {p.name: p.read_text() for p in tmp_path.iterdir()}
    archive = zipfile.ZipFile(io.BytesIO(answer.content))
    assert {Path(n).name: archive.read(n).decode() for n in archive.namelist()} == written
    assert set(written) == {"train.yaml", "ds_config.json", "launch.sh"}
    launch = archive.getinfo("plan/launch.sh")
    assert (launch.external_attr >> 16) & 0o111, "launch.sh stays executable"


def test_no_zip_when_nothing_fits(client):
    answer = client.post("/api/emit", json={"model": "qwen2.5-72b", "gpus": "1xP4", "method": "full"})
    assert answer.status_code == 409
    assert answer.json()["error"].startswith("nothing fits: ")


def test_the_page_command_reproduces_the_api_answer(client, capsys):
    from fitplan.web.questions import RecommendQuestion, cli_command, parse_question

    body = {**P4_QUESTION, "zero": 3, "top": 3, "grad_ckpt": True, "headroom": 0.1}
    question = parse_question(RecommendQuestion, body)
    line = cli_command(question, "recommend")
    assert line == ("fitplan recommend --model qwen2.5-7b --gpus 8xP4 --seq-len 1024 --grad-ckpt --zero 3 --top 3 "
                    "--headroom 0.1")
    assert client.post("/api/recommend", json=body).json() == _cli_json(capsys, shlex.split(line)[1:])


def test_unknown_paths_are_404_and_get_on_the_api_is_405(client):
    assert client.post("/api/sweep", json=P4_QUESTION).status_code == 404
    assert client.get("/api/recommend").status_code == 405
    assert client.get("/healthz").json() == {"status": "ok"}


def test_overlong_names_are_422_not_a_server_error(client):
    answer = client.post("/api/estimate", json={"model": "x" * 5000, "gpus": "1xA10"})
    assert answer.status_code == 422
    assert answer.json() == {"error": "model: String should have at most 256 characters"}
