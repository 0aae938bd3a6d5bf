"""Tracking data: SiamFC-style crops, template/search training pairs, and the ``data`` node.

Crop geometry (SiamFC/SiamRPN): for a box of size ``(w, h)`` with context
``p = context_amount * (w + h)``, the template crop is a square of side
``s_z = sqrt((w + p) * (h + p))`` around the box centre, resized to ``template_size``;
the search crop has side ``s_z * search_size / template_size``, resized to
``search_size``, so the target appears at the template's scale. Pixels outside the
frame take the frame's mean colour.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import Dataset

from ...core.data import DataBundle
from .sequences import Sequence, read_sequences
from .synth import make_sequences


def context_side(w, h, context_amount: float):
    """``sqrt((w + p) (h + p))`` with ``p = context_amount (w + h)``."""
    p = context_amount * (w + h)
    return np.sqrt((w + p) * (h + p)) if isinstance(w, np.ndarray) else math.sqrt((w + p) * (h + p))


def crop(frame: np.ndarray, cx: float, cy: float, w: float, h: float, out: int) -> np.ndarray:
    """The ``w x h`` rectangle centred at ``(cx, cy)`` of a uint8 ``[H, W, 3]`` frame,
    bilinearly resized to float32 ``[3, out, out]`` in [0, 1]. Output pixel ``u``
    samples ``cx + ((u + 0.5) / out - 0.5) w``; source pixels outside the frame count
    as the frame's mean colour (``grid_sample`` of ``frame - mean`` with zero padding,
    ``align_corners=False``, plus the mean)."""
    H, W = frame.shape[:2]
    pixels = frame.reshape(-1, 3).astype(np.float32)
    mean = np.ones(len(pixels), np.float32) @ pixels / len(pixels)     # a BLAS sum: ~15x numpy's mean(0)

    def taps(centre, size, n):
        pos = centre + ((np.arange(out) + 0.5) / out - 0.5) * size - 0.5   # in pixel-index units
        i0 = np.floor(pos).astype(np.int64)
        frac = (pos - i0).astype(np.float32)
        w0 = (1 - frac) * ((i0 >= 0) & (i0 < n))
        w1 = frac * ((i0 + 1 >= 0) & (i0 + 1 < n))
        return np.clip(i0, 0, n - 1), np.clip(i0 + 1, 0, n - 1), w0, w1

    x0, x1, wx0, wx1 = taps(cx, w, W)
    y0, y1, wy0, wy1 = taps(cy, h, H)
    rows = frame[y0].astype(np.float32) * wy0[:, None, None] + frame[y1].astype(np.float32) * wy1[:, None, None]
    img = rows[:, x0] * wx0[None, :, None] + rows[:, x1] * wx1[None, :, None]
    img += mean * (1 - np.outer(wy0 + wy1, wx0 + wx1))[..., None]     # weight missing outside the frame
    return np.ascontiguousarray(img.transpose(2, 0, 1)) / np.float32(255)


class PairDataset(Dataset):
    """Template/search pairs: item ``i`` takes sequence ``i % len(sequences)``.

    A random frame gives the template and a frame at most ``frame_range`` away the
    search crop. With probability ``neg_prob`` the template comes from another
    sequence (a negative pair). Augmentation as mmtrack's SeqShiftScaleAug: each crop
    side is scaled by ``1 + U(-scale, scale)`` per axis and its centre moved by up to
    ``shift`` output pixels per axis. Randomness comes from the global torch RNG
    (seeded by the Runner and restored on resume). Items: ``template [3,T,T]``,
    ``search [3,S,S]``, ``box`` (xyxy, search-crop pixels), ``positive``.
    """

    def __init__(self, sequences: list[Sequence], length: int, template_size: int, search_size: int,
                 context_amount: float = 0.5, frame_range: int = 30, neg_prob: float = 0.2,
                 template_shift: float = 1.0, template_scale: float = 0.05,
                 search_shift: float = 12.0, search_scale: float = 0.18):
        self.sequences, self.length = sequences, length
        self.T, self.S, self.context = template_size, search_size, context_amount
        self.frame_range, self.neg_prob = frame_range, neg_prob
        self.aug = {"template": (template_shift, template_scale), "search": (search_shift, search_scale)}

    def __len__(self) -> int:
        return self.length

    def _crop(self, seq: Sequence, t: int, kind: str, u: list[float]):
        shift, scale = self.aug[kind]
        out = self.T if kind == "template" else self.S
        x, y, w, h = (float(v) for v in seq.boxes[t])
        side = context_side(w, h, self.context) * out / self.T
        sw, sh = side * (1 + scale * (2 * u[0] - 1)), side * (1 + scale * (2 * u[1] - 1))
        cx = x + w / 2 - shift * (2 * u[2] - 1) * sw / out
        cy = y + h / 2 - shift * (2 * u[3] - 1) * sh / out
        img = torch.from_numpy(crop(seq.frame(t), cx, cy, sw, sh, out))
        fx, fy = out / sw, out / sh
        box = torch.tensor([(x - cx) * fx, (y - cy) * fy, (x + w - cx) * fx, (y + h - cy) * fy]) + out / 2
        return img, box

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        n = len(self.sequences)
        u = torch.rand(13).tolist()
        seq = self.sequences[i % n]
        t_x = int(u[0] * len(seq))
        lo, hi = max(t_x - self.frame_range, 0), min(t_x + self.frame_range, len(seq) - 1)
        t_z = lo + int(u[1] * (hi - lo + 1))
        positive = n == 1 or u[2] >= self.neg_prob
        z_seq = seq
        if not positive:   # another sequence's target
            z_seq = self.sequences[(i % n + 1 + int(u[3] * (n - 1))) % n]
            t_z = int(u[4] * len(z_seq))
        template, _ = self._crop(z_seq, t_z, "template", u[5:9])
        search, box = self._crop(seq, t_x, "search", u[9:13])
        return {"template": template, "search": search, "box": box, "positive": torch.tensor(positive)}


class SequenceSet(Dataset):
    """Held-out sequences for one-pass evaluation (``data.val``); items are sequences."""

    def __init__(self, sequences: list[Sequence]):
        self.sequences = list(sequences)

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, i: int) -> Sequence:
        return self.sequences[i]


def tracking_data(root: str | None = None, val_root: str | None = None, *, seed: int = 0,
                  template_size: int = 32, search_size: int = 64, context_amount: float = 0.5,
                  train_sequences: int = 96, val_sequences: int = 24, train_frames: int = 32,
                  val_frames: int = 64, frame_size: int = 128, pairs_per_epoch: int = 6144,
                  frame_range: int = 30, neg_prob: float = 0.2, search_shift: float = 12.0) -> DataBundle:
    """Training pairs and held-out sequences.

    ``root`` unset: generated sequences (:mod:`~trainkit.tasks.sot.synth`),
    ``train_sequences`` x ``train_frames`` and ``val_sequences`` x ``val_frames``
    frames of ``frame_size`` px, deterministic from ``seed``. ``root`` set: the
    sequence folders under it (:mod:`~trainkit.tasks.sot.sequences`); held out are
    those under ``val_root`` or else the last ``val_sequences`` of ``root`` in sorted
    order.
    """
    for key, value, low in (("train_sequences", train_sequences, 1), ("val_sequences", val_sequences, 1),
                            ("train_frames", train_frames, 2), ("val_frames", val_frames, 2),
                            ("pairs_per_epoch", pairs_per_epoch, 1), ("frame_range", frame_range, 0)):
        if value < low:
            raise ValueError(f"data.{key}={value} must be >= {low}")
    if not 0.0 <= neg_prob < 1.0:
        raise ValueError(f"data.neg_prob={neg_prob} must be in [0, 1)")
    if search_shift < 0:
        raise ValueError(f"data.search_shift={search_shift} must be >= 0")
    if frame_size < 2 * template_size:
        raise ValueError(f"data.frame_size={frame_size} must be >= 2 * template_size ({2 * template_size})")
    if root is None:
        train = make_sequences(seed, "train", train_sequences, frames=train_frames, frame_size=frame_size)
        val = make_sequences(seed, "val", val_sequences, frames=val_frames, frame_size=frame_size)
    else:
        train = read_sequences(root)
        if val_root is not None:
            val = read_sequences(val_root)
        else:
            if len(train) <= val_sequences:
                raise ValueError(f"data.root={root!r} holds {len(train)} sequences; holding out "
                                 f"data.val_sequences={val_sequences} would leave none to train on")
            train, val = train[:-val_sequences], train[-val_sequences:]
    pairs = PairDataset(train, pairs_per_epoch, template_size, search_size, context_amount,
                        frame_range=frame_range, neg_prob=neg_prob, search_shift=search_shift)
    return DataBundle(train=pairs, val=SequenceSet(val))
