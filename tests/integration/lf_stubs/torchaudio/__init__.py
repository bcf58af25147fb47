"""A stand-in for torchaudio, put on PYTHONPATH only for the one-step training test.

LLaMA-Factory 0.9.5 imports torchaudio at module level (`data/mm_plugin.py`, reached from
`llamafactory.train.tuner`) for audio inputs only. No torchaudio release matches the project's
torch==2.13.0: PyPI's newest is 2.11.1, whose `_torchaudio.so` fails to load under torch 2.13.0
("Could not load this library"). A text-only SFT step never calls it; any attribute used here
raises, so the test fails loudly if one ever does."""


def __getattr__(name: str):
    raise ImportError(f"torchaudio.{name} was used, but this is the test's stand-in (tests/integration/lf_stubs)")
