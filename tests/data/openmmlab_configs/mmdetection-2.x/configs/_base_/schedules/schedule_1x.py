# Source repository: open-mmlab/mmdetection
# Path: configs/_base_/schedules/schedule_1x.py
# Commit: ca11860f4f3c3ca2ce8340e2686eeaec05b29111
# Obtained: upstream commit "Bump version to v2.25.0" (v2.25.0); read from a fork mirror (BitStrawber/mmdetection) that contains the upstream history, open-mmlab/mmdetection itself is over the fetch size limit
# License: Apache-2.0 (Copyright (c) OpenMMLab. All rights reserved.);
#   copied unmodified below this header for reference/testing.
# ---- original file follows ----
# optimizer
optimizer = dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=0.0001)
optimizer_config = dict(grad_clip=None)
# learning policy
lr_config = dict(
    policy='step',
    warmup='linear',
    warmup_iters=500,
    warmup_ratio=0.001,
    step=[8, 11])
runner = dict(type='EpochBasedRunner', max_epochs=12)
