"""Hugging Face Hub ids (`--model Qwen/Qwen3-8B`, `model_name_or_path` in `fitplan check`): the
model's `config.json`, and only that file, never weights.

Where the file comes from, in order (huggingface_hub does the cache layout and the download):
1. the local Hugging Face cache (`models--ORG--NAME/snapshots/<commit>/config.json`, the commit
   from `refs/<revision>`), found with `huggingface_hub.try_to_load_from_cache`;
2. when not offline, `huggingface_hub.hf_hub_download(repo_id, "config.json", revision=...)`,
   which stores it in that same cache.

The environment is read when a model is resolved, with huggingface_hub's own names and order
(huggingface_hub 2.x `constants.py`): the cache is `HF_HUB_CACHE`, else `HUGGINGFACE_HUB_CACHE`,
else `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub` (`~/.cache/huggingface/hub`);
offline mode is `HF_HUB_OFFLINE` (or `TRANSFORMERS_OFFLINE`) set to 1/ON/YES/TRUE.

Catalog names and the catalog's Hub ids never come here (specs/catalog.load_model answers them
from catalogs/ without importing huggingface_hub), so `fitplan estimate --model qwen3-8b` stays
offline and fast.
"""

from __future__ import annotations

import logging
import os
import re
from contextlib import contextmanager
from pathlib import Path

from ..errors import ConfigFileError, UnknownModelError

CONFIG_FILE = "config.json"

# ORG/NAME as the Hub spells repository ids (letters, digits, '-', '_', '.', each part 1 to 96
# characters; huggingface_hub utils/_validators.py validate_repo_id), e.g. Qwen/Qwen3-8B.
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_TRUE = {"1", "ON", "YES", "TRUE"}  # huggingface_hub constants._is_true


def looks_like_repo_id(text: str) -> bool:
    return bool(_REPO_ID.match(text.strip())) and ".." not in text


def _env_true(name: str) -> bool:
    return (os.environ.get(name) or "").strip().upper() in _TRUE


def offline() -> bool:
    """Offline mode as huggingface_hub reads it (HF_HUB_OFFLINE, or TRANSFORMERS_OFFLINE)."""
    return _env_true("HF_HUB_OFFLINE") or _env_true("TRANSFORMERS_OFFLINE")


def cache_dir() -> str:
    """The Hugging Face hub cache folder, from the environment as it is now."""
    env = os.environ
    if env.get("HF_HUB_CACHE"):
        chosen = env["HF_HUB_CACHE"]
    elif env.get("HUGGINGFACE_HUB_CACHE"):
        chosen = env["HUGGINGFACE_HUB_CACHE"]
    else:
        home = env.get("HF_HOME") or os.path.join(env.get("XDG_CACHE_HOME") or os.path.join("~", ".cache"),
                                                   "huggingface")
        chosen = os.path.join(home, "hub")
    return os.path.expandvars(os.path.expanduser(chosen))


@contextmanager
def _quiet_hub():
    """huggingface_hub logs each retry of a failed request as a warning; the one-line error that
    follows says it all, so its logger is held at ERROR while fitplan downloads."""
    logger = logging.getLogger("huggingface_hub")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _local_hint(repo_id: str) -> str:
    return (f"pass the path of a local config.json instead (--model path/to/config.json), or fetch it "
            f"once online: `hf download {repo_id} config.json`")


def config_path(repo_id: str, revision: str | None = None) -> Path:
    """The local path of `repo_id`'s config.json at `revision` (None = main): the cache first,
    then a download unless offline. One-line errors say what is missing and what to pass instead."""
    try:
        from huggingface_hub import hf_hub_download, try_to_load_from_cache
        from huggingface_hub import errors as hub_errors
    except ImportError:  # pragma: no cover - a dependency of fitplan; only a broken install lacks it
        raise ConfigFileError(f"resolving the Hub id '{repo_id}' needs huggingface_hub (pip install "
                              f"huggingface_hub); or pass the path of a local config.json") from None
    cache = cache_dir()
    at = f" at revision '{revision}'" if revision else ""
    cached = try_to_load_from_cache(repo_id, CONFIG_FILE, cache_dir=cache, revision=revision)
    if isinstance(cached, str):
        return Path(cached)
    if cached is not None:  # the cache records that the file does not exist at that commit
        raise ConfigFileError(f"{repo_id}{at} has no config.json (the Hugging Face cache in {cache} says so)")
    if offline():
        raise ConfigFileError(f"{repo_id}: config.json{at} is not in the Hugging Face cache ({cache}) and "
                              f"offline mode is on (HF_HUB_OFFLINE); {_local_hint(repo_id)}")
    try:
        with _quiet_hub():
            return Path(hf_hub_download(repo_id, CONFIG_FILE, revision=revision, cache_dir=cache))
    except hub_errors.GatedRepoError:
        raise ConfigFileError(f"{repo_id} is gated on the Hugging Face Hub: accept its license there and log in "
                              f"(`hf auth login`), or {_local_hint(repo_id)}") from None
    except hub_errors.RepositoryNotFoundError:
        raise UnknownModelError(f"'{repo_id}' is not a model on the Hugging Face Hub (or it is private: log in "
                                "with `hf auth login`); run `fitplan models` for the catalog") from None
    except hub_errors.RevisionNotFoundError:
        raise ConfigFileError(f"{repo_id} has no revision '{revision}' on the Hugging Face Hub: give a branch, "
                              "tag or commit of that repository") from None
    except hub_errors.LocalEntryNotFoundError:  # no connection and nothing cached
        raise ConfigFileError(f"{repo_id}: config.json{at} is not in the Hugging Face cache ({cache}) and the Hub "
                              f"cannot be reached (HF_HUB_OFFLINE=1 skips the attempt); {_local_hint(repo_id)}") from None
    except hub_errors.EntryNotFoundError:
        raise ConfigFileError(f"{repo_id}{at} has no config.json on the Hugging Face Hub: it is not a "
                              "transformers model repository") from None
    except (OSError, ValueError) as exc:  # network errors (HfHubHTTPError is an OSError), bad ids
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigFileError(f"{repo_id}: cannot download config.json{at} ({first}); {_local_hint(repo_id)}") from None
