"""Small rules written once: value checks with errors that name the key, and "every n".

Every error says the key, the value and what is allowed, e.g.
``warmup_iters must be a positive integer, got 0``.
"""
from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any


def every_n(count: int, n: int) -> bool:
    """True on the ``n``-th, ``2n``-th, ... event, where ``count`` is the 0-based index of the
    event just happening: ``(count + 1) % n == 0`` (mmengine's ``every_n_iters`` / mmcv's)."""
    return (count + 1) % n == 0


def validation_due(epoch: int, max_epochs: int, interval: int = 1, begin: int = 1) -> bool:
    """Does the run validate after its 1-based ``epoch``? mmengine's ``EpochBasedTrainLoop``
    rule: ``epoch >= begin and (epoch % interval == 0 or epoch == max_epochs)`` — so the last
    epoch always validates (if ``begin`` allows), and the final metrics are the final weights'."""
    return epoch >= begin and (epoch % interval == 0 or epoch == max_epochs)


def validation_epochs(max_epochs: int, interval: int = 1, begin: int = 1) -> list[int]:
    """The 1-based epochs after which a run of ``max_epochs`` validates (:func:`validation_due`)."""
    return [e for e in range(1, max_epochs + 1) if validation_due(e, max_epochs, interval, begin)]


def is_int(x: Any) -> bool:
    """An integer, and not a bool (``True`` is an ``int`` to Python, never to a config)."""
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def is_number(x: Any) -> bool:
    """A real number, and not a bool."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def as_list(x: Any) -> list | None:
    """``x`` as a plain list if it is a sequence (list, tuple, OmegaConf ListConfig), else None."""
    if isinstance(x, Sequence) and not isinstance(x, (str, bytes)):
        return list(x)
    return None


def check_choice(key: str, value: Any, allowed: Sequence[Any]) -> Any:
    """``value`` if it is one of ``allowed``; else ``ValueError`` naming the key and the choices."""
    if value not in allowed:
        raise ValueError(f"{key}={value!r} is not valid; allowed: {', '.join(map(repr, allowed))}")
    return value


def number(key: str, value: Any, *, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False) -> float:
    """``value`` checked to be a real number in the given range."""
    if not is_number(value):
        raise ValueError(f"{key} must be a number, got {value!r}")
    if (low is not None and (value < low or (low_open and value == low))) or \
            (high is not None and (value > high or (high_open and value == high))):
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        span = f"{'(' if low_open else '['}{lo}, {hi}{')' if high_open else ']'}"
        raise ValueError(f"{key}={value!r} is out of range; allowed: {span}")
    return value


def integer(key: str, value: Any, low: int = 0) -> int:
    """``value`` checked to be an integer (not a bool) ``>= low``."""
    if not is_int(value) or value < low:
        raise ValueError(f"{key} must be an integer >= {low}, got {value!r}")
    return int(value)


def positive_int(key: str, value: Any) -> int:
    """``value`` checked to be an integer >= 1."""
    if not is_int(value) or value < 1:
        raise ValueError(f"{key} must be a positive integer, got {value!r}")
    return int(value)
