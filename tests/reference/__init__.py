"""Tables produced by the scripts in this folder from the real references (see README.md here).

The tests only read the committed ``<source>/tables.json``; nothing here imports mmcv or mmengine.
"""
import json
from functools import cache
from pathlib import Path

HERE = Path(__file__).resolve().parent
COLUMNS = ("epoch", "lr", "momentum", "beta2")


@cache
def tables(source: str) -> dict:
    """``tests/reference/<source>/tables.json`` as written by its ``make_tables.py``."""
    return json.loads((HERE / source / "tables.json").read_text(encoding="utf-8"))


def expand(runs: list) -> list:
    """``[[count, value], ...]`` → one value per iteration (a list value becomes a tuple)."""
    out: list = []
    for count, value in runs:
        out += [tuple(value) if isinstance(value, list) else value] * count
    return out


def reference(source: str, name: str) -> dict:
    """Case ``name`` with its columns (``epoch``, ``lr``, ``momentum``, ``beta2``) expanded to one entry
    per iteration; ``lr[i]`` etc. are tuples with one value per param group."""
    case = dict(tables(source)["cases"][name])
    for col in COLUMNS:
        if col in case:
            case[col] = expand(case[col])
    return case


def reference_rows(source: str, name: str, groups: tuple[str, ...] = ("g0", "g1")) -> list[dict]:
    """The case as rows shaped like :func:`trainkit.schedules.preview.preview`'s: ``epoch``, ``iter``,
    ``lr/<group>`` and, where the case recorded one, ``momentum/<group>`` (``groups`` names the
    reference's param groups in order)."""
    case = reference(source, name)
    moms = case.get("momentum", [()] * case["n_iters"])
    rows = []
    for i, (epoch, lr, mom) in enumerate(zip(case["epoch"], case["lr"], moms, strict=True)):
        row = {"epoch": epoch, "iter": i}
        row.update({f"lr/{g}": v for g, v in zip(groups, lr, strict=True)})
        if mom:
            row.update({f"momentum/{g}": v for g, v in zip(groups, mom, strict=True)})
        rows.append(row)
    return rows
