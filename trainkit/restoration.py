"""Denoising on the bundled digits: noisy → clean pairs and PSNR."""
from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from .data import DataBundle, load_digits_arrays


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
