# Source repository: open-mmlab/mmdetection3d
# Path: configs/second/second_hv_secfpn_8xb6-80e_kitti-3d-3class.py
# Commit: fe25f7a51d36e3702f961e198894580d83c4387b
# Obtained: fetch of open-mmlab/mmdetection3d, branch main
# License: Apache-2.0 (Copyright (c) OpenMMLab. All rights reserved.);
#   copied unmodified below this header for reference/testing.
# ---- original file follows ----
_base_ = [
    '../_base_/models/second_hv_secfpn_kitti.py',
    '../_base_/datasets/kitti-3d-3class.py',
    '../_base_/schedules/cyclic-40e.py', '../_base_/default_runtime.py'
]
