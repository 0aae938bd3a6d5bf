"""Typed contracts: what a component may implement, and what a handler may read on the runner.

Nothing here is enforced at run time (the bus calls whatever methods are named after
events); these Protocols say the contract once for readers and type checkers, as
Composer's ``Serializable`` and ``State`` do.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from collections.abc import Mapping

import torch


@runtime_checkable
class Stateful(Protocol):
    """Saved in every checkpoint under the component's config key; loaded on resume after
    ``before_run`` (so the run's length is known)."""

    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class Component(Protocol):
    """Any object; each method named after an event (``before_run``, ``before_epoch``,
    ``before_iter``, ``after_step``, ``after_iter``, ``after_epoch``, ``before_val``,
    ``after_val``, ``after_run``) is called with the runner. ``priority``: an int or
    ``{event_name: int}``; lower runs first."""

    priority: int | Mapping[str, int]


@runtime_checkable
class ParamGroupWriter(Protocol):
    """A component that writes param groups' lr / momentum / weight decay: the schedule
    preview (``python -m trainkit.schedule``) runs exactly the components that declare
    ``writes_param_groups = True``. ``needs_metrics = True`` says its writes depend on
    validation metrics (the planned schedule charted at a run's start leaves it out). Optional:
    ``extra_params`` (group keys it schedules besides lr / momentum: previewed as
    ``<key>/<group>``) and ``monitors()`` (``{metric: 'min' | 'max'}`` it consumes)."""

    writes_param_groups: bool


class RunnerState(Protocol):
    """What a handler may read (and, for ``scalars``, write) on the runner."""

    epoch: int              # 0-based index of the epoch; completed epochs during validation
    iter: int               # 0-based global iteration index (one batch per process)
    inner_iter: int         # batch index within the epoch
    max_epochs: int
    max_iters: int
    iters_per_epoch: int    # batches per epoch per process
    optimizer: torch.optim.Optimizer
    group_names: list[str]
    model: torch.nn.Module
    unwrapped_model: torch.nn.Module
    accelerator: Any
    outputs: dict[str, Any]     # what the model returned this iteration (``loss`` included)
    metrics: dict[str, float]   # the last validation metrics
    scalars: dict[str, float]   # components add scalars for the next logged row
    work_dir: Path
    is_main: bool
    dry_run: bool               # True in schedule previews: no model step is taken
