"""Boxes, anchors and the box-delta coder of a Siamese region-proposal tracker.

Formats: ``xywh`` = (left, top, width, height), as in ``groundtruth.txt``; ``xyxy`` =
(left, top, right, bottom); ``cxcywh`` = (centre x, centre y, width, height).
Coordinates are continuous: pixel column ``i`` covers ``[i, i + 1)``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

# mmdet's DeltaXYWHBBoxCoder clamps |dw|, |dh| at log(1000 / 16).
MAX_LOG_RATIO = abs(math.log(16 / 1000))


def xywh_to_xyxy(b):
    return torch.cat([b[..., :2], b[..., :2] + b[..., 2:]], -1)


def xyxy_to_cxcywh(b):
    return torch.cat([(b[..., :2] + b[..., 2:]) / 2, b[..., 2:] - b[..., :2]], -1)


def cxcywh_to_xyxy(b):
    return torch.cat([b[..., :2] - b[..., 2:] / 2, b[..., :2] + b[..., 2:] / 2], -1)


def iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Intersection over union of ``xyxy`` boxes, broadcast over leading dimensions:
    ``|a ∩ b| / (|a| + |b| - |a ∩ b|)``, 0 where the union is empty."""
    lt = torch.maximum(a[..., :2], b[..., :2])
    rb = torch.minimum(a[..., 2:], b[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[..., 2:] - a[..., :2]).clamp(min=0).prod(-1)
    area_b = (b[..., 2:] - b[..., :2]).clamp(min=0).prod(-1)
    union = area_a + area_b - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(union))


def make_anchors(score_size: int, stride: float, ratios: Sequence[float], scale: float,
                 search_size: int) -> torch.Tensor:
    """``cxcywh`` anchors of shape ``[len(ratios) * score_size**2, 4]``, ordered
    (ratio, row, column). Cell ``(i, j)`` is centred at
    ``(search_size / 2 + (j - (score_size - 1) / 2) * stride, same for i)``, so the
    middle cell sits at the search crop's centre; a ratio ``r = h / w`` anchor has
    ``w = stride * scale / sqrt(r)`` and ``h = stride * scale * sqrt(r)`` (area
    ``(stride * scale)**2``, mmdet's continuous base anchors)."""
    offsets = (torch.arange(score_size, dtype=torch.float64) - (score_size - 1) / 2) * stride + search_size / 2
    cy, cx = torch.meshgrid(offsets, offsets, indexing="ij")
    base = stride * scale
    out = []
    for r in ratios:
        w, h = base / math.sqrt(r), base * math.sqrt(r)
        out.append(torch.stack([cx, cy, torch.full_like(cx, w), torch.full_like(cx, h)], -1).reshape(-1, 4))
    return torch.cat(out).float()


def hanning_window(score_size: int, num_ratios: int) -> torch.Tensor:
    """The cosine window ``hann(i) * hann(j)`` (numpy's ``hanning``), one value per
    anchor in :func:`make_anchors` order."""
    h = np.hanning(score_size)
    return torch.from_numpy(np.outer(h, h).reshape(-1)).float().repeat(num_ratios)


def encode(anchors: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Deltas of ``cxcywh`` boxes from anchors: ``((gx - ax) / aw, (gy - ay) / ah,
    log(gw / aw), log(gh / ah))``."""
    return torch.cat([(gt[..., :2] - anchors[..., :2]) / anchors[..., 2:],
                      torch.log(gt[..., 2:] / anchors[..., 2:])], -1)


def decode(anchors: torch.Tensor, deltas: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`encode`; ``|dw|, |dh|`` clamped at ``log(1000 / 16)``."""
    wh = anchors[..., 2:] * deltas[..., 2:].clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO).exp()
    return torch.cat([anchors[..., :2] + deltas[..., :2] * anchors[..., 2:], wh], -1)
