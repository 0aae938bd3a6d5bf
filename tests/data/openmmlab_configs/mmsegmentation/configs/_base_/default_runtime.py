# Source repository: open-mmlab/mmsegmentation
# Path: configs/_base_/default_runtime.py
# Commit: b040e147adfa027bbc071b624bedf0ae84dfc922
# Obtained: upstream main commit (after v1.2.2, 2024-03-22); read from a fork mirror (Wally0924/mmsegmentation) that contains the upstream history, open-mmlab/mmsegmentation itself is over the fetch size limit
# License: Apache-2.0 (Copyright (c) OpenMMLab. All rights reserved.);
#   copied unmodified below this header for reference/testing.
# ---- original file follows ----
default_scope = 'mmseg'
env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(
    type='SegLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False

tta_model = dict(type='SegTTAModel')
