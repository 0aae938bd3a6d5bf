"""BYOL (Grill et al. 2020) for the bundled 8x8 digits, in mmselfsup 0.x's layout.

``online_net = Sequential(encoder, projector)``, ``predictor`` on top of it, and
``target_net``: a copy of ``online_net`` that :class:`trainkit.optim.ema.MomentumEMA` keeps
an exponential moving average of. The loss is mmselfsup's ``BYOL.forward_train`` with
``LatentPredictHead``::

    loss = 2 * (d(q(v1), z'(v2)) + d(q(v2), z'(v1))),   d(p, z) = -mean_i cos(p_i, z_i)

with ``q = predictor(online_net(.))``, ``z' = target_net(.)`` under ``no_grad``, and
``v1, v2`` two random augmentations of the batch (:class:`DigitAugment`).
"""
from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..core.checks import boolean, number, positive_int
from .digits import conv_backbone


class DigitAugment(nn.Module):
    """A random view of a batch of ``[N, 1, 8, 8]`` images in [0, 1], drawn per image:
    an affine warp (rotation within ``±max_rotate`` degrees, zoom in ``scale``, shift
    within ``±max_shift`` pixels) resampled bilinearly, then ``x * a + noise * eps``
    with ``a ~ U(intensity)``, ``eps ~ N(0, 1)``, clamped to [0, 1]. Uses the global
    torch RNG (checkpointed by the Runner, so resumed runs draw the same views)."""

    def __init__(self, max_rotate: float = 15.0, scale: tuple[float, float] = (0.8, 1.2),
                 max_shift: float = 1.0, intensity: tuple[float, float] = (0.6, 1.4), noise: float = 0.1):
        super().__init__()
        number("augment.max_rotate", max_rotate, low=0.0)
        number("augment.max_shift", max_shift, low=0.0)
        number("augment.noise", noise, low=0.0)
        for key, pair in (("augment.scale", scale), ("augment.intensity", intensity)):
            if len(pair) != 2 or not 0 < pair[0] <= pair[1]:
                raise ValueError(f"{key}={list(pair)!r} is not valid; allowed: [low, high] with 0 < low <= high")
        self.max_rotate, self.scale, self.max_shift = math.radians(max_rotate), tuple(scale), max_shift
        self.intensity, self.noise = tuple(intensity), noise

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, dev = x.shape[0], x.device

        def uniform(lo: float, hi: float) -> torch.Tensor:
            return lo + (hi - lo) * torch.rand(n, device=dev)

        angle = uniform(-self.max_rotate, self.max_rotate)
        zoom = uniform(*self.scale)
        shift = uniform(-self.max_shift, self.max_shift), uniform(-self.max_shift, self.max_shift)
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        # affine_grid maps output to input coordinates in [-1, 1]: one pixel is 2 / width
        theta = torch.stack([torch.stack([cos, -sin, shift[0] * 2 / x.shape[-1]], 1),
                             torch.stack([sin, cos, shift[1] * 2 / x.shape[-2]], 1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        x = x * uniform(*self.intensity).view(n, 1, 1, 1) + self.noise * torch.randn_like(x)
        return x.clamp_(0.0, 1.0)


def _mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    """mmselfsup's ``NonLinearNeck`` with 2 layers: fc - BN - ReLU - fc."""
    return nn.Sequential(nn.Linear(d_in, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, d_out))


def neg_cosine(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``-mean_i cos(pred_i, target_i)`` (mmselfsup's ``LatentPredictHead`` loss)."""
    return -(F.normalize(pred, dim=1) * F.normalize(target, dim=1)).sum(1).mean()


class BYOL(nn.Module):
    """``forward(batch)`` → ``{"loss", "cos"}``; ``batch`` is images or ``(images, labels)``
    (labels unused). The target starts as an exact copy of the online network, with
    ``requires_grad=False``, and only the EMA writes it afterwards."""

    def __init__(self, width: int = 32, hidden: int = 256, dim: int = 64, augment: dict | None = None):
        for key, value in (("width", width), ("hidden", hidden), ("dim", dim)):
            positive_int(f"model.{key}", value)
        super().__init__()
        self.online_net = nn.Sequential(conv_backbone(width), _mlp(2 * width, hidden, dim))
        self.predictor = _mlp(dim, hidden, dim)
        self.target_net = copy.deepcopy(self.online_net).requires_grad_(False)
        self.augment = DigitAugment(**(augment or {}))

    @property
    def encoder(self) -> nn.Module:
        """The online encoder: the features that BYOL learns (what k-NN evaluates)."""
        return self.online_net[0]

    def forward(self, batch) -> dict[str, torch.Tensor]:
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        v1, v2 = self.augment(x), self.augment(x)
        q1, q2 = self.predictor(self.online_net(v1)), self.predictor(self.online_net(v2))
        with torch.no_grad():
            z1, z2 = self.target_net(v1), self.target_net(v2)
        loss = 2.0 * (neg_cosine(q1, z2) + neg_cosine(q2, z1))
        return {"loss": loss, "cos": -loss.detach() / 4.0}


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
        positive_int("evaluator.k", k)
        number("evaluator.temperature", temperature, low=0.0, low_open=True)
        boolean("evaluator.random_init", random_init)
        positive_int("evaluator.batch_size", batch_size)
        self.features, self.k, self.temperature = features, k, temperature
        self.random_init, self.seed, self.batch_size, self.prefix = random_init, seed, batch_size, prefix
        self._random_acc: float | None = None

    def metric_names(self, runner) -> list[str]:
        """The names :meth:`__call__` returns (and ``features`` checked to name a part of the model)."""
        self._features(runner)
        return [f"{self.prefix}knn_acc"] + ([f"{self.prefix}knn_acc_random_init"] if self.random_init else [])

    def _features(self, runner) -> torch.nn.Module:
        net = runner.unwrapped_model
        for part in self.features.split("."):
            if not hasattr(net, part):
                raise ValueError(f"KNNAccuracy: the model ({type(runner.unwrapped_model).__name__}) has no "
                                 f"{self.features!r} (evaluator.features={self.features!r})")
            net = getattr(net, part)
        return net

    def __call__(self, runner) -> dict[str, float]:
        if runner.val_loader is None:
            raise ValueError("an evaluator is set but the data has no validation split (data.val)")
        net = self._features(runner)
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
