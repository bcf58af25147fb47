"""What every test shares: no test reaches the Hugging Face Hub.

A Hub id outside the catalog (`--model someone/unknown-model`) is resolved from the local Hugging
Face cache, else downloaded (solver/specs/hub.py). Tests run offline against an empty cache of
their own, so such an id fails at once with the offline message instead of waiting on the
network, and the user's real cache is never read. Tests that need a cached config.json build
the cache layout themselves (tests/specs/test_hub.py)."""

import pytest


@pytest.fixture(autouse=True)
def _offline_hugging_face(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path_factory.getbasetemp() / "empty-hf-cache"))
