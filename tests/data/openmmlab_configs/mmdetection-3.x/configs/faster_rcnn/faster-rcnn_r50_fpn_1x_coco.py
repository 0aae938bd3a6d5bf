# Source repository: open-mmlab/mmdetection
# Path: configs/faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py
# Commit: cfd5d3a985b0249de009b67d04f37263e11cdf3d
# Obtained: upstream main commit (v3.3.0 + MM-GroundingDINO weights, 2024-02-05); read from a fork mirror (BitStrawber/mmdetection) that contains the upstream history, open-mmlab/mmdetection itself is over the fetch size limit
# License: Apache-2.0 (Copyright (c) OpenMMLab. All rights reserved.);
#   copied unmodified below this header for reference/testing.
# ---- original file follows ----
_base_ = [
    '../_base_/models/faster-rcnn_r50_fpn.py',
    '../_base_/datasets/coco_detection.py',
    '../_base_/schedules/schedule_1x.py', '../_base_/default_runtime.py'
]
