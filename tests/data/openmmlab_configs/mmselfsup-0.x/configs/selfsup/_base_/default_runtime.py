# Source repository: open-mmlab/mmselfsup
# Path: configs/selfsup/_base_/default_runtime.py
# Commit: 6faad81607c601ef2fdccd20880fa357730c5805
# Obtained: fetch of open-mmlab/mmselfsup, branch 0.x
# License: Apache-2.0 (Copyright (c) OpenMMLab. All rights reserved.);
#   copied unmodified below this header for reference/testing.
# ---- original file follows ----
# checkpoint saving
checkpoint_config = dict(interval=10)

# yapf:disable
log_config = dict(
    interval=50,
    hooks=[
        dict(type='TextLoggerHook'),
        # dict(type='TensorboardLoggerHook'),
    ])
# yapf:enable

# runtime settings
dist_params = dict(backend='nccl')
cudnn_benchmark = True
log_level = 'INFO'
load_from = None
resume_from = None
workflow = [('train', 1)]
persistent_workers = True

# disable opencv multithreading to avoid system being overloaded
opencv_num_threads = 0
# set multi-process start method as `fork` to speed up the training
mp_start_method = 'fork'
