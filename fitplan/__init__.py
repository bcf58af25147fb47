"""fitplan: which fine-tuning configuration fits on these GPUs, and which of those trains fastest."""

__version__ = "0.1.0"
