"""The schedule preview: API rows, equality with a real training run, metric traces, the CLI."""
import csv
import json
import math

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
