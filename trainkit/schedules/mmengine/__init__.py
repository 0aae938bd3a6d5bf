"""mmengine 0.10.x's ``param_scheduler`` family (and mmagic's ``LinearLrInterval`` / ``ReduceLR``)
as one trainkit component, value for value (see docs/mmengine_schedules.md).

``recurrences`` (each class's step rule, the same float operations as mmengine), ``spec``
(a config list read and checked), ``members`` (a scheduler resolved for a run: window,
counters, ``end`` fill-in, ``convert_to_iter_based``), ``component`` (the list on the event
bus, :func:`param_scheduler`). May import ``core`` and the rest of ``schedules`` only.

Types: ``<X>LR``, ``<X>Momentum`` (SGD ``momentum`` or Adam ``betas[0]``) and
``<X>ParamScheduler`` (``param_name=...``) for X in Constant, CosineAnnealing, Exponential,
Linear, MultiStep, Step, Poly, CosineRestart, ReduceOnPlateau, plus ``OneCycleLR`` /
``OneCycleParamScheduler``; mmagic's ``LinearLrInterval`` and ``ReduceLR``.
"""
from .component import ParamSchedulerList, param_scheduler
from .members import ScheduleWarning
from .spec import TYPES

__all__ = ["ParamSchedulerList", "ScheduleWarning", "TYPES", "param_scheduler"]
