"""A small CNN for the bundled 8x8 digits: ``backbone`` (convs) and ``head`` (linear)."""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn


def conv_backbone(width: int) -> nn.Sequential:
    """Three 3x3 conv-BN-ReLU layers with one 2x2 max-pool: ``[N, 1, 8, 8]`` → ``[N, 2 * width]``."""
    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.MaxPool2d(2),                                   # 8x8 -> 4x4
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )


class DigitsCNN(nn.Module):
    """``forward((x, y))`` → ``{"loss": cross-entropy, "acc": accuracy}``."""

    def __init__(self, width: int = 32, num_classes: int = 10, dropout: float = 0.1):
        super().__init__()
        self.backbone = conv_backbone(width)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * width, num_classes))

    def forward(self, batch):
        x, y = batch
        logits = self.head(self.backbone(x))
        loss = F.cross_entropy(logits, y)
        acc = (logits.argmax(1) == y).float().mean()
        return {"loss": loss, "acc": acc.detach()}
