"""Loads the cited data in catalogs/ (models, GPUs) and resolves what users type."""

from __future__ import annotations

import difflib
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path

import yaml
from pydantic import ValidationError

from ..errors import ConfigFileError, UnknownGpuError, UnknownModelError, shown
from .budget import budget_gpu, budget_reference, is_budget
from .gpu import GpuSet, GpuSpec
from .limits import MAX_COUNT_DIGITS, MAX_GPU_SET_CHARS, MAX_NAME_CHARS, MAX_PATH_COMPONENT_CHARS, MAX_TOTAL_GPUS
from .model import ModelSpec


def _catalog_dir():
    return resources.files("fitplan.catalogs")


def _normalise(name: str) -> str:
    return re.sub(r"[\s_]+", "-", name.strip().lower())


# libyaml's C loader when PyYAML was built with it: the catalog is read on every CLI start.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read_yaml(text: str, where: str) -> object:
    try:
        return yaml.load(text, Loader=_YAML_LOADER)
    except yaml.YAMLError as exc:
        raise ConfigFileError(f"{where} is not valid YAML: {exc}".splitlines()[0]) from exc


@lru_cache(maxsize=1)
def model_catalog() -> dict[str, ModelSpec]:
    """Every catalog entry (one architecture each) in catalogs/models/, by canonical name."""
    models: dict[str, ModelSpec] = {}
    for entry in sorted(_catalog_dir().joinpath("models").iterdir(), key=lambda p: p.name):
        if not entry.name.endswith(".yaml"):
            continue
        data = _read_yaml(entry.read_text(), f"catalog file models/{entry.name}")
        try:
            spec = ModelSpec.model_validate(data)
        except ValidationError as exc:
            raise ConfigFileError(f"catalog file models/{entry.name} is invalid: {exc}") from exc
        models[spec.name] = spec
    return models


@lru_cache(maxsize=1)
def named_models() -> dict[str, ModelSpec]:
    """Every named model of the catalog, entries and their variants (chat/instruct or base
    releases), by name; a variant carries its entry's architecture and its own Hub id and template."""
    named: dict[str, ModelSpec] = {}
    for entry in model_catalog().values():
        named[entry.name] = entry
        for variant in entry.variants:
            named[variant.name] = entry.named(variant)
    return named


@lru_cache(maxsize=1)
def llamafactory_templates() -> dict:
    """LLaMA-Factory 0.9.5's template names and model -> template table
    (catalogs/llamafactory_0.9.5_templates.yaml, scripts/generate_llamafactory_templates.py)."""
    return _read_yaml(_catalog_dir().joinpath("llamafactory_0.9.5_templates.yaml").read_text(),
                      "catalog file llamafactory_0.9.5_templates.yaml")


def llamafactory_template_of(hf_id: str) -> tuple[str | None, str | None]:
    """(LLaMA-Factory's model name, its template) for a Hub id LLaMA-Factory registers; (None, None) else."""
    wanted = hf_id.strip().lower()
    for name, row in llamafactory_templates()["models"].items():
        if (row.get("hf_id") or "").lower() == wanted:
            return name, row.get("template")
    return None, None


@lru_cache(maxsize=1)
def gpu_catalog() -> dict[str, GpuSpec]:
    """Every GPU in catalogs/gpus.yaml, by canonical name."""
    data = _read_yaml(_catalog_dir().joinpath("gpus.yaml").read_text(), "catalog file gpus.yaml")
    gpus = {}
    for raw in data["gpus"]:
        spec = GpuSpec.model_validate(raw)
        gpus[spec.name] = spec
    return gpus


def _index(catalog: dict, keys_of) -> dict[str, str]:
    return {_normalise(key): canonical for canonical, entry in catalog.items() for key in keys_of(entry)}


def _lookup(catalog: dict, name: str, error: type[Exception], what: str, hint: str, keys_of=None):
    """The entry whose name or alias matches `name` (case- and separator-insensitive), or an
    error naming the near matches."""
    index = _index(catalog, keys_of or (lambda entry: [entry.name, *entry.aliases]))
    key = _normalise(name)
    if key not in index:
        # difflib is quadratic in the length: a name far longer than any entry is near none
        close = difflib.get_close_matches(key, list(index), n=4, cutoff=0.5) if len(key) <= 64 else []
        near = sorted({index[c] for c in close})
        suggestion = f" Did you mean: {', '.join(near)}?" if near else ""
        raise error(f"unknown {what} '{shown(name)}'.{suggestion} {hint}")
    return catalog[index[key]]


def _model_keys(spec: ModelSpec) -> list[str]:
    return [spec.name, *spec.aliases, *([spec.hf_id] if spec.hf_id else [])]


_MODEL_HINT = ("Run `fitplan models` for the list, give a Hugging Face id (ORG/NAME), or pass a path to a "
               "Hugging Face config.json.")


def catalog_model(name: str) -> ModelSpec | None:
    """The catalog's named model for a name, alias or Hub id (no network); None if it has none."""
    return named_models().get(_index(named_models(), _model_keys).get(_normalise(name), ""))


def _as_local_path(text: str, named: ModelSpec | None) -> Path | None:
    """The config.json file or folder `text` names, or None when it names none. A catalog name
    wins over a folder of the same name in the working directory (write ./NAME for the folder);
    a Hub id ORG/NAME that is also a folder holding a config.json is read from the folder, as
    transformers' from_pretrained would."""
    if any(len(part) > MAX_PATH_COMPONENT_CHARS for part in text.split("/")):
        return None  # the OS would refuse it ("File name too long"): not a path
    path = Path(text)
    explicit = text.endswith(".json") or text.startswith((".", "/", "~"))
    try:
        if explicit or path.is_file():
            return path
        if path.is_dir() and (named is None or ("/" in text and (path / "config.json").is_file())):
            return path
    except OSError:
        return None
    return None


def load_model(name_or_path: str, revision: str | None = None) -> ModelSpec:
    """A model by catalog name, alias or Hub id; a Hugging Face `config.json` path (or its folder);
    or any Hub id (ORG/NAME), whose config.json comes from the local Hugging Face cache or the Hub
    (specs/hub.py). A catalog name or Hub id wins without touching the network, unless a
    `revision` asks for a particular version of the file; it also wins over a folder of the same
    name (`_as_local_path`)."""
    if not isinstance(name_or_path, str):
        raise UnknownModelError(f"the model must be a name or path (a string), not {type(name_or_path).__name__}: "
                                "e.g. 'qwen2.5-7b', 'Qwen/Qwen3-8B' or 'path/to/config.json'")
    if revision is not None and not isinstance(revision, str):
        raise UnknownModelError(f"revision must be a string (a branch, tag or commit), not {type(revision).__name__}")
    if revision and (len(revision) > MAX_PATH_COMPONENT_CHARS or not revision.isprintable()):
        raise UnknownModelError(f"--revision '{shown(revision)}' is no branch, tag or commit (at most "
                                f"{MAX_PATH_COMPONENT_CHARS} printable characters)")
    text = name_or_path.strip()
    if not text:
        raise UnknownModelError(f"the model name is empty: {_MODEL_HINT}")
    if len(text) > MAX_NAME_CHARS or "\x00" in text:
        raise UnknownModelError(f"the model name '{shown(text)}' is no name or path (at most {MAX_NAME_CHARS} "
                                f"characters, no NUL): {_MODEL_HINT}")
    named = catalog_model(text)
    path = _as_local_path(text, named)
    if path is not None:
        if revision:
            raise UnknownModelError(f"--revision {shown(revision)} applies to Hugging Face ids, not to the local "
                                    f"path '{shown(text)}'")
        from .hf_config import model_from_config_file

        return model_from_config_file(path)
    if named is not None and not revision:
        return named
    from . import hub

    repo_id = text if hub.looks_like_repo_id(text) else (named.hf_id if named is not None else "")
    if not repo_id:
        return _lookup(named_models(), text, UnknownModelError, "model", _MODEL_HINT, keys_of=_model_keys)
    from .hf_config import model_from_config_file

    spec = model_from_config_file(hub.config_path(repo_id, revision), hf_id=repo_id, revision=revision or "")
    lf_model, template = llamafactory_template_of(repo_id)
    if named is not None and named.hf_id.lower() == repo_id.lower():  # a catalog model at another revision
        lf_model, template = named.lf_model, named.template
    return spec.model_copy(update={"lf_model": lf_model, "template": template})


def load_gpu(name: str) -> GpuSpec:
    """A catalog GPU by name or alias (case-insensitive)."""
    return _lookup(gpu_catalog(), name, UnknownGpuError, "GPU", "Run `fitplan gpus` for the list.")


_GPU_SET = re.compile(r"^\s*(?:(\d+)\s*[x×*]\s*)?(?:(\d+)\s*[x×*]\s*)?(.+?)\s*$", re.IGNORECASE)


def _count(digits: str, text: str) -> int:
    if len(digits) > MAX_COUNT_DIGITS or int(digits) > MAX_TOTAL_GPUS:
        raise UnknownGpuError(f"GPU set '{shown(text)}' has more than {MAX_TOTAL_GPUS:,} GPUs, the most one plan "
                              "is made for (solver/specs/limits.py): plan one part of the cluster, e.g. 1024xH100")
    return int(digits)


def parse_gpu_set(text: str) -> GpuSet:
    """`8xP4` (8 GPUs), `2x8xH100` (2 nodes of 8), `A100-80G` (one GPU), `1x24GiB` / `2x80GB:bf16+fa2`
    (a VRAM budget: specs/budget.py). At most MAX_GPU_SET_CHARS characters and MAX_TOTAL_GPUS GPUs."""
    if not isinstance(text, str):
        raise UnknownGpuError(f"the GPU set must be a string such as '8xP4', not {type(text).__name__}")
    if len(text) > MAX_GPU_SET_CHARS:
        raise UnknownGpuError(f"cannot read GPU set '{shown(text)}': a GPU set is at most {MAX_GPU_SET_CHARS} "
                              "characters, COUNTxGPU or NODESxCOUNTxGPU, e.g. 8xP4, 2x8xH100")
    match = _GPU_SET.match(text or "")
    if not match or not match.group(3):
        raise UnknownGpuError(f"cannot read GPU set '{shown(text)}': write COUNTxGPU or NODESxCOUNTxGPU, e.g. 8xP4, "
                              "2x8xH100")
    first, second, name = match.groups()
    if second is not None:
        nodes, per_node = _count(first, text), _count(second, text)
    else:
        nodes, per_node = 1, _count(first, text) if first is not None else 1
    if nodes < 1 or per_node < 1:
        raise UnknownGpuError(f"GPU set '{shown(text)}' has no GPUs: counts must be at least 1, e.g. 8xP4")
    if nodes * per_node > MAX_TOTAL_GPUS:
        _count(str(nodes * per_node), text)
    gpu = budget_gpu(name, load_gpu(budget_reference(name))) if is_budget(name) else load_gpu(name)
    return GpuSet(gpu=gpu, nodes=nodes, gpus_per_node=per_node)
