"""Reference tables for trainkit's MomentumEMA: mmselfsup 0.11.0's MomentumUpdateHook in an mmcv 1.7.2 runner.

Produced with: mmcv 1.7.2 (MMCV_WITH_OPS=0), mmselfsup 0.11.0 (only ``mmselfsup/core/hooks/
momentum_update_hook.py``, read out of the wheel at run time; mmselfsup itself is not installed),
torch 2.13.0+cpu, python 3.11.7. The versions actually used are written into ``tables.json`` (``meta``).

Every case runs the REAL ``mmcv.runner.EpochBasedRunner`` with the real hook (``MomentumUpdateHook(
end_momentum, update_interval)``, registered as a custom hook as mmselfsup's configs do) on a tiny
online/target model wrapped in ``MMDataParallel`` (the hook reads ``runner.model.module``). The model's
``momentum_update()`` (the algorithm's part, BYOL's ``target = target * m + online * (1 - m)``; our own
code) records each call. A hook at priority LOWEST records, after every iteration, the model's
``momentum`` and whether ``momentum_update`` ran in that iteration.

Run (needs nothing from trainkit; a venv with mmcv 1.7.2 and torch; torchvision is stubbed if missing):

    pip download mmselfsup==0.11.0 --no-deps -d /tmp/mmselfsup
    /path/to/venv_mmcv/bin/python tests/reference/mmselfsup_ema/make_tables.py \
        --mmselfsup-wheel /tmp/mmselfsup/mmselfsup-0.11.0-py3-none-any.whl

It rewrites ``tests/reference/mmselfsup_ema/tables.json``: per case ``momentum`` (run-length encoded
``[[count, value], ...]`` over iterations, exact floats: the model's momentum after the iteration, i.e.
the one its update, if any, used) and ``updates`` (the iterations whose ``after_train_iter`` updated).
"""
import argparse
import hashlib
import logging
import os
import sys
import tempfile
import types
import zipfile

try:
    import torchvision  # noqa: F401
except ImportError:   # mmcv/runner/checkpoint.py imports it at module level, uses it only for torchvision://
    _stub = types.ModuleType("torchvision")
    _stub.__version__ = "0.0.0+stub"
    sys.modules["torchvision"] = _stub

import mmcv  # noqa: E402
import torch  # noqa: E402
from mmcv.parallel import MMDataParallel  # noqa: E402
from mmcv.runner import HOOKS, EpochBasedRunner, Hook, epoch_based_runner  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tablefile import dump, rle  # noqa: E402

# The runner sleeps 1-2 s per epoch ("prevent possible deadlock"); it uses ``time`` for nothing else.
epoch_based_runner.time = types.SimpleNamespace(sleep=lambda seconds: None)

HERE = os.path.dirname(os.path.abspath(__file__))
T = "tests/test_ema.py::"


def case(name, tests, epochs, ipe, base, end=1.0, interval=1):
    return dict(name=name, tests=tests, max_epochs=epochs, iters_per_epoch=ipe, base_momentum=base,
                end_momentum=end, update_interval=interval)


def build_cases():
    return [
        case("hand_example_K10_interval2", [T + "test_hand_example_updates_and_momenta",
                                            T + "test_schedule_preview_logs_momentum_without_touching_weights"],
             1, 10, 0.99, interval=2),
        case("K10_interval1", [T + "test_update_interval_one_first_update_uses_base"], 1, 10, 0.99),
        case("mmselfsup_unit_test_K2", [T + "test_mmselfsup_unit_test_value",
                                        T + "test_base_momentum_from_the_model_as_mmselfsup"], 2, 1, 0.96),
        case("K24_interval1", [T + "test_target_equals_reference_ema_of_post_step_weights"], 2, 12, 0.9),
        case("K24_interval3", [T + "test_target_equals_reference_ema_of_post_step_weights"], 2, 12, 0.9, interval=3),
        case("K24_interval2", [T + "test_target_equals_reference_ema_of_post_step_weights"], 2, 12, 0.9, interval=2),
        case("K6_interval1", [T + "test_real_ddp_wrapper"], 1, 6, 0.8),
        case("K20_interval2", [T + "test_resume_is_exact"], 4, 5, 0.9, interval=2),
    ]


def load_mmselfsup(wheel):
    """Registers mmselfsup's MomentumUpdateHook into mmcv's HOOKS from the wheel's one module."""
    member = "mmselfsup/core/hooks/momentum_update_hook.py"
    with zipfile.ZipFile(wheel) as z:
        source = z.read(member).decode()
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        version = next(line.split(":", 1)[1].strip() for line in z.read(meta).decode().splitlines()
                       if line.startswith("Version:"))
    module = types.ModuleType("mmselfsup_momentum_update_hook")
    exec(compile(source, f"{os.path.basename(wheel)}/{member}", "exec"), module.__dict__)
    assert HOOKS.get("MomentumUpdateHook") is module.MomentumUpdateHook
    with open(wheel, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    return {"version": version, "file": member, "wheel": os.path.basename(wheel), "wheel_sha256": digest}


class Siamese(torch.nn.Module):
    """online_net / target_net with mmselfsup's attributes: base_momentum, momentum, momentum_update()."""

    def __init__(self, base_momentum):
        super().__init__()
        self.online_net = torch.nn.Linear(2, 1)
        self.target_net = torch.nn.Linear(2, 1).requires_grad_(False)
        self.target_net.load_state_dict(self.online_net.state_dict())
        self.base_momentum = self.momentum = base_momentum
        self.calls = 0

    @torch.no_grad()
    def momentum_update(self):
        self.calls += 1
        for o, t in zip(self.online_net.parameters(), self.target_net.parameters(), strict=True):
            t.data = t.data * self.momentum + o.data * (1.0 - self.momentum)

    def train_step(self, data_batch, optimizer, **kwargs):
        x = data_batch[0]
        loss = ((self.online_net(x) - self.target_net(x)) ** 2).mean() + self.online_net(x).pow(2).mean()
        return dict(loss=loss, log_vars={"loss": float(loss)}, num_samples=x.shape[0])


class Recorder(Hook):
    def __init__(self, rows):
        self.rows = rows

    def after_train_iter(self, runner):
        m = runner.model.module
        updated = m.calls > (self.rows[-1]["calls"] if self.rows else 0)
        self.rows.append({"iter": runner.iter, "momentum": m.momentum, "calls": m.calls, "updated": updated})


def run_case(c, workdir):
    torch.manual_seed(0)
    model = Siamese(c["base_momentum"])
    optimizer = torch.optim.SGD(model.online_net.parameters(), lr=0.1)
    wrapped = MMDataParallel(model)
    logger = logging.getLogger("mmselfsup_ref")
    logger.setLevel(logging.ERROR)
    runner = EpochBasedRunner(wrapped, optimizer=optimizer, work_dir=workdir, logger=logger,
                              max_epochs=c["max_epochs"])
    runner.register_training_hooks(lr_config=None, optimizer_config=dict(grad_clip=None), checkpoint_config=None,
                                   log_config=None,
                                   custom_hooks_config=[dict(type="MomentumUpdateHook", end_momentum=c["end_momentum"],
                                                             update_interval=c["update_interval"])])
    rows = []
    runner.register_hook(Recorder(rows), priority="LOWEST")
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.ones(c["iters_per_epoch"], 2)),
                                       batch_size=1)
    runner.run([data], [("train", 1)])
    assert [r["iter"] for r in rows] == list(range(c["max_epochs"] * c["iters_per_epoch"])), c["name"]
    hooks = [type(h).__name__ for h in runner.hooks]
    assert "MomentumUpdateHook" in hooks
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mmselfsup-wheel", required=True, help="mmselfsup-0.11.0-py3-none-any.whl (pip download)")
    ap.add_argument("--out", default=os.path.join(HERE, "tables.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    mmselfsup = load_mmselfsup(args.mmselfsup_wheel)
    meta = {"mmcv": mmcv.__version__, "torch": torch.__version__, "python": sys.version.split()[0],
            "mmselfsup": mmselfsup, "script": "tests/reference/mmselfsup_ema/make_tables.py",
            "columns": "momentum: run-length encoded [[count, value], ...] over iterations 0..n_iters-1, the "
                       "model's momentum after the iteration; updates: iterations that called momentum_update()"}
    print(f"mmcv {meta['mmcv']}  torch {meta['torch']}  python {meta['python']}  mmselfsup {mmselfsup['version']}")
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for c in build_cases():
            rows = run_case(c, os.path.join(tmp, c["name"]))
            entry = dict(c)
            entry["n_iters"] = len(rows)
            entry["updates"] = [r["iter"] for r in rows if r["updated"]]
            entry["momentum"] = rle([r["momentum"] for r in rows])
            out[c["name"]] = entry
            print(f"{c['name']:32s} {len(rows):4d} rows, {len(entry['updates'])} updates")
    text = dump({"meta": meta, "cases": out})
    with open(args.out, "w") as f:
        f.write(text)
    print(f"wrote {args.out}: {len(out)} cases, {len(text)} bytes")


if __name__ == "__main__":
    main()
