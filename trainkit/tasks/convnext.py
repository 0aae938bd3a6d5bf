"""ConvNeXt (Liu et al., 2022) with OpenMMLab's parameter names, and a small classifier.

Parameter names, in ``named_parameters()`` order (what layer-decay rules read)::

    downsample_layers.0.{0: Conv2d stem (patch p, stride p), 1: LayerNorm2d}
    downsample_layers.{i>=1}.{0: LayerNorm2d, 1: Conv2d (2x2, stride 2)}
    stages.{s}.{b}.{gamma, depthwise_conv, norm, pointwise_conv1, pointwise_conv2}
    norm{i} for i in out_indices

Block: ``x + gamma * pw2(gelu(pw1(layernorm(dwconv7x7(x)))))``, the pointwise layers
being ``nn.Linear`` on channels-last features.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..core.checks import number, positive_int


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    def __init__(self, channels: int, layer_scale_init_value: float = 1e-6):
        super().__init__()
        self.depthwise_conv = nn.Conv2d(channels, channels, 7, padding=3, groups=channels)
        self.norm = nn.LayerNorm(channels, eps=1e-6)
        self.pointwise_conv1 = nn.Linear(channels, 4 * channels)
        self.pointwise_conv2 = nn.Linear(4 * channels, channels)
        gamma = nn.Parameter(torch.full((channels,), float(layer_scale_init_value))) \
            if layer_scale_init_value > 0 else None
        self.register_parameter("gamma", gamma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(self.depthwise_conv(x).permute(0, 2, 3, 1))
        y = self.pointwise_conv2(F.gelu(self.pointwise_conv1(y)))
        if self.gamma is not None:
            y = y * self.gamma
        return x + y.permute(0, 3, 1, 2)


class ConvNeXt(nn.Module):
    """Four stages of ``depths[s]`` blocks at ``channels[s]`` channels.

    ``forward(x)`` returns, for each ``i`` in ``out_indices``, ``norm{i}`` of the
    globally average-pooled stage-``i`` output (shape ``[N, channels[i]]``).
    ``frozen_stages=k`` sets ``requires_grad=False`` on downsample_layers[:k] and stages[:k].
    """

    def __init__(self, in_channels: int = 3, depths: Sequence[int] = (3, 3, 9, 3),
                 channels: Sequence[int] = (96, 192, 384, 768), stem_patch_size: int = 4,
                 layer_scale_init_value: float = 1e-6, out_indices: Sequence[int] = (3,),
                 frozen_stages: int = 0):
        super().__init__()
        depths, channels, out_indices = list(depths), list(channels), sorted(out_indices)
        if len(depths) != 4 or len(channels) != 4:
            raise ValueError(f"ConvNeXt has 4 stages: depths={depths} and channels={channels} need 4 entries each")
        if any(i not in range(4) for i in out_indices):
            raise ValueError(f"ConvNeXt out_indices={out_indices}: each must be in 0..3")
        if not 0 <= frozen_stages <= 4:
            raise ValueError(f"ConvNeXt frozen_stages={frozen_stages}: must be in 0..4")
        for i, (d, c) in enumerate(zip(depths, channels, strict=True)):
            positive_int(f"depths[{i}]", d)
            positive_int(f"channels[{i}]", c)
        positive_int("in_channels", in_channels)
        positive_int("stem_patch_size", stem_patch_size)
        number("layer_scale_init_value", layer_scale_init_value, low=0.0)   # 0: no layer scale (mmcls)
        self.out_indices = out_indices
        self.downsample_layers = nn.ModuleList([nn.Sequential(
            nn.Conv2d(in_channels, channels[0], stem_patch_size, stride=stem_patch_size),
            LayerNorm2d(channels[0], eps=1e-6))])
        for i in range(1, 4):
            self.downsample_layers.append(nn.Sequential(
                LayerNorm2d(channels[i - 1], eps=1e-6), nn.Conv2d(channels[i - 1], channels[i], 2, stride=2)))
        self.stages = nn.ModuleList(
            nn.Sequential(*(ConvNeXtBlock(c, layer_scale_init_value) for _ in range(d)))
            for d, c in zip(depths, channels, strict=True))
        for i in out_indices:
            self.add_module(f"norm{i}", nn.LayerNorm(channels[i], eps=1e-6))
        for module in (*self.downsample_layers[:frozen_stages], *self.stages[:frozen_stages]):
            module.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outs = []
        for i, (down, stage) in enumerate(zip(self.downsample_layers, self.stages, strict=True)):
            x = stage(down(x))
            if i in self.out_indices:
                outs.append(getattr(self, f"norm{i}")(x.mean((2, 3))))
        return tuple(outs)


class ConvNeXtClassifier(nn.Module):
    """``backbone`` -> optional ``neck`` -> ``head`` on the last backbone output.

    ``forward((x, y))`` → ``{"loss": cross-entropy, "acc": accuracy}``; with
    ``input_size`` the images are first resized (bilinear) to ``input_size`` squared.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, neck: nn.Module | None = None,
                 input_size: int | None = None):
        super().__init__()
        if input_size is not None:
            positive_int("model.input_size", input_size)
        self.backbone, self.neck, self.head = backbone, neck, head
        self.input_size = input_size

    def forward(self, batch):
        x, y = batch
        if self.input_size is not None:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        feats = self.backbone(x)[-1]
        if self.neck is not None:
            feats = self.neck(feats)
        logits = self.head(feats)
        loss = F.cross_entropy(logits, y)
        acc = (logits.argmax(1) == y).float().mean()
        return {"loss": loss, "acc": acc.detach()}
