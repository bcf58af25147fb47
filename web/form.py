"""The page's form: one field per `fitplan recommend` option, made from the click command itself
(its flag, help text, choices and default), so the page cannot drift from the CLI; the form's
values as a question; which field an error belongs to."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .api_bridge import ConfigFileError, UnknownGpuError, UnknownModelError, recommend_command
from .questions import KNOB_FIELDS, WORKLOAD_FIELDS, QuestionError, RecommendQuestion

# The page asks for more plans than the CLI's --top 1, to draw the runners-up.
PAGE_DEFAULTS = {"top": "5"}
SEARCH_FIELDS = ("top_k", "compare_engines", "headroom", "host_ram_gib", "time_limit", "tokens", "epochs", "dataset_samples")
FILE_FIELDS = ("emit", "dataset", "template", "model_path", "output_dir", "dataset_dir")
HUB_AND_NETWORK_FIELDS = ("revision", "inter_node_gbps")
GPU_FORM_FIELDS = ("gpu", "gpu_count", "nodes")  # composed into --gpus: NODESxCOUNTxGPU


@dataclass(frozen=True)
class FormField:
    name: str  # the input's name: the CLI option's name, as the JSON API takes it
    flag: str  # --seq-len
    help: str
    kind: str  # "number", "text", "select", "checkbox", "tristate" (--x/--no-x, unset = free)
    choices: tuple[str, ...] = ()
    default: str = ""
    minimum: float | None = None
    maximum: float | None = None
    step: str | None = None


def _field_of(param) -> FormField:
    flag = param.opts[-1] if param.opts[-1].startswith("--") else param.opts[0]
    name = flag.removeprefix("--").replace("-", "_")
    default = "" if param.default is None or not isinstance(param.default, (int, float, str)) else param.default
    type_name = type(param.type).__name__
    common = {"name": name, "flag": flag, "help": param.help or "",
                  "default": PAGE_DEFAULTS.get(name, ("on" if default else "") if isinstance(default, bool)
                                               else str(default))}
    if param.is_flag and param.secondary_opts:
        if param.default is None:
            return FormField(kind="tristate", choices=(param.opts[0], param.secondary_opts[0]), **common)
        return FormField(kind="checkbox", **common)
    if type_name in ("Choice", "ShortChoice"):
        return FormField(kind="select", choices=tuple(param.type.choices), **common)
    if type_name in ("IntRange", "FloatRange"):
        return FormField(kind="number", minimum=param.type.min, maximum=param.type.max,
                         step="1" if type_name == "IntRange" else "any", **common)
    if type_name in ("BoundedCount", "FiniteFloat"):  # cli/options.py: bounds from solver/specs/limits.py
        return FormField(kind="number", minimum=param.type.low, maximum=param.type.high,
                         step="1" if type_name == "BoundedCount" else "any", **common)
    return FormField(kind="text", **common)


def _by_dest() -> dict[str, FormField]:
    return {param.name: _field_of(param) for param in recommend_command.params}


def form_sections() -> list[tuple[str, list[FormField]]]:
    """(title, fields) in the CLI's groups: workload, knobs, search, files."""
    fields = _by_dest()
    return [
        ("workload", [fields[n] for n in WORKLOAD_FIELDS]),
        ("knobs: pin a choice (empty = the recommender decides; estimate takes LLaMA-Factory's default)",
         [fields[n] for n in KNOB_FIELDS]),
        ("search", [fields[n] for n in SEARCH_FIELDS]),
        ("Hub revision and network", [fields[n] for n in HUB_AND_NETWORK_FIELDS]),
        ("files (the zip of recommend --emit)", [fields[n] for n in FILE_FIELDS]),
    ]


def model_help() -> str:
    return _by_dest()["model"].help


def gpus_help() -> str:
    return _by_dest()["gpus"].help


# ---- the form's values as a question ---------------------------------------------------------

def gpus_text(values: dict) -> str:
    """--gpus from the form's kind, GPUs per node and nodes: 8xP4, 2x8xH100."""
    kind = values.get("gpu", "").strip()
    count = values.get("gpu_count", "").strip() or "1"
    nodes = values.get("nodes", "").strip() or "1"
    return f"{count}x{kind}" if nodes == "1" else f"{nodes}x{count}x{kind}"


def question_body(values: dict[str, str], config_text: str | None) -> dict:
    """The JSON API body the form's values say (empty fields left out, unset = the default)."""
    body: dict = {"gpus": gpus_text(values)}
    if config_text is not None:
        body["config_json"] = config_text
    else:
        body["model"] = values.get("model", "").strip()
    for _title, fields in form_sections():
        for field in fields:
            raw = values.get(field.name, "").strip()
            if field.kind == "checkbox":
                body[field.name] = bool(raw)
            elif field.kind == "tristate":
                if raw:
                    body[field.name] = raw == field.choices[0]
            elif raw:
                body[field.name] = raw
    return body


# ---- which field an error is about ------------------------------------------------------------

_FLAG = re.compile(r"(--[a-z][a-z0-9-]*)")


def error_field(exc: Exception) -> str | None:
    """The form field whose input the error is about, or None (shown above the form)."""
    if isinstance(exc, QuestionError) and exc.field:
        return "gpu" if exc.field == "gpus" else exc.field
    if isinstance(exc, (UnknownModelError, ConfigFileError)):
        return "model"
    if isinstance(exc, UnknownGpuError):
        return "gpu"
    names = {f.name for _t, fields in form_sections() for f in fields}
    message = str(exc)
    head = message.split(":", 1)[0].strip()
    by_python_name = {name: _alias(name) for name in RecommendQuestion.model_fields}
    if head in by_python_name and by_python_name[head] in names:
        return by_python_name[head]
    for flag in _FLAG.findall(message):
        name = flag.removeprefix("--").removeprefix("no-").replace("-", "_")
        if name in names:
            return name
    return None


def _alias(name: str) -> str:
    field = RecommendQuestion.model_fields[name]
    return field.alias or name
