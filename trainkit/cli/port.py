"""``python -m trainkit.port CONFIG.py [-o RECIPE.yaml]``: an OpenMMLab config becomes a trainkit recipe.

Reads the config with mmengine's own ``Config`` (``pip install 'trainkit[openmmlab]'``, the
``mmengine-lite`` package: no OpenCV, no CUDA), so ``_base_`` inheritance, ``_delete_``,
``{{_base_.x}}`` references and the lazy-import style resolve exactly as in OpenMMLab; maps the
training-loop part (:mod:`trainkit.cli.openmmlab`), writes the recipe with ``model: ???`` and
``data: ???`` placeholders (the originals kept as comments), and prints one report line per
top-level key. The schedule previews at once::

    python -m trainkit.schedule +recipe=NAME iters_per_epoch=N
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import types
from pathlib import Path
from typing import Any
from collections.abc import Sequence

import yaml

from .. import config as C
from .openmmlab import Port, port

ORDER = ("name", "model", "data", "optimizer", "param_groups", "components", "evaluator", "trainer", "seed")


class PortError(ValueError):
    """A config that cannot be read: the message names the file and what to do."""


def read_config(path: str | os.PathLike) -> tuple[dict[str, Any], set[str]]:
    """The merged config as a plain dict, and the keys that are imported names (lazy style)."""
    path = Path(path)
    if not path.is_file():
        raise PortError(f"{path}: no such config file")
    if path.suffix != ".py":
        raise PortError(f"{path}: not an OpenMMLab config (a .py file)")
    try:
        from mmengine.config import Config
    except ImportError:
        raise PortError("python -m trainkit.port reads configs with mmengine's Config: "
                        "pip install 'trainkit[openmmlab]' (the mmengine-lite package)") from None
    try:
        cfg = Config.fromfile(str(path), import_custom_modules=False)
    except FileNotFoundError as e:
        raise PortError(f"{path}: {e} (a _base_ file it names is missing; _base_ paths are relative to "
                        "the config's own folder)") from None
    except SyntaxError as e:
        raise PortError(f"{path}: not a Python config ({e.msg}, line {e.lineno})") from None
    except Exception as e:   # mmengine reports bad bases, bad {{_base_.x}} references, ...
        raise PortError(f"{path}: mmengine could not read it: {type(e).__name__}: {e}") from None
    raw = dict(dict.items(cfg._cfg_dict))   # dict.items: the values as written, lazy imports unbuilt
    imported = {k for k, v in raw.items() if _is_import(v)}
    plain = {k: _to_plain(v) for k, v in raw.items() if k not in imported}
    for k in imported:
        plain[k] = None
    return plain, imported


def _is_import(v: Any) -> bool:
    from mmengine.config.lazy import LazyObject

    return isinstance(v, (type, types.ModuleType, types.FunctionType, LazyObject))


def _to_plain(v: Any) -> Any:
    from mmengine.config.lazy import LazyObject

    if isinstance(v, dict):
        return {k: _to_plain(x) for k, x in dict.items(v)}
    if isinstance(v, (list, tuple)):
        return [_to_plain(x) for x in v]
    if isinstance(v, LazyObject):
        return str(v)
    if isinstance(v, type):
        return f"{v.__module__}.{v.__qualname__}"
    return v


def slug(path: str | os.PathLike) -> str:
    """A recipe name from a config's file name: ``faster-rcnn_r50_fpn_1x_coco`` → ``faster_rcnn_r50_fpn_1x_coco``."""
    return re.sub(r"[^0-9A-Za-z_]+", "_", Path(path).stem).strip("_").lower()


def render(result: Port, source: Path) -> str:
    """The recipe as YAML text: a header with the source and the report, the recipe, and the
    placeholders' originals as comments."""
    lines = [f"# Ported from {source} by `python -m trainkit.port` (trainkit {_version()}).",
             "# Fill in model and data (and the evaluator, if ???), then train:",
             f"#   python -m trainkit.train +recipe={result.recipe['name']}",
             "# The schedule previews without them (on the optimizer's base group):",
             f"#   python -m trainkit.schedule +recipe={result.recipe['name']} iters_per_epoch=N",
             "#", "# Report (one line per top-level key of the config):"]
    lines += [f"#   {line}" for line in result.report]
    recipe = {k: result.recipe[k] for k in ORDER if k in result.recipe}
    recipe.update({k: v for k, v in result.recipe.items() if k not in recipe})
    body = yaml.safe_dump(recipe, sort_keys=False, default_flow_style=None, width=110)
    lines += ["", body.rstrip()]
    for part, originals in result.originals.items():
        lines += ["", f"# ---- the original {part} part (for {part}: ???) ----"]
        text = yaml.safe_dump(originals, sort_keys=False, default_flow_style=False, width=110)
        lines += [f"# {t}" if t else "#" for t in text.rstrip().splitlines()]
    return "\n".join(lines) + "\n"


def _version() -> str:
    import trainkit

    return trainkit.__version__


def main(argv: Sequence[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(prog="python -m trainkit.port", description=__doc__.splitlines()[0])
    ap.add_argument("config", help="an OpenMMLab config file (mmcv 1.x or mmengine style)")
    ap.add_argument("-o", "--out", default=None,
                    help=f"the recipe to write (default {C.RECIPES_DIR}/<name>.yaml)")
    ap.add_argument("--name", default=None, help="the recipe's name (default: from the config's file name)")
    ap.add_argument("--force", action="store_true", help="overwrite an existing recipe file")
    ap.add_argument("--total-batch-size", type=int, default=None,
                    help="batch size x processes, for auto_scale_lr (as mmengine's --auto-scale-lr)")
    ap.add_argument("--auto-scale-lr", action="store_true",
                    help="scale the lr by --total-batch-size / auto_scale_lr.base_batch_size even if not enabled")
    args = ap.parse_args(argv)
    if args.total_batch_size is not None and args.total_batch_size < 1:
        ap.error(f"--total-batch-size={args.total_batch_size} is not valid; allowed: an integer >= 1")
    try:
        cfg, imported = read_config(args.config)
    except PortError as e:
        ap.exit(2, f"python -m trainkit.port: error: {e}\n")
    name = args.name or (Path(args.out).stem if args.out else slug(args.config))
    result = port(cfg, name=name, imported=imported, total_batch_size=args.total_batch_size,
                  auto_scale_lr=args.auto_scale_lr)
    out = Path(args.out) if args.out else C.RECIPES_DIR / f"{name}.yaml"
    if out.exists() and not args.force:
        ap.exit(2, f"python -m trainkit.port: error: {out} exists; give --force to overwrite it or -o another path\n")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(result, Path(args.config)), encoding="utf-8")
    width = max(len(line.key) for line in result.report) if result.report else 0
    for line in result.report:
        print(f"{line.key:<{width}}  {line.status:<11}  {line.detail}")
    counts = {s: sum(x.status == s for x in result.report)
              for s in ("mapped", "placeholder", "n/a", "variable", "unsupported")}
    print(f"\nwrote {out}: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
    if out.resolve().parent == C.RECIPES_DIR.resolve():
        print(f"preview: python -m trainkit.schedule +recipe={name} iters_per_epoch=N")
    else:
        print(f"preview: TRAINKIT_RECIPES={out.parent} python -m trainkit.schedule +recipe={out.stem} "
              "iters_per_epoch=N")
    sys.stdout.flush()
    return out
