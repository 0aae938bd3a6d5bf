# Source repository: open-mmlab/mmselfsup
# Path: configs/selfsup/_base_/schedules/lars_coslr-200e_in1k.py
# Commit: 6faad81607c601ef2fdccd20880fa357730c5805
# Obtained: fetch of open-mmlab/mmselfsup, branch 0.x
# License: Apache-2.0 (Copyright (c) OpenMMLab. All rights reserved.);
#   copied unmodified below this header for reference/testing.
# ---- original file follows ----
# optimizer
optimizer = dict(type='LARS', lr=4.8, weight_decay=1e-6, momentum=0.9)
optimizer_config = dict()  # grad_clip, coalesce, bucket_size_mb

# learning policy
lr_config = dict(
    policy='CosineAnnealing',
    min_lr=0.,
    warmup='linear',
    warmup_iters=10,
    warmup_ratio=1e-4,  # cannot be 0
    warmup_by_epoch=True)

# runtime settings
runner = dict(type='EpochBasedRunner', max_epochs=200)
