# Source repository: open-mmlab/mmdetection3d
# Path: configs/second/hv_second_secfpn_6x8_80e_kitti-3d-3class.py
# Commit: 47285b3f1e9dba358e98fcd12e523cfd0769c876
# Obtained: fetch of open-mmlab/mmdetection3d, tag v1.0.0rc6 (mmcv 1.x era)
# License: Apache-2.0 (Copyright (c) OpenMMLab. All rights reserved.);
#   copied unmodified below this header for reference/testing.
# ---- original file follows ----
_base_ = [
    '../_base_/models/hv_second_secfpn_kitti.py',
    '../_base_/datasets/kitti-3d-3class.py',
    '../_base_/schedules/cyclic_40e.py', '../_base_/default_runtime.py'
]
