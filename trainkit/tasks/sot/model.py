"""A small SiamRPN: shared backbone, depthwise cross-correlation RPN head, anchor targets, losses.

The template crop ``z`` and the search crop ``x`` go through the same ``backbone``;
for each of the classification and regression branches a :class:`CorrelationHead`
adjusts both feature maps, correlates them channel by channel (the template
features are the kernel) and maps the result to ``2k`` scores or ``4k`` box deltas
per position, ``k = len(anchor_ratios)``. Training targets follow mmtrack's
SiameseRPNHead: IoU assignment (positive ``>= pos_iou``, negative ``< neg_iou``),
``num_samples`` anchors sampled with at most ``pos_fraction`` positives,
cross-entropy weighted ``1 / (2 n_pos)`` and ``1 / (2 n_neg)``, box loss weighted
``1 / n_pos``, both averaged over the batch.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...core.checks import integer, number, positive_int
from . import boxes as B


def conv_bn(cin: int, cout: int, stride: int = 1, padding: int = 1, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Backbone(nn.Module):
    """Five 3x3 conv-BN-ReLU layers in three stages; total stride 4."""

    stride = 4

    def __init__(self, width: int):
        super().__init__()
        half = width // 2
        self.layer1 = nn.Sequential(conv_bn(3, half, 2), conv_bn(half, half))
        self.layer2 = nn.Sequential(conv_bn(half, width, 2), conv_bn(width, width))
        self.layer3 = conv_bn(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer3(self.layer2(self.layer1(x)))


def xcorr_depthwise(search: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """``out[b, c] = search[b, c] ⋆ kernel[b, c]`` (valid cross-correlation per channel)."""
    b, c, h, w = search.shape
    out = F.conv2d(search.reshape(1, b * c, h, w), kernel.reshape(b * c, 1, *kernel.shape[2:]), groups=b * c)
    return out.reshape(b, c, *out.shape[2:])


class CorrelationHead(nn.Module):
    """Unpadded 3x3 adjust convs for kernel and search, depthwise correlation, then
    1x1 conv-BN-ReLU and a 1x1 conv to ``out_channels``."""

    def __init__(self, channels: int, out_channels: int):
        super().__init__()
        self.kernel = conv_bn(channels, channels, padding=0)
        self.search = conv_bn(channels, channels, padding=0)
        self.head = nn.Sequential(conv_bn(channels, channels, padding=0, kernel=1),
                                  nn.Conv2d(channels, out_channels, 1))

    def forward(self, kernel: torch.Tensor, search: torch.Tensor) -> torch.Tensor:
        return self.head(xcorr_depthwise(self.search(search), kernel))


class SiamRPN(nn.Module):
    """``forward(batch)`` → ``{"loss", "loss_cls", "loss_box", "num_pos"}`` for a batch of
    ``{"template": [B,3,T,T], "search": [B,3,S,S], "box": [B,4] xyxy in search-crop
    pixels, "positive": [B] bool}``, images in [0, 1].

    ``template_size``, ``search_size`` and ``context_amount`` define the crops (data
    and tracker read them from here): a box ``(w, h)`` is cropped as a square of side
    ``sqrt((w + p)(h + p))``, ``p = context_amount * (w + h)``, resized to
    ``template_size``; the search crop covers ``search_size / template_size`` times
    that side. Backbone BatchNorm layers whose parameters are frozen stay in eval mode
    under ``train()`` (mmdet's ``norm_eval`` for frozen stages).
    """

    def __init__(self, template_size: int = 32, search_size: int = 64, context_amount: float = 0.5,
                 width: int = 48, anchor_ratios: Sequence[float] = (0.33, 0.5, 1.0, 2.0, 3.0),
                 anchor_scale: float = 4.0, pos_iou: float = 0.6, neg_iou: float = 0.3,
                 num_samples: int = 64, pos_fraction: float = 0.25, num_neg_pair: int = 16,
                 box_weight: float = 1.2, smooth_l1_beta: float = 1.0 / 9):
        super().__init__()
        stride = Backbone.stride
        integer("model.width", width, low=2)   # the first stage has width // 2 channels
        number("model.context_amount", context_amount, low=0.0)
        number("model.anchor_scale", anchor_scale, low=0.0, low_open=True)
        positive_int("model.num_samples", num_samples)
        number("model.pos_fraction", pos_fraction, low=0.0, high=1.0, low_open=True)
        integer("model.num_neg_pair", num_neg_pair, low=0)
        number("model.box_weight", box_weight, low=0.0)
        number("model.smooth_l1_beta", smooth_l1_beta, low=0.0, low_open=True)
        for key, size in (("model.template_size", template_size), ("model.search_size", search_size)):
            if size < 4 * stride or size % stride:
                raise ValueError(f"{key}={size} must be a multiple of {stride} and >= {4 * stride}")
        if search_size <= template_size:
            raise ValueError(f"model.search_size={search_size} must exceed model.template_size={template_size}")
        if not 0 <= neg_iou <= pos_iou <= 1:
            raise ValueError(f"need 0 <= model.neg_iou ({neg_iou}) <= model.pos_iou ({pos_iou}) <= 1")
        if not anchor_ratios or min(anchor_ratios) <= 0:
            raise ValueError(f"model.anchor_ratios={list(anchor_ratios)} must be a non-empty list of "
                             "positive h/w ratios")
        self.template_size, self.search_size, self.context_amount = template_size, search_size, context_amount
        self.num_ratios = len(anchor_ratios)
        self.pos_iou, self.neg_iou = pos_iou, neg_iou
        self.num_pos = int(num_samples * pos_fraction)
        self.num_samples, self.max_neg = num_samples, int(num_samples * (1 - pos_fraction))
        self.num_neg_pair, self.box_weight, self.beta = num_neg_pair, box_weight, smooth_l1_beta

        self.backbone = Backbone(width)
        self.cls_head = CorrelationHead(width, 2 * self.num_ratios)
        self.reg_head = CorrelationHead(width, 4 * self.num_ratios)
        # Adjust convs remove 2 cells from each feature map; correlation leaves the difference + 1.
        self.score_size = (search_size - template_size) // stride + 1
        anchors = B.make_anchors(self.score_size, stride, anchor_ratios, anchor_scale, search_size)
        self.register_buffer("anchors", anchors, persistent=False)
        self.register_buffer("anchors_xyxy", B.cxcywh_to_xyxy(anchors), persistent=False)
        self.register_buffer("window", B.hanning_window(self.score_size, self.num_ratios), persistent=False)
        cells = torch.arange(self.score_size ** 2)
        self.register_buffer("cell_xy", torch.stack([cells % self.score_size, cells // self.score_size], -1)
                             .repeat(self.num_ratios, 1), persistent=False)

    # ------------------------------------------------------------------ network
    @staticmethod
    def _normalize(img: torch.Tensor) -> torch.Tensor:
        return (img - 0.5) * 4.0

    def template_kernels(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The two branches' correlation kernels of template crops ``z``."""
        f = self.backbone(self._normalize(z))
        return self.cls_head.kernel(f), self.reg_head.kernel(f)

    def heads(self, kernels: tuple[torch.Tensor, torch.Tensor], x: torch.Tensor):
        """Per-anchor logits ``[B, A, 2]`` and deltas ``[B, A, 4]`` (anchor order of
        :func:`~trainkit.tasks.sot.boxes.make_anchors`)."""
        f = self.backbone(self._normalize(x))
        cls, reg = self.cls_head(kernels[0], f), self.reg_head(kernels[1], f)
        b, k = x.shape[0], self.num_ratios
        logits = cls.reshape(b, 2, k, -1).permute(0, 2, 3, 1).reshape(b, -1, 2)
        deltas = reg.reshape(b, 4, k, -1).permute(0, 2, 3, 1).reshape(b, -1, 4)
        return logits, deltas

    def predict(self, kernels, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Foreground probability ``[B, A]`` and decoded ``cxcywh`` boxes ``[B, A, 4]``
        in search-crop pixels."""
        logits, deltas = self.heads(kernels, x)
        return logits.softmax(-1)[..., 1], B.decode(self.anchors, deltas)

    def train(self, mode: bool = True):
        super().train(mode)
        if mode:
            for m in self.backbone.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm) and not any(p.requires_grad for p in m.parameters()):
                    m.eval()
        return self

    # ------------------------------------------------------------------ training
    @torch.no_grad()
    def targets(self, gt_xyxy: torch.Tensor, positive: torch.Tensor):
        """Labels ``[B, A]`` (1 foreground, 0 background), their loss weights, box-delta
        targets ``[B, A, 4]`` and box weights ``[B, A]``.

        Positive pairs: IoU >= ``pos_iou`` → foreground, < ``neg_iou`` → background,
        then at most ``num_samples * pos_fraction`` foreground and
        ``min(num_samples - n_fg, num_samples * (1 - pos_fraction))`` background
        anchors are drawn at random. Negative pairs (template of another object):
        ``num_neg_pair`` background anchors drawn from the 7x7 cells around the
        search target.
        """
        positive = positive.bool()
        ov = B.iou(self.anchors_xyxy[None], gt_xyxy[:, None])            # [B, A]
        rand = torch.rand(ov.shape, device=ov.device)
        fg = _sample(ov >= self.pos_iou, positive.long() * self.num_pos, rand)
        n_fg = fg.sum(1)
        n_bg = torch.where(positive, (self.num_samples - n_fg).clamp(max=self.max_neg),
                           torch.full_like(n_fg, self.num_neg_pair))
        centre = B.xyxy_to_cxcywh(gt_xyxy)[:, :2]
        cell = torch.round((centre - self.search_size / 2) / Backbone.stride) + (self.score_size - 1) / 2
        near = ((self.cell_xy[None] - cell[:, None]).abs() <= 3).all(-1)    # [B, A]
        bg = _sample(torch.where(positive[:, None], ov < self.neg_iou, near), n_bg, rand)
        n_fg, n_bg = fg.sum(1, keepdim=True), bg.sum(1, keepdim=True)
        weight = fg / (2 * n_fg).clamp(min=1) + bg / (2 * n_bg).clamp(min=1)
        box_weight = fg / n_fg.clamp(min=1)
        gt = B.xyxy_to_cxcywh(gt_xyxy)[:, None].expand(-1, self.anchors.shape[0], -1)
        deltas = B.encode(self.anchors[None].expand_as(gt), gt)
        return fg.long(), weight, deltas, box_weight

    def forward(self, batch) -> dict[str, torch.Tensor]:
        logits, deltas = self.heads(self.template_kernels(batch["template"]), batch["search"])
        labels, weight, target, box_weight = self.targets(batch["box"], batch["positive"])
        n = logits.shape[0]
        ce = F.cross_entropy(logits.reshape(-1, 2), labels.reshape(-1), reduction="none").reshape(labels.shape)
        loss_cls = (ce * weight).sum() / n
        l1 = F.smooth_l1_loss(deltas, target, reduction="none", beta=self.beta).sum(-1)
        loss_box = self.box_weight * (l1 * box_weight).sum() / n
        return {"loss": loss_cls + loss_box, "loss_cls": loss_cls.detach(), "loss_box": loss_box.detach(),
                "num_pos": labels.sum(1).float().mean()}


def _sample(mask: torch.Tensor, quota: torch.Tensor, rand: torch.Tensor) -> torch.Tensor:
    """At most ``quota[b]`` entries of ``mask[b]``, chosen uniformly at random (the
    ``quota`` members of the mask with the smallest ``rand``)."""
    key = torch.where(mask, rand, torch.full_like(rand, 2.0))
    rank = key.argsort(1).argsort(1)
    return mask & (rank < quota[:, None])
