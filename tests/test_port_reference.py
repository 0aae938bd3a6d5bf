"""The schedule preview of a ported real OpenMMLab config equals the reference's trajectory.

For each table of ``tests/reference/port/trajectories.json`` (made by ``tests/reference/port/make_tables.py``
running the config's own schedule through the real mmcv 1.7.2 runner or mmengine 0.10.7 Runner,
mmtrack 0.14 / mmagic 1.2 where the config names their schedules): ``python -m trainkit.port`` turns
the config under ``tests/data/openmmlab_configs/`` into a recipe, and ``python -m trainkit.schedule``
previews it with the table's iterations per epoch (the ported recipe has ``model: ???``, so the
preview runs on the optimizer's base group, as the reference table does). Every previewed row —
the lr and momentum (``betas[0]`` for Adam-style optimizers) that iteration's optimizer step uses —
must equal the reference's, exactly.
"""
import csv
import json
from pathlib import Path

import pytest

pytest.importorskip("mmengine", reason="python -m trainkit.port needs the openmmlab extra (mmengine-lite)")

HERE = Path(__file__).resolve().parent
CONFIGS = HERE / "data" / "openmmlab_configs"
TABLES = json.loads((HERE / "reference" / "port" / "trajectories.json").read_text())["tables"]
LONG = 20000   # previews longer than this many iterations are marked slow


def _cases():
    for name, table in TABLES.items():
        marks = [pytest.mark.slow] if table["n_iters"] > LONG else []
        yield pytest.param(name, id=name, marks=marks)


@pytest.fixture
def recipes(tmp_path, monkeypatch):
    """A recipes folder of our own for the ported recipes (the shipped ones stay untouched)."""
    from trainkit import config as C

    folder = tmp_path / "recipes"
    folder.mkdir()
    monkeypatch.setattr(C, "RECIPES_DIR", folder)
    return folder


def preview_ported(name: str, table: dict, recipes: Path, tmp_path: Path) -> list[dict]:
    from hydra.core.global_hydra import GlobalHydra

    from trainkit.cli.port import main as port
    from trainkit.cli.schedule import main as schedule

    recipe = name.replace("@", "_at_")
    port([str(CONFIGS / table["config"]), "-o", str(recipes / f"{recipe}.yaml")])
    args = [f"+recipe={recipe}", f"iters_per_epoch={table['iters_per_epoch']}", f"out={tmp_path / 'out'}"]
    if table.get("metric_trace"):
        trace = tmp_path / "trace.json"
        trace.write_text(json.dumps({table["metric"]: table["metric_trace"]}))
        args.append(f"metric_trace={trace}")
    GlobalHydra.instance().clear()
    out = schedule(args)
    with open(out / "schedule.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("name", list(_cases()))
def test_ported_schedule_equals_the_reference(name, recipes, tmp_path):
    table = TABLES[name]
    rows = preview_ported(name, table, recipes, tmp_path)
    lr_key = next(k for k in rows[0] if k.startswith("lr/"))
    mom_key = next(k for k in rows[0] if k.startswith("momentum/"))
    ours = {int(r["iter"]): (int(r["epoch"]), float(r[lr_key]), float(r[mom_key])) for r in rows}
    ref = {it: (ep, lr, m) for it, ep, lr, m in table["rows"]}
    assert len(ours) == len(rows)
    if "optimizer_steps" in table:
        # gradient accumulation: the preview has a row per optimizer step (trainkit's windows close
        # at epoch ends too, accelerate's convention); each must be the reference's row at that iteration
        assert set(ours) <= set(ref) and len(ours) >= table["n_iters"] // 16
        compared = sorted(ours)
    else:
        assert len(rows) == table["n_iters"], "one row per iteration (every iteration steps)"
        assert set(ref) <= set(ours)
        compared = sorted(ref)
    iteration_based = table["loop"]["type"] in ("IterBasedTrainLoop", "IterBasedRunner")
    bad = [(it, ours[it], ref[it]) for it in compared
           if ours[it][1:] != ref[it][1:] or (not iteration_based and ours[it][0] != ref[it][0])]
    assert not bad, f"{len(bad)} of {len(compared)} rows differ, first: (iter, ours, reference) = {bad[:3]}"
