"""Schedules: components that write param groups' lr and momentum, and the preview.

``policies`` (pure progress → value formulas), ``updater`` (mmcv 1.x timing and warmup; the
one place lr is written, ``write_lrs``), ``mmcv_lr`` / ``mmcv_momentum`` (mmcv's
``lr_config`` / ``momentum_config`` families, mmtrack's SiameseRPN), ``interval`` (mmagic's
``LinearLrInterval``), ``plateau`` (mmagic's ``ReduceLR``), ``mmengine`` (an OpenMMLab 2.0
``param_scheduler`` list: :func:`param_scheduler`) and ``preview`` (every iteration's values,
without training). May import ``core`` only.
"""
from .interval import LinearLrInterval
from .mmcv_lr import (CosineAnnealingLrUpdater, CosineRestartLrUpdater, CyclicLrUpdater, ExpLrUpdater,
                      FixedLrUpdater, FlatCosineAnnealingLrUpdater, InvLrUpdater, LinearAnnealingLrUpdater,
                      OneCycleLrUpdater, PolyLrUpdater, SiameseRPNLrUpdater, StepLrUpdater, lr_config)
from .mmcv_momentum import (CosineAnnealingMomentumUpdater, CyclicMomentumUpdater, LinearAnnealingMomentumUpdater,
                            OneCycleMomentumUpdater, StepMomentumUpdater, momentum_config)
from .mmengine import ParamSchedulerList, ScheduleWarning, param_scheduler
from .plateau import ReduceLR
from .preview import preview
from .updater import Updater, write_lrs

__all__ = [
    "CosineAnnealingLrUpdater", "CosineRestartLrUpdater", "CyclicLrUpdater", "ExpLrUpdater", "FixedLrUpdater",
    "FlatCosineAnnealingLrUpdater", "InvLrUpdater", "LinearAnnealingLrUpdater", "OneCycleLrUpdater",
    "PolyLrUpdater", "SiameseRPNLrUpdater", "StepLrUpdater", "lr_config",
    "CosineAnnealingMomentumUpdater", "CyclicMomentumUpdater", "LinearAnnealingMomentumUpdater",
    "OneCycleMomentumUpdater", "StepMomentumUpdater", "momentum_config",
    "LinearLrInterval", "ReduceLR", "Updater", "preview", "write_lrs",
    "ParamSchedulerList", "ScheduleWarning", "param_scheduler",
]
