"""SiamRPN tracking: boxes/anchors/targets/losses, metrics, crops, data, folder reader, unfreezing, end to end.

Expected values are computed by hand (in comments) or by independent means
(``grid_sample`` for the crop), never taken from the code under test.
"""
import json
import math
import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from trainkit.core.record import read_jsonl
from trainkit.tasks.sot import boxes as B
from trainkit.tasks.sot import metrics as M
from trainkit.tasks.sot.data import PairDataset, context_side, crop, tracking_data
from trainkit.tasks.sot.model import SiamRPN
from trainkit.tasks.sot.sequences import Sequence, read_sequence, write_sequence
from trainkit.tasks.sot.synth import make_sequence, make_sequences
from trainkit.tasks.sot.tracker import SiamRPNTracker
from trainkit.tasks.sot.unfreeze import BackboneUnfreeze
from trainkit.build import build_runner
from trainkit.cli.train import run_config

TINY = ["+recipe=siamese_rpn", "components.lr=null", "trainer.progress=false", "model.width=8",
        "data.train_sequences=4", "data.train_frames=6", "data.val_sequences=2", "data.val_frames=8",
        "data.frame_size=64", "data.pairs_per_epoch=16", "trainer.batch_size=8", "trainer.max_epochs=2",
        "trainer.val_interval=1", "trainer.log_interval=1", "components.unfreeze.start_epoch=1"]


# ----------------------------------------------------------------------------- boxes
def test_iou_hand_computed():
    a = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]])
    b = torch.tensor([[5.0, 5, 15, 15], [2, 2, 6, 6], [10, 0, 20, 10], [0, 0, 10, 10]])
    # 25 / (100 + 100 - 25); 16 / 100 (contained); touching edges; identical
    assert torch.allclose(B.iou(a, b), torch.tensor([25 / 175, 0.16, 0.0, 1.0]))
    gt = np.array([[0.0, 0, 10, 10], [0, 0, 10, 10]])
    pred = np.array([[5.0, 5, 10, 10], [20, 20, 4, 4]])    # xywh
    assert np.allclose(M.iou_xywh(pred, gt), [25 / 175, 0.0])
    assert np.allclose(M.center_error(pred, gt), [math.hypot(5, 5), math.hypot(17, 17)])


def test_anchors_window_and_coder_hand_computed():
    # score 3x3, stride 4, base 4 * 2 = 8, search 16: centres 16/2 + (j - 1) * 4 = 4, 8, 12
    a = B.make_anchors(3, 4, [0.25, 1.0, 4.0], 2.0, 16)
    assert a.shape == (27, 4)
    assert a[0].tolist() == [4, 4, 16, 4]          # ratio h/w 0.25: w = 8 / 0.5, h = 8 * 0.5
    assert a[9 + 5].tolist() == [12, 8, 8, 8]      # ratio 1, row 1, column 2
    assert a[18 + 6].tolist() == [4, 12, 4, 16]    # ratio 4, row 2, column 0
    w = B.hanning_window(5, 2)                     # hanning(5) = 0, .5, 1, .5, 0
    assert w.shape == (50,) and w[7].item() == pytest.approx(0.5) and w[25 + 12].item() == pytest.approx(1.0)
    anchors = torch.tensor([[10.0, 10, 4, 8]])
    gt = torch.tensor([[12.0, 6, 8, 8]])
    d = B.encode(anchors, gt)
    assert torch.allclose(d, torch.tensor([[0.5, -0.5, math.log(2), 0.0]]))
    assert torch.allclose(B.decode(anchors, d), gt)


def _small_model(**kw):
    # template 16, search 32 -> score map (32 - 16) / 4 + 1 = 5; one square anchor of side 16
    return SiamRPN(template_size=16, search_size=32, width=8, anchor_ratios=[1.0], **kw)


def test_target_assignment_hand_computed():
    m = _small_model()
    assert m.score_size == 5
    # gt = the centre anchor (16, 16, 16, 16). Shift by 4 in x: 12*16 / (512 - 192) = 0.6 -> fg.
    # Diagonal (4, 4): 144 / 368 = 0.39, shift (8, 0): 128 / 384 = 0.33 -> ignored.
    # Shift (8, 4): 96 / 416 = 0.23, (8, 8): 64 / 448 = 0.14 -> bg.  5 fg, 8 ignored, 12 bg.
    gt = torch.tensor([[8.0, 8, 24, 24]])
    labels, weight, deltas, box_w = m.targets(gt, torch.tensor([True]))
    grid = labels.reshape(5, 5)
    expect_fg = torch.zeros(5, 5, dtype=torch.long)
    expect_fg[2, 1:4] = 1
    expect_fg[1:4, 2] = 1
    assert torch.equal(grid, expect_fg)
    w = weight.reshape(5, 5)
    assert torch.allclose(w[expect_fg.bool()], torch.full((5,), 1 / 10))     # 1 / (2 n_fg)
    ignored = torch.tensor([[1, 1], [1, 3], [3, 1], [3, 3], [2, 0], [2, 4], [0, 2], [4, 2]])
    assert (w[ignored[:, 0], ignored[:, 1]] == 0).all()
    assert ((w > 0) & ~expect_fg.bool()).sum() == 12 and torch.allclose(w[0, 0], torch.tensor(1 / 24))
    assert torch.allclose(box_w.reshape(5, 5)[expect_fg.bool()], torch.full((5,), 0.2))
    # anchor at column 3 (centre x 20): dx = (16 - 20) / 16
    assert torch.allclose(deltas[0, 13], torch.tensor([-0.25, 0, 0, 0]))

    # sampling: at most num_samples * pos_fraction fg, then min(num_samples - n_fg, 0.75 num_samples) bg
    m = _small_model(num_samples=8, pos_fraction=0.25)
    labels, weight, _, _ = m.targets(gt.repeat(3, 1), torch.tensor([True, True, True]))
    assert (labels.sum(1) == 2).all() and (((weight > 0) & (labels == 0)).sum(1) == 6).all()
    assert (labels.bool() <= expect_fg.reshape(1, -1).bool()).all()        # a subset of the fg anchors

    # negative pair: no fg; num_neg_pair bg drawn from the 7x7 cells around the target (all 25 here)
    m = _small_model()
    labels, weight, _, box_w = m.targets(gt, torch.tensor([False]))
    assert labels.sum() == 0 and box_w.sum() == 0
    assert (weight > 0).sum() == 16 and torch.allclose(weight[weight > 0], torch.tensor(1 / 32))


def test_losses_hand_computed():
    """Zero final convs: every logit 0 and every delta 0. Cross-entropy is log 2 per anchor and
    the weights sum to 1/2 + 1/2, so loss_cls = log 2. The 5 fg anchors have targets 0 (centre)
    and a single +-0.25 offset (4 neighbours): smooth-L1 (beta 1/9) of 0.25 = 0.25 - 0.5/9,
    so loss_box = 1.2 * 4 * (0.25 - 1/18) / 5."""
    torch.manual_seed(0)
    m = _small_model()
    for head in (m.cls_head, m.reg_head):
        torch.nn.init.zeros_(head.head[-1].weight)
        torch.nn.init.zeros_(head.head[-1].bias)
    batch = {"template": torch.rand(2, 3, 16, 16), "search": torch.rand(2, 3, 32, 32),
             "box": torch.tensor([[8.0, 8, 24, 24]] * 2), "positive": torch.tensor([True, True])}
    out = m(batch)
    assert out["loss_cls"].item() == pytest.approx(math.log(2), rel=1e-6)
    assert out["loss_box"].item() == pytest.approx(1.2 * 4 * (0.25 - 1 / 18) / 5, rel=1e-6)
    assert out["num_pos"].item() == 5
    out["loss"].backward()
    assert m.backbone.layer1[0][0].weight.grad is not None


def test_model_rejects_bad_sizes():
    with pytest.raises(ValueError, match="model.search_size=30"):
        SiamRPN(template_size=16, search_size=30)
    with pytest.raises(ValueError, match="model.search_size=16 must exceed model.template_size=16"):
        SiamRPN(template_size=16, search_size=16)


# ----------------------------------------------------------------------------- metrics
def test_success_auc_and_precision_hand_computed():
    # thresholds 0, .05, ..., 1 (21); success counts IoU > t:
    # 1.0 passes 20 thresholds (not t = 1), 0.5 passes 10 (0 .. .45), 0.0 none, 0.72 passes 15 (0 .. .70)
    ious = np.array([1.0, 0.5, 0.0, 0.72])
    assert M.success_auc(ious) == pytest.approx((20 + 10 + 0 + 15) / (4 * 21))
    assert M.precision(np.array([0.0, 19.9, 20.0, 20.1, 35.0])) == pytest.approx(3 / 5)   # <= 20 px
    # two sequences weigh the same: seq 1 perfect (AUC 20/21, precision 1),
    # seq 2: frame 0 perfect, frame 1 disjoint and 30 px away (AUC 10/21, precision 1/2)
    gt1 = np.array([[0.0, 0, 10, 10]] * 3)
    gt2 = np.array([[0.0, 0, 10, 10], [0, 0, 10, 10]])
    pred2 = np.array([[0.0, 0, 10, 10], [30, 0, 10, 10]])
    r = M.ope([gt1.copy(), pred2], [gt1, gt2])
    assert r["success_auc"] == pytest.approx((20 / 21 + 10 / 21) / 2)
    assert r["precision_20px"] == pytest.approx((1 + 0.5) / 2)


# ----------------------------------------------------------------------------- crops and data
def test_crop_matches_grid_sample_and_pads_with_mean():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    img = torch.from_numpy(frame).permute(2, 0, 1).float() / 255
    mean = img.mean((1, 2), keepdim=True)
    for cx, cy, w, h, out in [(15.0, 10.0, 30.0, 20.0, 30), (3.3, 17.8, 25.0, 11.0, 16), (28.0, 2.0, 40.0, 40.0, 8)]:
        theta = torch.tensor([[[w / 30, 0, 2 * cx / 30 - 1], [0, h / 20, 2 * cy / 20 - 1]]])
        grid = F.affine_grid(theta, [1, 3, out, out], align_corners=False)
        ref = F.grid_sample((img - mean)[None], grid, align_corners=False)[0] + mean
        assert np.allclose(crop(frame, cx, cy, w, h, out), ref.numpy(), atol=1e-5)
    square = frame[:20, :20]
    ident = crop(square, 10.0, 10.0, 20.0, 20.0, 20)           # the whole frame at its own size
    assert np.allclose(ident, square.transpose(2, 0, 1) / 255, atol=1e-6)
    far = crop(frame, -100.0, -100.0, 10.0, 10.0, 4)          # entirely outside: the mean colour
    assert np.allclose(far, mean.numpy() * np.ones((3, 4, 4)), atol=1e-6)


def test_generated_sequences_are_deterministic_and_valid():
    kw = dict(frames=6, frame_size=64)
    a = make_sequence(3, "train", 1, **kw)
    b = make_sequences(3, "train", 2, **kw)[1]       # index 1 does not depend on how many are made
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.boxes, b.boxes)
    c = make_sequence(4, "train", 1, **kw)
    assert not np.array_equal(a.frames, c.frames)
    assert a.frames.shape == (6, 64, 64, 3) and a.frames.dtype == np.uint8
    for s in (a, c, make_sequence(3, "val", 0, **kw)):
        x, y, w, h = s.boxes.T
        assert (x >= 0).all() and (y >= 0).all() and (x + w <= 64).all() and (y + h <= 64).all() and (w >= 4).all()
    with pytest.raises(ValueError, match="split='test'"):
        make_sequence(0, "test", 0)


def test_pair_geometry_without_augmentation():
    """No shift/scale: the target sits at the search crop's centre, scaled by S / s_x with
    s_x = sqrt((w + p)(h + p)) * S / T, p = (w + h) / 2."""
    frames = np.zeros((2, 100, 100, 3), np.uint8)
    seq = Sequence("s", np.array([[40.0, 30, 20, 10]] * 2), frames=frames)
    ds = PairDataset([seq], 4, 32, 64, 0.5, neg_prob=0.0, template_shift=0, template_scale=0,
                     search_shift=0, search_scale=0)
    item = ds[0]
    s_x = math.sqrt((20 + 15) * (10 + 15)) * 64 / 32
    f = 64 / s_x
    assert torch.allclose(item["box"], torch.tensor([32 - 10 * f, 32 - 5 * f, 32 + 10 * f, 32 + 5 * f]))
    assert item["template"].shape == (3, 32, 32) and item["search"].shape == (3, 64, 64)
    assert context_side(20.0, 10.0, 0.5) == pytest.approx(math.sqrt(35 * 25))
    torch.manual_seed(5)
    x = PairDataset([seq, seq], 4, 32, 64)[1]
    torch.manual_seed(5)
    y = PairDataset([seq, seq], 4, 32, 64)[1]
    assert all(torch.equal(x[k], y[k]) for k in x)       # same global RNG state -> same pair


# ----------------------------------------------------------------------------- folder layout
@pytest.fixture
def got10k(tmp_path):
    seqs = make_sequences(0, "train", 3, frames=5, frame_size=64)
    for s in seqs:
        write_sequence(s, tmp_path / "root" / "train" / s.name)
    return tmp_path / "root", seqs


def test_folder_reader_reads_generated_sample(got10k):
    root, seqs = got10k
    s = read_sequence(root / "train" / seqs[1].name)
    assert len(s) == 5 and np.array_equal(s.boxes, seqs[1].boxes)
    assert np.array_equal(s.frame(4), seqs[1].frames[4])       # PNG is lossless
    data = tracking_data(str(root), val_sequences=1, template_size=16, search_size=32, frame_size=64,
                         pairs_per_epoch=4)
    assert [q.name for q in data.val.sequences] == [seqs[2].name]
    assert [q.name for q in data.train.sequences] == [seqs[0].name, seqs[1].name]
    assert data.train[0]["search"].shape == (3, 32, 32)


def _break(folder, kind):
    gt = folder / "groundtruth.txt"
    lines = gt.read_text().splitlines()
    if kind == "missing_frame":
        (folder / "00000003.png").unlink()
    elif kind == "malformed":
        lines[1] = "1,2,three,4"
    elif kind == "short":
        lines = lines[:-1]
    elif kind == "outside":
        lines[3] = "500,10,8,8"
    elif kind == "bad_size":
        lines[0] = "1,2,0,4"
    gt.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("kind, pattern", [
    ("missing_frame", r"00000003\.png: missing frame \(the frame of .*groundtruth\.txt line 3\)"),
    ("malformed", r"groundtruth\.txt line 2: expected four numbers x,y,w,h, got '1,2,three,4'"),
    ("short", r"groundtruth\.txt: 4 lines for 5 frames; line 5 \(the box of 00000005\.png\) is missing"),
    ("outside", r"groundtruth\.txt line 4: box x,y,w,h = 500,10,8,8 lies outside the 64x64 frame 00000004\.png"),
    ("bad_size", r"groundtruth\.txt line 1: width and height must be > 0"),
])
def test_bad_folder_fails_before_training_naming_file_and_line(got10k, make_cfg, tmp_path, kind, pattern):
    root, seqs = got10k
    _break(root / "train" / seqs[1].name, kind)
    cfg = make_cfg(*TINY, f"data.root={root}", "data.val_sequences=1")
    with pytest.raises(ValueError, match=pattern) as info:
        build_runner(cfg, tmp_path / "run")
    assert seqs[1].name in str(info.value)
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- tracker
class _StubModel:
    """Two anchors with fixed outputs, to check the SiamRPN update by hand."""

    template_size, search_size, context_amount = 32, 64, 0.5
    anchors = torch.zeros(2, 4)
    window = torch.tensor([0.0, 1.0])

    def template_kernels(self, z):
        return (z, z)

    def predict(self, kernels, x):
        scores = torch.tensor([[0.9, 0.5]]).repeat(x.shape[0], 1)
        boxes = torch.tensor([[[40.0, 32, 16, 16], [32, 32, 32, 16]]]).repeat(x.shape[0], 1, 1)
        return scores, boxes


def test_tracker_update_hand_computed():
    frames = np.zeros((2, 100, 100, 3), np.uint8)
    seq = Sequence("s", np.array([[42.0, 42, 16, 16]] * 2), frames=frames)
    preds = SiamRPNTracker(_StubModel(), penalty_k=0.05, window_influence=0.42, size_lr=0.38).track([seq])[0]
    # Worked by hand (values to 4 digits; the literals below are these numbers, not the code's formula):
    # state: centre (50, 50), size 16x16; s_z = sqrt(32 * 32) = 32, k = T / s_z = 1
    # anchor 0: box 16x16 = previous size -> sc = rc = 1, penalty 1, pscore 0.9 * 0.58 + 0 = 0.522
    # anchor 1: box 32x16: sc = sqrt(56 * 40) / sqrt(32 * 32) = 1.4790, rc = 2,
    #   penalty = exp(-(2 * 1.4790 - 1) * 0.05) = 0.90674, pscore = 0.90674 * 0.5 * 0.58 + 0.42 = 0.68295 > 0.522
    # so anchor 1 wins: lr = 0.90674 * 0.5 * 0.38 = 0.17228; w = 16 * (1 - lr) + 32 * lr = 18.7565, h = 16;
    # the centre stays (the box is centred in the crop): x = 50 - 18.7565 / 2 = 40.6218, y = 50 - 8 = 42
    assert np.allclose(preds[0], [42, 42, 16, 16])
    assert np.allclose(preds[1], [40.62176, 42, 18.75648, 16], atol=1e-4)
    preds = SiamRPNTracker(_StubModel(), window_influence=0.0).track([seq])[0]
    assert np.allclose(preds[1], [50 + 8 - 8, 50 - 8, 16, 16])   # anchor 0: centre moves by (40 - 32) / k


# ----------------------------------------------------------------------------- unfreezing
def test_backbone_unfreeze_freezes_then_trains_listed_layers_with_bn_modes():
    m = _small_model()
    comp = BackboneUnfreeze(start_epoch=2, layers=["layer2", "layer3"])
    runner = SimpleNamespace(unwrapped_model=m, epoch=0)
    comp.before_run(runner)
    for epoch, trains in [(0, set()), (1, set()), (2, {"layer2", "layer3"}), (5, {"layer2", "layer3"})]:
        runner.epoch = epoch
        comp.before_epoch(runner)
        m.train()                            # the Runner calls this after before_epoch
        for name, p in m.backbone.named_parameters():
            assert p.requires_grad == (name.split(".")[0] in trains), (epoch, name)
        for name, mod in m.backbone.named_modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                assert mod.training == (name.split(".")[0] in trains), (epoch, name)
        assert all(p.requires_grad for p in m.cls_head.parameters())
        assert all(mod.training for mod in m.cls_head.modules())
    message = "['layer9'] not in backbone; allowed: ['layer1', 'layer2', 'layer3']"
    with pytest.raises(ValueError, match=re.escape(message)):
        BackboneUnfreeze(1, ["layer9"]).before_run(runner)


# ----------------------------------------------------------------------------- end to end
def test_recipe_trains_end_to_end_with_frozen_then_unfrozen_backbone(make_cfg, tmp_path, capsys):
    cfg = make_cfg(*TINY)
    runner = build_runner(cfg, tmp_path)
    assert runner.group_names == ["backbone", "head"]
    lr = {g["name"]: g["lr"] for g in runner.optimizer.param_groups}
    assert lr["backbone"] == pytest.approx(0.1 * lr["head"])
    assert runner.clip_grad == 10.0
    init = {k: v.clone() for k, v in runner.unwrapped_model.state_dict().items()}
    metrics = runner.run()
    for s in runner.sinks:
        s.close()
    assert set(metrics) == {"val/success_auc", "val/precision_20px", "val/static_success_auc",
                            "val/static_precision_20px"}
    assert all(0.0 <= v <= 1.0 for v in metrics.values())
    ep1 = torch.load(tmp_path / "checkpoints" / "epoch_1.pt", weights_only=False)["model"]
    ep2 = torch.load(tmp_path / "checkpoints" / "epoch_2.pt", weights_only=False)["model"]
    key2, key1 = "backbone.layer2.0.0.weight", "backbone.layer1.0.0.weight"
    assert torch.equal(ep1[key2], init[key2])                 # frozen during epoch 0
    assert not torch.equal(ep2[key2], ep1[key2])              # trained from epoch 1
    assert torch.equal(ep2[key1], init[key1])                 # layer1 is never unfrozen
    assert torch.equal(ep2["backbone.layer1.0.1.running_mean"], init["backbone.layer1.0.1.running_mean"])
    assert not torch.equal(ep1["cls_head.head.1.weight"], init["cls_head.head.1.weight"])
    rows = read_jsonl(tmp_path / "metrics.jsonl")
    assert all("lr/backbone" in r and "lr/head" in r for r in rows if "loss" in r)
    assert sum("val/success_auc" in r for r in rows) == 2
    out = capsys.readouterr().out
    assert "SiamRPN (trained)" in out and "static box (first frame)" in out
    saved = json.loads((tmp_path / "tracking_results.json").read_text())
    assert saved["tracker"]["success_auc"] == pytest.approx(metrics["val/success_auc"])


def test_resume_reproduces_uninterrupted_run(make_cfg, tmp_path):
    full = make_cfg(*TINY)
    run_config(full, tmp_path / "full")
    run_config(make_cfg(*TINY, "trainer.max_epochs=1"), tmp_path / "cut")
    run_config(make_cfg(*TINY, f"trainer.resume={tmp_path / 'cut'}"), tmp_path / "again")
    a = torch.load(tmp_path / "full" / "checkpoints" / "last.pt", weights_only=False)
    b = torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", weights_only=False)
    assert b["counters"] == a["counters"]
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert a["metrics"] == b["metrics"]


def test_recipe_follows_mmtrack_schedule(make_cfg):
    cfg = make_cfg("+recipe=siamese_rpn")
    epochs = cfg.trainer.max_epochs
    assert cfg.components.lr._target_ == "trainkit.schedules.SiameseRPNLrUpdater"
    step, log = cfg.components.lr.lr_configs
    assert (step.type, step.start_lr_factor, step.end_lr_factor, step.end_epoch) == ("step", 0.2, 1.0, epochs // 4)
    assert (log.type, log.start_lr_factor, log.end_lr_factor, log.end_epoch) == ("log", 1.0, 0.1, epochs)
    assert epochs % 4 == 0 and cfg.components.unfreeze.start_epoch == epochs // 2
    assert cfg.optimizer.momentum == 0.9 and cfg.optimizer.weight_decay == 1e-4
    assert cfg.param_groups.groups.backbone == {"prefix": "backbone", "lr_mult": 0.1}
    assert cfg.trainer.clip_grad == 10.0 and epochs % cfg.trainer.val_interval == 0


@pytest.mark.parametrize("override, message", [
    ("data.neg_prob=1.0", r"data.neg_prob=1.0 must be in \[0, 1\)"),
    ("data.pairs_per_epoch=0", r"data.pairs_per_epoch=0 must be >= 1"),
    ("data.frame_size=40", r"data.frame_size=40 must be >= 2 \* template_size \(64\)"),
    ("model.search_size=66", r"model.search_size=66 must be a multiple of 4"),
])
def test_bad_settings_are_named_at_build_time(make_cfg, tmp_path, override, message):
    with pytest.raises(ValueError, match=message):
        build_runner(make_cfg(*TINY, override), tmp_path)


def test_report_requires_tracking_evaluator_and_evaluator_requires_sequences():
    from trainkit.tasks.sot import TrackingEvaluator, TrackingReport

    with pytest.raises(ValueError, match="needs evaluator trainkit.tasks.sot.TrackingEvaluator, got MeanOutputs"):
        from trainkit.core.evaluation import MeanOutputs
        TrackingReport().before_run(SimpleNamespace(evaluator=MeanOutputs()))
    with pytest.raises(ValueError, match="needs held-out sequences in data.val"):
        TrackingEvaluator()(SimpleNamespace(val_loader=None))
