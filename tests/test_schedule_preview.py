"""The schedule preview: API rows, equality with a real training run, metric traces, the CLI."""
import csv
import json
import math
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from trainkit.build import build
from trainkit.core.runner import Runner
from trainkit.cli.schedule import main
from trainkit.schedules.preview import preview

L, M = "trainkit.schedules.", "trainkit.schedules."


def test_rows_have_epoch_iter_and_every_group():
    groups = [{"name": "enc", "lr": 0.1, "momentum": 0.9}, {"name": "dec", "lr": 0.2, "betas": (0.8, 0.9)},
              {"name": "bias", "lr": 0.3}]
    rows = preview(groups, {"lr": {"_target_": L + "FixedLrUpdater"}}, 3, 4)
    assert len(rows) == 12
    assert [(r["epoch"], r["iter"]) for r in rows] == [(i // 4, i) for i in range(12)]
    assert list(rows[0]) == ["epoch", "iter", "lr/enc", "lr/dec", "lr/bias", "momentum/enc", "momentum/dec"]
    assert rows[5]["momentum/dec"] == 0.8 and rows[5]["lr/bias"] == 0.3


class Linear(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 1)

    def forward(self, batch):
        x, y = batch
        return {"loss": ((self.lin(x).squeeze(-1) - y) ** 2).mean()}


SETS = [
    {"lr": {"_target_": L + "CosineAnnealingLrUpdater", "by_epoch": False, "min_lr": 1e-4,
            "warmup": "linear", "warmup_iters": 5},
     "m": {"_target_": M + "CyclicMomentumUpdater", "cyclic_times": 2}},
    {"lr": {"_target_": L + "LinearLrInterval", "start_factor": 0.01, "end_factor": 0.001, "begin": 10,
            "end": 16, "by_epoch": False},
     "m": {"_target_": M + "StepMomentumUpdater", "step": [1, 3], "warmup": "exp", "warmup_iters": 3}},
]


@pytest.mark.parametrize("nodes", SETS, ids=["cosine+cyclic", "interval+step"])
def test_preview_equals_what_a_real_training_run_steps_with(tmp_path, nodes):
    """The same component configs, in a preview and in training: identical lr/momentum at every step."""
    seen = []

    class Rec:
        priority = 100

        def after_step(self, runner):
            gs = runner.optimizer.param_groups
            seen.append({**{f"lr/{g['name']}": g["lr"] for g in gs},
                         **{f"momentum/{g['name']}": g["momentum"] for g in gs}})

    torch.manual_seed(0)
    model = Linear()
    opt = torch.optim.SGD([{"params": [model.lin.weight], "name": "w", "lr": 0.05},
                           {"params": [model.lin.bias], "name": "b", "lr": 0.02}], momentum=0.9)
    comps = {k: build(v, k) for k, v in nodes.items()}
    Runner(model, opt, TensorDataset(torch.randn(10, 3), torch.randn(10)), batch_size=2, max_epochs=4,
           components={**comps, "rec": Rec()}, progress=False, work_dir=tmp_path).run()
    rows = preview([{"name": "w", "lr": 0.05, "momentum": 0.9}, {"name": "b", "lr": 0.02, "momentum": 0.9}],
                   nodes, 4, 5)
    assert len(seen) == len(rows) == 20
    assert [{k: v for k, v in r.items() if "/" in k} for r in rows] == seen
    assert len({r["lr/w"] for r in rows}) > 3 and len({r["momentum/b"] for r in rows}) > 2


def test_metric_trace_is_served_as_validation_results():
    got = []

    class Probe:
        def after_val(self, runner):
            got.append((runner.epoch, dict(runner.metrics)))

    preview([{"name": "g", "lr": 0.1}], {"p": Probe()}, 3, 2, metric_trace={"val/loss": [3.0, 2.0, 2.5]})
    assert got == [(1, {"val/loss": 3.0}), (2, {"val/loss": 2.0}), (3, {"val/loss": 2.5})]
    with pytest.raises(ValueError, match=r"metric_trace\['val/loss'\] has 2 values but the run validates 3 times"):
        preview([{"name": "g", "lr": 0.1}], {}, 3, 2, metric_trace={"val/loss": [3.0, 2.0]})


def test_cli_on_the_digits_cosine_warmup_recipe(tmp_path, capsys):
    out = main(["+recipe=digits_cosine_warmup", "trainer.max_epochs=3", f"out={tmp_path}"])
    assert out == tmp_path and (tmp_path / "schedule.png").stat().st_size > 10_000
    printed = capsys.readouterr().out
    assert "69 iterations x 2 param groups (23 iters/epoch)" in printed and str(tmp_path) in printed
    with open(tmp_path / "schedule.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["epoch", "iter", "lr/backbone", "lr/head", "momentum/backbone", "momentum/head"]
    assert len(rows) == 69                       # 1438 training digits / batch 64 = 23 per epoch
    for r in rows:
        i = int(r["iter"])
        assert int(r["epoch"]) == i // 23
        for name, base in (("backbone", 0.05), ("head", 0.1)):
            t = 0.01 * base
            regular = t + 0.5 * (base - t) * (1 + math.cos(math.pi * i / 69))
            warm = 1 - (1 - i / 50) * 0.9 if i < 50 else 1.0
            assert float(r[f"lr/{name}"]) == pytest.approx(regular * warm, rel=1e-12)
            assert float(r[f"momentum/{name}"]) == 0.9


def test_cli_json_and_iters_per_epoch_override(tmp_path):
    main(["+recipe=digits_cosine_warmup", "trainer.max_epochs=2", "iters_per_epoch=7", "format=json",
          f"out={tmp_path}"])
    rows = json.loads((tmp_path / "schedule.json").read_text())
    assert len(rows) == 14 and rows[-1]["epoch"] == 1 and rows[-1]["iter"] == 13


def test_planned_rows_of_a_run_use_its_groups_and_only_schedule_components(make_cfg, tmp_path):
    """What W&B charts as the planned schedule: the run's own groups and iterations per
    epoch; the cosine/warmup values follow mmcv's closed form."""
    import math

    from trainkit.build import planned_rows
    from trainkit.build import build_runner

    cfg = make_cfg("+recipe=digits_cosine_warmup", "trainer.max_epochs=2", "logger=none",
                   "+components.ema=null")
    runner = build_runner(cfg, tmp_path)
    rows = planned_rows(cfg, runner)
    n = 2 * runner.iters_per_epoch
    assert len(rows) == n and rows[-1]["iter"] == n - 1
    for r in rows[::7]:
        i = r["iter"]
        for name, base in (("head", 0.1), ("backbone", 0.05)):
            target = base * 0.01
            regular = target + 0.5 * (base - target) * (math.cos(math.pi * i / n) + 1)
            if i < 50:
                regular *= 1 - (1 - i / 50) * (1 - 0.1)
            assert r[f"lr/{name}"] == pytest.approx(regular, rel=1e-12)


# ------------------------------------------------------------------ the table (flat arrays) and streaming
MM = {"lr": {"_target_": "trainkit.schedules.param_scheduler", "schedulers": [
    {"type": "LinearLR", "start_factor": 0.1, "by_epoch": False, "end": 5},
    {"type": "MultiStepLR", "milestones": [2], "gamma": 0.5}]}}
G = [{"name": "sgd", "lr": 0.1, "momentum": 0.9}, {"name": "adam", "lr": 0.2, "betas": (0.8, 0.99)},
     {"name": "plain", "lr": 0.3}]


def test_schedule_table_is_a_sequence_of_rows_over_flat_arrays():
    from array import array

    from trainkit.schedules.preview import _preview

    table, _ = _preview(G, MM, 3, 4, None, None, 1)
    rows = preview(G, MM, 3, 4)
    assert isinstance(table.values, array) and isinstance(table.counters, array)     # no dict per row held
    assert len(table) == 12 and table[:] == rows and table[5] == rows[5] and table[-1] == rows[-1]
    assert table[1:10:4] == rows[1:10:4]
    assert table.fields == ["epoch", "iter", "lr/sgd", "lr/adam", "lr/plain", "momentum/sgd", "momentum/adam"]
    assert table.column("lr/adam") == [r["lr/adam"] for r in rows] and table.column("iter") == list(range(12))
    assert list(table.tuples(chunk=5)) == [tuple(r.values()) for r in rows]
    with pytest.raises(IndexError):
        table[12]


def test_csv_and_json_streamed_from_the_table_equal_the_row_writers(tmp_path):
    from trainkit.schedules.preview import _preview, write_csv, write_json

    table, _ = _preview(G, MM, 3, 4, None, None, 1)
    rows = preview(G, MM, 3, 4)
    write_csv(table, tmp_path / "a.csv")
    write_csv(rows, tmp_path / "b.csv")
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    with open(tmp_path / "a.csv") as f:
        back = list(csv.DictReader(f))
    assert [float(r["lr/adam"]) for r in back] == [r["lr/adam"] for r in rows]      # repr: exact round trip
    write_json(table, tmp_path / "a.json")
    assert json.loads((tmp_path / "a.json").read_text()) == rows


def test_plot_thinning_keeps_every_step_and_extreme():
    from trainkit.schedules.preview import thinned

    n = 100_000
    x = list(range(n))
    y = [0.02 if i < 60_000 else (0.002 if i < 90_000 else 0.0002) for i in x]
    y[12_345] = 5.0                                   # a one-iteration spike
    xs, ys = thinned(x, y, max_points=2000)
    assert len(xs) <= 2002 and xs[0] == 0 and xs[-1] == n - 1 and xs == sorted(xs)
    assert 12_345 in xs and max(ys) == 5.0 and {0.02, 0.002, 0.0002} <= set(ys)
    assert all(ys[k] == y[xs[k]] for k in range(len(xs)))
    assert thinned(x[:10], y[:10]) == (x[:10], y[:10])


@pytest.mark.parametrize("recipe, columns", [
    ("digits_mmengine_schedule", {"lr/backbone": ("lr", 0), "lr/head": ("lr", 1)}),
    ("restoration_mmengine_plateau", {"lr/pg0": ("lr", 0), "momentum/pg0": ("momentum", 0)}),
])
def test_cli_preview_of_the_mmengine_recipes_equals_mmengine(recipe, columns, tmp_path, capsys):
    """``python -m trainkit.schedule +recipe=...`` (the recipe's data for iterations per epoch, its default
    metric trace) gives the values the real mmengine / mmagic computed for the same list and geometry
    (tests/reference/mmengine_sched, cases recipe_*)."""
    ref = {c["name"]: c for c in json.loads((Path(__file__).parent / "reference" / "mmengine_sched" /
                                             "mmengine_tables.json").read_text())}[f"recipe_{recipe}"]
    main([f"+recipe={recipe}", f"out={tmp_path}"])
    assert f"{len(ref['cols']['iter'])} iterations" in capsys.readouterr().out
    with open(tmp_path / "schedule.csv") as f:
        rows = list(csv.DictReader(f))
    for key, (col, g) in columns.items():
        assert [float(r[key]) for r in rows] == ref["cols"][col][g], key


def test_planned_schedule_keeps_an_mmengine_list_with_plateau_members_inert(make_cfg, tmp_path):
    from trainkit.build import schedule_components

    cfg = make_cfg("+recipe=restoration_mmengine_plateau", "logger=none")
    assert schedule_components(cfg, planned=True)[0] == {}      # mmagic's hook: every step waits for a check
    cfg = make_cfg("+recipe=digits_mmengine_schedule", "logger=none",
                   "+components.rop={_target_: trainkit.schedules.param_scheduler, "
                   "schedulers: [{type: ReduceOnPlateauLR, monitor: val/acc, rule: greater}]}")
    kept, _ = schedule_components(cfg, planned=True)
    assert sorted(kept) == ["lr", "rop"]


def test_csv_blocks_format_like_csv_writer_for_repeats_zeros_and_non_finite(tmp_path):
    """The column-wise CSV formatting (repeated values formatted once) writes what csv.writer writes."""
    import io

    from trainkit.schedules.preview import ScheduleTable

    t = ScheduleTable(["a", "b", "c"])
    for k in range(1000):
        t.counters.extend((k // 10, k))
        t.values.extend((0.9 if k % 7 else -0.0, 1e-3 * 0.99 ** k, [math.nan, math.inf, 0.1][k % 3]))
    f = io.StringIO()
    csv.writer(f).writerows(t.tuples())
    assert "".join(t.csv_blocks(chunk=300)) == f.getvalue()
