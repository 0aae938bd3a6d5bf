"""Old module paths (trainkit 0.1's flat layout) kept working for one release.

``_target_: trainkit.lr_updaters.CosineAnnealingLrUpdater`` and
``from trainkit.runner import Runner`` still resolve, through alias modules that forward
every attribute to its new home and warn once per old module (``FutureWarning``).
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings

# old module -> (new module, {old attribute: (module, new attribute)} for what moved elsewhere)
MOVED: dict[str, tuple[str, dict[str, tuple[str, str]]]] = {
    "trainkit.events": ("trainkit.core.events", {}),
    "trainkit.runner": ("trainkit.core.runner", {}),
    "trainkit.checkpoint": ("trainkit.core.checkpoint", {}),
    "trainkit.data": ("trainkit.core.data", {
        "digits": ("trainkit.tasks.digits", "digits_data"),
        "load_digits_arrays": ("trainkit.tasks.digits", "load_digits_arrays")}),
    "trainkit.loggers": ("trainkit.core.record", {}),
    "trainkit.evaluation": ("trainkit.core.evaluation", {"KNNAccuracy": ("trainkit.tasks.byol", "KNNAccuracy")}),
    "trainkit.policies": ("trainkit.schedules.policies", {}),
    "trainkit.updater": ("trainkit.schedules.updater", {}),
    "trainkit.lr_updaters": ("trainkit.schedules.mmcv_lr", {
        "LinearLrInterval": ("trainkit.schedules.interval", "LinearLrInterval")}),
    "trainkit.momentum_updaters": ("trainkit.schedules.mmcv_momentum", {}),
    "trainkit.plateau": ("trainkit.schedules.plateau", {}),
    "trainkit.layer_decay": ("trainkit.optim.layer_decay", {}),
    "trainkit.ema": ("trainkit.optim.ema", {}),
    "trainkit.wandb_sink": ("trainkit.sinks.wandb", {}),
    "trainkit.sweep": ("trainkit.cli.sweep", {}),
    "trainkit.restoration": ("trainkit.tasks.restoration", {}),
    "trainkit.models": ("trainkit.tasks", {}),
    "trainkit.models.digits": ("trainkit.tasks.digits", {}),
    "trainkit.models.denoise": ("trainkit.tasks.restoration", {}),
    "trainkit.models.byol": ("trainkit.tasks.byol", {}),
    "trainkit.models.convnext": ("trainkit.tasks.convnext", {}),
    "trainkit.tracking": ("trainkit.tasks.sot", {}),
    **{f"trainkit.tracking.{m}": (f"trainkit.tasks.sot.{m}", {}) for m in
       ("boxes", "data", "evaluate", "metrics", "model", "sequences", "synth", "tracker", "unfreeze")},
}
PACKAGES = {"trainkit.models", "trainkit.tracking"}
_warned: set[str] = set()


def warn_moved(old: str, new: str) -> None:
    if old not in _warned:
        _warned.add(old)
        warnings.warn(f"{old} moved to {new}; the old path works until trainkit 0.3", FutureWarning, stacklevel=3)


def forwarder(old: str, new: str, moved: dict[str, tuple[str, str]]):
    """A module ``__getattr__`` that warns once and takes ``name`` from its new module."""

    def __getattr__(name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        if f"{old}.{name}" in MOVED:   # a moved submodule of a moved package: its own alias warns
            return importlib.import_module(f"{old}.{name}")
        module, attr = moved.get(name, (new, name))
        target = importlib.import_module(module)
        if not hasattr(target, attr):
            raise AttributeError(f"module {old!r} (now {new!r}) has no attribute {name!r}")
        warn_moved(f"{old}.{name}" if name in moved else old, f"{module}.{attr}" if name in moved else new)
        return getattr(target, attr)

    return __getattr__


class _AliasLoader(importlib.abc.Loader):
    def create_module(self, spec):
        new, moved = MOVED[spec.name]
        module = types.ModuleType(spec.name, f"Moved to {new}.")
        module.__getattr__ = forwarder(spec.name, new, moved)
        if spec.name in PACKAGES:
            module.__path__ = []
        return module

    def exec_module(self, module) -> None:
        pass


class _AliasFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname in MOVED:
            return importlib.machinery.ModuleSpec(fullname, _AliasLoader(), is_package=fullname in PACKAGES)
        return None


def install() -> None:
    if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _AliasFinder())
