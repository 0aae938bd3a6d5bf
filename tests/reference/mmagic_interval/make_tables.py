"""Reference tables for trainkit's LinearLrInterval: mmagic 1.2.0's scheduler in a real mmengine Runner.

Produced with: mmengine-lite 0.10.7, mmagic 1.2.0 (only ``mmagic/engine/schedulers/
linear_lr_scheduler_with_interval.py``, read out of the wheel at run time; mmagic itself is not installed,
its ``__init__`` needs mmcv 2), torch 2.13.0+cpu, python 3.11.7; the mmengine Runner needs ``cv2``
(opencv-python-headless). The versions actually used are written into ``tables.json`` (``meta``).

Every case is a real ``mmengine.runner.Runner(...).train()``: ``EpochBasedTrainLoop`` over a dataset of
``iters_per_epoch`` items (batch 1), a plain torch optimizer with the test's param groups in an
``OptimWrapper``, and ``param_scheduler=[dict(type='LinearLrInterval', ...)]`` exactly as the test
configures it (a missing ``end`` is filled by the Runner). A custom hook with priority LOWEST reads every
group's lr (and SGD ``momentum`` / Adam ``betas[0]`` where the test's groups have one) in
``before_train_iter``, i.e. what that iteration's ``optimizer.step()`` uses. By-iteration cases are also
run in an ``IterBasedTrainLoop(max_iters=epochs x iters_per_epoch)`` and must give the same lrs.

Run (needs nothing from trainkit):

    pip download mmagic==1.2.0 --no-deps -d /tmp/mmagic
    /path/to/venv/bin/python tests/reference/mmagic_interval/make_tables.py \
        --mmagic-wheel /tmp/mmagic/mmagic-1.2.0-py2.py3-none-any.whl

It rewrites ``tests/reference/mmagic_interval/tables.json`` (same format as ``mmcv_lr/tables.json``:
run-length encoded columns ``[[count, value], ...]``, floats exact).
"""
import argparse
import copy
import hashlib
import os
import sys
import tempfile
import types
import zipfile

import mmengine
import torch
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper
from mmengine.registry import PARAM_SCHEDULERS
from mmengine.runner import Runner

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tablefile import dump, plain, rle  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
T = "tests/test_siamese_linear_interval.py::"
G2 = [{"lr": 0.02, "momentum": 0.9}, {"lr": 0.01, "momentum": 0.9}]


def case(name, test, epochs, ipe, groups, **scheduler):
    return dict(name=name, test=test, groups=groups, max_epochs=epochs, iters_per_epoch=ipe,
                param_scheduler=[dict(type="LinearLrInterval", **scheduler)])


def build_cases():
    return [
        case("mmagic_unit_test_by_iter", T + "test_linear_lr_interval_mmagic_unit_test_scenario", 1, 12,
             [{"lr": 1.0}], start_factor=1.0, end_factor=0.0, begin=0, end=10, by_epoch=False, interval=1),
        case("cyclegan_shape_by_iter", T + "test_linear_lr_interval_cyclegan_shape_absolute_values_and_begin_glitch",
             10, 10, [{"lr": 2e-4, "betas": (0.5, 0.999)}, {"lr": 1e-4, "betas": (0.5, 0.999)}],
             start_factor=2e-4, end_factor=0.0, begin=40, end=80, by_epoch=False, interval=4),
        case("by_epoch_begin4", T + "test_linear_lr_interval_reference_runs", 14, 1, [{"lr": 2e-4}],
             start_factor=2e-4, end_factor=0.0, begin=4, end=12, by_epoch=True, interval=2),
        case("by_epoch_begin0", T + "test_linear_lr_interval_reference_runs", 14, 1, [{"lr": 2e-4}],
             start_factor=2e-4, end_factor=0.0, begin=0, end=12, by_epoch=True, interval=2),
        case("end_defaults_to_the_run_by_iter", T + "test_linear_lr_interval_end_defaults_to_the_run_length", 2, 5,
             [{"lr": 1.0}], start_factor=1.0, end_factor=0.0, by_epoch=False),
        case("by_epoch_two_groups", T + "test_linear_lr_interval_by_epoch", 6, 2, G2,
             start_factor=0.5, end_factor=0.1, begin=1, end=5, by_epoch=True, interval=2),
    ]


def load_mmagic(wheel):
    """Registers mmagic's LinearLrInterval into mmengine's PARAM_SCHEDULERS from the wheel's one module."""
    member = "mmagic/engine/schedulers/linear_lr_scheduler_with_interval.py"
    registry = types.ModuleType("mmagic.registry")
    registry.PARAM_SCHEDULERS = PARAM_SCHEDULERS
    sys.modules.setdefault("mmagic", types.ModuleType("mmagic"))
    sys.modules["mmagic.registry"] = registry
    with zipfile.ZipFile(wheel) as z:
        source = z.read(member).decode()
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        version = next(line.split(":", 1)[1].strip() for line in z.read(meta).decode().splitlines()
                       if line.startswith("Version:"))
    module = types.ModuleType("mmagic_linear_lr_interval")
    exec(compile(source, f"{os.path.basename(wheel)}/{member}", "exec"), module.__dict__)
    assert PARAM_SCHEDULERS.get("LinearLrInterval") is module.LinearLrInterval
    with open(wheel, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    return {"version": version, "file": member, "wheel": os.path.basename(wheel), "wheel_sha256": digest}


class Model(BaseModel):
    """One scalar parameter per param group."""

    def __init__(self, n):
        super().__init__()
        self.ps = torch.nn.ParameterList(torch.nn.Parameter(torch.ones(())) for _ in range(n))

    def forward(self, inputs, data_samples=None, mode="tensor"):
        x = torch.stack(inputs).sum() if isinstance(inputs, list) else inputs.sum()
        if mode == "loss":
            return {"loss": sum((p * x - 1) ** 2 for p in self.ps) * 1e-3}
        return [0]


class Items(torch.utils.data.Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {"inputs": torch.ones(1)}


def momentum_of(group):
    return group["betas"][0] if "betas" in group else group.get("momentum")


class Recorder(Hook):
    priority = "LOWEST"

    def __init__(self, rows, with_momentum):
        self.rows, self.with_momentum = rows, with_momentum

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        groups = runner.optim_wrapper.optimizer.param_groups
        row = {"epoch": runner.epoch, "iter": runner.iter, "lr": [float(g["lr"]) for g in groups]}
        if self.with_momentum:
            row["momentum"] = [float(momentum_of(g)) for g in groups]
        self.rows.append(row)


def run_case(c, workdir, loop):
    torch.manual_seed(0)
    model = Model(len(c["groups"]))
    groups = [{"params": [p], **copy.deepcopy(g)} for p, g in zip(model.ps, c["groups"], strict=True)]
    if "betas" in c["groups"][0]:
        optimizer = torch.optim.Adam(groups, lr=c["groups"][0]["lr"])
    else:
        optimizer = torch.optim.SGD(groups, lr=c["groups"][0]["lr"])
    with_momentum = any("momentum" in g or "betas" in g for g in c["groups"])
    rows = []
    n_iters = c["max_epochs"] * c["iters_per_epoch"]
    if loop == "epoch":
        train_cfg = dict(by_epoch=True, max_epochs=c["max_epochs"], val_interval=10 ** 6)
    else:
        train_cfg = dict(by_epoch=False, max_iters=n_iters, val_interval=10 ** 6)
    runner = Runner(model=model, work_dir=workdir, experiment_name=f"{c['name']}_{loop}",
                    train_dataloader=dict(dataset=Items(c["iters_per_epoch"]), batch_size=1, num_workers=0,
                                          sampler=dict(type="DefaultSampler", shuffle=False)),
                    train_cfg=train_cfg, optim_wrapper=OptimWrapper(optimizer),
                    param_scheduler=copy.deepcopy(c["param_scheduler"]), default_hooks=dict(checkpoint=None),
                    custom_hooks=[Recorder(rows, with_momentum)], log_level="ERROR")
    runner.train()
    assert [r["iter"] for r in rows] == list(range(n_iters)), c["name"]
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mmagic-wheel", required=True, help="mmagic-1.2.0-py2.py3-none-any.whl (pip download)")
    ap.add_argument("--out", default=os.path.join(HERE, "tables.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    mmagic = load_mmagic(args.mmagic_wheel)
    meta = {"mmengine": mmengine.__version__, "torch": torch.__version__, "python": sys.version.split()[0],
            "mmagic": mmagic, "script": "tests/reference/mmagic_interval/make_tables.py",
            "columns": "run-length encoded [[count, value], ...] over iterations 0..n_iters-1; value = one "
                       "entry per param group (epoch: runner.epoch); read before optimizer.step()"}
    print(f"mmengine {meta['mmengine']}  torch {meta['torch']}  python {meta['python']}  "
          f"mmagic {mmagic['version']}")
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for c in build_cases():
            rows = run_case(c, os.path.join(tmp, c["name"]), "epoch")
            by_iter = not c["param_scheduler"][0]["by_epoch"]
            if by_iter:   # the same lrs in an IterBasedTrainLoop
                rows_iter = run_case(c, os.path.join(tmp, c["name"] + "_iter"), "iter")
                assert [r["lr"] for r in rows_iter] == [r["lr"] for r in rows], c["name"]
            entry = {k: plain(v) for k, v in c.items()}
            entry["loop"] = "EpochBasedTrainLoop" + (" (IterBasedTrainLoop: the same lrs)" if by_iter else "")
            entry["n_iters"] = len(rows)
            for col in ("epoch", "lr", "momentum"):
                if col in rows[0]:
                    entry[col] = rle([r[col] for r in rows])
            out[c["name"]] = entry
            print(f"{c['name']:40s} {len(rows):5d} rows")
    text = dump({"meta": meta, "cases": out})
    with open(args.out, "w") as f:
        f.write(text)
    print(f"wrote {args.out}: {len(out)} cases, {len(text)} bytes")


if __name__ == "__main__":
    main()
