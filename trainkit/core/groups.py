"""What the core knows about param groups: their names and their momentum.

A group's name (``name``, or ``group_name`` as mmdet sets it, else ``pg<i>``) is what
``lr/<name>`` and ``momentum/<name>`` are logged under. "Momentum" is SGD/RMSprop
``momentum`` or Adam/AdamW ``betas[0]``.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch


def group_names(optimizer: torch.optim.Optimizer) -> list[str]:
    """Each group's ``name`` (or ``group_name``), else ``pg<i>``; names must be unique."""
    names = [str(g.get("name") or g.get("group_name") or f"pg{i}") for i, g in enumerate(optimizer.param_groups)]
    if len(set(names)) != len(names):
        raise ValueError(f"param group names must be unique, got {names}")
    return names


def has_momentum(group: Mapping[str, Any]) -> bool:
    return "momentum" in group or "betas" in group


def get_momentum(group: Mapping[str, Any]) -> float | None:
    """SGD/RMSprop ``momentum``, or Adam/AdamW ``betas[0]``; None if neither."""
    if "momentum" in group:
        return group["momentum"]
    if "betas" in group:
        return group["betas"][0]
    return None


def set_momentum(group: dict, value: float) -> None:
    if "momentum" in group:
        group["momentum"] = value
    elif "betas" in group:
        group["betas"] = (value, *group["betas"][1:])
    else:
        raise ValueError("this optimizer has neither 'momentum' nor 'betas' in its param groups")
