"""The page, through the app without a browser: its form has every `fitplan recommend` option
under the CLI's name and default, markup in a model name is escaped, errors stand next to their
fields."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import fitplan

from fitplan.cli.recommend import recommend_command
from fitplan.web.questions import RecommendQuestion

CONFIGS = Path(__file__).resolve().parents[1] / "data" / "configs"
NOT_ON_THE_PAGE = {"model", "gpus", "as_json", "out", "force", "ask_max_seq_len", "ask_min_gpus"}  # own fields / API / CLI only
P4_FORM = {"model": "qwen2.5-7b", "gpu": "P4", "gpu_count": "8", "nodes": "1", "seq_len": "1024", "top": "5",
           "action": "recommend"}
NO_FILE = {"config_json": ("", b"")}


def _flag_name(param) -> str:
    return param.opts[-1].removeprefix("--").replace("-", "_")


def test_the_form_has_every_recommend_option_by_its_cli_name(client):
    page = client.get("/").text
    for param in recommend_command.params:
        if param.name in NOT_ON_THE_PAGE:
            continue
        name = _flag_name(param)
        assert f'name="{name}"' in page, name
        assert f'<label for="{name}">{param.opts[-1]}</label>' in page, name


def test_the_form_shows_the_cli_defaults(client):
    page = client.get("/").text
    assert re.search(r'<input type="number" id="seq_len" name="seq_len" value="2048"', page)
    assert re.search(r'id="headroom" name="headroom" value="0.05"', page)
    assert re.search(r'id="time_limit" name="time_limit" value="10.0"', page)


def test_the_question_takes_every_recommend_option_with_the_cli_ranges():
    fields = RecommendQuestion.model_fields
    by_cli_name = {(field.alias or name): field for name, field in fields.items()}
    for param in recommend_command.params:
        if param.name in NOT_ON_THE_PAGE - {"ask_max_seq_len", "ask_min_gpus"}:
            continue
        field = by_cli_name[_flag_name(param)]
        bounds = {a: getattr(m, a) for m in field.metadata for a in ("ge", "gt", "le") if hasattr(m, a)}
        if type(param.type).__name__ in ("IntRange", "FloatRange"):
            if param.type.min is not None:
                assert bounds.get("gt" if param.type.min_open else "ge") == param.type.min, param.name
            if param.type.max is not None:
                assert bounds.get("le") == param.type.max, param.name
        if type(param.type).__name__ in ("BoundedCount", "FiniteFloat"):  # cli/options.py (bounds: specs/limits.py)
            assert bounds.get("gt" if getattr(param.type, "low_open", False) else "ge") == param.type.low, param.name
            if "le" in bounds:  # the API refuses beyond the CLI's upper bound whatever the page allows
                assert bounds["le"] == param.type.high, param.name
        if param.default is not None and isinstance(param.default, (int, float)) and not isinstance(param.default, bool):
            assert field.default == param.default, param.name


def test_the_8xp4_form_answers_with_the_plan_line_and_the_bar(client):
    page = client.post("/", data=P4_FORM, files=NO_FILE)
    assert page.status_code == 200
    assert ('<p class="plan-line fits" id="plan-line">qwen2.5-7b on 8xP4: lora r32, seq 1024, micro-batch 2, '
            'accum 4, ckpt, sdpa, fp16, adamw, ZeRO-3, offload all, 8 GPUs</p>') in page.text
    est = fitplan.recommend("qwen2.5-7b", "8xP4", seq_len=1024).estimate
    assert page.text.count('class="term"') == len(est.breakdown_bytes) + len(est.overhead_bytes)
    assert 'id="runners-up"' in page.text and 'class="runners-up-plot"' in page.text
    question = json.loads(re.search(r'name="question" value="([^"]*)"', page.text).group(1).replace("&quot;", '"'))
    assert question["gpus"] == "8xP4" and question["seq_len"] == "1024"


def test_nothing_fits_shows_the_binding_constraint_and_no_download(client):
    page = client.post("/", data={**P4_FORM, "model": "qwen2.5-72b", "gpu_count": "1", "method": "full"},
                       files=NO_FILE)
    assert page.status_code == 200
    assert 'class="plan-line no-fit"' in page.text
    assert '<p id="binding">nothing fits: the plan closest to fitting' in page.text
    assert 'id="download"' not in page.text


def test_bad_input_shows_its_one_line_error_next_to_the_field_and_keeps_the_values(client):
    page = client.post("/", data={**P4_FORM, "gpu": "P5"}, files=NO_FILE)
    assert page.status_code == 422
    error = re.search(r'<div class="field invalid" id="field-gpu">.*?<p class="field-error" id="error-gpu" '
                      r'role="alert">([^<]*)</p>', page.text, re.DOTALL)
    assert error and error.group(1).startswith("unknown GPU &#x27;P5&#x27;. Did you mean: P4")
    assert 'value="qwen2.5-7b"' in page.text and 'value="1024"' in page.text


@pytest.mark.parametrize("field,value", [("precision", "bf16"), ("zero", "7"), ("lora_rank", "0")])
def test_knob_errors_stand_next_to_the_knob(client, field, value):
    page = client.post("/", data={**P4_FORM, field: value}, files=NO_FILE)
    assert page.status_code == 422
    assert f'id="error-{field}"' in page.text


def test_markup_in_an_uploaded_model_name_is_escaped_everywhere(client):
    config = json.loads((CONFIGS / "llama-2-7b.json").read_text())
    config["_name_or_path"] = '<script>alert("x")</script><b onmouseover=1>'
    form = {**P4_FORM, "model": "", "gpu": "A100-80G", "gpu_count": "1"}
    page = client.post("/", data=form, files={"config_json": ("config.json", json.dumps(config).encode())})
    assert page.status_code == 200, page.text[:2000]
    assert "<script>alert" not in page.text and "<b onmouseover" not in page.text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page.text
    assert "fitplan recommend --model config.json --gpus 1xA100-80G" in page.text
    assert page.text.count("<script>") == 1  # the page's own copy button


def test_the_uploaded_config_is_kept_for_the_next_question(client):
    text = (CONFIGS / "llama-2-7b.json").read_text()
    form = {**P4_FORM, "model": "", "gpu": "A100-80G", "gpu_count": "1", "action": "estimate"}
    first = client.post("/", data=form, files={"config_json": ("config.json", text.encode())})
    assert 'id="uploaded-config"' in first.text
    again = client.post("/", data={**form, "config_json_text": text, "seq_len": "4096"}, files=NO_FILE)
    assert again.status_code == 200 and "seq 4096" in again.text


def test_the_download_form_gives_the_zip(client):
    question = json.dumps({"model": "qwen2.5-7b", "gpus": "8xP4", "seq_len": 1024})
    answer = client.post("/download", data={"question": question})
    assert answer.status_code == 200 and answer.content[:2] == b"PK"
    assert 'filename="qwen2.5-7b-8xP4-plan.zip"' in answer.headers["content-disposition"]
