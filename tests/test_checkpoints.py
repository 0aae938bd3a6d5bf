"""Checkpoint management: load_from (formats, prefix maps, the key report, safe loading),
retention (max_keep, iteration checkpoints), best.pt (rule inference, top-k, resume),
validation timing, and kill -9 at every file operation of a run's checkpoint writes.

Reference values: tests/reference/mmengine_checkpoint_hook.json, written by
tests/reference/mmengine_checkpoint_hook.py from mmengine-lite 0.10.7's own CheckpointHook and
EpochBasedTrainLoop, and its two OpenMMLab-style checkpoint files.
"""
import json
import logging
import os
import random
import signal
import time
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from trainkit.core import checkpoint as ckpt_io
from trainkit.core.checks import validation_epochs
from trainkit.core.runner import Runner
from trainkit.schedules.preview import validations
from trainkit.tasks.convnext import ConvNeXt, ConvNeXtClassifier
from helpers import StopAt

REF_DIR = Path(__file__).parent / "reference"
REF = json.loads((REF_DIR / "mmengine_checkpoint_hook.json").read_text())


# ------------------------------------------------------------------ helpers
class Net(nn.Module):
    def __init__(self, classes=3):
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(4, 8), nn.ReLU())
        self.head = nn.Linear(8, classes)

    def forward(self, batch):
        x, y = batch
        return {"loss": nn.functional.cross_entropy(self.head(self.backbone(x)), y)}


def data(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(n, 4, generator=g), torch.randint(0, 3, (n,), generator=g))


class Scripted:
    """An evaluator returning ``values[k]`` at the k-th validation, and recording when it ran."""

    def __init__(self, values, name="val/acc"):
        self.values, self.name, self.at = list(values), name, []

    def __call__(self, runner):
        self.at.append(runner.epoch)
        return {self.name: self.values[len(self.at) - 1]}


class ByEpoch(Scripted):
    """``values[e - 1]`` after epoch ``e`` (the same in a resumed process)."""

    def __call__(self, runner):
        self.at.append(runner.epoch)
        return {self.name: self.values[runner.epoch - 1]}


def make_runner(work_dir, evaluator=None, seed=0, model=None, **kw):
    torch.manual_seed(seed)
    model = model or Net()
    args = dict(max_epochs=5, batch_size=8, work_dir=work_dir, progress=False, val_data=data(8, 1),
                evaluator=evaluator)   # 40 samples / 8: 5 iterations per epoch
    args.update(kw)
    return Runner(model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), data(), **args)


def names(d, pattern="*.pt"):
    return sorted(p.name for p in Path(d).glob(pattern))


def tensors_equal(a, b):
    return list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------ mmengine tables
@pytest.mark.parametrize("name, rule", sorted(REF["rules"].items()))
def test_rule_inference_is_mmengines(name, rule):
    if rule == "error":
        with pytest.raises(ValueError, match=r"trainer.checkpoint.rule.*set trainer.checkpoint.rule=greater or less"):
            ckpt_io.infer_rule(name)
    else:
        assert ckpt_io.infer_rule(name) == rule


@pytest.mark.parametrize("label", sorted(REF["best"]))
def test_best_checkpoint_updates_are_mmengines(tmp_path, label):
    """The epochs at which a new best is written (strictly better; a tie keeps the earlier, NaN never
    wins) are those of mmengine's CheckpointHook; one best file is left, naming the last of them."""
    ref = REF["best"][label]
    m = ckpt_io.CheckpointManager(tmp_path, iters_per_epoch=10, save_best=ref["metric"])
    updated = []
    for epoch, value in enumerate(ref["values"], 1):
        if m.consider({ref["metric"]: float("nan") if value is None else value}, epoch, epoch * 10):
            updated.append(epoch)
        m.write({"epoch": epoch}, ["last"])
    assert updated == ref["new_best_at"]
    assert names(tmp_path) == ["best.pt", "last.pt"] and len(ref["files"]) == 1
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    last = ref["new_best_at"][-1]
    assert best == {"epoch": last, "best": {"metric": ref["metric"], "value": ref["values"][last - 1],
                                            "rule": ckpt_io.infer_rule(ref["metric"]), "epoch": last,
                                            "iter": last * 10}}


@pytest.mark.parametrize("row", REF["keep"], ids=lambda r: f"interval{r['interval']}-keep{r['max_keep_ckpts']}")
def test_max_keep_is_mmengines_max_keep_ckpts(tmp_path, row):
    m = ckpt_io.CheckpointManager(tmp_path, iters_per_epoch=4, max_keep=row["max_keep_ckpts"])
    for epoch, expected in enumerate(row["files_after_epoch"], 1):
        m.write({"epoch": epoch}, ["last", f"epoch_{epoch}"] if epoch % row["interval"] == 0 else ["last"])
        kept = sorted(names(tmp_path, "epoch_*.pt"), key=lambda n: int(n[6:-3]))
        assert kept == [n.replace(".pth", ".pt") for n in expected], f"after epoch {epoch}"
        assert (tmp_path / "last.pt").is_file()


@pytest.mark.parametrize("row", REF["validation"],
                         ids=lambda r: f"E{r['max_epochs']}-every{r['val_interval']}-from{r['val_begin']}")
def test_validation_epochs_are_mmengines(row):
    m, i, b = row["max_epochs"], row["val_interval"], row["val_begin"]
    assert validation_epochs(m, i, b) == row["validated_after"]
    assert validations(m, 7, val_interval=i, val_begin=b) == len(row["validated_after"])   # the preview's count


@pytest.mark.parametrize("max_epochs, interval, begin", [(5, 2, 1), (7, 3, 2), (5, 1, 4), (1, 2, 2), (7, 4, 4)])
def test_runner_validates_when_mmengine_does(tmp_path, max_epochs, interval, begin):
    """The real loop: after epochs begin.. every interval, and after the last (the final weights
    are evaluated even when max_epochs % val_interval != 0)."""
    ref = next(r for r in REF["validation"] if (r["max_epochs"], r["val_interval"], r["val_begin"]) ==
               (max_epochs, interval, begin))
    ev = Scripted([0.5] * max_epochs)
    make_runner(tmp_path, ev, max_epochs=max_epochs, val_interval=interval, val_begin=begin).run()
    assert ev.at == ref["validated_after"]


def test_max_iters_run_validates_at_its_end_unless_val_begin_is_later(tmp_path):
    ev = Scripted([0.5] * 3)
    make_runner(tmp_path / "a", ev, max_epochs=None, max_iters=12, val_interval=2).run()   # 5 per epoch
    assert ev.at == [2, 2]   # after epoch 2, and at the end (iter 12, mid-epoch 3: 2 epochs completed)
    ev = Scripted([0.5] * 3)
    make_runner(tmp_path / "b", ev, max_epochs=None, max_iters=12, val_begin=4).run()
    assert ev.at == []


# ------------------------------------------------------------------ retention
def test_iteration_checkpoints_keep_only_the_newest_by_default(tmp_path):
    """5 iterations per epoch, every 2 iterations: iter_2, 4, 6, 8, 12, 14 (10 and 15 are epoch ends)."""
    make_runner(tmp_path / "a", max_epochs=3, checkpoint_interval_iters=2).run()
    assert names(tmp_path / "a" / "checkpoints") == ["epoch_1.pt", "epoch_2.pt", "epoch_3.pt", "iter_14.pt", "last.pt"]
    # max_keep counts both kinds by the iteration they hold: epoch_3 (15), iter_14, iter_12
    make_runner(tmp_path / "b", max_epochs=3, checkpoint_interval_iters=2, checkpoint={"max_keep": 3}).run()
    assert names(tmp_path / "b" / "checkpoints") == ["epoch_3.pt", "iter_12.pt", "iter_14.pt", "last.pt"]
    make_runner(tmp_path / "c", max_epochs=3, checkpoint_interval_iters=2, checkpoint={"max_keep": 0}).run()
    assert names(tmp_path / "c" / "checkpoints") == ["last.pt"]
    assert torch.load(tmp_path / "c" / "checkpoints" / "last.pt", weights_only=True)["counters"]["iter"] == 15


# ------------------------------------------------------------------ best.pt
def test_best_pt_is_the_epoch_it_names(tmp_path, caplog):
    values = [0.5, 0.8, 0.7, 0.8, 0.6]   # best after epoch 2; the tie at 4 keeps 2
    with caplog.at_level(logging.INFO, logger="trainkit"):
        make_runner(tmp_path, Scripted(values), checkpoint={"save_best": "val/acc"}).run()
    ck = tmp_path / "checkpoints"
    assert names(ck) == ["best.pt", "epoch_1.pt", "epoch_2.pt", "epoch_3.pt", "epoch_4.pt", "epoch_5.pt", "last.pt"]
    best = torch.load(ck / "best.pt", weights_only=True)
    assert best["best"] == {"metric": "val/acc", "value": 0.8, "rule": "greater", "epoch": 2, "iter": 10}
    assert best["counters"] == {"epoch": 2, "iter": 10, "inner_iter": 0}
    epoch2 = torch.load(ck / "epoch_2.pt", weights_only=True)
    assert tensors_equal(best["model"], epoch2["model"])
    assert not tensors_equal(best["model"], torch.load(ck / "epoch_4.pt", weights_only=True)["model"])
    assert "best val/acc=0.8 (greater) at epoch 2, iter 10" in caplog.text


def test_rule_less_and_top_k(tmp_path):
    """top_k=2 by val/loss (less): after [0.9, 0.5, 0.7, 0.4, 0.6] the two lowest are epochs 4 and 2;
    best.pt is a hard link to the first, epoch_4's file."""
    make_runner(tmp_path, Scripted([0.9, 0.5, 0.7, 0.4, 0.6], "val/loss"), checkpoint_interval=10,
                checkpoint={"save_best": "val/loss", "top_k": 2}).run()
    ck = tmp_path / "checkpoints"
    assert names(ck) == ["best.pt", "best_epoch_2.pt", "best_epoch_4.pt", "last.pt"]
    assert os.stat(ck / "best.pt").st_ino == os.stat(ck / "best_epoch_4.pt").st_ino
    assert torch.load(ck / "best.pt", weights_only=True)["best"]["value"] == 0.4
    assert torch.load(ck / "best_epoch_2.pt", weights_only=True)["best"] == \
        {"metric": "val/loss", "value": 0.5, "rule": "less", "epoch": 2, "iter": 10}


def test_best_tracking_resumes_exactly(tmp_path):
    values = [0.5, 0.9, 0.7, 0.8, 0.95]
    make_runner(tmp_path / "full", ByEpoch(values), checkpoint={"save_best": "val/acc", "top_k": 2}).run()
    with pytest.raises(KeyboardInterrupt):   # cut in epoch 4: the run resumes from epoch 3's checkpoint
        make_runner(tmp_path / "cut", ByEpoch(values), components={"stop": StopAt(17)},
                    checkpoint={"save_best": "val/acc", "top_k": 2}).run()
    assert names(tmp_path / "cut" / "checkpoints", "best*") == ["best.pt", "best_epoch_2.pt", "best_epoch_3.pt"]
    make_runner(tmp_path / "cut", ByEpoch(values), resume="auto",
                checkpoint={"save_best": "val/acc", "top_k": 2}).run()
    for d in ("full", "cut"):   # top 2: epochs 5 (0.95) and 2 (0.9)
        assert names(tmp_path / d / "checkpoints", "best*") == ["best.pt", "best_epoch_2.pt", "best_epoch_5.pt"]
    a, b = (torch.load(tmp_path / d / "checkpoints" / "best.pt", weights_only=True) for d in ("full", "cut"))
    assert a["best"] == b["best"] == {"metric": "val/acc", "value": 0.95, "rule": "greater", "epoch": 5, "iter": 25}
    assert tensors_equal(a["model"], b["model"])


def test_a_crash_between_best_pt_and_last_pt_keeps_best_pt_right(tmp_path, monkeypatch):
    """best.pt is written before last.pt: a crash while writing it resumes from the epoch before,
    whose rerun ranks the same validation again. (Written after last.pt, best.pt would stay epoch
    2's while last.pt's table says epoch 3 is the best, and nothing would rewrite it.)"""
    values = [0.5, 0.6, 0.9, 0.7, 0.8]
    make_runner(tmp_path / "full", ByEpoch(values), checkpoint={"save_best": "val/acc"}).run()
    save = ckpt_io.save_atomic

    def crash_writing_best_of_epoch_3(obj, path):
        if Path(path).name == "best.pt" and obj["counters"]["epoch"] == 3:
            raise KeyboardInterrupt
        return save(obj, path)

    monkeypatch.setattr(ckpt_io, "save_atomic", crash_writing_best_of_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        make_runner(tmp_path / "cut", ByEpoch(values), checkpoint={"save_best": "val/acc"}).run()
    monkeypatch.setattr(ckpt_io, "save_atomic", save)
    assert torch.load(tmp_path / "cut/checkpoints/last.pt", weights_only=True)["counters"]["epoch"] == 2
    make_runner(tmp_path / "cut", ByEpoch(values), resume="auto", checkpoint={"save_best": "val/acc"}).run()
    a, b = (torch.load(tmp_path / d / "checkpoints/best.pt", weights_only=True) for d in ("full", "cut"))
    assert a["best"] == b["best"] == {"metric": "val/acc", "value": 0.9, "rule": "greater", "epoch": 3, "iter": 15}
    assert tensors_equal(a["model"], b["model"])


def test_save_best_naming_no_metric_fails_at_the_first_validation(tmp_path):
    with pytest.raises(ValueError, match=r"trainer.checkpoint.save_best='val/psnr' is not among .*'val/acc'"):
        make_runner(tmp_path, Scripted([0.5] * 5), checkpoint={"save_best": "val/psnr", "rule": "greater"}).run()


@pytest.mark.parametrize("options, message", [
    ({"max_keep": -1}, r"trainer.checkpoint.max_keep must be an integer >= 0 or null.*got -1"),
    ({"max_keep": True}, r"trainer.checkpoint.max_keep must be an integer >= 0 or null.*got True"),
    ({"save_best": "val/acc", "top_k": 0}, r"trainer.checkpoint.top_k must be an integer >= 1, got 0"),
    ({"save_best": "val/acc", "rule": "max"}, r"trainer.checkpoint.rule='max' is not valid; allowed: 'greater'"),
    ({"rule": "less"}, r"rule and top_k need trainer.checkpoint.save_best"),
    ({"save_best": "val/psnr"}, r"cannot infer whether 'val/psnr' is better greater or less"),
    ({"save_best": ""}, r"trainer.checkpoint.save_best must be a metric name"),
])
def test_bad_checkpoint_options_are_named(tmp_path, options, message):
    with pytest.raises(ValueError, match=message):
        make_runner(tmp_path, checkpoint=options)


def test_unknown_checkpoint_option_is_named(tmp_path):
    with pytest.raises(TypeError, match=r"unknown trainer.checkpoint option\(s\) \['max_keep_ckpts'\]"):
        make_runner(tmp_path, checkpoint={"max_keep_ckpts": 3})


# ------------------------------------------------------------------ load_from
def tiny_convnext(out_indices=(3,)):
    return ConvNeXt(1, depths=(1, 1, 1, 1), channels=(4, 8, 8, 8), stem_patch_size=2, out_indices=out_indices)


class Detector(nn.Module):
    """A detector-style model: a ConvNeXt backbone with more outputs, a neck and an RPN-style head."""

    def __init__(self):
        super().__init__()
        self.backbone = tiny_convnext(out_indices=(1, 2, 3))
        self.neck = nn.Linear(8, 8)
        self.rpn_head = nn.ModuleDict({"cls": nn.Conv2d(8, 3, 1), "reg": nn.Conv2d(8, 12, 1)})


def trained_classifier_checkpoint(tmp_path, classes=4):
    """A real trainkit checkpoint of a ConvNeXt classifier, after one short epoch."""
    torch.manual_seed(0)
    model = ConvNeXtClassifier(tiny_convnext(), nn.Linear(8, classes), input_size=16)
    g = torch.Generator().manual_seed(0)
    ds = TensorDataset(torch.rand(16, 1, 8, 8, generator=g), torch.randint(0, classes, (16,), generator=g))
    Runner(model, torch.optim.AdamW(model.parameters(), lr=0.01), ds, max_epochs=1, batch_size=8,
           work_dir=tmp_path / "pre", progress=False).run()
    return tmp_path / "pre" / "checkpoints" / "last.pt", model


# Hand counts for tiny_convnext: a block has 9 entries (gamma, depthwise_conv w/b, norm w/b,
# pointwise_conv1 w/b, pointwise_conv2 w/b), 4 blocks; 4 downsample layers of conv w/b + LN w/b;
# one LayerNorm (w/b) per out index.
BACKBONE_ONE_OUT = 4 * 9 + 4 * 4 + 2          # 54 (out_indices (3,))


def test_key_report_for_a_classifier_to_detector_prefix_map(tmp_path, caplog):
    path, classifier = trained_classifier_checkpoint(tmp_path)
    detector = Detector()
    neck_before = detector.neck.weight.detach().clone()
    report = ckpt_io.load_weights(detector, path, {"backbone": "backbone"})
    # the detector: 54 + norm1, norm2 (4) backbone entries, neck (2), rpn_head (4)
    assert report.total == BACKBONE_ONE_OUT + 4 + 2 + 4 == 64
    assert len(report.loaded) == BACKBONE_ONE_OUT
    assert report.missing == ["backbone.norm1.weight", "backbone.norm1.bias", "backbone.norm2.weight",
                              "backbone.norm2.bias", "neck.weight", "neck.bias", "rpn_head.cls.weight",
                              "rpn_head.cls.bias", "rpn_head.reg.weight", "rpn_head.reg.bias"]
    assert report.unexpected == [] and report.mismatched == []
    assert report.skipped == ["head.weight", "head.bias"]
    assert report.source == "trainkit checkpoint at epoch 1, iter 2, prefix map {'backbone': 'backbone'}"
    for k, v in classifier.backbone.state_dict().items():
        assert torch.equal(detector.backbone.state_dict()[k], v)
    assert torch.equal(detector.neck.weight, neck_before)
    text = str(report)
    assert "loaded 54 of 64 model entries" in text
    assert ("missing 10 (left as initialised): backbone.norm1.weight, backbone.norm1.bias, backbone.norm2.weight, "
            "backbone.norm2.bias, neck.weight, ... (+5 more)") in text
    assert "not selected by trainer.load_from_prefix 2: head.weight, head.bias" in text

    # without the map: the head is unexpected, the rest the same
    report = ckpt_io.load_weights(Detector(), path)
    assert len(report.loaded) == BACKBONE_ONE_OUT and report.unexpected == ["head.weight", "head.bias"]
    assert "unexpected 2 (not loaded): head.weight, head.bias" in str(report)


def test_shape_mismatch_is_reported_and_left_as_initialised(tmp_path):
    path, _ = trained_classifier_checkpoint(tmp_path, classes=4)
    torch.manual_seed(1)
    target = ConvNeXtClassifier(tiny_convnext(), nn.Linear(8, 10))
    head_before = target.head.weight.detach().clone()
    report = ckpt_io.load_weights(target, path)
    assert report.mismatched == [("head.weight", (4, 8), (10, 8)), ("head.bias", (4,), (10,))]
    assert len(report.loaded) == BACKBONE_ONE_OUT and report.missing == [] and report.unexpected == []
    assert "shape-mismatched 2 (left as initialised): head.weight [4, 8] in the file vs [10, 8] in the model" \
        in str(report)
    assert torch.equal(target.head.weight, head_before)
    with pytest.raises(ValueError, match=r"shape-mismatched 2.*\ntrainer.load_from_strict=true"):
        ckpt_io.load_weights(target, path, strict=True)


def tiny_state():
    """The weights in tests/reference/mmengine_*.pth: entry i is i + 0.01 * arange(numel)."""
    state = TinyMM().state_dict()
    return OrderedDict((k, (i + 0.01 * torch.arange(v.numel())).reshape(v.shape).to(v.dtype))
                       for i, (k, v) in enumerate(state.items()))


class TinyMM(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
        self.head = nn.Linear(2, 3)


@pytest.mark.parametrize("layout, source", [
    ("plain", "a plain state_dict"),
    ("mmengine", "the 'state_dict' entry"),
    ("timm_ddp", "the 'model' entry, 'module.' prefix removed"),
    ("deepspeed", "the 'module' entry"),
    ("nested", "the 'state_dict' → 'model' entry"),
])
def test_foreign_layouts_load(tmp_path, layout, source):
    sd = tiny_state()
    files = {"plain": sd, "mmengine": {"meta": {"epoch": 3}, "state_dict": sd, "optimizer": {}},
             "timm_ddp": {"model": {f"module.{k}": v for k, v in sd.items()}, "epoch": 3},
             "deepspeed": {"module": sd, "global_steps": 7}, "nested": {"state_dict": {"model": sd}}}
    torch.save(files[layout], tmp_path / "w.pth")
    model = TinyMM()
    report = ckpt_io.load_weights(model, tmp_path / "w.pth")
    assert report.source == source and len(report.loaded) == 9 == report.total
    assert tensors_equal(model.state_dict(), sd)


def test_openmmlab_published_checkpoint_loads(tmp_path):
    """A file written by mmengine's own save_checkpoint (tests/reference/mmengine_published.pth)."""
    model = TinyMM()
    report = ckpt_io.load_weights(model, REF_DIR / "mmengine_published.pth")
    assert report.source == "the 'state_dict' entry" and len(report.loaded) == 9
    assert tensors_equal(model.state_dict(), tiny_state())


def test_lightning_style_file_with_a_prefix_map(tmp_path):
    """Lightning stores the LightningModule's attributes: {'state_dict': {'net.backbone...'}}."""
    sd = tiny_state()
    torch.save({"state_dict": {f"net.{k}": v for k, v in sd.items()}, "epoch": 1}, tmp_path / "l.ckpt")
    model = TinyMM()
    report = ckpt_io.load_weights(model, tmp_path / "l.ckpt", {"net": "."})
    assert len(report.loaded) == 9 and tensors_equal(model.state_dict(), sd)
    # a bare backbone file under a model's backbone: {.: backbone}
    torch.save(TinyMM().backbone.state_dict(), tmp_path / "bb.pt")
    report = ckpt_io.load_weights(TinyMM(), tmp_path / "bb.pt", {".": "backbone"})
    assert len(report.loaded) == 7 and report.missing == ["head.weight", "head.bias"]


def test_prefix_map_picks_the_longest_source_and_refuses_collisions():
    state = {"backbone.stem.w": 1, "backbone.stages.0.w": 2, "backbone2.w": 3, "head.w": 4}
    out, skipped = ckpt_io.remap_keys(state, {"backbone": "enc", "backbone.stages": "blocks"})
    assert out == {"enc.stem.w": 1, "blocks.0.w": 2} and skipped == ["backbone2.w", "head.w"]
    with pytest.raises(ValueError, match=r"'backbone.stem.w' and 'head.w' both become 'x.w'"):
        ckpt_io.remap_keys({"backbone.stem.w": 1, "head.w": 2}, {"backbone.stem": "x", "head": "x"})


class Payload:
    """Unpickling this would create a directory: the test checks that it never happens."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def test_a_file_that_would_run_code_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"state_dict": tiny_state(), "extra": Payload(marker)}, tmp_path / "evil.pth")
    with pytest.raises(ckpt_io.UnsafeCheckpointError, match=r"\(posix.mkdir\).*loaded nothing.*weights_only=False"):
        ckpt_io.load_weights(TinyMM(), tmp_path / "evil.pth")
    assert not marker.exists()


def test_an_openmmlab_runner_checkpoint_is_refused_naming_its_objects():
    """mmengine's Runner also saves the message hub (HistoryBuffer objects, numpy arrays)."""
    with pytest.raises(ckpt_io.UnsafeCheckpointError,
                       match=r"mmengine_runner.pth.*mmengine.logging.history_buffer.HistoryBuffer"):
        ckpt_io.load_weights(TinyMM(), REF_DIR / "mmengine_runner.pth")


def test_trainkit_checkpoints_load_weights_only(tmp_path):
    """Every key of a trainkit checkpoint (RNG states included) is weights-only loadable, and the
    numpy RNG state round-trips."""
    import numpy as np

    make_runner(tmp_path, max_epochs=1).run()
    state = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    np.random.seed(3)
    before = np.random.get_state()
    saved = ckpt_io.rng_state()
    np.random.rand(5)
    ckpt_io.set_rng_state(saved)
    after = np.random.get_state()
    assert before[0] == after[0] and np.array_equal(before[1], after[1]) and before[2:] == after[2:]
    assert state["format"] == ckpt_io.FORMAT


def test_a_legacy_format_file_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"state_dict": tiny_state(), "x": Payload(marker)}, tmp_path / "old.pt",
               _use_new_zipfile_serialization=False)
    with pytest.raises(ckpt_io.UnsafeCheckpointError, match=r"old.pt': the file holds Python .*\(posix.mkdir\)"):
        ckpt_io.load_weights(TinyMM(), tmp_path / "old.pt")
    assert not marker.exists()


@pytest.mark.parametrize("kind, message", [
    ("text", r"f.pt': not a readable torch file \(UnpicklingError: Unsupported operand 110\); nothing was loaded"),
    ("pickle", r"f.pt': the file holds Python objects .*\(posix.mkdir\)"),   # pickle.dump, not torch.save
    ("truncated", r"not a readable torch file \(RuntimeError: PytorchStreamReader failed"),
    ("no_weights", r"found no state_dict .* it holds \['epoch', 'name'\]"),
])
def test_unreadable_files_are_named(tmp_path, kind, message):
    import pickle

    path = tmp_path / "f.pt"
    if kind == "text":
        path.write_bytes(b"not a checkpoint")
    elif kind == "pickle":
        path.write_bytes(pickle.dumps({"x": Payload(tmp_path / "pwned")}, protocol=2))
    elif kind == "truncated":
        torch.save(tiny_state(), path)
        path.write_bytes(path.read_bytes()[:600])
    else:
        torch.save({"epoch": 3, "name": "x"}, path)
    with pytest.raises(ValueError, match=message):
        ckpt_io.load_weights(TinyMM(), path)
    assert not (tmp_path / "pwned").exists()


def test_nothing_matching_is_an_error_even_when_not_strict(tmp_path):
    torch.save({"encoder.w": torch.zeros(2)}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match=r"nothing to load.*start \['encoder.w'\].*trainer.load_from_prefix"):
        ckpt_io.load_weights(TinyMM(), tmp_path / "x.pt")


def test_find_load_from_glob_directory_and_missing(tmp_path):
    old, new = tmp_path / "runs/a/checkpoints/last.pt", tmp_path / "runs/b/checkpoints/last.pt"
    for p, t in ((old, 100), (new, 200)):
        p.parent.mkdir(parents=True)
        p.write_bytes(b"x")
        os.utime(p, (t, t))
    assert ckpt_io.find_load_from(str(tmp_path / "runs/*/checkpoints/last.pt")) == new
    assert ckpt_io.find_load_from(tmp_path / "runs/a") == old
    with pytest.raises(FileNotFoundError, match=r"no file matches.*trainer.load_from=null"):
        ckpt_io.find_load_from(str(tmp_path / "none/*/last.pt"))
    with pytest.raises(FileNotFoundError, match=r"trainer.load_from=.*no such file"):
        ckpt_io.find_load_from(tmp_path / "nope.pt")


def test_load_from_starts_a_fresh_run_and_resume_wins(tmp_path, caplog):
    src = make_runner(tmp_path / "src", max_epochs=2)
    src.run()
    pre = tmp_path / "src" / "checkpoints" / "last.pt"
    seen = {}

    class Probe:
        def before_run(self, run):
            seen.update(w=run.unwrapped_model.head.weight.detach().clone(), opt=dict(run.optimizer.state),
                        counters=(run.epoch, run.iter))

    r = make_runner(tmp_path / "ft", max_epochs=1, seed=5, load_from=str(pre), components={"probe": Probe()})
    r.run()
    assert seen["counters"] == (0, 0)
    assert torch.equal(seen["w"], src.unwrapped_model.head.weight) and seen["opt"] == {}   # weights only
    assert r.load_report is not None and len(r.load_report.loaded) == 4
    # resuming a fine-tune: the run's own checkpoint wins, load_from is not read
    with caplog.at_level(logging.INFO, logger="trainkit"):
        again = make_runner(tmp_path / "ft", max_epochs=2, load_from=str(tmp_path / "gone.pt"), resume="auto")
        again.run()
    assert again.load_report is None and again.iter == 10
    assert "trainer.load_from=" in caplog.text and "not used: resuming from" in caplog.text


@pytest.mark.parametrize("options, message", [
    ({"load_from_prefix": {"backbone": 3}, "load_from": "x.pt"}, r"load_from_prefix=.* is not valid; allowed: a map"),
    ({"load_from_prefix": ["backbone"], "load_from": "x.pt"}, r"load_from_prefix=.* is not valid; allowed: a map"),
    ({"load_from_strict": "yes"}, r"trainer.load_from_strict='yes' is not valid; allowed: true or false"),
    ({"load_from": 3}, r"trainer.load_from=3 is not valid; allowed: "),
])
def test_bad_load_from_options_are_named(tmp_path, options, message):
    with pytest.raises(ValueError, match=message):
        make_runner(tmp_path, **options)


# ------------------------------------------------------------------ kill -9
MAX_KEEP = 2


def _child(work_dir, kill_at, after, resume):
    """In a forked child: train, and SIGKILL this process at the ``kill_at``-th file operation of
    the checkpoint code (``os.replace`` of a finished temporary file, ``os.unlink`` of a file
    retention drops), just before it (``after=False``) or just after."""
    torch.set_num_threads(1)
    count = [0]

    def wrap(fn):
        def op(*args, **kwargs):
            count[0] += 1
            if count[0] == kill_at and not after:
                os.kill(os.getpid(), signal.SIGKILL)
            out = fn(*args, **kwargs)
            if count[0] == kill_at and after:
                os.kill(os.getpid(), signal.SIGKILL)
            return out
        return op

    os.replace, os.unlink = wrap(os.replace), wrap(os.unlink)
    make_runner(work_dir, ByEpoch([0.3, 0.5, 0.8, 0.6, 0.2, 0.7]), max_epochs=6, checkpoint_interval_iters=2,
                resume="auto" if resume else None, checkpoint={"max_keep": MAX_KEEP, "save_best": "val/acc"}).run()


def _fork(*args):
    pid = os.fork()
    if pid == 0:   # the child never returns into pytest
        code = 1
        try:
            _child(*args)
            code = 0
        finally:
            os._exit(code)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    raise AssertionError("the child run hung")


def checkpoint_files(d):
    """The run's checkpoint files (temporary files of an interrupted write are issue 15's to clean)."""
    return [n for n in names(d / "checkpoints") if not n.startswith(".")]


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_killed_run_never_leaves_more_than_max_keep_last_and_best(tmp_path):
    """6 epochs of 5 iterations, an iteration checkpoint every 2: each run is killed at a seeded random
    file operation of its checkpoint writes (before or after it), then resumed, until it finishes.
    After every kill: at most MAX_KEEP periodic files, last.pt and best.pt. At the end: exactly the
    newest two periodic checkpoints (epoch_6 holds iteration 30, iter_28), last.pt, and best.pt of
    epoch 3, equal to an uninterrupted run's."""
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)   # imports torch._dynamo once, before forking
    assert _fork(tmp_path / "full", 0, False, False) == 0
    rng = random.Random(16)
    run = tmp_path / "run"
    kills, finished = 0, False
    while not finished and kills < 30:
        after = rng.random() < 0.5
        status = _fork(run, rng.randint(1, 12), after, kills > 0)
        finished = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        assert finished or (os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL), status
        kills += not finished
        files = checkpoint_files(run)
        periodic = [n for n in files if ckpt_io.PERIODIC.match(n)]
        assert len(periodic) <= MAX_KEEP and set(files) - set(periodic) <= {"last.pt", "best.pt"}, files
    assert finished and kills >= 3
    assert checkpoint_files(run) == ["best.pt", "epoch_6.pt", "iter_28.pt", "last.pt"]
    best, full = (torch.load(d / "checkpoints" / "best.pt", weights_only=True) for d in (run, tmp_path / "full"))
    assert best["best"] == full["best"] == {"metric": "val/acc", "value": 0.8, "rule": "greater", "epoch": 3,
                                            "iter": 15}
    assert tensors_equal(best["model"], full["model"])


# ------------------------------------------------------------------ the recipes
TINY = ["model.backbone.channels=[4,8,8,8]", "model.head.in_features=8", "trainer.max_epochs=1",
        "trainer.progress=false", "logger=none"]


@pytest.mark.slow
def test_convnext_layer_decay_fine_tunes_from_a_convnext_pretrain_run(make_cfg, tmp_path, monkeypatch, caplog):
    """The two recipes as the README runs them, tiny: the pre-training's last.pt is found by the
    recipe's glob (relative to the working directory), its backbone is loaded, its 5-class head is not."""
    from trainkit.build import build_runner
    from trainkit.cli.train import run_config

    monkeypatch.chdir(tmp_path)
    run_config(make_cfg("+recipe=convnext_pretrain", *TINY), tmp_path / "outputs/convnext_pretrain/t1")
    pre = torch.load(tmp_path / "outputs/convnext_pretrain/t1/checkpoints/last.pt", weights_only=True)["model"]
    assert pre["head.weight"].shape == (5, 8)
    with caplog.at_level(logging.INFO, logger="trainkit"):
        cfg = make_cfg("+recipe=convnext_layer_decay", *TINY, "+components.snap={_target_:helpers.Snapshot}")
        runner = build_runner(cfg, tmp_path / "outputs/convnext_layer_decay/t2")
        runner.run()
    start = runner.components["snap"].state
    backbone = [k for k in pre if k.startswith("backbone.")]
    assert all(torch.equal(start[k], pre[k]) for k in backbone) and start["head.weight"].shape == (10, 8)
    report = runner.load_report
    assert report.path.endswith("outputs/convnext_pretrain/t1/checkpoints/last.pt")
    assert report.loaded == backbone and report.missing == report.skipped == ["head.weight", "head.bias"]
    assert f"loaded {len(backbone)} of {len(backbone) + 2} model entries" in caplog.text
    assert (tmp_path / "outputs/convnext_layer_decay/t2/checkpoints/best.pt").is_file()


def test_missing_pretraining_fails_before_the_run_and_says_what_to_do(make_cfg, tmp_path, monkeypatch):
    from trainkit.build import build_runner

    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"convnext_pretrain/\*/checkpoints/last.pt'.*trainer.load_from=null"):
        build_runner(make_cfg("+recipe=convnext_layer_decay", *TINY), tmp_path / "run")


def test_digits_classes_subset():
    from trainkit.tasks.digits import digits_data, load_digits_arrays

    _, ty, _, vy = load_digits_arrays()
    sub = digits_data(classes=[0, 1, 2, 3, 4])
    assert len(sub.train) == int((ty < 5).sum()) and len(sub.val) == int((vy < 5).sum())
    assert set(sub.train.tensors[1].tolist()) == {0, 1, 2, 3, 4}
    with pytest.raises(ValueError, match=r"data.classes must be 0..n-1 \(labels are not renumbered\), got \[5, 6\]"):
        digits_data(classes=[5, 6])
    with pytest.raises(ValueError, match=r"data.classes must be distinct digits 0..9, got \[\]"):
        digits_data(classes=[])
