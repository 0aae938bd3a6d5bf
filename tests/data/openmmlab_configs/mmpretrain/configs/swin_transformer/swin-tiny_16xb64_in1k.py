# Source repository: open-mmlab/mmpretrain
# Path: configs/swin_transformer/swin-tiny_16xb64_in1k.py
# Commit: ee7f2e88501f61aa95c742dd5f429f039935ee90
# Obtained: fetch of open-mmlab/mmpretrain, branch main
# License: Apache-2.0 (Copyright (c) OpenMMLab. All rights reserved.);
#   copied unmodified below this header for reference/testing.
# ---- original file follows ----
_base_ = [
    '../_base_/models/swin_transformer/tiny_224.py',
    '../_base_/datasets/imagenet_bs64_swin_224.py',
    '../_base_/schedules/imagenet_bs1024_adamw_swin.py',
    '../_base_/default_runtime.py'
]

# schedule settings
optim_wrapper = dict(clip_grad=dict(max_norm=5.0))
