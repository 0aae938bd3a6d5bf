"""Sinks beyond the run's own ``metrics.jsonl`` (which is :mod:`trainkit.core.record`): ``wandb``
(Weights & Biases, offline by default). A sink has ``log(row, step)`` and ``close(status)``.
May import ``core`` only.
"""
