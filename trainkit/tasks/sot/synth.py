"""Generated tracking sequences: handwritten digits and shapes moving over clutter.

A sequence is a pure function of ``(seed, split, index)`` (numpy ``SeedSequence``
streams), so it does not depend on how many sequences are generated. Each has a
textured, cluttered background seen through a slowly panning camera; a target (one
of scikit-learn's real 8x8 handwritten digits, upscaled, or a filled shape) moving
with random acceleration, bouncing off the frame edges and changing scale; 1–3
distractors (half of them the same kind of object in a similar colour); and, in half
of the sequences, an occluder that crosses the target once (hidden for a few
frames). The box is the target's pixel extent, ``(x, y, w, h)``, always inside the
frame. Train and held-out splits use disjoint digit images.
"""
from __future__ import annotations

import numpy as np

from .sequences import Sequence

SHAPES = ("disc", "square", "triangle", "diamond", "ring", "cross")
SPLITS = {"train": 0, "val": 1}


def _shape_mask(kind: str, n: int = 32) -> np.ndarray:
    """An ``n x n`` alpha mask in [0, 1], filling the square edge to edge, ~1 px soft border."""
    y, x = (np.mgrid[0:n, 0:n] + 0.5) / n * 2 - 1
    ax, ay = np.abs(x), np.abs(y)
    d = {
        "disc": 1 - np.hypot(x, y),
        "square": 1 - np.maximum(ax, ay),
        "triangle": np.minimum(1 - y, (y + 1) / 2 - ax),
        "diamond": 1 - (ax + ay),
        "ring": 0.3 - np.abs(np.hypot(x, y) - 0.7),
        "cross": np.minimum(np.maximum(0.3 - ax, 0.3 - ay), 1 - np.maximum(ax, ay)),
    }[kind]
    return np.clip(d * n / 2 + 0.5, 0, 1).astype(np.float32)


def _digit_masks(split: str) -> list[np.ndarray]:
    """scikit-learn's digits cropped to their ink, as alpha in [0, 1]; every fifth image
    is held out for the ``val`` split."""
    from sklearn.datasets import load_digits

    images = load_digits().images.astype(np.float32) / 16.0
    keep = [i for i in range(len(images)) if (i % 5 == 0) == (split == "val")]
    out = []
    for img in images[keep]:
        rows, cols = np.nonzero(img.max(1) > 0.25)[0], np.nonzero(img.max(0) > 0.25)[0]
        out.append(np.ascontiguousarray(img[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]))
    return out


def _resize(src: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear resize of a 2-D array to ``h x w`` (pixel-centre aligned)."""
    def axis(n_in, n_out):
        c = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        i0 = np.floor(c).astype(int)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, (c - i0).astype(np.float32)
    y0, y1, fy = axis(src.shape[0], h)
    x0, x1, fx = axis(src.shape[1], w)
    top = src[y0][:, x0] * (1 - fx) + src[y0][:, x1] * fx
    bot = src[y1][:, x0] * (1 - fx) + src[y1][:, x1] * fx
    return top * (1 - fy[:, None]) + bot * fy[:, None]


def _paste(frame: np.ndarray, mask: np.ndarray, color: np.ndarray, x: int, y: int) -> None:
    """Alpha-blend ``color`` through ``mask`` at top-left ``(x, y)``, clipped to the frame."""
    h, w = mask.shape
    H, W = frame.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, W), min(y + h, H)
    if x0 >= x1 or y0 >= y1:
        return
    a = mask[y0 - y:y1 - y, x0 - x:x1 - x, None]
    region = frame[y0:y1, x0:x1]
    region *= 1 - a
    region += a * color


def _color(rng: np.random.Generator, near: np.ndarray | None = None) -> np.ndarray:
    if near is not None:
        return np.clip(near + rng.normal(0, 0.08, 3), 0, 1).astype(np.float32)
    c = rng.uniform(0, 1, 3)
    c[rng.integers(3)] = rng.uniform(0.8, 1.0)       # saturated enough to stand out
    c[rng.integers(3)] = rng.uniform(0.0, 0.25)
    return c.astype(np.float32)


class _Object:
    """Appearance (alpha source, colour, aspect) and a per-frame trajectory."""

    def __init__(self, rng, source, color, size, frames, frame_size, speed):
        self.source, self.color = source, color
        # Shapes are square masks: stretch them to h/w in [0.5, 2]; digits keep their own.
        stretch = 2 ** rng.uniform(-1, 1) if source.shape[0] == source.shape[1] else 2 ** rng.uniform(-0.2, 0.2)
        aspect = source.shape[0] / source.shape[1] * stretch
        t = np.arange(frames)
        amp, period, phase = rng.uniform(0.08, 0.25), rng.uniform(40, 90), rng.uniform(0, 2 * np.pi)
        s = size * np.exp(amp * np.sin(2 * np.pi * t / period + phase))
        self.w = np.maximum(np.round(s / np.sqrt(aspect)), 4).astype(int)
        self.h = np.maximum(np.round(s * np.sqrt(aspect)), 4).astype(int)
        self.centers = _walk(rng, frames, frame_size, self.w, self.h, speed)

    def topleft(self, t: int) -> tuple[int, int]:
        c = self.centers[t]
        return int(round(c[0] - self.w[t] / 2)), int(round(c[1] - self.h[t] / 2))

    def draw(self, frame, t: int) -> None:
        x, y = self.topleft(t)
        _paste(frame, _resize(self.source, self.h[t], self.w[t]), self.color, x, y)


def _walk(rng, frames, frame_size, w, h, speed):
    """Centres with random acceleration, speed capped at ``speed[1]``, reflected at
    the frame edges so the object stays inside."""
    lo_x, lo_y = w.max() / 2 + 1, h.max() / 2 + 1
    p = np.array([rng.uniform(lo_x, frame_size - lo_x), rng.uniform(lo_y, frame_size - lo_y)])
    angle = rng.uniform(0, 2 * np.pi)
    v = rng.uniform(*speed) * np.array([np.cos(angle), np.sin(angle)])
    out = np.empty((frames, 2))
    lo, hi = np.array([lo_x, lo_y]), frame_size - np.array([lo_x, lo_y])
    for t in range(frames):
        out[t] = p
        v = v + rng.normal(0, 0.25, 2)
        norm = np.linalg.norm(v)
        if norm > speed[1]:
            v *= speed[1] / norm
        p = p + v
        for k in range(2):
            if p[k] < lo[k] or p[k] > hi[k]:
                v[k] = -v[k]
                p[k] = np.clip(p[k], lo[k], hi[k])
    return out


def _background(rng, size: int, margin: int, digits) -> np.ndarray:
    """Low-frequency colour field + two gratings + 20–40 semi-transparent clutter blobs."""
    n = size + 2 * margin
    base = np.stack([_resize(rng.uniform(0.15, 0.85, (5, 5)).astype(np.float32), n, n) for _ in range(3)], -1)
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    for _ in range(2):
        f, th = rng.uniform(1 / 12, 1 / 4), rng.uniform(0, np.pi)
        grating = np.sin(2 * np.pi * f * (xx * np.cos(th) + yy * np.sin(th)) + rng.uniform(0, 2 * np.pi))
        base += (0.06 * grating)[..., None] * rng.uniform(0.3, 1.0, 3).astype(np.float32)
    for _ in range(rng.integers(20, 41)):
        src = digits[rng.integers(len(digits))] if rng.random() < 0.4 else _shape_mask(SHAPES[rng.integers(6)], 16)
        s = rng.uniform(4, 14)
        mask = _resize(src, max(int(s * rng.uniform(0.6, 1.6)), 2), max(int(s), 2)) * rng.uniform(0.35, 0.8)
        _paste(base, mask, _color(rng), int(rng.integers(-4, n)), int(rng.integers(-4, n)))
    return np.clip(base, 0, 1)


def make_sequence(seed: int, split: str, index: int, *, frames: int = 48, frame_size: int = 128,
                  object_size: tuple[float, float] = (14, 26), speed: tuple[float, float] = (0.8, 2.5),
                  digits=None) -> Sequence:
    """Sequence ``index`` of ``split`` (``train`` or ``val``) for ``seed``."""
    if split not in SPLITS:
        raise ValueError(f"split={split!r}; allowed: {', '.join(SPLITS)}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, SPLITS[split], index]))
    digits = digits if digits is not None else _digit_masks(split)
    margin = 16
    bg = _background(rng, frame_size, margin, digits)

    def appearance(like=None):
        kind = like if like is not None else ("digit" if rng.random() < 0.5 else SHAPES[rng.integers(6)])
        if kind == "digit":
            return kind, digits[rng.integers(len(digits))]
        return kind, _shape_mask(kind)

    kind, src = appearance()
    color = _color(rng)
    target = _Object(rng, src, color, rng.uniform(*object_size), frames, frame_size, speed)
    distractors = []
    for _ in range(rng.integers(1, 4)):
        similar = rng.random() < 0.5
        _, dsrc = appearance(kind if similar else None)
        distractors.append(_Object(rng, dsrc, _color(rng, color if similar else None),
                                   rng.uniform(*object_size), frames, frame_size, speed))
    occluder = None
    if rng.random() < 0.5:   # one crossing: passes over the target's centre at frame t_o
        t_o = int(rng.integers(frames // 4, max(frames * 3 // 4, frames // 4 + 1)))
        angle, v = rng.uniform(0, 2 * np.pi), rng.uniform(3, 5)
        vel = v * np.array([np.cos(angle), np.sin(angle)])
        s = float(target.w[t_o] + target.h[t_o]) / 2 * rng.uniform(0.9, 1.3)
        occluder = (_resize(_shape_mask("square"), int(s), int(s)), _color(rng),
                    target.centers[t_o] + vel * (np.arange(frames) - t_o)[:, None])
    pan = np.cumsum(rng.normal(0, 0.4, (frames, 2)), 0) + rng.uniform(0, 2 * margin, 2)
    pan = np.clip(pan, 0, 2 * margin).round().astype(int)

    video = np.empty((frames, frame_size, frame_size, 3), np.uint8)
    boxes = np.empty((frames, 4), np.float32)
    for t in range(frames):
        frame = bg[pan[t, 1]:pan[t, 1] + frame_size, pan[t, 0]:pan[t, 0] + frame_size].copy()
        for d in distractors:
            d.draw(frame, t)
        target.draw(frame, t)
        if occluder is not None:
            mask, ocolor, centers = occluder
            _paste(frame, mask, ocolor, int(round(centers[t, 0] - mask.shape[1] / 2)),
                   int(round(centers[t, 1] - mask.shape[0] / 2)))
        video[t] = (frame * 255 + 0.5).astype(np.uint8)
        x, y = target.topleft(t)
        boxes[t] = (x, y, target.w[t], target.h[t])
    return Sequence(f"{split}_{index:04d}", boxes, frames=video)


def make_sequences(seed: int, split: str, count: int, **kwargs) -> list[Sequence]:
    digits = _digit_masks(split)
    return [make_sequence(seed, split, i, digits=digits, **kwargs) for i in range(count)]
