# Source repository: open-mmlab/mmdetection
# Path: mmdet/configs/faster_rcnn/faster_rcnn_r50_fpn_1x_coco.py
# Commit: cfd5d3a985b0249de009b67d04f37263e11cdf3d
# Obtained: upstream main commit (v3.3.0 + MM-GroundingDINO weights, 2024-02-05); read from a fork mirror (BitStrawber/mmdetection) that contains the upstream history, open-mmlab/mmdetection itself is over the fetch size limit
# License: Apache-2.0 (Copyright (c) OpenMMLab. All rights reserved.);
#   copied unmodified below this header for reference/testing.
# ---- original file follows ----
# Copyright (c) OpenMMLab. All rights reserved.

# Please refer to https://mmengine.readthedocs.io/en/latest/advanced_tutorials/config.html#a-pure-python-style-configuration-file-beta for more details. # noqa
# mmcv >= 2.0.1
# mmengine >= 0.8.0

from mmengine.config import read_base

with read_base():
    from .._base_.datasets.coco_detection import *
    from .._base_.default_runtime import *
    from .._base_.models.faster_rcnn_r50_fpn import *
    from .._base_.schedules.schedule_1x import *
