"""The bundled 8x8 handwritten digits (scikit-learn's 1,797 images): the data and a small CNN
(``backbone`` convs, ``head`` linear)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from ..core.checks import number, positive_int
from ..core.data import DataBundle


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
        positive_int("model.width", width)
        positive_int("model.num_classes", num_classes)
        number("model.dropout", dropout, low=0.0, high=1.0, high_open=True)
        super().__init__()
        self.backbone = conv_backbone(width)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * width, num_classes))

    def forward(self, batch):
        x, y = batch
        logits = self.head(self.backbone(x))
        loss = F.cross_entropy(logits, y)
        acc = (logits.argmax(1) == y).float().mean()
        return {"loss": loss, "acc": acc.detach()}


def load_digits_arrays(seed: int = 0, val_fraction: float = 0.2):
    """scikit-learn's 1,797 bundled 8x8 digits as float tensors in [0, 1], split
    deterministically into (train_x, train_y, val_x, val_y)."""
    from sklearn.datasets import load_digits

    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"data.val_fraction must be in (0, 1), got {val_fraction}")
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(d.target, dtype=torch.long)
    perm = torch.from_numpy(np.random.default_rng(seed).permutation(len(y)))
    n_val = int(round(len(y) * val_fraction))
    val, train = perm[:n_val], perm[n_val:]
    return x[train], y[train], x[val], y[val]


def digits_data(seed: int = 0, val_fraction: float = 0.2, classes: list[int] | None = None) -> DataBundle:
    """Classification data: (image [1,8,8], label) pairs. ``classes`` (e.g. ``[0, 1, 2, 3, 4]``) keeps
    only those digits, in both splits (the split itself is the same as without it)."""
    tx, ty, vx, vy = load_digits_arrays(seed, val_fraction)
    if classes is not None:
        kept = list(classes)
        if not kept or len(set(kept)) != len(kept) or not all(isinstance(c, int) and 0 <= c <= 9 for c in kept):
            raise ValueError(f"data.classes must be distinct digits 0..9, got {classes!r}")
        if kept != list(range(len(kept))):
            raise ValueError(f"data.classes must be 0..n-1 (labels are not renumbered), got {kept}")
        tx, ty = tx[torch.isin(ty, torch.tensor(kept))], ty[torch.isin(ty, torch.tensor(kept))]
        vx, vy = vx[torch.isin(vy, torch.tensor(kept))], vy[torch.isin(vy, torch.tensor(kept))]
    return DataBundle(TensorDataset(tx, ty), TensorDataset(vx, vy))
