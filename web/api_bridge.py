"""Everything `fitplan.web` takes from fitplan beyond the public API (`fitplan.estimate`,
`recommend`, `make_instance`, `load_model`, `parse_gpu_set`): one module, so that a move of
the library's modules is re-pointed here and nowhere else in web/."""

from __future__ import annotations

from fitplan.cli.emit_options import write_emit
from fitplan.cli.recommend import _tokens as tokens_to_train  # --tokens / --epochs x --dataset-samples
from fitplan.cli.recommend import describe_config_of, recommend_command, render_recommendation
from fitplan.cli.render import describe_config, render_estimate
from fitplan.solver.catalog import gpu_catalog, model_catalog
from fitplan.solver.errors import ConfigFileError, FitplanError, UnknownGpuError, UnknownModelError, validation_message
from fitplan.solver.estimate import Estimate
from fitplan.solver.gpu_spec import GIB
from fitplan.solver.instance import Pins, Workload
from fitplan.solver.recommend import Recommendation, SolverSettings, max_seq_len, memory_budget_bytes, min_gpus
from fitplan.solver.term_labels import TERM_LABELS
from fitplan.solver.training_config import Attention, Method, Offload, Optimizer, Precision

__all__ = [
    "Attention", "ConfigFileError", "Estimate", "FitplanError", "GIB", "Method", "Offload", "Optimizer", "Pins",
    "Precision", "Recommendation", "SolverSettings", "TERM_LABELS", "UnknownGpuError", "UnknownModelError",
    "Workload", "describe_config", "describe_config_of", "gpu_catalog", "max_seq_len", "memory_budget_bytes",
    "min_gpus", "model_catalog", "recommend_command", "render_estimate", "render_recommendation", "tokens_to_train",
    "validation_message", "write_emit",
]
