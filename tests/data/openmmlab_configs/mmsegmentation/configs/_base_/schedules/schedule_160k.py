# Source repository: open-mmlab/mmsegmentation
# Path: configs/_base_/schedules/schedule_160k.py
# Commit: b040e147adfa027bbc071b624bedf0ae84dfc922
# Obtained: upstream main commit (after v1.2.2, 2024-03-22); read from a fork mirror (Wally0924/mmsegmentation) that contains the upstream history, open-mmlab/mmsegmentation itself is over the fetch size limit
# License: Apache-2.0 (Copyright (c) OpenMMLab. All rights reserved.);
#   copied unmodified below this header for reference/testing.
# ---- original file follows ----
# optimizer
optimizer = dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0005)
optim_wrapper = dict(type='OptimWrapper', optimizer=optimizer, clip_grad=None)
# learning policy
param_scheduler = [
    dict(
        type='PolyLR',
        eta_min=1e-4,
        power=0.9,
        begin=0,
        end=160000,
        by_epoch=False)
]
# training schedule for 160k
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=160000, val_interval=16000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=16000),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
