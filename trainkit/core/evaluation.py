"""The default evaluator. An evaluator is ``evaluator(runner) -> {name: float}``, run under
``torch.no_grad`` with the model in eval mode; task-specific ones live in :mod:`trainkit.tasks`.

An evaluator declares the names it returns with ``metric_names(runner) -> list[str]``: the
Runner checks ``trainer.monitor`` and every component's ``val_metric`` against them before
the first iteration (an evaluator without it is trusted until its first validation).
"""
from __future__ import annotations

from typing import Any

import torch

from .checkpoint import preserved_rng
from .data import to_device


class MeanOutputs:
    """Runs the model's ``forward`` on the validation set and averages every scalar it
    returns, weighted by batch size, across all batches and processes:
    ``val/<name> = sum_b n_b * value_b / sum_b n_b``.
    """

    def __init__(self, prefix: str = "val/"):
        if not isinstance(prefix, str):
            raise ValueError(f"evaluator.prefix={prefix!r} is not valid; allowed: a string")
        self.prefix = prefix

    def metric_names(self, runner) -> list[str]:
        """``<prefix><name>`` for every scalar the model returns on the first validation batch,
        run once before training (under ``no_grad``, in eval mode, every RNG restored after it:
        the run's trajectory is unchanged) — the names :meth:`__call__` will return."""
        _need_val(runner)
        model, device = runner.unwrapped_model, runner.accelerator.device
        was_training = model.training
        with preserved_rng(), torch.no_grad():
            model.eval()
            try:
                out = model(to_device(next(iter(runner.val_loader)), device))
            finally:
                model.train(was_training)
        return sorted(f"{self.prefix}{k}" for k, v in out.items() if isinstance(v, torch.Tensor) and v.ndim == 0)

    def __call__(self, runner) -> dict[str, float]:
        _need_val(runner)
        model, device = runner.unwrapped_model, runner.accelerator.device
        sums: dict[str, torch.Tensor] = {}
        count = torch.zeros((), dtype=torch.float64, device=device)
        for batch in runner.val_loader:
            batch = to_device(batch, device)
            out = model(batch)
            n = _batch_size(batch)
            for k, v in out.items():
                if isinstance(v, torch.Tensor) and v.ndim == 0:
                    sums[k] = sums.get(k, torch.zeros((), dtype=torch.float64, device=device)) + v.double() * n
            count += n
        names = sorted(sums)
        if not names:
            return {}
        packed = torch.stack([sums[k] for k in names] + [count])
        packed = runner.accelerator.reduce(packed, reduction="sum") if runner.accelerator.num_processes > 1 else packed
        total = packed[-1].item()
        return {f"{self.prefix}{k}": (packed[i] / total).item() for i, k in enumerate(names)}


def _need_val(runner) -> None:
    if runner.val_loader is None:
        raise ValueError("an evaluator is set but the data has no validation split (data.val)")


def _batch_size(batch: Any) -> int:
    if isinstance(batch, torch.Tensor):
        return batch.shape[0]
    if isinstance(batch, (list, tuple)):
        return _batch_size(batch[0])
    if isinstance(batch, dict):
        return _batch_size(next(iter(batch.values())))
    raise TypeError(f"cannot tell the batch size of {type(batch).__name__}")
