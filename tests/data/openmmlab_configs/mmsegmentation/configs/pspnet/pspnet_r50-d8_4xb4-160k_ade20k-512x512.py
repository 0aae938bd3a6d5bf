# Source repository: open-mmlab/mmsegmentation
# Path: configs/pspnet/pspnet_r50-d8_4xb4-160k_ade20k-512x512.py
# Commit: b040e147adfa027bbc071b624bedf0ae84dfc922
# Obtained: upstream main commit (after v1.2.2, 2024-03-22); read from a fork mirror (Wally0924/mmsegmentation) that contains the upstream history, open-mmlab/mmsegmentation itself is over the fetch size limit
# License: Apache-2.0 (Copyright (c) OpenMMLab. All rights reserved.);
#   copied unmodified below this header for reference/testing.
# ---- original file follows ----
_base_ = [
    '../_base_/models/pspnet_r50-d8.py', '../_base_/datasets/ade20k.py',
    '../_base_/default_runtime.py', '../_base_/schedules/schedule_160k.py'
]
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    decode_head=dict(num_classes=150),
    auxiliary_head=dict(num_classes=150))
