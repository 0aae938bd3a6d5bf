"""Reference schedule trajectories of real OpenMMLab configs, for `python -m trainkit.port`.

For every config under ``tests/data/openmmlab_configs/`` this runs the config's OWN training-loop settings
through the REAL reference and records, for every iteration, the lr and momentum (SGD ``momentum``, Adam-style
``betas[0]``) of one param group built from the config's optimizer (the preview of a ported recipe without a
model runs on the optimizer's base group) at the moment ``optimizer.step()`` runs.

- mmcv 1.x configs (``lr_config`` / ``momentum_config`` / ``runner`` / ``total_epochs``): loaded with
  ``mmcv.Config.fromfile``; a real ``mmcv.runner.EpochBasedRunner`` on a one-parameter model builds the
  ``LrUpdaterHook`` / ``MomentumUpdaterHook`` from the config's dicts itself (``register_training_hooks``), with
  the config's ``runner.max_epochs`` (mmtrack: ``runner.run(..., total_epochs)``, as mmtrack/apis/train.py does).
  mmtrack's ``SiameseRPNLrUpdaterHook`` is executed from the mmtrack 0.14.0 wheel's one module.
- mmengine configs (``optim_wrapper`` / ``param_scheduler`` / ``train_cfg``): loaded with mmengine's
  ``Config.fromfile(path, import_custom_modules=False)``; a real ``mmengine.runner.Runner`` gets the loaded
  ``train_cfg``, ``param_scheduler`` and ``default_hooks.param_scheduler`` unchanged, so the Runner itself builds
  the loop, fills each scheduler's ``end`` from max_epochs/max_iters, converts ``convert_to_iter_based`` with
  ``epoch_length = len(train_dataloader)`` (= iters_per_epoch here) and steps them through its
  ``ParamSchedulerHook`` (or mmagic's ``ReduceLRSchedulerHook``). mmagic's ``ReduceLR``, ``LinearLrInterval`` and
  ``ReduceLRSchedulerHook`` are executed from the mmagic 1.2.0 wheel (registered into mmengine's root registries;
  ``mmagic/__init__.py``, which needs mmcv 2, is never run).
- A recorder hook (mmcv: priority NORMAL, after the lr updater VERY_HIGH and the momentum updater HIGH; mmengine:
  LOWEST) reads the values in ``before_train_iter``; ``optimizer.step`` is wrapped to check that every real step
  of that iteration sees exactly those values (so with gradient accumulation a row is "what the step would see").
- mmcv's EpochBasedRunner sleeps 2 s at every epoch start and mmengine's IterBasedTrainLoop at every restart of
  its dataloader ("prevent possible deadlock"); the script replaces those two modules' ``time`` by a no-op
  ``sleep`` (nothing else in them uses ``time``). Likewise MessageHub's scalar histories (np.append per
  iteration: quadratic) are cut to their last values; nothing reads them here.
- Every case runs in a fresh process (mmengine's MessageHub "current instance" and mmagic's global
  ``'reduce_lr'`` hub behave as in a real training process).

Produced with (written into trajectories.json ``meta`` on every run): python 3.11.7, torch 2.13.0+cpu, numpy 2.4.6,
mmengine-lite 0.10.7 (/work/ref/venv), mmcv 1.7.2 with MMCV_WITH_OPS=0 (/work/ref/venv_mmcv; torchvision is
stubbed, mmcv/runner/checkpoint.py imports it only for torchvision:// checkpoints), mmtrack 0.14.0 wheel
(sha256 068cec2d...), mmagic 1.2.0 wheel (sha256 efa91041...).

Run (the first interpreter needs mmengine-lite + torch, the second mmcv 1.7.2 + torch; nothing from trainkit):

    pip download mmtrack==0.14.0 --no-deps -d /tmp/whl && pip download mmagic==1.2.0 --no-deps -d /tmp/whl
    /work/ref/venv/bin/python tests/reference/port/make_tables.py \
        --mmcv-python /work/ref/venv_mmcv/bin/python \
        --mmtrack-wheel /tmp/whl/mmtrack-0.14.0-py3-none-any.whl \
        --mmagic-wheel /tmp/whl/mmagic-1.2.0-py2.py3-none-any.whl

About 3.5 minutes of CPU (9 minutes wall on 2 loaded cores; the longest tables run 160000 and 93900 Runner
iterations). It rewrites ``tests/reference/port/trajectories.json`` (deterministic: a rerun gives the same bytes);
``--only A,B --out /tmp/x.json`` runs some tables into another file. Check the result with ``check_tables.py``.
Rows are ``[iter, epoch, lr, momentum]``; floats are Python ``repr`` (exact: compare with ``==``).
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile
import types
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIGS = os.path.normpath(os.path.join(HERE, "..", "..", "data", "openmmlab_configs"))
OUT = os.path.join(HERE, "trajectories.json")


# ----------------------------------------------------------------------------------------------- the cases
def cain_mae_trace() -> list[float]:
    """500 validation MAE values (one per epoch) for mmagic CAIN's ReduceLR(mode='min', factor=0.5, patience=5,
    threshold=1e-4 'rel', cooldown=0, eps=1e-8). ``best`` below follows ReduceLR's rule (a value counts as better
    only if < best * (1 - 1e-4)); the trace is fixed data, stored in tables.json with the table."""
    out: list[float] = []
    best = math.inf

    def put(x: float) -> None:
        nonlocal best
        out.append(x)
        if x < best * (1.0 - 1e-4):
            best = x

    v = 0.05
    for _ in range(40):      # epochs 1-40: 1 % better each epoch
        v *= 0.99
        put(v)
    for _ in range(10):      # 41-50: flat: the 6th bad epoch (46) halves the lr
        put(v)
    put(best * (1.0 - 1e-4))  # 51: exactly at the threshold: not better (the comparison is strict); 5th bad epoch
    v = out[-1] * 0.99       # 52: better just before a 6th bad epoch: the count restarts
    put(v)
    for _ in range(8):       # 53-60: 0.003 % better each epoch: below the threshold per epoch, but every 4th
        v *= 1 - 3e-5        #        epoch is 0.012 % below the best: never 6 bad epochs in a row
        put(v)
    for _ in range(40):      # 61-100: 0.5 % better
        v *= 0.995
        put(v)
    for _ in range(30):      # 101-130: 1 % worse
        v *= 1.01
        put(v)
    for _ in range(40):      # 131-170: 2 % better (below the best again from epoch 146)
        v *= 0.98
        put(v)
    for k in range(30):      # 171-200: up 0.5 % / down 0.7 % alternately
        v *= 1.005 if k % 2 == 0 else 0.993
        put(v)
    for _ in range(300):     # 201-500: flat: halvings every 6 epochs until lr - lr/2 <= eps stops them
        put(v)
    assert len(out) == 500
    return out


def case(name, config, reference, ipe, *, every=None, edges=(), realistic=None, notes=(), **kw):
    return dict(name=name, config=config, reference=reference, iters_per_epoch=ipe, every=every, edges=list(edges),
                realistic=realistic, notes=list(notes), **kw)


SMALL = "small, chosen so the whole trajectory is stored and warmups/windows span several epochs"
CASES = [
    case("mmtrack_siamese_rpn", "mmtracking/configs/sot/siamese_rpn/siamese_rpn_r50_20e_lasot.py", "mmcv", 10,
         notes=["no `runner` key: mmtrack/apis/train.py builds EpochBasedRunner() and calls "
                "runner.run(data_loaders, workflow, cfg.total_epochs) (max_epochs via run(), deprecated path)",
                "optimizer_config type SiameseRPNOptimizerHook replaced by mmcv OptimizerHook(grad_clip=...): its "
                "only extra is before_train_epoch setting requires_grad on backbone layers (no lr effect)",
                "paramwise_cfg custom_keys backbone lr_mult=0.1 does not apply to the base group (lr 0.005)",
                "SiameseRPNLrUpdaterHook is by_epoch only: lr = base_lr * table[epoch], constant within an epoch"]),
    case("mmselfsup_byol_accum16", "mmselfsup-0.x/configs/selfsup/byol/byol_resnet50_8xb32-accum16-coslr-200e_in1k.py",
         "mmcv", 8, accumulate=True,
         notes=["optimizer LARS (mmselfsup) stood in by torch SGD(lr, momentum, weight_decay): updater hooks only "
                "read/write param_groups' lr/momentum/initial_lr",
                "optimizer_config update_interval=16 -> mmcv GradientCumulativeOptimizerHook(cumulative_iters=16) "
                "(mmselfsup's DistOptimizerHook steps on the same iterations); `optimizer_steps` lists them",
                "warmup_by_epoch=True: warmup_iters=10 epochs = 10*ipe iterations, computed by the hook in "
                "before_train_epoch",
                "BYOLHook (target-network momentum, custom_hooks) is not an optimizer param: not tabulated"]),
    case("mmselfsup_byol_fp16_accum2",
         "mmselfsup-0.x/configs/selfsup/byol/byol_resnet50_8xb256-fp16-accum2-coslr-200e_in1k.py", "mmcv", 5,
         accumulate=True,
         notes=["same schedule file as the accum16 config; fp16=dict(loss_scale=512.) + update_interval=2 is "
                "mmselfsup's GradAccumFp16OptimizerHook, stood in by GradientCumulativeOptimizerHook(2) (fp16 "
                "loss scaling does not touch lr/momentum; CPU)", "LARS stood in by torch SGD as above"]),
    case("mmdet2_faster_rcnn_1x", "mmdetection-2.x/configs/faster_rcnn/faster_rcnn_r50_fpn_1x_coco.py", "mmcv", 50,
         notes=["ipe=50: the 500-iteration linear warmup spans epochs 0-9 and the step at epoch 8 (iteration 400) "
                "falls inside it; mmcv's warmup multiplies the already-stepped regular lr"]),
    case("mmdet2_faster_rcnn_1x@7330", "mmdetection-2.x/configs/faster_rcnn/faster_rcnn_r50_fpn_1x_coco.py", "mmcv",
         7330, every=500, edges=[500],
         realistic="7330 = COCO train2017 after filter_empty_gt with 8 GPUs x 2 images (INDEX.md; from mmdet 1x "
                   "training logs)"),
    case("mmdet3_convnext_mask_rcnn_3x",
         "mmdetection-3.x/configs/convnext/mask-rcnn_convnext-t-p4-w7_fpn_amp-ms-crop-3x_coco.py", "mmengine", 30,
         notes=["AmpOptimWrapper stood in by OptimWrapper (AMP loss scaling does not touch lr/betas; CPU)",
                "LearningRateDecayOptimizerConstructor (mmdet) not run: without a model the preview has the base "
                "group only (lr 1e-4)",
                "ipe=30: LinearLR(end=1000 iterations) spans 33.3 epochs, so both milestones (27 -> iteration 810, "
                "33 -> 990) fall inside the warmup; the chained LinearLR keeps multiplying after them"]),
    case("mmdet3_faster_rcnn_1x", "mmdetection-3.x/configs/faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py", "mmengine",
         50, notes=["same geometry as mmdet2_faster_rcnn_1x (ipe=50): compare the two to see mmcv's warmup vs "
                    "mmengine's chained LinearLR + MultiStepLR"]),
    case("mmdet3_faster_rcnn_1x_lazy", "mmdetection-3.x/mmdet/configs/faster_rcnn/faster_rcnn_r50_fpn_1x_coco.py",
         "mmengine", 100, notes=["lazy-import (read_base) config: `type` values are classes (LinearLR, SGD, "
                                 "EpochBasedTrainLoop, ParamSchedulerHook), passed to the Runner as loaded",
                                 "ipe=100: the 500-iteration warmup ends (iteration 499) before the first milestone "
                                 "(epoch 8 = iteration 800), the usual mmdet geometry"]),
    case("mmpretrain_swin_tiny", "mmpretrain/configs/swin_transformer/swin-tiny_16xb64_in1k.py", "mmengine", 4,
         notes=["LinearLR(by_epoch, end=20, convert_to_iter_based) is converted to iterations [0, 20*ipe); "
                "CosineAnnealingLR(by_epoch, begin=20, eta_min=1e-5) has NO convert_to_iter_based: it stays by "
                "epoch (end filled = max_epochs = 300, T_max = 280 epochs) and changes the lr once per epoch",
                "epoch 20 keeps the warmup's last value (the cosine's first in-window step writes the current lr); "
                "the last epoch (299) is cosine step 279 of 280, so eta_min is never reached"]),
    case("mmpretrain_convnext_tiny", "mmpretrain/configs/convnext/convnext-tiny_32xb128_in1k.py", "mmengine", 3,
         notes=["same schedule file as Swin, lr overridden to 4e-3", "EMAHook (custom_hooks) not tabulated"]),
    case("mmpretrain_convnext_tiny_lazy", "mmpretrain/mmpretrain/configs/convnext/convnext-tiny_32xb128_in1k.py",
         "mmengine", 2, notes=["lazy-import twin of mmpretrain_convnext_tiny (types are classes)"]),
    case("mmpretrain_convnext_tiny@313", "mmpretrain/configs/convnext/convnext-tiny_32xb128_in1k.py", "mmengine", 313,
         every=250, realistic="313 = ImageNet-1k train 1281167 on 32 GPUs x 128 (DefaultSampler round-up, "
                              "drop_last=False; INDEX.md)"),
    case("mmseg_pspnet_160k", "mmsegmentation/configs/pspnet/pspnet_r50-d8_4xb4-160k_ade20k-512x512.py", "mmengine",
         1263, every=100, edges=[16000 * k for k in range(1, 11)],
         notes=["IterBasedTrainLoop(max_iters=160000): the trajectory does not depend on iters_per_epoch (1263 = "
                "ADE20K 20210 / (4x4), only the dataloader length); runner.epoch stays 0",
                "PolyLR(by_epoch=False, begin=0, end=160000, power=0.9, eta_min=1e-4)"]),
    case("mmagic_cain_reduce_lr", "mmagic/configs/cain/cain_g1b32_1xb5_vimeo90k-triplet.py", "mmengine", 2,
         metric="MAE", metric_trace=cain_mae_trace(),
         notes=["ReduceLRSchedulerHook(val_metric='MAE', by_epoch=True, interval=1) replaces ParamSchedulerHook: "
                "schedulers step only in after_val_epoch, with the metric of that validation",
                "validation after every epoch (train_cfg has no val_interval: EpochBasedTrainLoop default 1, "
                "val_begin 1); mmagic's own val loop/metrics are replaced by a ValLoop whose metric returns "
                "metric_trace[k] at validation k (0-based), i.e. after epoch k+1; val_events[k] is the lr right "
                "after that validation's scheduler step, the lr of epoch k+1",
                "metric_trace: fixed data (cain_mae_trace() in make_tables.py): improvements, a flat plateau, one "
                "value exactly at the 1e-4 relative threshold (not better), slow improvements that cross the "
                "threshold only relative to the best, a worsening stretch, and a long flat end where the eps=1e-8 "
                "rule stops the halvings"]),
    case("mmagic_cyclegan_linear_lr_interval",
         "mmagic/configs/cyclegan/cyclegan_lsgan-id0-resnet-in_1xb1-80kiters_facades.py", "mmengine", 100,
         every=200, edges=[40000 + 400 * k for k in range(101)],
         notes=["MultiOptimWrapperConstructor: two optimizers (generators, discriminators), each Adam(lr=2e-4, "
                "betas=(0.5, 0.999)); the Runner builds the same LinearLrInterval for each; rows are the "
                "generators' group and the discriminators' group is checked equal on every iteration",
                "train_cfg by_epoch=False -> IterBasedTrainLoop(max_iters=80000); trajectory independent of ipe",
                "LinearLrInterval: outside [40000, 80000) nothing is written; its first in-window step (after "
                "iteration 39999) multiplies lr by start_factor (2e-4 * 2e-4 = 4e-8 at iteration 40000); later "
                "steps write the absolute value start + (end - start) * ((iter - 40000) // 400) / 100, where iter "
                "is MessageHub 'iter' = the iteration just finished"]),
    case("mmdet3d_second_cyclic_40e", "mmdetection3d-1.x/configs/second/second_hv_secfpn_8xb6-80e_kitti-3d-3class.py",
         "mmengine", 10,
         notes=["cyclic-40e: CosineAnnealingLR x2 + CosineAnnealingMomentum x2 (AdamW betas[0]), "
                "convert_to_iter_based with epoch_length = ipe; same geometry as mmdet3d_second_cyclic_mmcv"]),
    case("mmdet3d_second_cyclic_40e@155",
         "mmdetection3d-1.x/configs/second/second_hv_secfpn_8xb6-80e_kitti-3d-3class.py", "mmengine", 155, every=10,
         realistic="155 = KITTI train 3712 x RepeatDataset 2 on 8 GPUs x 6 (INDEX.md)"),
    case("mmdet3d_centerpoint_cyclic_20e",
         "mmdetection3d-1.x/configs/centerpoint/centerpoint_voxel01_second_secfpn_8xb4-cyclic-20e_nus-3d.py",
         "mmengine", 12, notes=["AdamW without betas in the config: torch's default betas (0.9, 0.999)",
                                "the real iters_per_epoch is not knowable from the config (CBGSDataset)"]),
    case("mmdet3d_second_cyclic_mmcv",
         "mmdetection3d-v1.0.0rc6/configs/second/hv_second_secfpn_6x8_80e_kitti-3d-3class.py", "mmcv", 10,
         notes=["mmcv CyclicLrUpdaterHook + CyclicMomentumUpdaterHook (by_epoch=False, 40 epochs x ipe iterations); "
                "momentum = AdamW betas[0]",
                "mmdet3d v1.0.0rc6 pins mmcv-full<=1.7.0; mmcv's lr/momentum updater and runner files are unchanged "
                "from v1.6.0 to v1.7.2 (git diff empty)"]),
]


# ------------------------------------------------------------------------------------------------ helpers
def plain(x):
    """JSON-ready copy of a loaded config value: tuples become lists, classes their dotted names."""
    if isinstance(x, dict):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    if isinstance(x, type):
        return f"{x.__module__}.{x.__qualname__}"
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    return str(x)


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def wheel_version(wheel):
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        return next(line.split(":", 1)[1].strip() for line in z.read(meta).decode().splitlines()
                    if line.startswith("Version:"))


def source_header(path):
    """``{repo, path, commit}`` from the config file's header comment."""
    out = {}
    with open(path) as f:
        for line in f:
            for key, label in (("repo", "# Source repository: "), ("path", "# Path: "), ("commit", "# Commit: ")):
                if line.startswith(label):
                    out[key] = line[len(label):].strip()
            if line.startswith("# ---- original file follows"):
                break
    return out


def kept(c, n_iters):
    """The iterations a table keeps: all, or every ``every``-th plus the first/last iteration of every epoch
    (epoch-based loops), the first/last two of the run, and each edge e as e-1, e, e+1."""
    if c["every"] is None:
        return None
    keep = set(range(0, n_iters, c["every"])) | {0, 1, n_iters - 2, n_iters - 1}
    if c.get("by_epoch", True):
        ipe = c["iters_per_epoch"]
        for start in range(0, n_iters, ipe):
            keep |= {start, start + ipe - 1}
    for e in c["edges"]:
        keep |= {e - 1, e, e + 1}
    return {i for i in keep if 0 <= i < n_iters}


def momentum_of(group):
    return group["betas"][0] if "betas" in group else group["momentum"]


def torch_optimizer(opt_cfg, params, notes):
    """The config's optimizer on ONE param group: its own torch class and keyword arguments (paramwise keys
    dropped: they only shape groups of a real model). Non-torch optimizers are stood in by SGD, noted."""
    import torch

    cfg = dict(opt_cfg)
    typ = cfg.pop("type")
    for k in ("paramwise_cfg", "paramwise_options"):
        cfg.pop(k, None)
    if "betas" in cfg:
        cfg["betas"] = tuple(cfg["betas"])
    if isinstance(typ, type):
        cls = typ
    elif hasattr(torch.optim, str(typ).rsplit(".", 1)[-1]):
        cls = getattr(torch.optim, str(typ).rsplit(".", 1)[-1])
    else:
        cls = torch.optim.SGD
        cfg = {k: cfg[k] for k in ("lr", "momentum", "weight_decay") if k in cfg}
        notes.append(f"optimizer {typ} is not in torch.optim: stood in by torch.optim.SGD({cfg})")
    opt = cls(params, **cfg)
    return opt, {"type": f"{cls.__module__}.{cls.__qualname__}", **plain(cfg)}


def describe_scheduler(s):
    d = {"type": type(s).__name__}
    for k in ("param_name", "begin", "end", "by_epoch", "T_max", "eta_min", "eta_min_ratio", "start_factor",
              "end_factor", "total_iters", "power", "gamma", "interval", "factor", "patience", "threshold",
              "threshold_mode", "mode", "cooldown", "min_lr", "eps", "base_values"):
        if hasattr(s, k):
            d[k] = plain(getattr(s, k))
    if hasattr(s, "milestones"):
        d["milestones"] = sorted(int(m) for m in s.milestones.elements())
    return d


# --------------------------------------------------------------------------------------------- mmcv worker
def load_mmtrack(wheel):
    """Registers mmtrack 0.14.0's SiameseRPNLrUpdaterHook into mmcv's HOOKS from the wheel's one module."""
    from mmcv.runner.hooks import HOOKS

    member = "mmtrack/core/optimizer/sot_lr_updater.py"
    with zipfile.ZipFile(wheel) as z:
        source = z.read(member).decode()
    module = types.ModuleType("mmtrack_sot_lr_updater")
    exec(compile(source, f"{os.path.basename(wheel)}/{member}", "exec"), module.__dict__)
    assert HOOKS.get("SiameseRPNLrUpdaterHook") is module.SiameseRPNLrUpdaterHook
    return {"version": wheel_version(wheel), "wheel": os.path.basename(wheel), "sha256": sha256(wheel),
            "file": member}


def run_mmcv(c, args):
    try:
        import torchvision  # noqa: F401
    except ImportError:   # mmcv/runner/checkpoint.py imports it at module level (only for torchvision:// URLs)
        stub = types.ModuleType("torchvision")
        stub.__version__ = "0.0.0+stub"
        sys.modules["torchvision"] = stub
    import logging

    import mmcv
    import numpy as np
    import torch
    from mmcv import Config
    from mmcv.runner import EpochBasedRunner, GradientCumulativeOptimizerHook, OptimizerHook
    from mmcv.runner.hooks import Hook

    # EpochBasedRunner.train/val call time.sleep(2) at every epoch start ("prevent possible deadlock") and run()
    # sleeps 1 s at the end: 400 s of sleep for a 200-epoch config. Only that module's `time` is replaced.
    ebr = sys.modules["mmcv.runner.epoch_based_runner"]
    ebr.time = types.SimpleNamespace(sleep=lambda seconds: None, time=ebr.time.time)
    torch.set_num_threads(1)
    notes = []
    meta = {"mmcv": mmcv.__version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": sys.version.split()[0]}
    cfg = Config.fromfile(os.path.join(CONFIGS, c["config"]))
    lr_config = copy.deepcopy(cfg.lr_config)
    if lr_config.get("policy") == "SiameseRPN":
        meta["mmtrack"] = load_mmtrack(args.mmtrack_wheel)
    loaded = {k: plain(cfg[k]) for k in ("optimizer", "optimizer_config", "lr_config", "momentum_config", "runner",
                                         "total_epochs", "fp16", "custom_hooks") if k in cfg}

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(()))

        def train_step(self, data_batch, optimizer, **kwargs):
            loss = (self.w * data_batch[0].sum() * 1e-3) ** 2
            return dict(loss=loss, log_vars={"loss": loss.item()}, num_samples=1)

    model = Model()
    optimizer, opt_used = torch_optimizer(cfg.optimizer, model.parameters(), notes)
    ipe = c["iters_per_epoch"]
    if "runner" in cfg:
        assert cfg.runner.type == "EpochBasedRunner", cfg.runner
        max_epochs, run_epochs = cfg.runner.max_epochs, None
        loop = {"type": "EpochBasedRunner", "max_epochs": max_epochs}
    else:   # mmtrack: EpochBasedRunner(...) then runner.run(data_loaders, workflow, cfg.total_epochs)
        max_epochs, run_epochs = None, cfg.total_epochs
        loop = {"type": "EpochBasedRunner", "max_epochs": run_epochs, "from": "total_epochs"}
    n_iters = (max_epochs or run_epochs) * ipe
    keep = kept(c, n_iters)
    oc = dict(copy.deepcopy(cfg.get("optimizer_config", {})))
    if "update_interval" in oc:
        opt_hook = GradientCumulativeOptimizerHook(cumulative_iters=oc["update_interval"],
                                                   grad_clip=oc.get("grad_clip"))
    else:
        opt_hook = OptimizerHook(grad_clip=oc.get("grad_clip"))
    rows, steps, state = [], [], {}

    def values():
        g = optimizer.param_groups[0]
        return float(g["lr"]), float(momentum_of(g))

    class Recorder(Hook):
        def before_train_iter(self, runner):
            state["iter"], state["values"] = runner.iter, values()
            if keep is None or runner.iter in keep:
                rows.append([runner.iter, runner.epoch, *state["values"]])

    step = optimizer.step

    def checked_step(*a, **k):
        assert values() == state["values"], (state, values())
        steps.append(state["iter"])
        return step(*a, **k)

    optimizer.step = checked_step
    logger = logging.getLogger("port_ref")
    logger.setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        runner = EpochBasedRunner(model, optimizer=optimizer, work_dir=tmp, logger=logger, max_epochs=max_epochs)
        runner.register_training_hooks(lr_config=lr_config, optimizer_config=opt_hook,
                                       momentum_config=copy.deepcopy(cfg.get("momentum_config")),
                                       checkpoint_config=None, log_config=None)
        runner.register_hook(Recorder(), priority="NORMAL")
        data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.ones(ipe, 1)), batch_size=1)
        if run_epochs is None:
            runner.run([data], [("train", 1)])
        else:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")   # "setting max_epochs in run is deprecated"
                runner.run([data], [("train", 1)], run_epochs)
    assert runner.iter == n_iters, (runner.iter, n_iters)
    out = dict(meta=meta, loaded=loaded, loop=loop, n_iters=n_iters, optimizer=opt_used, notes=notes,
               hooks=[type(h).__name__ for h in runner.hooks if "Updater" in type(h).__name__ or
                      "OptimizerHook" in type(h).__name__],
               rows=rows, final=list(values()))
    if c.get("accumulate"):
        k = oc["update_interval"]
        assert steps == [i for i in range(n_iters) if (i + 1) % k == 0 or i == n_iters - 1], steps[:40]
        out["optimizer_steps"] = f"at iterations i with (i + 1) % {k} == 0 (and the last iteration)"
    else:
        assert steps == list(range(n_iters))
    return out


# ----------------------------------------------------------------------------------------- mmengine worker
def load_mmagic(wheel):
    """mmagic 1.2.0's LinearLrInterval, ReduceLR and ReduceLRSchedulerHook, executed from the wheel's files with
    stub package modules (mmagic/__init__.py needs mmcv 2), registered into mmengine's root registries."""
    from mmengine.registry import HOOKS, PARAM_SCHEDULERS

    members = ["mmagic/registry.py", "mmagic/engine/schedulers/linear_lr_scheduler_with_interval.py",
               "mmagic/engine/schedulers/reduce_lr_scheduler.py", "mmagic/engine/hooks/reduce_lr_scheduler_hook.py"]
    with zipfile.ZipFile(wheel) as z:
        sources = {m: z.read(m).decode() for m in members}
    for pkg in ("mmagic", "mmagic.engine", "mmagic.engine.schedulers", "mmagic.engine.hooks"):
        mod = types.ModuleType(pkg)
        mod.__path__ = []
        sys.modules[pkg] = mod
    loaded = {}
    for m in members:
        name = m[:-3].replace("/", ".")
        mod = types.ModuleType(name)
        mod.__file__ = f"{os.path.basename(wheel)}/{m}"
        sys.modules[name] = mod
        exec(compile(sources[m], mod.__file__, "exec"), mod.__dict__)
        loaded[name] = mod
    sched = loaded["mmagic.engine.schedulers.linear_lr_scheduler_with_interval"].LinearLrInterval
    reduce = loaded["mmagic.engine.schedulers.reduce_lr_scheduler"].ReduceLR
    hook = loaded["mmagic.engine.hooks.reduce_lr_scheduler_hook"].ReduceLRSchedulerHook
    for cls in (sched, reduce):
        PARAM_SCHEDULERS.register_module(module=cls, force=True)
    HOOKS.register_module(module=hook, force=True)
    return {"version": wheel_version(wheel), "wheel": os.path.basename(wheel), "sha256": sha256(wheel),
            "files": members[1:]}


def run_mmengine(c, args):
    import mmengine
    import numpy as np
    import torch
    from mmengine.config import Config
    from mmengine.evaluator import BaseMetric, Evaluator
    from mmengine.hooks import Hook, ParamSchedulerHook
    from mmengine.model import BaseModel
    from mmengine.optim import OptimWrapper, OptimWrapperDict
    from mmengine.runner import Runner

    # IterBasedTrainLoop's infinite dataloader iterator sleeps 2 s at every restart of the dataloader (loops.py:190,
    # "prevent possible deadlock"): 800 restarts in an 80000-iteration run. Only that module's `time` is replaced.
    loops = sys.modules["mmengine.runner.loops"]
    loops.time = types.SimpleNamespace(sleep=lambda seconds: None)
    torch.set_num_threads(1)
    notes = []
    meta = {"mmengine": mmengine.__version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": sys.version.split()[0]}
    cfg = Config.fromfile(os.path.join(CONFIGS, c["config"]), import_custom_modules=False)
    raw_ps = cfg.param_scheduler
    if "mmagic" in c["config"]:
        meta["mmagic"] = load_mmagic(args.mmagic_wheel)
    ow_cfg = cfg.optim_wrapper
    ps_hook = cfg.get("default_hooks", {}).get("param_scheduler")
    loaded = {"optim_wrapper": plain(ow_cfg), "param_scheduler": plain(raw_ps), "train_cfg": plain(cfg.train_cfg),
              "default_hooks.param_scheduler": plain(ps_hook)}
    names = ["optimizer"] if "optimizer" in ow_cfg else [k for k, v in ow_cfg.items() if isinstance(v, dict)
                                                         and "optimizer" in v]
    opt_cfgs = [ow_cfg["optimizer"]] if names == ["optimizer"] else [ow_cfg[n]["optimizer"] for n in names]
    wtype = ow_cfg.get("type", "OptimWrapper")
    if names == ["optimizer"] and plain(wtype).rsplit(".", 1)[-1] != "OptimWrapper":
        notes.append(f"optim_wrapper type {plain(wtype)} stood in by OptimWrapper (no lr/momentum effect)")

    class Model(BaseModel):
        def __init__(self):
            super().__init__()
            self.ws = torch.nn.ParameterList(torch.nn.Parameter(torch.ones(())) for _ in names)

        def forward(self, inputs, data_samples=None, mode="tensor"):
            return [0] * len(inputs)

        def train_step(self, data, optim_wrapper):
            wrappers = list(optim_wrapper.values()) if isinstance(optim_wrapper, OptimWrapperDict) else [optim_wrapper]
            total = 0.0
            for w, p in zip(wrappers, self.ws, strict=True):
                loss = (p * 1e-3) ** 2
                w.update_params(loss)
                total += loss.item()
            return dict(loss=torch.tensor(total))

    model = Model()
    opts, used = [], []
    for oc, p in zip(opt_cfgs, model.ws, strict=True):
        o, u = torch_optimizer(oc, [p], notes)
        opts.append(o)
        used.append(u)
    if names == ["optimizer"]:
        optim_wrapper = OptimWrapper(opts[0])
    else:
        optim_wrapper = OptimWrapperDict(**{n: OptimWrapper(o) for n, o in zip(names, opts, strict=True)})
    ipe = c["iters_per_epoch"]
    train_cfg = copy.deepcopy(cfg.train_cfg)
    by_epoch = train_cfg.get("by_epoch", plain(train_cfg.get("type", "")).endswith("EpochBasedTrainLoop"))
    n_iters = train_cfg["max_epochs"] * ipe if by_epoch else train_cfg["max_iters"]
    keep = kept(dict(c, by_epoch=by_epoch), n_iters)
    rows, vals, state = [], [], {"steps": 0}

    def values(o):
        g = o.param_groups[0]
        return float(g["lr"]), float(momentum_of(g))

    for o in opts:
        step = o.step

        def checked_step(*a, _o=o, _step=step, **k):
            assert values(_o) == state["values"], (state, values(_o))
            state["steps"] += 1
            return _step(*a, **k)

        o.step = checked_step
    trace = list(c.get("metric_trace") or [])

    class Recorder(Hook):
        priority = "LOWEST"

        def before_train_iter(self, runner, batch_idx, data_batch=None):
            vs = [values(o) for o in opts]
            assert all(v == vs[0] for v in vs), vs      # every optimizer of a MultiOptimWrapper: same schedule
            state["values"] = vs[0]
            if keep is None or runner.iter in keep:
                rows.append([runner.iter, runner.epoch, *vs[0]])

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            # MessageHub's HistoryBuffer np.append()s every logged scalar (train/lr, train/loss, time, ...): O(n)
            # per iteration, quadratic over a 375600-iteration run. Nothing here reads old history (no LoggerHook;
            # schedulers read MessageHub *info* 'iter'/'epoch', ReduceLR reads its own hub's current value), so
            # keep only the most recent values.
            for buf in runner.message_hub.log_scalars.values():
                if len(buf._log_history) > 2000:
                    buf._log_history, buf._count_history = buf._log_history[-100:], buf._count_history[-100:]

        def after_val_epoch(self, runner, metrics=None):
            vals.append({"after_epoch": runner.epoch, "metric": metrics[c["metric"]], "lr": values(opts[0])[0]})

    class Scripted(BaseMetric):
        default_prefix = None

        def process(self, data_batch, data_samples):
            self.results.append(0)

        def compute_metrics(self, results):
            return {c["metric"]: trace.pop(0)}

    class Toy(torch.utils.data.Dataset):
        def __init__(self, n):
            self.n = n

        def __len__(self):
            return self.n

        def __getitem__(self, i):
            return dict(inputs=torch.zeros(()))

    def loader(n):
        return dict(dataset=Toy(n), batch_size=1, num_workers=0, sampler=dict(type="DefaultSampler", shuffle=False),
                    collate_fn=dict(type="default_collate"))

    default_hooks = dict(checkpoint=None, logger=None)   # no files, no log formatting
    if ps_hook is not None:
        default_hooks["param_scheduler"] = copy.deepcopy(ps_hook)
    val = {}
    if trace:
        val = dict(val_dataloader=loader(1), val_cfg=dict(), val_evaluator=Evaluator([Scripted()]))
    with tempfile.TemporaryDirectory() as tmp:
        runner = Runner(model=model, work_dir=tmp, experiment_name=c["name"], train_dataloader=loader(ipe),
                        train_cfg=train_cfg, optim_wrapper=optim_wrapper, param_scheduler=copy.deepcopy(raw_ps),
                        default_hooks=default_hooks, custom_hooks=[Recorder()], log_level="ERROR", **val)
        runner.train()
    assert runner.iter == n_iters and state["steps"] == n_iters * len(opts), (runner.iter, n_iters, state)
    assert not trace, f"{len(trace)} metric values left over"
    scheds = runner.param_schedulers
    built = ({n: [describe_scheduler(s) for s in v] for n, v in scheds.items()} if isinstance(scheds, dict)
             else [describe_scheduler(s) for s in scheds])
    if isinstance(built, dict):
        first = next(iter(built.values()))
        assert all(b == first for b in built.values()), built
    hook = next(h for h in runner.hooks if isinstance(h, ParamSchedulerHook))
    assert type(runner.train_loop).__name__ == ("EpochBasedTrainLoop" if by_epoch else "IterBasedTrainLoop")
    loop = {"type": type(runner.train_loop).__name__, "by_epoch": by_epoch,
            **({"max_epochs": train_cfg["max_epochs"]} if by_epoch else {"max_iters": train_cfg["max_iters"]})}
    if c.get("metric_trace"):
        loop.update(val_begin=runner.train_loop.val_begin, val_interval=runner.train_loop.val_interval)
    out = dict(meta=meta, loaded=loaded, loop=loop, n_iters=n_iters,
               optimizer=used[0] if len(used) == 1 else dict(zip(names, used, strict=True)), notes=notes,
               hooks=[type(hook).__name__], built=built, rows=rows, final=list(values(opts[0])))
    if vals:
        out["val_events"] = vals
    return out


# --------------------------------------------------------------------------------------------- orchestrator
def mmengine_view_of_mmcv_config(path):
    """What mmengine's Config (the loader trainkit.port uses) reads for an mmcv 1.x config's training keys."""
    from mmengine.config import Config

    cfg = Config.fromfile(path, import_custom_modules=False)
    return {k: plain(cfg[k]) for k in ("optimizer", "optimizer_config", "lr_config", "momentum_config", "runner",
                                       "total_epochs", "fp16", "custom_hooks") if k in cfg}


def entry(c, r):
    """One table, keys in reading order."""
    path = os.path.join(CONFIGS, c["config"])
    e = {"config": c["config"], "source": source_header(path),
         "reference": ("mmcv EpochBasedRunner + register_training_hooks(lr_config, momentum_config)"
                       if c["reference"] == "mmcv" else "mmengine Runner(train_cfg, param_scheduler, default_hooks."
                       "param_scheduler).train()"),
         "loop": r["loop"], "iters_per_epoch": c["iters_per_epoch"],
         "iters_per_epoch_is": c["realistic"] or (SMALL if c["every"] is None else "the dataloader length only"),
         "n_iters": r["n_iters"], "optimizer": r["optimizer"], "loaded": r["loaded"]}
    if c["reference"] == "mmcv":
        e["loaded_same_with_mmengine_Config"] = mmengine_view_of_mmcv_config(path) == r["loaded"]
        assert e["loaded_same_with_mmengine_Config"], c["name"]
    for k in ("hooks", "built", "optimizer_steps"):
        if k in r:
            e[k] = r[k]
    if c.get("metric_trace"):
        e["metric"] = c["metric"]
        e["metric_trace"] = c["metric_trace"]
        e["val_events"] = r["val_events"]
    e["notes"] = c["notes"] + r["notes"]
    e["columns"] = ["iter", "epoch", "lr", "momentum"]
    e["thinned"] = (None if c["every"] is None else
                    f"every {c['every']}th iteration, the first/last two iterations"
                    + (", the first and last iteration of every epoch" if r["loop"].get("by_epoch", True) else "")
                    + (f", and e-1, e, e+1 for each e in {c['edges']}" if c["edges"] else ""))
    e["rows"] = r["rows"]
    e["final"] = r["final"]
    return e


def dump(tables):
    """One row per line so the file diffs well; everything else as compact JSON."""
    lines = ["{", ' "meta": ' + json.dumps(tables["meta"]) + ",", ' "tables": {']
    names = list(tables["tables"])
    for i, name in enumerate(names):
        t = tables["tables"][name]
        lines.append(f"  {json.dumps(name)}: {{")
        keys = list(t)
        for j, k in enumerate(keys):
            end = "," if j < len(keys) - 1 else ""
            if k in ("rows", "metric_trace", "val_events"):
                body = ",\n".join("    " + json.dumps(r) for r in t[k])
                lines.append(f"   {json.dumps(k)}: [\n{body}\n   ]{end}")
            else:
                lines.append(f"   {json.dumps(k)}: {json.dumps(t[k])}{end}")
        lines.append("  }" + ("," if i < len(names) - 1 else ""))
    lines += [" }", "}"]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mmcv-python", help="an interpreter with mmcv 1.7.2 and torch (for the mmcv 1.x configs)")
    ap.add_argument("--mmtrack-wheel", help="mmtrack-0.14.0-py3-none-any.whl (pip download mmtrack==0.14.0)")
    ap.add_argument("--mmagic-wheel", help="mmagic-1.2.0-py2.py3-none-any.whl (pip download mmagic==1.2.0)")
    ap.add_argument("--only", help="comma-separated table names: run only these (and print the first's summary)")
    ap.add_argument("--out", default=OUT, help="where to write the tables (default: tables.json next to this file)")
    ap.add_argument("--case", help=argparse.SUPPRESS)          # worker mode: run one case in this interpreter
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args()
    by_name = {c["name"]: c for c in CASES}
    if args.case:
        c = by_name[args.case]
        r = run_mmcv(c, args) if c["reference"] == "mmcv" else run_mmengine(c, args)
        with open(args.result, "w") as f:
            json.dump(r, f)
        return
    missing = [o for o in ("mmcv_python", "mmtrack_wheel", "mmagic_wheel") if not getattr(args, o)]
    if missing:
        ap.error("needs " + ", ".join("--" + m.replace("_", "-") for m in missing))
    cases = [by_name[n] for n in args.only.split(",")] if args.only else CASES
    meta, tables = {"script": "tests/reference/port/make_tables.py", "configs": "tests/data/openmmlab_configs",
                    "columns": "rows: [iter, epoch, lr, momentum] of the optimizer's one param group, read in "
                               "before_train_iter = what optimizer.step() of that iteration uses; momentum is "
                               "betas[0] for Adam-style optimizers"}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for c in cases:
            py = args.mmcv_python if c["reference"] == "mmcv" else sys.executable
            res = os.path.join(tmp, c["name"] + ".json")
            cmd = [py, os.path.abspath(__file__), "--case", c["name"], "--result", res,
                   "--mmtrack-wheel", os.path.abspath(args.mmtrack_wheel),
                   "--mmagic-wheel", os.path.abspath(args.mmagic_wheel)]
            subprocess.run(cmd, check=True)
            with open(res) as f:
                r = json.load(f)
            for k, v in r["meta"].items():
                key = f"{c['reference']}_env" if k in ("torch", "numpy", "python") else k
                if key.endswith("_env"):
                    meta.setdefault(key, {})[k] = v
                else:
                    meta[key] = v
            tables[c["name"]] = entry(c, r)
            t = tables[c["name"]]
            print(f"{c['name']:40s} ipe {c['iters_per_epoch']:5d}  {t['n_iters']:7d} iters  {len(t['rows']):5d} rows"
                  f"  final lr {t['final'][0]!r}", flush=True)
    text = dump({"meta": meta, "tables": tables})
    assert json.loads(text)["tables"] == tables
    if args.only:
        first = tables[cases[0]["name"]]
        print(json.dumps({k: v for k, v in first.items() if k not in ("rows", "metric_trace")}, indent=1))
    with open(args.out, "w") as f:
        f.write(text)
    print(f"wrote {args.out}: {len(tables)} tables, {len(text)} bytes")


if __name__ == "__main__":
    main()
