"""Config nodes to objects: Hydra's ``instantiate``, with errors that name the config key."""
from __future__ import annotations

from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig


def instantiate_node(node: Any, key: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate(node, _convert_="all")``; an error names ``key`` and the target."""
    if node is None:
        return None
    try:
        return instantiate(node, _convert_="all", **kwargs)
    except Exception as e:  # hydra wraps the real error; keep its message, add the key
        target = node.get("_target_", "?") if isinstance(node, (dict, DictConfig)) else "?"
        raise ValueError(f"config key '{key}' (_target_ {target}): {_root_message(e)}") from e


def _root_message(e: BaseException) -> str:
    while e.__cause__ is not None and type(e).__name__ == "InstantiationException":
        e = e.__cause__
    return f"{type(e).__name__}: {e}"
