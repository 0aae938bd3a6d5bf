"""One-pass SiamRPN tracking of many sequences at once.

Per frame, for every sequence (state: centre ``c`` and size ``(w, h)``): crop the
search region of side ``s_x = s_z * S / T`` around ``c`` (``s_z`` of
:func:`~trainkit.tasks.sot.data.context_side`, scale ``k = T / s_z``), score every
anchor and decode its box ``(bx, by, bw, bh)`` (crop pixels), then, as SiamRPN:

    size change  sc = max(q, 1/q),  q = sz(bw, bh) / sz(k w, k h),  sz(a, b) = sqrt((a + m)(b + m)), m = (a + b)/2
    ratio change rc = max(q, 1/q),  q = (w / h) / (bw / bh)
    penalty      = exp(-(rc * sc - 1) * penalty_k)
    pscore       = penalty * score * (1 - window_influence) + hann * window_influence
    best anchor  = argmax pscore;   lr = penalty * score * size_lr at the best anchor
    c  <- c + ((bx, by) - S / 2) / k;   (w, h) <- (1 - lr) (w, h) + lr (bw, bh) / k

then clip ``c`` to the frame and ``w, h`` to ``[min_size, frame side]``.
"""
from __future__ import annotations

import numpy as np
import torch

from .data import context_side, crop
from .sequences import Sequence


class SiamRPNTracker:
    """Tracks with a :class:`~trainkit.tasks.sot.model.SiamRPN` (call under ``no_grad``,
    model in eval mode); mmtrack's test defaults."""

    def __init__(self, model, penalty_k: float = 0.05, window_influence: float = 0.42,
                 size_lr: float = 0.38, min_size: float = 4.0, batch_sequences: int = 16):
        self.model, self.penalty_k, self.window_influence = model, penalty_k, window_influence
        self.size_lr, self.min_size, self.batch_sequences = size_lr, min_size, batch_sequences

    def track(self, sequences: list[Sequence]) -> list[np.ndarray]:
        """Predicted ``[T, 4]`` ``xywh`` boxes per sequence (frame 0 = ground truth)."""
        out = []
        for i in range(0, len(sequences), self.batch_sequences):
            out.extend(self._track_batch(sequences[i:i + self.batch_sequences]))
        return out

    def _crops(self, seqs, t, centers, sides, size):
        dev = self.model.anchors.device
        crops = [crop(s.frame(t), *centers[j].tolist(), sides[j].item(), sides[j].item(), size)
                 for j, s in enumerate(seqs)]
        return torch.from_numpy(np.stack(crops)).to(dev)

    def _track_batch(self, seqs: list[Sequence]) -> list[np.ndarray]:
        m = self.model
        T, S, ctx = m.template_size, m.search_size, m.context_amount
        init = torch.tensor(np.stack([s.boxes[0] for s in seqs]), dtype=torch.float64)
        center, size = init[:, :2] + init[:, 2:] / 2, init[:, 2:].clone()
        frame_wh = torch.tensor([s.frame(0).shape[1::-1] for s in seqs], dtype=torch.float64)
        side = torch.from_numpy(context_side(size[:, 0].numpy(), size[:, 1].numpy(), ctx))
        kernels = m.template_kernels(self._crops(seqs, 0, center, side, T))
        window = m.window.double().cpu()
        preds = [np.zeros((len(s), 4)) for s in seqs]
        for j, s in enumerate(seqs):
            preds[j][0] = s.boxes[0]
        for t in range(1, max(len(s) for s in seqs)):
            idx = [j for j, s in enumerate(seqs) if len(s) > t]
            ii = torch.tensor(idx)
            c, wh = center[ii], size[ii]
            s_z = torch.from_numpy(context_side(wh[:, 0].numpy(), wh[:, 1].numpy(), ctx))
            k = T / s_z
            x = self._crops([seqs[j] for j in idx], t, c, s_z * S / T, S)
            scores, boxes = m.predict(tuple(kk[ii] for kk in kernels), x)
            scores, boxes = scores.double().cpu(), boxes.double().cpu()
            bw, bh = boxes[..., 2], boxes[..., 3]
            ref = _context_size(wh[:, 0:1] * k[:, None], wh[:, 1:2] * k[:, None])
            sc = _change(_context_size(bw, bh) / ref)
            rc = _change((wh[:, 0:1] / wh[:, 1:2]) / (bw / bh))
            penalty = torch.exp(-(rc * sc - 1) * self.penalty_k)
            pscore = penalty * scores * (1 - self.window_influence) + window * self.window_influence
            rows, best = torch.arange(len(idx)), pscore.argmax(1)
            lr = (penalty[rows, best] * scores[rows, best] * self.size_lr)[:, None]
            b = boxes[rows, best]
            c = c + (b[:, :2] - S / 2) / k[:, None]
            wh = (1 - lr) * wh + lr * b[:, 2:] / k[:, None]
            lim = frame_wh[ii]
            c = torch.minimum(c.clamp(min=0), lim)
            wh = torch.minimum(wh.clamp(min=self.min_size), lim)
            center[ii], size[ii] = c, wh
            for n, j in enumerate(idx):
                preds[j][t] = torch.cat([c[n] - wh[n] / 2, wh[n]]).numpy()
        return preds


def _change(r: torch.Tensor) -> torch.Tensor:
    return torch.maximum(r, 1 / r)


def _context_size(w: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    pad = (w + h) / 2
    return torch.sqrt((w + pad) * (h + pad))
