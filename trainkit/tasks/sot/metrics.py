"""One-pass evaluation (OPE) metrics, as OTB/LaSOT toolkits and mmtrack's ``eval_sot_ope``.

Per sequence, over all its frames (the first, initialised with the ground truth,
included): ``success(t)`` = fraction of frames with IoU ``> t``, for the 21
thresholds ``t = 0, 0.05, ..., 1``; success AUC = the mean of ``success(t)``;
precision at ``px`` = fraction of frames whose centre error is ``<= px`` pixels.
Each metric is then averaged over sequences (every sequence weighs the same).
"""
from __future__ import annotations

import numpy as np

THRESHOLDS = np.arange(21) / 20
OPE_METRICS = ("success_auc", "precision_20px")   # the keys of ope()


def iou_xywh(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-row IoU of ``[T, 4]`` ``xywh`` boxes."""
    lt = np.maximum(pred[:, :2], gt[:, :2])
    rb = np.minimum(pred[:, :2] + pred[:, 2:], gt[:, :2] + gt[:, 2:])
    inter = np.clip(rb - lt, 0, None).prod(1)
    union = pred[:, 2:].prod(1) + gt[:, 2:].prod(1) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def center_error(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-row Euclidean distance between box centres, in pixels."""
    return np.linalg.norm((pred[:, :2] + pred[:, 2:] / 2) - (gt[:, :2] + gt[:, 2:] / 2), axis=1)


def success_auc(ious: np.ndarray) -> float:
    return float(np.mean([(ious > t).mean() for t in THRESHOLDS]))


def precision(errors: np.ndarray, px: float = 20.0) -> float:
    return float((errors <= px).mean())


def ope(preds: list[np.ndarray], gts: list[np.ndarray]) -> dict[str, float]:
    """``{"success_auc", "precision_20px"}`` averaged over sequences."""
    if len(preds) != len(gts) or not preds:
        raise ValueError(f"need one prediction per sequence, got {len(preds)} for {len(gts)}")
    auc = [success_auc(iou_xywh(p, g)) for p, g in zip(preds, gts, strict=True)]
    prec = [precision(center_error(p, g)) for p, g in zip(preds, gts, strict=True)]
    return dict(zip(OPE_METRICS, (float(np.mean(auc)), float(np.mean(prec))), strict=True))
