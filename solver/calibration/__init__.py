"""Tooling that holds fitplan to published GPU measurements: framework profiles (how another
framework's step differs from LLaMA-Factory's), the predictions of the published runs
(`published_runs`, printed by benchmarks/calibration.py), and a model of PyTorch's caching
allocator with a replay of traced allocation logs. Nothing in the product imports it."""
