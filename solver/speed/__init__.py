"""Seconds per optimizer step and tokens per second (`step_time`), from FLOPs, achievable
rates, launch overhead, dequantisation, communication and offload traffic; every constant with
its source in `constants`. It ranks plans; it is not a profiler."""
