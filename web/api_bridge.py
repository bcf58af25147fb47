"""Everything `fitplan.web` takes from fitplan beyond the public API (`fitplan.estimate`,
`recommend`, `make_instance`, `load_model`, `parse_gpu_set`): one module, so that a move of
the library's modules is re-pointed here and nowhere else in web/."""

from __future__ import annotations

from fitplan.cli.emit_options import write_emit
from fitplan.cli.recommend import _tokens as tokens_to_train  # --tokens / --epochs x --dataset-samples
from fitplan.cli.recommend import recommend_command
from fitplan.cli.render import render_estimate, render_recommendation
from fitplan.solver.errors import ConfigFileError, FitplanError, UnknownGpuError, UnknownModelError, validation_message
from fitplan.solver.memory.terms import label_of as term_label
from fitplan.solver.planner.questions import max_seq_len, min_gpus
from fitplan.solver.problem.answers import Estimate, Recommendation
from fitplan.solver.problem.config import describe_config as describe_config_of  # of a TrainConfig
from fitplan.solver.problem.settings import SolverSettings, memory_budget_bytes
from fitplan.solver.specs.catalog import gpu_catalog, model_catalog
from fitplan.solver.units import GIB

__all__ = [
    "GIB", "ConfigFileError", "Estimate", "FitplanError", "Recommendation", "SolverSettings", "UnknownGpuError",
    "UnknownModelError", "describe_config_of", "gpu_catalog", "max_seq_len", "memory_budget_bytes", "min_gpus",
    "model_catalog", "recommend_command", "render_estimate", "render_recommendation", "term_label",
    "tokens_to_train", "validation_message", "write_emit",
]
