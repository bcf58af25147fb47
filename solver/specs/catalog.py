"""Loads the cited data in catalogs/ (models, GPUs) and resolves what users type."""

from __future__ import annotations

import difflib
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path

import yaml
from pydantic import ValidationError

from ..errors import ConfigFileError, UnknownGpuError, UnknownModelError
from .budget import budget_gpu, budget_reference, is_budget
from .gpu import GpuSet, GpuSpec
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
        close = difflib.get_close_matches(key, list(index), n=4, cutoff=0.5)
        near = sorted({index[c] for c in close})
        suggestion = f" Did you mean: {', '.join(near)}?" if near else ""
        raise error(f"unknown {what} '{name}'.{suggestion} {hint}")
    return catalog[index[key]]


def _model_keys(spec: ModelSpec) -> list[str]:
    return [spec.name, *spec.aliases, *([spec.hf_id] if spec.hf_id else [])]


_MODEL_HINT = ("Run `fitplan models` for the list, give a Hugging Face id (ORG/NAME), or pass a path to a "
               "Hugging Face config.json.")


def catalog_model(name: str) -> ModelSpec | None:
    """The catalog's named model for a name, alias or Hub id (no network); None if it has none."""
    return named_models().get(_index(named_models(), _model_keys).get(_normalise(name), ""))


def load_model(name_or_path: str, revision: str | None = None) -> ModelSpec:
    """A model by catalog name, alias or Hub id; a Hugging Face `config.json` path (or its folder);
    or any Hub id (ORG/NAME), whose config.json comes from the local Hugging Face cache or the Hub
    (specs/hub.py). A catalog name or Hub id wins without touching the network, unless a
    `revision` asks for a particular version of the file."""
    text = name_or_path.strip()
    path = Path(text)
    if text.endswith(".json") or path.is_file() or path.is_dir():
        if revision:
            raise UnknownModelError(f"--revision {revision} applies to Hugging Face ids, not to the local path '{text}'")
        from .hf_config import model_from_config_file

        return model_from_config_file(path)
    named = catalog_model(text)
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


def parse_gpu_set(text: str) -> GpuSet:
    """`8xP4` (8 GPUs), `2x8xH100` (2 nodes of 8), `A100-80G` (one GPU), `1x24GiB` / `2x80GB:bf16+fa2`
    (a VRAM budget: specs/budget.py)."""
    match = _GPU_SET.match(text or "")
    if not match or not match.group(3):
        raise UnknownGpuError(f"cannot read GPU set '{text}': write COUNTxGPU or NODESxCOUNTxGPU, e.g. 8xP4, 2x8xH100")
    first, second, name = match.groups()
    if second is not None:
        nodes, per_node = int(first), int(second)
    else:
        nodes, per_node = 1, int(first) if first is not None else 1
    if nodes < 1 or per_node < 1:
        raise UnknownGpuError(f"GPU set '{text}' has no GPUs: counts must be at least 1, e.g. 8xP4")
    gpu = budget_gpu(name, load_gpu(budget_reference(name))) if is_budget(name) else load_gpu(name)
    return GpuSet(gpu=gpu, nodes=nodes, gpus_per_node=per_node)
