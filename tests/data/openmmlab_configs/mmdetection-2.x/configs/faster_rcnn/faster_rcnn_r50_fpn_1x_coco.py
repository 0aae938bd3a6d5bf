# Source repository: open-mmlab/mmdetection
# Path: configs/faster_rcnn/faster_rcnn_r50_fpn_1x_coco.py
# Commit: ca11860f4f3c3ca2ce8340e2686eeaec05b29111
# Obtained: upstream commit "Bump version to v2.25.0" (v2.25.0); read from a fork mirror (BitStrawber/mmdetection) that contains the upstream history, open-mmlab/mmdetection itself is over the fetch size limit
# License: Apache-2.0 (Copyright (c) OpenMMLab. All rights reserved.);
#   copied unmodified below this header for reference/testing.
# ---- original file follows ----
_base_ = [
    '../_base_/models/faster_rcnn_r50_fpn.py',
    '../_base_/datasets/coco_detection.py',
    '../_base_/schedules/schedule_1x.py', '../_base_/default_runtime.py'
]
