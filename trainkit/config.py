"""The Hydra layer: the config schema, and the recipes stored where ``+recipe=NAME`` finds them.

The primary config (``conf/config.yaml``) is checked against :class:`Config`: a typo such
as ``trainer.max_epoch`` or a string where an int belongs fails before training, naming
the key. ``trainer`` is :class:`~trainkit.core.config.TrainerConfig` and ``logger.wandb``
is :class:`~trainkit.sinks.wandb.WandbConfig`: each option is declared once, there. Recipes
are the YAML files in ``recipes/``; each is stored in Hydra's ConfigStore as group
``recipe`` (package ``_global_``), so ``+recipe=NAME`` merges it over the primary config
and ``+recipe=nope`` lists the available ones.

The schema's boolean options are left untyped (:func:`untyped_booleans`): OmegaConf would
turn ``trainer.progress=yes`` (or ``1``, ``on``) into ``True``; left as given, the value
reaches the dataclass's own check, which refuses anything but a real boolean.
"""
from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from .core.config import TrainerConfig
from .core.dist import launch_time
from .sinks.wandb import WandbConfig

ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = ROOT / "conf"
RECIPES_DIR = Path(os.environ.get("TRAINKIT_RECIPES", ROOT / "recipes"))


def untyped_booleans(cls: type) -> type:
    """A copy of dataclass ``cls`` (same name, fields and defaults) whose ``bool`` fields are typed
    ``Any``, for the Hydra schema: OmegaConf converts strings and ints to a declared bool
    (``"yes"``, ``"off"``, ``1`` → True/False); the checks of ``cls`` itself refuse them instead."""
    hints = typing.get_type_hints(cls)

    def schema_type(hint: Any) -> Any:
        return Any if hint is bool or hint == Optional[bool] else hint

    spec = [(f.name, schema_type(hints[f.name]), _same_default(f)) for f in dataclasses.fields(cls)]
    schema = dataclasses.make_dataclass(cls.__name__, spec)
    schema.__module__, schema.__doc__ = __name__, f"Hydra schema of {cls.__module__}.{cls.__name__}."
    return schema


def _same_default(f: dataclasses.Field) -> dataclasses.Field:
    if f.default_factory is not dataclasses.MISSING:
        return field(default_factory=f.default_factory)
    return field(default=f.default)


TrainerSchema = untyped_booleans(TrainerConfig)
WandbSchema = untyped_booleans(WandbConfig)


@dataclass
class LoggerConfig:
    wandb: Optional[WandbSchema] = field(default_factory=WandbSchema)   # null: metrics.jsonl only


@dataclass
class Config:
    name: str = "run"
    seed: int = 0
    trainer: TrainerSchema = field(default_factory=TrainerSchema)
    model: Any = MISSING
    data: Any = MISSING
    optimizer: Any = MISSING
    param_groups: Any = None
    components: Dict[str, Any] = field(default_factory=dict)
    evaluator: Any = None
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    extra: Dict[str, Any] = field(default_factory=dict)


def recipe_names() -> list[str]:
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def register() -> None:
    """Store the schema and every recipe in Hydra's ConfigStore; register ``${launch_time:FMT}``
    (the run directory's stamp: the launch time, the same for every elastic restart)."""
    if not OmegaConf.has_resolver("launch_time"):
        OmegaConf.register_new_resolver("launch_time", launch_time, use_cache=True)
    cs = ConfigStore.instance()
    cs.store(name="trainkit_schema", node=Config)
    for path in sorted(RECIPES_DIR.glob("*.yaml")):
        node = OmegaConf.load(path)
        if "name" not in node:
            node.name = path.stem
        cs.store(group="recipe", name=path.stem, node=node, package="_global_")
