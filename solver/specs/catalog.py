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
from .budget import budget_gpu, is_budget
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
    """Every model in catalogs/models/, by canonical name."""
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
def gpu_catalog() -> dict[str, GpuSpec]:
    """Every GPU in catalogs/gpus.yaml, by canonical name."""
    data = _read_yaml(_catalog_dir().joinpath("gpus.yaml").read_text(), "catalog file gpus.yaml")
    gpus = {}
    for raw in data["gpus"]:
        spec = GpuSpec.model_validate(raw)
        gpus[spec.name] = spec
    return gpus


def _lookup(catalog: dict, name: str, error: type[Exception], what: str, hint: str):
    """The entry whose name or alias matches `name` (case- and separator-insensitive), or an
    error naming the near matches."""
    index = {_normalise(key): canonical for canonical, entry in catalog.items()
             for key in [canonical, *entry.aliases]}
    key = _normalise(name)
    if key not in index:
        close = difflib.get_close_matches(key, list(index), n=4, cutoff=0.5)
        near = sorted({index[c] for c in close})
        suggestion = f" Did you mean: {', '.join(near)}?" if near else ""
        raise error(f"unknown {what} '{name}'.{suggestion} {hint}")
    return catalog[index[key]]


def load_model(name_or_path: str) -> ModelSpec:
    """A catalog model by name or alias, or a Hugging Face `config.json` path."""
    path = Path(name_or_path)
    if name_or_path.endswith(".json") or path.is_file() or path.is_dir():
        from .hf_config import model_from_config_file

        return model_from_config_file(path)
    return _lookup(model_catalog(), name_or_path, UnknownModelError, "model",
                   "Run `fitplan models` for the list, or pass a path to a Hugging Face config.json.")


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
    gpu = budget_gpu(name) if is_budget(name) else load_gpu(name)
    return GpuSet(gpu=gpu, nodes=nodes, gpus_per_node=per_node)
