"""Reference tables for trainkit's checkpoint management, produced by running mmengine itself.

Versions: mmengine-lite 0.10.7, torch 2.13.0 (the scratch venv /work/ref/venv). Run:

    /work/ref/venv/bin/python tests/reference/mmengine_checkpoint_hook.py

It writes tests/reference/mmengine_checkpoint_hook.json, which tests/test_checkpoints.py reads
(the tests never import mmengine). Every value is what mmengine's own code returned:

- ``rules``: ``CheckpointHook(save_best=name).rules[0]`` (its rule inference; ``"error"`` where
  mmengine raises) for a list of metric names.
- ``best``: for sequences of validation values, the epochs at which
  ``CheckpointHook._save_best_checkpoint`` wrote a new best checkpoint (``best_<metric>_epoch_<N>.pth``),
  and the files left in the directory at the end.
- ``keep``: ``CheckpointHook(interval, max_keep_ckpts)`` driven through ``after_train_epoch`` for
  every epoch: the ``epoch_<N>.pth`` files left after each epoch.
- ``validation``: the epochs after which ``EpochBasedTrainLoop.run`` calls ``val_loop.run()``,
  for a grid of ``max_epochs``, ``val_interval``, ``val_begin``.

It also writes two checkpoint files of a tiny model (``Tiny`` below; entry ``i`` of its state_dict,
in order, filled with ``i + 0.01 * arange(numel)``) the way OpenMMLab writes them:
``mmengine_published.pth`` (``mmengine.runner.save_checkpoint`` of ``{meta, state_dict}``, what
``publish_model`` leaves) and ``mmengine_runner.pth`` (as ``Runner.save_checkpoint`` also stores
the ``message_hub``, whose ``HistoryBuffer`` objects weights-only loading refuses).
"""
import json
import math
from collections import OrderedDict
import tempfile
from pathlib import Path

import torch
from torch import nn

from mmengine.hooks import CheckpointHook
from mmengine.logging import MessageHub, MMLogger
from mmengine.runner.checkpoint import save_checkpoint, weights_to_cpu
from mmengine.runner.loops import EpochBasedTrainLoop
from torch.utils.data import DataLoader

OUT = Path(__file__).with_suffix(".json")
NAMES = ["acc", "val/acc", "accuracy/top1", "val/knn_acc", "val/success_auc", "coco/bbox_mAP", "mIoU",
         "val/mAP_loss", "val/precision", "AR@100", "loss", "val/loss", "val/LOSS", "val/psnr", "PSNR",
         "val/ssim", "val/fid", "val/error", "Acc", "val/top_loss", "val/recall"]
SEQUENCES = {   # name -> values after epochs 1, 2, ...
    "val/acc": [0.5, 0.7, 0.7, 0.6, 0.9, 0.9, 0.8],
    "val/loss": [1.0, 0.8, 0.8, 0.9, 0.5, float("nan"), 0.4],
    "val/acc_nan_first": [float("nan"), 0.2, 0.1, 0.3],
}
KEEP = [(1, 1, 5), (1, 2, 5), (1, 3, 7), (2, 2, 8), (3, 1, 9)]   # (interval, max_keep_ckpts, max_epochs)
VALIDATION = [(m, i, b) for m in (1, 5, 7, 10) for i in (1, 2, 3, 4) for b in (1, 2, 4, 8)]


class FakeRunner:
    """What CheckpointHook reads from a runner; ``save_checkpoint`` writes an empty file."""

    def __init__(self, work_dir, max_epochs=10, name="ref"):
        self.work_dir, self.epoch, self.iter, self.max_epochs = str(work_dir), 0, 0, max_epochs
        self.message_hub = MessageHub.get_instance(name)
        self.logger = MMLogger.get_instance(f"ref-{name}", log_level="WARNING")
        self.saved = []

    def save_checkpoint(self, out_dir, filename, *args, **kwargs):
        Path(out_dir, filename).write_bytes(b"")
        self.saved.append(filename)


def rules():
    table = {}
    for name in NAMES:
        try:
            table[name] = CheckpointHook(save_best=name).rules[0]
        except ValueError:
            table[name] = "error"
    return table


def best(tmp):
    table = {}
    for i, (label, values) in enumerate(SEQUENCES.items()):
        metric = label.replace("_nan_first", "")
        work = Path(tmp, f"best{i}")
        work.mkdir()
        runner = FakeRunner(work, name=f"best{i}")
        hook = CheckpointHook(interval=1, save_best=metric)
        hook.before_train(runner)
        written = []
        for epoch, value in enumerate(values, 1):
            runner.epoch, runner.saved = epoch, []
            hook.after_val_epoch(runner, {metric: value})
            if runner.saved:
                written.append(epoch)
        table[label] = {"metric": metric, "values": [None if math.isnan(v) else v for v in values],
                        "new_best_at": written, "files": sorted(p.name for p in work.iterdir())}
    return table


def keep(tmp):
    rows = []
    for i, (interval, max_keep, max_epochs) in enumerate(KEEP):
        work = Path(tmp, f"keep{i}")
        work.mkdir()
        runner = FakeRunner(work, max_epochs=max_epochs, name=f"keep{i}")
        hook = CheckpointHook(interval=interval, max_keep_ckpts=max_keep, save_last=False)
        hook.before_train(runner)
        after = []
        for epoch in range(max_epochs):   # runner.epoch is the 0-based epoch during after_train_epoch
            runner.epoch = epoch
            hook.after_train_epoch(runner)
            after.append(sorted((p.name for p in work.glob("epoch_*.pth")), key=lambda n: int(n[6:-4])))
        rows.append({"interval": interval, "max_keep_ckpts": max_keep, "max_epochs": max_epochs,
                     "files_after_epoch": after})
    return rows


class _Model:
    def train(self):
        pass

    def train_step(self, batch, optim_wrapper=None):
        return {}


class _LoopRunner:
    def __init__(self):
        self.model, self.optim_wrapper, self.validated = _Model(), None, []
        self.visualizer = type("V", (), {"dataset_meta": None})()
        self.val_loop = type("VL", (), {"run": lambda _: self.validated.append(self.loop.epoch)})()

    def call_hook(self, *args, **kwargs):
        pass


def validation():
    rows = []
    for max_epochs, interval, begin in VALIDATION:
        runner = _LoopRunner()
        loader = DataLoader([0, 1], batch_size=1)
        runner.loop = EpochBasedTrainLoop(runner, loader, max_epochs, val_begin=begin, val_interval=interval)
        runner.loop.run()
        rows.append({"max_epochs": max_epochs, "val_interval": interval, "val_begin": begin,
                     "validated_after": runner.validated})
    return rows


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
        self.head = nn.Linear(2, 3)


def tiny_state():
    state = Tiny().state_dict()
    return OrderedDict((k, (i + 0.01 * torch.arange(v.numel())).reshape(v.shape).to(v.dtype))
                       for i, (k, v) in enumerate(state.items()))


def checkpoint_files():
    meta = {"mmengine_version": "0.10.7", "epoch": 3, "iter": 30, "seed": 0}
    state = weights_to_cpu(tiny_state())
    save_checkpoint({"meta": meta, "state_dict": state}, str(OUT.with_name("mmengine_published.pth")))
    hub = MessageHub.get_instance("runner")
    hub.update_scalar("train/loss", 0.5)
    save_checkpoint({"meta": meta, "state_dict": state, "message_hub": hub.state_dict()},
                    str(OUT.with_name("mmengine_runner.pth")))


def main():
    with tempfile.TemporaryDirectory() as tmp:
        table = {"source": "mmengine-lite 0.10.7 (mmengine/hooks/checkpoint_hook.py, mmengine/runner/loops.py)",
                 "rules": rules(), "best": best(tmp), "keep": keep(tmp), "validation": validation()}
    OUT.write_text(json.dumps(table, indent=1) + "\n")
    checkpoint_files()
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
