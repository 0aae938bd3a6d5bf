"""The package layout's rules: imports flow one way, old paths still resolve (with a warning),
and the preview runs any component that declares itself a schedule."""
import ast
import importlib
import sys
import warnings
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "trainkit"
# package -> the trainkit packages/modules it may import (besides itself)
ALLOWED = {
    "core": set(),
    "schedules": {"core"},
    "optim": {"core", "_compat"},
    "sinks": {"core"},
    "tasks": {"core"},
    "build": {"core", "schedules", "optim", "sinks", "tasks", "config"},
    "config": {"core", "sinks"},
    "cli": {"core", "schedules", "optim", "sinks", "tasks", "build", "config"},
}


def _trainkit_imports(path: Path) -> set[str]:
    """The top-level trainkit packages a module imports (absolute or relative)."""
    rel = path.relative_to(PKG).with_suffix("")
    here = list(rel.parts[:-1]) if rel.name != "__init__" else list(rel.parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - node.level + 1] if node.level > 1 else here
                parts = base + (node.module.split(".") if node.module else [])
                if not parts:   # `from .. import x` at the top: x are packages
                    found.update(a.name for a in node.names)
                else:
                    found.add(parts[0])
            elif node.module and node.module.split(".")[0] == "trainkit":
                parts = node.module.split(".")
                found.add(parts[1] if len(parts) > 1 else "")
        elif isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                if parts[0] == "trainkit" and len(parts) > 1:
                    found.add(parts[1])
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_flow_one_way(package):
    files = sorted((PKG / package).rglob("*.py")) if (PKG / package).is_dir() else [PKG / f"{package}.py"]
    assert files
    bad = {}
    for f in files:
        extra = _trainkit_imports(f) - ALLOWED[package] - {package}
        if extra:
            bad[str(f.relative_to(PKG))] = sorted(extra)
    assert not bad, f"{package} may import only {sorted(ALLOWED[package])}; found {bad}"


def test_the_checker_sees_a_violation(tmp_path, monkeypatch):
    """The rule test above can fail: a core module importing schedules is caught."""
    fake = tmp_path / "trainkit" / "core" / "bad.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("from ..schedules.policies import Fixed\nfrom trainkit.sinks import wandb\n")
    monkeypatch.setattr(sys.modules[__name__], "PKG", tmp_path / "trainkit")
    assert _trainkit_imports(fake) == {"schedules", "sinks"}


def test_every_package_says_what_lives_there():
    for init in sorted(PKG.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and "import" in doc, f"{init.relative_to(PKG)} needs a docstring saying what it may import"


@pytest.mark.parametrize("old, name, new", [
    ("trainkit.lr_updaters", "CosineAnnealingLrUpdater", "trainkit.schedules.mmcv_lr"),
    ("trainkit.lr_updaters", "LinearLrInterval", "trainkit.schedules.interval"),
    ("trainkit.plateau", "ReduceLR", "trainkit.schedules.plateau"),
    ("trainkit.models.digits", "DigitsCNN", "trainkit.tasks.digits"),
    ("trainkit.data", "digits", "trainkit.tasks.digits"),
    ("trainkit.tracking", "SiamRPN", "trainkit.tasks.sot"),
    ("trainkit.runner", "Runner", "trainkit.core.runner"),
    ("trainkit.optim", "group_names", "trainkit.core.groups"),
])
def test_old_paths_resolve_and_warn_once(old, name, new):
    from hydra.utils import get_object

    from trainkit import _compat

    _compat._warned.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        obj = get_object(f"{old}.{name}")   # what Hydra does for a _target_
        again = getattr(importlib.import_module(old), name)
    assert obj is again
    assert obj.__module__.startswith(new)
    moved = [w for w in caught if issubclass(w.category, FutureWarning)]
    assert len(moved) == 1 and old in str(moved[0].message)


def test_a_users_own_schedule_component_is_previewed(tmp_path, monkeypatch, make_cfg):
    """A schedule component defined in the user's own module (not trainkit's) declares
    ``writes_param_groups`` and the command-line preview runs it; one that does not is skipped."""
    (tmp_path / "my_sched.py").write_text(
        "class HalveEveryEpoch:\n"
        "    writes_param_groups = True\n"
        "    def before_epoch(self, runner):\n"
        "        for g in runner.optimizer.param_groups:\n"
        "            g['lr'] = g.setdefault('initial_lr', g['lr']) * 0.5 ** runner.epoch\n"
        "class Counter:\n"
        "    def after_iter(self, runner):\n"
        "        pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from trainkit.cli.schedule import main

    out = main(["+recipe=digits_baseline", "trainer.max_epochs=3", "iters_per_epoch=2", f"out={tmp_path / 's'}",
                "~components", "+components.halve._target_=my_sched.HalveEveryEpoch",
                "+components.count._target_=my_sched.Counter"])
    import csv
    with open(out / "schedule.csv") as f:
        rows = list(csv.DictReader(f))
    lr0 = make_cfg("+recipe=digits_baseline").optimizer.lr
    assert [float(r["lr/pg0"]) for r in rows] == [lr0, lr0, lr0 / 2, lr0 / 2, lr0 / 4, lr0 / 4]
