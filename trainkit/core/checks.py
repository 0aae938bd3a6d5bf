"""Small rules written once: value checks with errors that name the key, and "every n".

Every error says the key, the value and what is allowed, e.g.
``warmup_iters must be a positive integer, got 0``. They are ``ConfigError`` exceptions (a
``ValueError``): the entry points print such an error as one short line (the key, the value,
what is allowed) instead of a traceback. No check reinterprets a value: a string is never a
boolean, 0 or a negative number never means "the default".
"""
from __future__ import annotations

import collections.abc as cabc
import dataclasses
import enum
import inspect
import numbers
import types
import typing
from collections.abc import Sequence
from typing import Any


class ConfigError(ValueError):
    """A bad configuration value, found before training; the message names the key, the value
    and what is allowed, and is all a user needs (the CLI prints it without a traceback)."""


class ReportedError(Exception):
    """Mixin for a fault whose message says what happened and what to do (a full disk, a
    corrupt checkpoint, a non-finite loss): the CLI prints it without a traceback."""


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
    if isinstance(value, bool) or value not in allowed:   # True == 1: a bool is never a choice
        raise ConfigError(f"{key}={value!r} is not valid; allowed: {', '.join(map(repr, allowed))}")
    return value


def number(key: str, value: Any, *, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False) -> float:
    """``value`` checked to be a real number in the given range."""
    if not is_number(value):
        raise ConfigError(f"{key} must be a number, got {value!r}")
    if (low is not None and (value < low or (low_open and value == low))) or \
            (high is not None and (value > high or (high_open and value == high))):
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        span = f"{'(' if low_open else '['}{lo}, {hi}{')' if high_open else ']'}"
        raise ConfigError(f"{key}={value!r} is out of range; allowed: {span}")
    return value


def integer(key: str, value: Any, low: int = 0) -> int:
    """``value`` checked to be an integer (not a bool) ``>= low``."""
    if not is_int(value) or value < low:
        raise ConfigError(f"{key} must be an integer >= {low}, got {value!r}")
    return int(value)


def positive_int(key: str, value: Any) -> int:
    """``value`` checked to be an integer >= 1."""
    if not is_int(value) or value < 1:
        raise ConfigError(f"{key} must be a positive integer, got {value!r}")
    return int(value)


def optional_positive_int(key: str, value: Any) -> int | None:
    """``None``, or an integer >= 1 (0 never means "off" or "the default": say null)."""
    return None if value is None else positive_int(key, value)


def boolean(key: str, value: Any) -> bool:
    """``value`` checked to be a real boolean: ``"yes"``, ``"false"``, ``1`` or ``0`` are refused,
    never taken for one (``bool("false")`` is True)."""
    if not isinstance(value, bool):
        raise ConfigError(f"{key}={value!r} is not valid; allowed: true, false")
    return value


def name(key: str, value: Any, what: str = "a name") -> str | None:
    """``None``, or a non-empty string."""
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ConfigError(f"{key}={value!r} is not valid; allowed: null or {what}")
    return value


# ------------------------------------------------------- values against declared types
def fits(value: Any, hint: Any) -> bool | None:
    """Whether ``value`` (a plain config value) fits ``hint``: True, False, or None when the
    hint says nothing this check can test (``Any``, a callable, a type variable)."""
    if hint is Any or isinstance(hint, (str, typing.TypeVar, typing.ForwardRef)):
        return None
    if hint is type(None):
        return value is None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union or origin is types.UnionType:
        answers = [fits(value, a) for a in args]
        return True if True in answers else (None if None in answers else False)
    if origin is typing.Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return is_int(value)
    if hint is float:
        return is_number(value)
    if hint is str:
        return isinstance(value, str)
    if inspect.isclass(hint) and issubclass(hint, enum.Enum):
        return isinstance(value, hint) or any(value == m.value for m in hint)
    if origin in (cabc.Callable,) or hint is cabc.Callable:
        return None if callable(value) or isinstance(value, str) else False
    if origin in (list, tuple, cabc.Sequence, cabc.MutableSequence) or hint in (list, tuple, cabc.Sequence):
        if not isinstance(value, (list, tuple)):
            return False
        return _items_fit(value, origin or hint, args)
    if origin in (dict, cabc.Mapping, cabc.MutableMapping) or hint in (dict, cabc.Mapping):
        return isinstance(value, dict)
    if inspect.isclass(hint):
        return True if isinstance(value, hint) else (None if hint.__module__ == "typing" else False)
    return None


def _items_fit(value: list | tuple, origin: Any, args: tuple) -> bool | None:
    if not args:
        return True
    if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
        if len(value) != len(args):
            return False
        answers = [fits(v, a) for v, a in zip(value, args, strict=True)]
    else:
        answers = [fits(v, args[0]) for v in value]
    return False not in answers


def describe(hint: Any) -> str:
    """What ``hint`` allows, in words: ``an integer``, ``true or false``, ``null or a number``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union or origin is types.UnionType:
        plain = [a for a in args if a in _WORDS or typing.get_origin(a) is not None] or list(args)
        return " or ".join(dict.fromkeys(describe(a) for a in plain))   # "a number", not "a number or Tensor"
    if origin is typing.Literal:
        return ", ".join(map(repr, args))
    if origin in (list, tuple, cabc.Sequence, cabc.MutableSequence):
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            return f"a list of {len(args)} ({', '.join(describe(a) for a in args)})"
        return f"a list of {_plural(describe(args[0]))}" if args else "a list"
    if origin in (dict, cabc.Mapping, cabc.MutableMapping):
        return "a mapping"
    if inspect.isclass(hint) and issubclass(hint, enum.Enum):
        return ", ".join(repr(m.value) for m in hint)
    return _WORDS.get(hint, getattr(hint, "__name__", str(hint)))


_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
          type(None): "null", list: "a list", tuple: "a list", dict: "a mapping"}


def _plural(text: str) -> str:
    return {"an integer": "integers", "a number": "numbers", "a string": "strings",
            "true or false": "booleans"}.get(text, text)


def check_dataclass(obj: Any, prefix: str) -> None:
    """Every field of the dataclass instance ``obj`` against its declared type (see :func:`fits`:
    a ``bool`` field takes only a real boolean, an ``int`` field no bool, ...) and the bounds in its
    metadata (``low``, ``low_open``, ``nonempty``): ``ConfigError`` naming ``<prefix>.<field>``."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value, key, hint, meta = getattr(obj, f.name), f"{prefix}.{f.name}", hints[f.name], f.metadata
        if fits(value, hint) is False:
            raise ConfigError(f"{key}={value!r} is not valid; allowed: {describe(hint)}")
        if value is None:
            continue
        nullable = " (or null)" if fits(None, hint) else ""
        low, low_open = meta.get("low"), meta.get("low_open", False)
        if low is not None and (value < low or (low_open and value == low)):
            plain = describe(hint).removeprefix("null or ").removesuffix(" or null")
            raise ConfigError(f"{key}={value!r} is not valid; allowed: {plain} {'>' if low_open else '>='} "
                              f"{low}{nullable}")
        if meta.get("nonempty") and isinstance(value, str) and not value.strip():
            raise ConfigError(f"{key}={value!r} is not valid; allowed: a non-empty string{nullable}")
