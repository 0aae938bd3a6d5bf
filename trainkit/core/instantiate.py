"""Config nodes to objects: Hydra's ``instantiate``, with errors that name the config key.

Before anything is built, every argument a node gives is checked against the type its
target declares (the annotations of the function, or of ``__init__`` along the class's
MRO for the ``**kwargs`` it forwards): a string where an ``int``/``float`` belongs, a
string or a number where a ``bool`` belongs (``"yes"``, ``1``), a number where a list
belongs are ``ConfigError`` exceptions naming ``<key>.<argument>``,
its value and what is allowed — instead of an error from deep inside torch, or a value
silently taken for something else (``bool("false")`` is True). Annotations this check
cannot read (``Any``, a class, a callable) accept anything; ranges are checked by the
targets themselves.
"""
from __future__ import annotations

import inspect
import typing
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from .checks import ConfigError, describe, fits

_HYDRA_KEYS = ("_target_", "_partial_", "_convert_", "_recursive_", "_args_")


def instantiate_node(node: Any, key: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate(node, _convert_="all")``; an error names ``key`` and the target."""
    if node is None:
        return None
    check_node(node, key)
    try:
        return instantiate(node, _convert_="all", **kwargs)
    except Exception as e:  # hydra wraps the real error; keep its message, add the key
        target = node.get("_target_", "?") if isinstance(node, (dict, DictConfig)) else "?"
        raise ConfigError(f"config key '{key}' (_target_ {target}): {_root_message(e)}") from e


def _root_message(e: BaseException) -> str:
    while e.__cause__ is not None and type(e).__name__ == "InstantiationException":
        e = e.__cause__
    return str(e) if isinstance(e, ConfigError) else f"{type(e).__name__}: {e}"


# ------------------------------------------------------------------ argument types
def check_node(node: Any, key: str) -> None:
    """Check every ``_target_`` node under ``node`` (``key`` is its config key): each argument
    against its declared type. Raises :class:`ConfigError` for the first that does not fit."""
    if isinstance(node, (DictConfig, ListConfig)):
        node = OmegaConf.to_container(node, resolve=True)
    if isinstance(node, dict):
        target = node.get("_target_")
        hints = _hints(target) if isinstance(target, str) else {}
        for name, value in node.items():
            if name in _HYDRA_KEYS:
                continue
            sub = f"{key}.{name}"
            if _is_node(value):
                check_node(value, sub)
                continue
            check_node(value, sub)   # targets nested in plain lists/dicts
            hint = hints.get(name)
            if hint is not None and fits(value, hint) is False:
                raise ConfigError(f"{sub}={value!r} is not valid; allowed: {describe(hint)}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            check_node(value, f"{key}[{i}]")


def _is_node(value: Any) -> bool:
    return isinstance(value, dict) and "_target_" in value


def _hints(target: str) -> dict[str, Any]:
    """The declared argument types of ``target`` (empty when it cannot be imported or read)."""
    try:
        from hydra._internal.utils import _locate

        obj = _locate(target)
    except Exception:
        return {}
    funcs = [c.__dict__["__init__"] for c in inspect.getmro(obj) if "__init__" in c.__dict__] \
        if inspect.isclass(obj) else [obj]
    hints: dict[str, Any] = {}
    for fn in funcs:
        try:
            own = typing.get_type_hints(fn)
        except Exception:
            continue
        for name, hint in own.items():
            hints.setdefault(name, hint)
        if not any(p.kind is p.VAR_KEYWORD for p in _parameters(fn)):
            break   # this __init__ forwards nothing further up the MRO
    hints.pop("return", None)
    return hints


def _parameters(fn: Any) -> list[inspect.Parameter]:
    try:
        return list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return []
