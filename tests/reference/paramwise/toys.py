"""Toy models with real OpenMMLab parameter names, for paramwise_cfg tests.

Our own code (depends on torch only); safe to copy into trainkit's tests.

resnet_toy   -- mmdet-style detector: ResNet(-ish) backbone with a DCN-like
                conv in layer2, FPN-ish neck, bbox head.
convnext_toy -- mmpretrain-style ConvNeXt/Swin mix: downsample layers,
                depthwise conv, LayerNorm, Linear pointwise convs, a 1-D
                ``gamma`` layer-scale Parameter, pos-embed/cls-token
                Parameters set directly on the backbone, a root-level 0-dim
                Parameter.

Parameter listing (named_parameters order) is documented in each builder.
"""
import torch
import torch.nn as nn


class ToyModulatedDeformConv2dPack(nn.Module):
    """Stand-in for mmcv.ops.ModulatedDeformConv2dPack (no CUDA op).

    Same parameter layout as the real one: ``weight``, ``bias`` registered on
    the module itself, then child ``conv_offset`` (nn.Conv2d, with bias)
    producing 3*k*k offset/mask channels. ``forward`` is not implemented.
    The references only detect DCN by ``isinstance`` against the real
    mmcv.ops classes, so this module is seen as a plain nn.Module unless the
    reference run patches ``mmcv.ops`` (see make_tables_*.py).
    """

    def __init__(self, in_channels, out_channels, kernel_size=3, bias=True):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.weight = nn.Parameter(
            torch.zeros(out_channels, in_channels, kernel_size, kernel_size))
        if bias:
            self.bias = nn.Parameter(torch.zeros(out_channels))
        else:
            self.register_parameter('bias', None)
        self.conv_offset = nn.Conv2d(
            in_channels, 3 * kernel_size * kernel_size, kernel_size,
            padding=kernel_size // 2, bias=True)


class ToyDeformConv2d(nn.Module):
    """Placeholder for mmcv.ops.DeformConv2d in patched runs (unused)."""


class LayerNorm2d(nn.LayerNorm):
    """mmpretrain-style LayerNorm2d: a subclass of nn.LayerNorm."""


class _Bottleneck(nn.Module):

    def __init__(self, c_in, c, dcn=False):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        if dcn:
            self.conv2 = ToyModulatedDeformConv2dPack(c, c, 3, bias=True)
        else:
            # ResNeXt-style grouped conv: groups=2 != in_channels, NOT dwconv
            self.conv2 = nn.Conv2d(c, c, 3, padding=1, groups=2, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        if not dcn:
            # depthwise conv (groups == in_channels) WITH bias
            self.dw_conv = nn.Conv2d(c, c, 3, padding=1, groups=c, bias=True)
        self.downsample = nn.Sequential(
            nn.Conv2d(c_in, c, 1, bias=False), nn.BatchNorm2d(c))


class _ConvModule(nn.Module):
    """mmcv ConvModule naming: ``conv`` + ``gn`` (norm_cfg=dict(type='GN'))."""

    def __init__(self, c_in, c):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c, 1, bias=True)
        self.gn = nn.GroupNorm(2, c)


class ResNetToy(nn.Module):

    def __init__(self, freeze_stem=True, tie_fc_weight=False,
                 freeze_tied=False, freeze_all=False):
        super().__init__()
        torch.manual_seed(0)
        self.backbone = nn.Module()
        self.backbone.conv1 = nn.Conv2d(3, 4, 3, bias=False)
        self.backbone.bn1 = nn.BatchNorm2d(4)
        self.backbone.layer1 = nn.Sequential(_Bottleneck(4, 4))
        self.backbone.layer2 = nn.Sequential(_Bottleneck(4, 4, dcn=True))
        self.neck = nn.Module()
        self.neck.lateral_convs = nn.ModuleList([_ConvModule(4, 4)])
        self.bbox_head = nn.Module()
        self.bbox_head.ln = nn.LayerNorm(4)
        self.bbox_head.fc_cls = nn.Linear(4, 3)
        self.bbox_head.fc_reg = nn.Linear(4, 3)
        if tie_fc_weight:
            # the same Parameter object registered under two module names
            self.bbox_head.fc_reg.weight = self.bbox_head.fc_cls.weight
        if freeze_stem:
            self.backbone.conv1.weight.requires_grad_(False)
        if freeze_tied:
            self.bbox_head.fc_cls.weight.requires_grad_(False)
        if freeze_all:
            self.requires_grad_(False)


def build_resnet_toy(**kwargs):
    """named_parameters() (dedup) order; (F)=frozen by default:

    backbone.conv1.weight (F)            [4,3,3,3]
    backbone.bn1.weight / .bias          [4]        BatchNorm2d
    backbone.layer1.0.conv1.weight       [4,4,1,1]  no bias
    backbone.layer1.0.bn1.weight/.bias   [4]
    backbone.layer1.0.conv2.weight       [4,2,3,3]  groups=2 (not dw)
    backbone.layer1.0.bn2.weight/.bias   [4]
    backbone.layer1.0.dw_conv.weight     [4,1,3,3]  groups=in_channels
    backbone.layer1.0.dw_conv.bias       [4]
    backbone.layer1.0.downsample.0.weight [4,4,1,1]
    backbone.layer1.0.downsample.1.weight/.bias [4]
    backbone.layer2.0.conv1.weight, bn1.*
    backbone.layer2.0.conv2.weight       [4,4,3,3]  DCN-like module own param
    backbone.layer2.0.conv2.bias         [4]        named 'bias' on DCN module
    backbone.layer2.0.conv2.conv_offset.weight [27,4,3,3]
    backbone.layer2.0.conv2.conv_offset.bias   [27]
    backbone.layer2.0.bn2.*, downsample.0.weight, downsample.1.*
    neck.lateral_convs.0.conv.weight/.bias
    neck.lateral_convs.0.gn.weight/.bias GroupNorm
    bbox_head.ln.weight/.bias            LayerNorm
    bbox_head.fc_cls.weight/.bias        Linear
    bbox_head.fc_reg.weight/.bias        (weight tied to fc_cls.weight when
                                          tie_fc_weight=True: then only
                                          fc_reg.bias is listed)
    """
    return ResNetToy(**kwargs)


class _ConvNeXtBlock(nn.Module):

    def __init__(self, c):
        super().__init__()
        self.depthwise_conv = nn.Conv2d(c, c, 7, padding=3, groups=c)
        self.norm = nn.LayerNorm(c)
        self.pointwise_conv1 = nn.Linear(c, 2 * c)
        self.pointwise_conv2 = nn.Linear(2 * c, c)
        # layer scale: 1-D Parameter set directly on the block module
        self.gamma = nn.Parameter(torch.ones(c))


class ConvNeXtToy(nn.Module):

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        c = 4
        self.backbone = nn.Module()
        # Parameters directly on the backbone module (prefix 'backbone')
        self.backbone.cls_token = nn.Parameter(torch.zeros(1, 1, c))
        self.backbone.pos_embed = nn.Parameter(torch.zeros(1, 5, c))
        self.backbone.absolute_pos_embed = nn.Parameter(torch.zeros(1, 4, c))
        # Swin-style table: contains 'bias' in the name but is not 'bias'
        self.backbone.relative_position_bias_table = nn.Parameter(
            torch.zeros(9, 2))
        self.backbone.downsample_layers = nn.ModuleList([
            nn.Sequential(nn.Conv2d(3, c, 4, stride=4), LayerNorm2d(c)),
            nn.Sequential(LayerNorm2d(c), nn.Conv2d(c, c, 2, stride=2)),
        ])
        self.backbone.stages = nn.ModuleList([
            nn.Sequential(_ConvNeXtBlock(c)),
            nn.Sequential(_ConvNeXtBlock(c)),
        ])
        self.backbone.norm3 = nn.LayerNorm(c)
        self.head = nn.Module()
        self.head.fc = nn.Linear(c, 3)
        # root-level 0-dim Parameter (CLIP-style); registered last but, being
        # on the root module, listed first by named_parameters()
        self.logit_scale = nn.Parameter(torch.tensor(1.0))


def build_convnext_toy(**kwargs):
    """named_parameters() order:

    logit_scale                              []        root, 0-dim
    backbone.cls_token                       [1,1,4]
    backbone.pos_embed                       [1,5,4]
    backbone.absolute_pos_embed              [1,4,4]
    backbone.relative_position_bias_table    [9,2]
    backbone.downsample_layers.0.0.weight/.bias   Conv2d(3,4,4,s4)
    backbone.downsample_layers.0.1.weight/.bias   LayerNorm2d(nn.LayerNorm)
    backbone.downsample_layers.1.0.weight/.bias   LayerNorm2d
    backbone.downsample_layers.1.1.weight/.bias   Conv2d
    backbone.stages.{0,1}.0.gamma            [4]       1-D, on block module
    backbone.stages.{0,1}.0.depthwise_conv.weight [4,1,7,7] /.bias [4]
    backbone.stages.{0,1}.0.norm.weight/.bias     LayerNorm
    backbone.stages.{0,1}.0.pointwise_conv1.weight [8,4] /.bias [8]
    backbone.stages.{0,1}.0.pointwise_conv2.weight [4,8] /.bias [4]
    backbone.norm3.weight/.bias              LayerNorm
    head.fc.weight [3,4] / head.fc.bias [3]
    """
    return ConvNeXtToy(**kwargs)


BUILDERS = {'resnet_toy': build_resnet_toy, 'convnext_toy': build_convnext_toy}


def build(name, **kwargs):
    return BUILDERS[name](**kwargs)
