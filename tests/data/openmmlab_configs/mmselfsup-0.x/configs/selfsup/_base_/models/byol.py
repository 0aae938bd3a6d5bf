# Source repository: open-mmlab/mmselfsup
# Path: configs/selfsup/_base_/models/byol.py
# Commit: 6faad81607c601ef2fdccd20880fa357730c5805
# Obtained: fetch of open-mmlab/mmselfsup, branch 0.x
# License: Apache-2.0 (Copyright (c) OpenMMLab. All rights reserved.);
#   copied unmodified below this header for reference/testing.
# ---- original file follows ----
# model settings
model = dict(
    type='BYOL',
    base_momentum=0.99,
    backbone=dict(
        type='ResNet',
        depth=50,
        in_channels=3,
        out_indices=[4],  # 0: conv-1, x: stage-x
        norm_cfg=dict(type='SyncBN')),
    neck=dict(
        type='NonLinearNeck',
        in_channels=2048,
        hid_channels=4096,
        out_channels=256,
        num_layers=2,
        with_bias=True,
        with_last_bn=False,
        with_avg_pool=True),
    head=dict(
        type='LatentPredictHead',
        predictor=dict(
            type='NonLinearNeck',
            in_channels=256,
            hid_channels=4096,
            out_channels=256,
            num_layers=2,
            with_bias=True,
            with_last_bn=False,
            with_avg_pool=False)))
