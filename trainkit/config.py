"""Config schema, recipe registration and error-naming instantiation.

The primary config (``conf/config.yaml``) is checked against :class:`Config`: a
typo such as ``trainer.max_epoch`` or a string where an int belongs fails before
training, naming the key. Recipes are the YAML files in ``recipes/``; each is
stored in Hydra's ConfigStore as group ``recipe`` (package ``_global_``), so
``+recipe=NAME`` merges it over the primary config and ``+recipe=nope`` lists the
available ones.
"""
from __future__ import annotations

import enum
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional

from hydra.core.config_store import ConfigStore
from hydra.utils import instantiate
from omegaconf import MISSING, DictConfig, OmegaConf

ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = ROOT / "conf"
RECIPES_DIR = Path(os.environ.get("TRAINKIT_RECIPES", ROOT / "recipes"))


class MixedPrecision(str, enum.Enum):
    no = "no"
    fp16 = "fp16"
    bf16 = "bf16"


class NonFinite(str, enum.Enum):
    error = "error"
    skip = "skip"
    ignore = "ignore"


@dataclass
class TrainerConfig:
    max_epochs: Optional[int] = 10
    max_iters: Optional[int] = None
    batch_size: int = 32
    val_batch_size: Optional[int] = None
    num_workers: int = 0
    drop_last: bool = False
    val_interval: int = 1
    grad_accum: int = 1
    clip_grad: Optional[float] = None
    mixed_precision: MixedPrecision = MixedPrecision.no
    checkpoint_interval: int = 1
    checkpoint_interval_iters: Optional[int] = None
    resume: Optional[str] = None
    log_interval: int = 10
    nonfinite: NonFinite = NonFinite.error
    progress: bool = True
    monitor: Optional[str] = None
    print_events: bool = False
    num_threads: Optional[int] = None
    find_unused_parameters: bool = False


@dataclass
class Config:
    name: str = "run"
    seed: int = 0
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    model: Any = MISSING
    data: Any = MISSING
    optimizer: Any = MISSING
    param_groups: Any = None
    components: Dict[str, Any] = field(default_factory=dict)
    evaluator: Any = None
    logger: Dict[str, Any] = field(default_factory=dict)
    extra: Dict[str, Any] = field(default_factory=dict)


def recipe_names() -> list[str]:
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def register() -> None:
    """Store the schema and every recipe in Hydra's ConfigStore."""
    cs = ConfigStore.instance()
    cs.store(name="trainkit_schema", node=Config)
    for path in sorted(RECIPES_DIR.glob("*.yaml")):
        node = OmegaConf.load(path)
        if "name" not in node:
            node.name = path.stem
        cs.store(group="recipe", name=path.stem, node=node, package="_global_")


def build(node: Any, key: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` whose errors name the config key and target."""
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
