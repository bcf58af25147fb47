"""What the page and the JSON API are asked: `fitplan estimate` / `fitplan recommend` options by
their command-line names (`seq_len`, `zero`, `lora_target`, `top`, `time_limit`, ...; the Python
API's names `zero_stage`, `lora_targets`, `top_k` are accepted too).

The body is checked for shape here (types, the CLI's ranges, unknown names); the values are
judged by the library itself (`fitplan.make_instance` validates them with `Pins` and
`Workload`, `fitplan.recommend` with the hardware rules), so the page, the API, the CLI and
Python all reject the same input with the same one-line message.
"""

from __future__ import annotations

import json
import shlex
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

import fitplan

from .api_bridge import GIB, ConfigFileError, FitplanError, SolverSettings, UnknownModelError, validation_message

MAX_CONFIG_JSON_CHARS = 1 << 20  # a real config.json is a few KB
MAX_TEXT_CHARS = 256  # names and placeholders; a longer one is no name (and too long a file name to test)

# The knobs, as `fitplan.estimate` / `recommend` keywords (cli/options.py KNOB_NAMES).
KNOB_FIELDS = ("method", "bits", "lora_rank", "lora_targets", "freeze_layers", "micro_batch", "grad_accum",
               "grad_ckpt", "attn", "zero_stage", "offload", "optim", "precision", "n_gpus", "sharding",
               "fsdp_strategy", "fsdp_version",
               # the memory levers (cli/options.py LEVER_NAMES)
               "liger", "unsloth_gc", "reentrant_gc", "memory_optimizer", "projection_rank", "dora", "pissa", "rslora",
               "loraplus_lr_ratio", "upcast_layernorm", "upcast_lmhead_output")
WORKLOAD_FIELDS = ("seq_len", "global_batch", "packing", "mean_sample_len", "neat_packing", "allow_packing",
                   "capacity_factor", "moe_aux_loss_coef")
UPLOADED_MODEL_NAME = "uploaded-config"  # the name of an uploaded config.json without _name_or_path
UPLOADED_MODEL_ARG = "config.json"  # what the reproducing command passes as --model for an upload


class QuestionError(FitplanError):
    """A body that is not a question: unknown field, wrong type, out of the CLI's range.
    `field` is the option it is about (its CLI name), when one is."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class EstimateQuestion(BaseModel):
    """`fitplan estimate`'s options. Ranges are the CLI's click ranges (cli/options.py): `Pins`
    does not hold them, and the API must refuse what the CLI refuses."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    model: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)  # catalog name or alias, or a Hub id
    config_json: str | None = None  # or the text of an uploaded Hugging Face config.json
    gpus: str = Field(max_length=MAX_TEXT_CHARS)
    revision: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)  # Hub revision of a Hugging Face id
    seq_len: int = Field(default=2048, ge=1)
    global_batch: int | None = Field(default=None, ge=1)
    packing: bool = False
    mean_sample_len: int | None = Field(default=None, ge=1)
    capacity_factor: float | None = Field(default=None, ge=1.0)  # MoE (cli/options.py moe_options)
    moe_aux_loss_coef: float | None = Field(default=None, gt=0)
    method: str | None = None
    bits: int | None = None
    lora_rank: int | None = Field(default=None, ge=1)
    lora_targets: str | None = Field(default=None, alias="lora_target", max_length=4 * MAX_TEXT_CHARS)
    freeze_layers: int | None = Field(default=None, ge=1)
    micro_batch: int | None = Field(default=None, ge=1)
    grad_accum: int | None = Field(default=None, ge=1)
    grad_ckpt: bool | None = None
    attn: str | None = None
    zero_stage: int | None = Field(default=None, ge=0, le=3, alias="zero")
    offload: str | None = None
    optim: str | None = None
    precision: str | None = None
    n_gpus: int | None = Field(default=None, ge=1)
    liger: bool | None = None
    unsloth_gc: bool | None = None
    reentrant_gc: bool | None = None
    memory_optimizer: str | None = None
    projection_rank: int | None = Field(default=None, ge=1)
    dora: bool | None = None
    pissa: bool | None = None
    rslora: bool | None = None
    loraplus_lr_ratio: float | None = Field(default=None, gt=0)
    upcast_layernorm: bool | None = None
    upcast_lmhead_output: bool | None = None
    neat_packing: bool = False
    allow_packing: bool = False  # recommend's --allow-packing (estimate ignores it)
    sharding: str | None = None
    fsdp_strategy: str | None = None
    fsdp_version: int | None = Field(default=None, ge=1, le=2)

    @field_validator("config_json", mode="before")
    @classmethod
    def _config_as_text(cls, value):
        if isinstance(value, dict):
            value = json.dumps(value)
        if isinstance(value, str) and len(value) > MAX_CONFIG_JSON_CHARS:
            raise ValueError(f"a config.json of more than {MAX_CONFIG_JSON_CHARS} characters is not a model config")
        return value

    @field_validator("lora_targets", mode="before")
    @classmethod
    def _targets_as_text(cls, value):
        return ",".join(value) if isinstance(value, (list, tuple)) else value

    @model_validator(mode="after")
    def _one_model(self) -> EstimateQuestion:
        if (self.model is None) == (self.config_json is None):
            raise ValueError("give a catalog name or Hub id (model), or a config.json (config_json), not both")
        return self

    def api_keywords(self) -> dict:
        """The workload and knob keywords of `fitplan.estimate` / `recommend`."""
        return {name: getattr(self, name) for name in WORKLOAD_FIELDS + KNOB_FIELDS}

    def knobs(self) -> dict:
        """The knobs pinned (None = free)."""
        return {name: getattr(self, name) for name in KNOB_FIELDS}

    def model_label(self) -> str:
        return self.model if self.model is not None else UPLOADED_MODEL_ARG


class RecommendQuestion(EstimateQuestion):
    """`fitplan recommend`'s options (less `-o/--out`: the server writes no files of yours)."""

    inter_node_gbps: float | None = Field(default=None, gt=0)  # network out of each node, Gb/s
    top_k: int = Field(default=1, ge=1, alias="top")
    headroom: float = Field(default=0.05, ge=0, le=0.9)
    host_ram_gib: float | None = Field(default=None, ge=1)
    time_limit: float = Field(default=10.0, ge=0.1)
    tokens: int | None = Field(default=None, ge=1)
    epochs: float | None = Field(default=None, gt=0)
    dataset_samples: int | None = Field(default=None, ge=1)
    compare_engines: bool = True  # the other sharding engines' fastest plans beside the chosen one
    max_seq_len: bool = False  # answer: the longest --seq-len at which something fits
    min_gpus: bool = False  # answer: the fewest GPUs of this kind on which something fits
    emit: Literal["llamafactory", "deepspeed"] | None = None
    dataset: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)
    template: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)
    model_path: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)
    output_dir: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)
    dataset_dir: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)

    def api_keywords(self) -> dict:
        return super().api_keywords() | {"inter_node_gbps": self.inter_node_gbps}

    def settings(self, max_time_limit_s: float, max_top_k: int) -> SolverSettings:
        """The solver settings, the time limit and the number of plans capped by the server."""
        host_ram = int(self.host_ram_gib * GIB) if self.host_ram_gib else None
        return SolverSettings(time_limit_s=min(self.time_limit, max_time_limit_s), headroom_fraction=self.headroom,
                              top_k=min(self.top_k, max_top_k), host_ram_bytes=host_ram)

    def emit_keywords(self) -> dict:
        """The placeholders of `--emit` (cli/emit_options.write_emit's keywords)."""
        return {"emit": self.emit or "llamafactory", "dataset": self.dataset, "template": self.template,
                "model_path": self.model_path, "output_dir": self.output_dir, "dataset_dir": self.dataset_dir}


def parse_question(kind: type[EstimateQuestion], body: object) -> EstimateQuestion:
    """The question in a JSON body (or the page's form, as a dict), or a QuestionError with the
    library's one-line `where: what` message."""
    if not isinstance(body, dict):
        raise QuestionError("the body must be a JSON object of option names, e.g. "
                            '{"model": "qwen2.5-7b", "gpus": "8xP4", "seq_len": 1024}')
    try:
        return kind.model_validate(body)
    except ValidationError as exc:
        loc = exc.errors()[0].get("loc") or ()
        field = _cli_name(kind, str(loc[0])) if loc else "model"  # the one check across fields
        raise QuestionError(validation_message(exc, "model"), field) from None


def _cli_name(kind: type[BaseModel], name: str) -> str:
    field = kind.model_fields.get(name)
    return field.alias if field is not None and field.alias else name


def load_question_model(question: EstimateQuestion, *, read_files: bool = False):
    """The ModelSpec asked about: a catalog name or alias, or the uploaded config.json. A name
    that is a path is refused unless `read_files` (the CLI): the page and the API never read the
    server's files."""
    if question.config_json is not None:
        return _model_from_config_text(question.config_json)
    name = question.model.strip()
    if read_files:
        return fitplan.load_model(name, revision=question.revision)
    if name.endswith(".json") or _is_server_path(name):
        raise UnknownModelError(f"'{name}' is a file name: the page and the API read no files on the server; "
                                "upload the config.json (config_json) or give a catalog name or Hub id")
    return fitplan.load_model(name, revision=question.revision)


def _is_server_path(name: str) -> bool:
    try:
        return Path(name).expanduser().exists()
    except (OSError, ValueError):  # a name no file can have (a NUL byte) is no path either
        return False


def _model_from_config_text(text: str):
    with tempfile.TemporaryDirectory(prefix="fitplan-upload-") as folder:
        path = Path(folder) / UPLOADED_MODEL_NAME / "config.json"
        path.parent.mkdir()
        path.write_text(text)
        try:  # the temporary folder is gone after the answer: no local_dir for the emitted model_name_or_path
            return fitplan.load_model(str(path)).model_copy(update={"local_dir": ""})
        except ConfigFileError as exc:  # the message names our temporary file: name the upload instead
            raise ConfigFileError(str(exc).replace(str(path), "uploaded config.json")) from None


# ---- the command that reproduces an answer ---------------------------------------------------

_FLAG_NAMES = {"lora_targets": "--lora-target", "zero_stage": "--zero", "top_k": "--top"}


def cli_command(question: EstimateQuestion, command: Literal["estimate", "recommend"]) -> str:
    """The `fitplan estimate|recommend ...` line that answers the same question (an uploaded
    config is passed as `config.json`, the file the user uploaded); options left at the CLI's
    default are left out, except --seq-len."""
    args = ["fitplan", command, "--model", question.model_label(), "--gpus", question.gpus]
    for name, field in type(question).model_fields.items():
        value = getattr(question, name)
        if name in ("model", "config_json", "gpus") or value is None:
            continue
        if value == field.default and name != "seq_len":
            continue
        args += _flag(name, value)
    if getattr(question, "emit", None):
        args += ["-o", "plan"]
    return shlex.join(args)


def _flag(name: str, value) -> list[str]:
    if isinstance(value, bool):
        if name == "grad_ckpt":
            return ["--grad-ckpt" if value else "--no-grad-ckpt"]
        return ["--" + name.replace("_", "-")] if value else []
    flag = _FLAG_NAMES.get(name, "--" + name.replace("_", "-"))
    return [flag, f"{value:g}" if isinstance(value, float) else str(value)]
