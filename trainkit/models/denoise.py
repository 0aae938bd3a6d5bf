"""A small residual denoising CNN (DnCNN-style) for 1-channel images."""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from ..restoration import psnr


class DenoiseCNN(nn.Module):
    """``clean ≈ noisy − net(noisy)``. ``forward((noisy, clean))`` → ``{"loss": L1,
    "psnr": mean PSNR of the output clipped to [0, 1], "psnr_noisy": mean PSNR of the input}``."""

    def __init__(self, width: int = 32, depth: int = 4):
        super().__init__()
        if depth < 2:
            raise ValueError(f"model.depth must be >= 2, got {depth}")
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
