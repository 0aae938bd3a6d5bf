"""Evaluators: ``evaluator(runner) -> {name: float}``, run under ``torch.no_grad`` in eval mode."""
from __future__ import annotations

import copy
from typing import Any

import torch

from .data import to_device


class MeanOutputs:
    """Runs the model's ``forward`` on the validation set and averages every scalar it
    returns, weighted by batch size, across all batches and processes:
    ``val/<name> = sum_b n_b * value_b / sum_b n_b``.
    """

    def __init__(self, prefix: str = "val/"):
        self.prefix = prefix

    def __call__(self, runner) -> dict[str, float]:
        if runner.val_loader is None:
            raise ValueError("an evaluator is set but the data has no validation split (data.val)")
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


def _batch_size(batch: Any) -> int:
    if isinstance(batch, torch.Tensor):
        return batch.shape[0]
    if isinstance(batch, (list, tuple)):
        return _batch_size(batch[0])
    if isinstance(batch, dict):
        return _batch_size(next(iter(batch.values())))
    raise TypeError(f"cannot tell the batch size of {type(batch).__name__}")


class KNNAccuracy:
    """Weighted k-NN accuracy of frozen features (Wu et al. 2018; DINO's ``eval_knn``).

    ``f(x) = normalize(model.<features>(x))``. Every validation image votes with its
    ``k`` nearest training images by cosine similarity ``s_i``, each weighted
    ``exp(s_i / temperature)``: ``pred = argmax_c sum_i [y_i = c] exp(s_i / T)``, and
    ``<prefix>knn_acc`` is the fraction of correct predictions. The bank is the
    un-augmented training set (``runner.train_loader.dataset``, ``(x, y)`` items), the
    queries are ``runner.val_loader.dataset``; every process evaluates them in full.
    With ``random_init=True`` it also reports ``<prefix>knn_acc_random_init``: the same
    evaluation of a copy of the feature module re-initialised (``reset_parameters``)
    from ``seed``, computed once.
    """

    def __init__(self, features: str = "encoder", k: int = 20, temperature: float = 0.07,
                 random_init: bool = True, seed: int = 0, batch_size: int = 512, prefix: str = "val/"):
        if k < 1:
            raise ValueError(f"KNNAccuracy: k={k} is not valid; allowed: an integer >= 1")
        if temperature <= 0:
            raise ValueError(f"KNNAccuracy: temperature={temperature} is not valid; allowed: > 0")
        self.features, self.k, self.temperature = features, k, temperature
        self.random_init, self.seed, self.batch_size, self.prefix = random_init, seed, batch_size, prefix
        self._random_acc: float | None = None

    def __call__(self, runner) -> dict[str, float]:
        if runner.val_loader is None:
            raise ValueError("an evaluator is set but the data has no validation split (data.val)")
        net = runner.unwrapped_model
        for part in self.features.split("."):
            if not hasattr(net, part):
                raise ValueError(f"KNNAccuracy: the model ({type(runner.unwrapped_model).__name__}) has no "
                                 f"{self.features!r} (features={self.features!r})")
            net = getattr(net, part)
        bank, queries, device = runner.train_loader.dataset, runner.val_loader.dataset, runner.accelerator.device
        out = {f"{self.prefix}knn_acc": self.accuracy(net, bank, queries, device)}
        if self.random_init:
            if self._random_acc is None:
                self._random_acc = self.accuracy(_reinitialised(net, self.seed).to(device), bank, queries, device)
            out[f"{self.prefix}knn_acc_random_init"] = self._random_acc
        return out

    @torch.no_grad()
    def accuracy(self, net: torch.nn.Module, bank, queries, device) -> float:
        was_training = net.training
        net.eval()
        fb, yb = self._embed(net, bank, device)
        fq, yq = self._embed(net, queries, device)
        net.train(was_training)
        sim, idx = (fq @ fb.T).topk(min(self.k, len(yb)), dim=1)
        votes = torch.zeros(len(yq), int(max(yb.max(), yq.max())) + 1, dtype=sim.dtype, device=device)
        votes.scatter_add_(1, yb[idx], (sim / self.temperature).exp())
        return (votes.argmax(1) == yq).double().mean().item()

    def _embed(self, net, dataset, device) -> tuple[torch.Tensor, torch.Tensor]:
        feats, labels = [], []
        # a private generator: evaluating must not draw from the global RNG training uses
        loader = torch.utils.data.DataLoader(dataset, batch_size=self.batch_size, generator=torch.Generator())
        for x, y in loader:
            feats.append(torch.nn.functional.normalize(net(x.to(device)).flatten(1).float(), dim=1))
            labels.append(y.to(device))
        return torch.cat(feats), torch.cat(labels)


def _reinitialised(net: torch.nn.Module, seed: int) -> torch.nn.Module:
    """A CPU copy of ``net`` with every submodule's ``reset_parameters()`` drawn from ``seed``."""
    fresh = copy.deepcopy(net).cpu()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for m in fresh.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
    return fresh
