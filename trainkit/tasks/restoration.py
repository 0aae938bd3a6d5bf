"""Denoising the bundled digits: noisy → clean pairs, PSNR, and a small residual denoising CNN
(DnCNN-style)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from ..core.checks import integer, positive_int
from ..core.data import DataBundle
from .digits import load_digits_arrays


def psnr(x: torch.Tensor, ref: torch.Tensor, peak: float = 1.0) -> torch.Tensor:
    """Per-image ``10·log10(peak² / mean((x − ref)²))`` over all but the first dimension."""
    mse = (x - ref).pow(2).flatten(1).mean(1)
    return 10.0 * torch.log10(peak ** 2 / mse)


def noisy_digits(sigma: float = 0.3, noise_seed: int = 1, seed: int = 0, val_fraction: float = 0.2) -> DataBundle:
    """(noisy, clean) pairs: each digit image (in [0, 1]) plus Gaussian noise of std ``sigma``,
    clipped to [0, 1]. The noise is drawn once from ``noise_seed`` (train split, then val), so
    every run sees the same pairs."""
    if sigma <= 0:
        raise ValueError(f"data.sigma must be > 0, got {sigma}")
    tx, _, vx, _ = load_digits_arrays(seed, val_fraction)
    g = torch.Generator().manual_seed(noise_seed)
    noisy = [(x + sigma * torch.randn(x.shape, generator=g)).clamp(0.0, 1.0) for x in (tx, vx)]
    return DataBundle(TensorDataset(noisy[0], tx), TensorDataset(noisy[1], vx))


class DenoiseCNN(nn.Module):
    """``clean ≈ noisy − net(noisy)``. ``forward((noisy, clean))`` → ``{"loss": L1,
    "psnr": mean PSNR of the output clipped to [0, 1], "psnr_noisy": mean PSNR of the input}``."""

    def __init__(self, width: int = 32, depth: int = 4):
        super().__init__()
        positive_int("model.width", width)
        integer("model.depth", depth, low=2)
        layers = [nn.Conv2d(1, width, 3, padding=1), nn.ReLU()]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU()]
        layers.append(nn.Conv2d(width, 1, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, batch):
        noisy, clean = batch
        out = noisy - self.body(noisy)
        loss = F.l1_loss(out, clean)
        out = out.detach().clamp(0.0, 1.0)
        return {"loss": loss, "psnr": psnr(out, clean).mean(), "psnr_noisy": psnr(noisy, clean).mean()}
