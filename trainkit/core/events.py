"""The event bus: a closed set of events and one place that dispatches them.

The whole training loop, as :class:`trainkit.core.runner.Runner` runs it::

    (trainer.load_from: the model's weights from a file, unless resuming)
    fire(BEFORE_RUN)                       # components set up; resumed state is loaded right after
    while epoch < max_epochs and iter < max_iters:
        model.train(); fire(BEFORE_EPOCH)  # epoch = 0-based index of this epoch
        for inner_iter, batch in enumerate(train_loader):
            fire(BEFORE_ITER)              # iter = 0-based global index of this iteration
            outputs = model(batch); backward(outputs["loss"])   # non-finite loss: error or skip
            if this batch ends an accumulation window:
                clip grads; optimizer.step(); optimizer.zero_grad()
                fire(AFTER_STEP)           # only on real optimizer steps
            fire(AFTER_ITER)               # still the same iter / inner_iter
            iter += 1
        fire(AFTER_EPOCH)                  # still the same epoch
        epoch += 1
        if epoch >= val_begin and (epoch % val_interval == 0 or epoch == max_epochs):   # mmengine's rule
            fire(BEFORE_VAL); metrics = evaluator(runner); fire(AFTER_VAL)   # runner.metrics; ranks best.pt
        save checkpoint (`last`, epoch_<N> every N epochs, best.pt; retention as trainer.checkpoint says)
    fire(AFTER_RUN)

Handlers receive the runner, whose counters (``epoch``, ``iter``, ``inner_iter``,
``max_epochs``, ``max_iters``, ``iters_per_epoch``), ``optimizer``, ``outputs`` and
``metrics`` are the state the bus exposes. A handler with a lower ``priority`` runs
first; equal priorities run in registration order (mmcv's convention: 10 very high,
50 normal, 90 very low).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Callable


class Event(str, enum.Enum):
    BEFORE_RUN = "before_run"
    BEFORE_EPOCH = "before_epoch"
    BEFORE_ITER = "before_iter"
    AFTER_STEP = "after_step"
    AFTER_ITER = "after_iter"
    AFTER_EPOCH = "after_epoch"
    BEFORE_VAL = "before_val"
    AFTER_VAL = "after_val"
    AFTER_RUN = "after_run"


class Priority(enum.IntEnum):
    """Named priorities, lower runs first (the same numbers as mmcv's ``Priority``)."""

    HIGHEST = 0
    VERY_HIGH = 10
    HIGH = 30
    ABOVE_NORMAL = 40
    NORMAL = 50
    BELOW_NORMAL = 60
    LOW = 70
    VERY_LOW = 90
    LOWEST = 100


Handler = Callable[[Any], None]


@dataclass(frozen=True, order=True)
class _Entry:
    priority: int
    order: int
    handler: Handler = field(compare=False)
    name: str = field(compare=False)


class EventBus:
    """Handlers per event, sorted by (priority, registration order)."""

    def __init__(self) -> None:
        self._entries: dict[Event, list[_Entry]] = {e: [] for e in Event}
        self._handlers: dict[Event, tuple[Handler, ...]] = {e: () for e in Event}
        self._count = 0

    def on(self, event: Event | str, handler: Handler, priority: int = Priority.NORMAL,
           name: str | None = None) -> None:
        """Register ``handler(runner)`` for ``event``."""
        event = _as_event(event)
        if not callable(handler):
            raise TypeError(f"handler for {event.value} must be callable, got {handler!r}")
        entry = _Entry(int(priority), self._count, handler, name or _name_of(handler))
        self._count += 1
        self._entries[event].append(entry)
        self._entries[event].sort()
        self._handlers[event] = tuple(e.handler for e in self._entries[event])

    def register(self, component: Any, name: str | None = None) -> list[Event]:
        """Register every method of ``component`` named after an event.

        The priority is ``component.priority``: an int for all events, or a dict
        ``{event_name: int}`` (missing events use ``Priority.NORMAL``).
        """
        prio = getattr(component, "priority", Priority.NORMAL)
        label = name or type(component).__name__
        found = []
        for event in Event:
            method = getattr(component, event.value, None)
            if method is None:
                continue
            p = prio.get(event.value, Priority.NORMAL) if isinstance(prio, dict) else prio
            self.on(event, method, p, f"{label}.{event.value}")
            found.append(event)
        return found

    def fire(self, event: Event, runner: Any) -> None:
        """Call every handler of ``event`` in order. The one dispatch point."""
        for handler in self._handlers[event]:
            handler(runner)

    def handlers(self, event: Event | str) -> list[tuple[int, str]]:
        return [(e.priority, e.name) for e in self._entries[_as_event(event)]]

    def describe(self) -> str:
        """A table of which handlers fire at each event, in firing order."""
        lines = []
        for event in Event:
            lines.append(event.value)
            entries = self._entries[event]
            if not entries:
                lines.append("    (none)")
            for e in entries:
                lines.append(f"    {e.priority:>3}  {e.name}")
        return "\n".join(lines)


def _as_event(event: Event | str) -> Event:
    try:
        return Event(event)
    except ValueError:
        valid = ", ".join(e.value for e in Event)
        raise ValueError(f"unknown event {event!r}; valid events: {valid}") from None


def _name_of(handler: Handler) -> str:
    owner = getattr(handler, "__self__", None)
    if owner is not None:
        return f"{type(owner).__name__}.{handler.__name__}"
    return getattr(handler, "__qualname__", repr(handler))
