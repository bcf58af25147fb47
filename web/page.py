"""The page: the question form (sticky, each error next to its field) and the answer (the plan in
one line, the memory bar, host RAM and speed, the runners-up, or the binding constraint and the
suggestions, the plots, the download and the command). Every figure is in the CLI's words: the
text comes from the CLI's own rendering (`render_estimate`, `render_recommendation`)."""

from __future__ import annotations

import json

from .answers import PageAnswer
from .api_bridge import GIB, describe_config_of, gpu_catalog, model_catalog
from .form import FormField, form_sections, gpus_help, model_help
from .html import Markup, join, tag
from .page_style import PAGE_CSS, PAGE_SCRIPT

TITLE = "fitplan: which fine-tuning configuration fits on these GPUs, and which trains fastest"


def render_page(values: dict[str, str], *, answer: PageAnswer | None = None, question_json: str | None = None,
                errors: dict[str | None, str] | None = None, config_text: str | None = None) -> str:
    """The whole page. `errors` maps a field name (None = the form as a whole) to its message."""
    errors = errors or {}
    if answer:
        shown = _answer(answer, question_json)
    elif errors:
        shown = tag("div", tag("h2", "no answer"), tag("p", "The question has an error: the marked field says why."),
                    id="no-answer")
    else:
        shown = _welcome()
    body = tag("main", _form(values, errors, config_text), tag("section", shown, id="answer"), class_="layout")
    head = tag("head", tag("meta", charset="utf-8"), tag("meta", name="viewport", content="width=device-width"),
               tag("title", TITLE), tag("style", Markup(PAGE_CSS)))
    header = tag("header", tag("h1", "fitplan"),
                 tag("p", "Which fine-tuning configuration fits on these GPUs, and which of those trains fastest?"))
    return "<!doctype html>\n" + tag("html", head, tag("body", header, body, tag("script", Markup(PAGE_SCRIPT))),
                                     lang="en")


# ---- the form --------------------------------------------------------------------------------

def _form(values: dict[str, str], errors: dict, config_text: str | None) -> Markup:
    overall = errors.get(None)
    return tag("form",
               tag("p", overall, class_="form-error", id="error-form", role="alert") if overall else None,
               _model_fieldset(values, errors, config_text),
               _gpu_fieldset(values, errors),
               [_section(title, fields, values, errors, open_=k == 0 or any(f.name in errors for f in fields))
                for k, (title, fields) in enumerate(form_sections())],
               tag("div",
                   tag("button", "recommend", type="submit", name="action", value="recommend", id="submit-recommend"),
                   tag("button", "estimate", type="submit", name="action", value="estimate", id="submit-estimate",
                       class_="secondary"),
                   class_="actions"),
               method="post", action="/", enctype="multipart/form-data", id="question")


def _model_fieldset(values: dict, errors: dict, config_text: str | None) -> Markup:
    names = sorted({alias for spec in model_catalog().values()
                    for alias in [spec.name, *spec.aliases, *(variant.name for variant in spec.variants)]})
    uploaded = None
    if config_text is not None:
        uploaded = tag("p", f"using the uploaded config.json ({len(config_text):,} characters); "
                            "upload another or type a name to change it", class_="help",
                       id="uploaded-config")
    return tag("fieldset", tag("legend", "model"),
               _labelled("model", "--model", tag("input", type="text", id="model", name="model", list="model-names",
                                                 value=values.get("model", ""), autocomplete="off",
                                                 placeholder="qwen2.5-7b or Qwen/Qwen2.5-7B",
                                                 aria_invalid="true" if "model" in errors else None),
                         "Catalog name or Hub id (fitplan models), or upload its config.json below.", errors),
               tag("datalist", [tag("option", value=name) for name in names], id="model-names"),
               tag("div", tag("label", "config.json", for_="config_json"),
                   tag("input", type="file", id="config_json", name="config_json", accept=".json,application/json"),
                   uploaded, class_="field"),
               tag("input", type="hidden", name="config_json_text", value=config_text) if config_text else None,
               title=model_help())


def _gpu_fieldset(values: dict, errors: dict) -> Markup:
    names = sorted({alias for spec in gpu_catalog().values() for alias in [spec.name, *spec.aliases]})
    return tag("fieldset", tag("legend", "GPUs (--gpus NODESxCOUNTxGPU)"),
               tag("div",
                   _labelled("gpu", "GPU", tag("input", type="text", id="gpu", name="gpu", list="gpu-names",
                                               value=values.get("gpu", ""), autocomplete="off", placeholder="P4",
                                               aria_invalid="true" if "gpu" in errors else None),
                             "fitplan gpus lists them", errors),
                   _labelled("gpu_count", "GPUs per node", _number("gpu_count", values.get("gpu_count", "1"), 1),
                             "", errors),
                   _labelled("nodes", "nodes", _number("nodes", values.get("nodes", "1"), 1), "", errors),
                   class_="row"),
               tag("datalist", [tag("option", value=name) for name in names], id="gpu-names"),
               title=gpus_help())


def _number(name: str, value: str, minimum: int) -> Markup:
    return tag("input", type="number", id=name, name=name, value=value, min=minimum, step=1)


def _section(title: str, fields: list[FormField], values: dict, errors: dict, open_: bool) -> Markup:
    return tag("details", tag("summary", title), tag("div", [_field(f, values, errors) for f in fields], class_="grid"),
               open=open_)


def _field(field: FormField, values: dict, errors: dict) -> Markup:
    value = values.get(field.name, field.default)
    invalid = "true" if field.name in errors else None
    if field.kind == "checkbox":
        control = tag("input", type="checkbox", id=field.name, name=field.name, checked=bool(value), aria_invalid=invalid)
    elif field.kind in ("select", "tristate"):
        options = [tag("option", "(free)" if field.kind == "tristate" else "(default)", value="")]
        options += [tag("option", choice, value=choice, selected=choice == value) for choice in field.choices]
        control = tag("select", options, id=field.name, name=field.name, aria_invalid=invalid)
    elif field.kind == "number":
        control = tag("input", type="number", id=field.name, name=field.name, value=value, min=field.minimum,
                      max=field.maximum, step=field.step, aria_invalid=invalid)
    else:
        control = tag("input", type="text", id=field.name, name=field.name, value=value, aria_invalid=invalid)
    return _labelled(field.name, field.flag, control, field.help, errors)


def _labelled(name: str, label: str, control: Markup, help_text: str, errors: dict) -> Markup:
    error = errors.get(name)
    return tag("div", tag("label", label, for_=name), control,
               tag("p", error, class_="field-error", id=f"error-{name}", role="alert") if error else None,
               tag("small", help_text, class_="help") if help_text else None,
               class_="field invalid" if error else "field", id=f"field-{name}")


# ---- the answer ------------------------------------------------------------------------------

def _welcome() -> Markup:
    return tag("div", tag("h2", "Ask a question"),
               tag("p", "Choose a model and GPUs, then recommend (the fastest configuration that fits, "
                        "deciding every knob you leave free) or estimate (one configuration, term by term)."),
               tag("p", "The same question on the command line: fitplan recommend --model qwen2.5-7b --gpus 8xP4 "
                        "--seq-len 1024"), class_="welcome")


def _answer(answer: PageAnswer, question_json: str | None) -> Markup:
    lines = answer.report.splitlines()
    rec = answer.recommendation
    fits = rec.plan is not None if rec is not None else bool(answer.estimate and answer.estimate.fits)
    parts = [tag("h2", "the answer"),
             tag("p", lines[0] if lines else "", class_="plan-line fits" if fits else "plan-line no-fit", id="plan-line")]
    if rec is not None and rec.plan is None:
        parts.append(_nothing_fits(rec))
    parts += [_facts(lines), tag("figure", Markup(answer.bar_svg), id="memory-bar") if answer.bar_svg else None]
    if rec is not None and rec.runners_up:
        parts.append(_runners_up_table(rec))
    parts.append(_plots(answer))
    parts.append(_reproduce(answer, question_json, rec))
    parts.append(tag("details", tag("summary", f"what fitplan {answer.command} prints"),
                     tag("pre", answer.report, id="cli-report")))
    return join(*parts)


def _facts(lines: list[str]) -> Markup:
    """The CLI's lines about speed, host RAM and the budget, verbatim."""
    wanted = ("trainable ", "speed:", "  step:", "time for ", "memory budget per GPU:", "host RAM per node")
    facts = [line.strip() for line in lines[1:] if line.startswith(wanted)]
    notes = [line.removeprefix("note: ") for line in lines if line.startswith("note: ")]
    return join(tag("ul", [tag("li", fact) for fact in facts], class_="facts", id="facts") if facts else None,
                tag("ul", [tag("li", note) for note in notes], class_="notes") if notes else None)


def _nothing_fits(rec) -> Markup:
    explanation = rec.explanation
    binding = explanation.binding if explanation else "no candidate"
    suggestions = explanation.suggestions if explanation else []
    return tag("div", tag("p", f"nothing fits: {binding}", id="binding"),
               tag("ul", [tag("li", f"try: {s}") for s in suggestions], id="suggestions") if suggestions else None,
               class_="nothing-fits")


def _runners_up_table(rec) -> Markup:
    rows = [tag("tr", tag("td", "1"), tag("td", f"{rec.tokens_per_s:,.0f}"),
                tag("td", f"{rec.estimate.peak_bytes / GIB:.2f} GiB"), tag("td", describe_config_of(rec.plan)),
                class_="chosen")]
    for k, runner in enumerate(rec.runners_up, start=2):
        rows.append(tag("tr", tag("td", str(k)), tag("td", f"{runner.tokens_per_s:,.0f}"),
                        tag("td", f"{runner.peak_bytes / GIB:.2f} GiB"), tag("td", describe_config_of(runner.plan))))
    head = tag("tr", tag("th", "#"), tag("th", "tokens/s"), tag("th", "peak"), tag("th", "configuration"))
    return tag("table", tag("caption", "runners-up"), tag("thead", head), tag("tbody", rows), id="runners-up")


def _plots(answer: PageAnswer) -> Markup:
    seq = tag("figure", Markup(answer.seq_len_svg),
              tag("figcaption", tag("ul", [tag("li", line) for line in answer.curve_lines])), id="seq-len-plot")
    heading = next((line for line in answer.report.splitlines() if line.startswith("runners-up (")), None)
    scatter = None
    if answer.runners_up_svg:
        caption = tag("figcaption", heading.removesuffix(":")) if heading else None
        scatter = tag("figure", Markup(answer.runners_up_svg), caption,
                      id="runners-up-plot")
    return tag("div", tag("h3", "plots"), seq, scatter, class_="plots")


def _reproduce(answer: PageAnswer, question_json: str | None, rec) -> Markup:
    download = None
    if rec is not None and rec.plan is not None and question_json:
        files = "train.yaml, ds_config.json, launch.sh" if rec.plan.zero_stage else "train.yaml, launch.sh"
        if rec.plan.fsdp_strategy is not None:
            files = "train.yaml, fsdp_config.yaml, launch.sh"
        download = tag("form", tag("input", type="hidden", name="question", value=question_json),
                       tag("button", f"download the files ({files}) as a zip", type="submit", id="download"),
                       method="post", action="/download")
    return tag("div", tag("h3", "take it with you"), download,
               tag("div", tag("code", answer.cli_line, id="cli-command"),
                   tag("button", "copy", type="button", id="copy-command", data_copy="cli-command"),
                   class_="command"),
               class_="reproduce")


def question_json(body: dict) -> str:
    return json.dumps(body, sort_keys=True)
