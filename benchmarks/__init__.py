"""Benchmarks of importance training: time per step, memory, time to accuracy.

Run them with `python benchmarks/run.py` (see `run.py` for the options).
"""
