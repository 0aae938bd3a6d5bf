"""Tracking evaluation for the Runner: one-pass tracking of ``data.val``'s held-out
sequences, compared with a static-box baseline, and a results table at the end."""
from __future__ import annotations

import json

import numpy as np

from ...core.checks import number, positive_int
from ...core.events import Priority
from .data import SequenceSet
from .metrics import OPE_METRICS, ope
from .tracker import SiamRPNTracker


class TrackingEvaluator:
    """``evaluator(runner)`` → ``val/success_auc``, ``val/precision_20px`` of
    :class:`~trainkit.tasks.sot.tracker.SiamRPNTracker` on ``data.val`` and the same two
    metrics of the static-box baseline (the first frame's box kept for every frame,
    ``val/static_*``; computed once, reported with every evaluation as a reference
    line). Every process tracks every sequence, so all agree without communication.
    ``self.last`` keeps the latest results per sequence for :class:`TrackingReport`.
    """

    def __init__(self, penalty_k: float = 0.05, window_influence: float = 0.42, size_lr: float = 0.38,
                 min_size: float = 4.0, batch_sequences: int = 16, prefix: str = "val/"):
        number("evaluator.penalty_k", penalty_k, low=0.0)
        number("evaluator.window_influence", window_influence, low=0.0, high=1.0)
        number("evaluator.size_lr", size_lr, low=0.0, high=1.0)
        number("evaluator.min_size", min_size, low=0.0, low_open=True)
        positive_int("evaluator.batch_sequences", batch_sequences)
        self.tracker_args = dict(penalty_k=penalty_k, window_influence=window_influence, size_lr=size_lr,
                                 min_size=min_size, batch_sequences=batch_sequences)
        self.prefix = prefix
        self.static = None
        self.last = None

    def metric_names(self, runner) -> list[str]:
        """The names :meth:`__call__` returns (the tracker's and the static box's OPE metrics)."""
        p = self.prefix
        return [f"{p}{k}" for k in OPE_METRICS] + [f"{p}static_{k}" for k in OPE_METRICS]

    def __call__(self, runner) -> dict[str, float]:
        data = getattr(runner.val_loader, "dataset", None)
        if not isinstance(data, SequenceSet):
            raise ValueError("TrackingEvaluator needs held-out sequences in data.val "
                             "(a trainkit.tasks.sot.data.SequenceSet, as trainkit.tasks.sot.tracking_data builds)")
        seqs = data.sequences
        gts = [s.boxes for s in seqs]
        preds = SiamRPNTracker(runner.unwrapped_model, **self.tracker_args).track(seqs)
        if self.static is None:
            self.static = ope([np.repeat(g[:1], len(g), 0) for g in gts], gts)
        tracker = ope(preds, gts)
        self.last = {"epoch": runner.epoch, "sequences": len(seqs), "frames": int(sum(len(g) for g in gts)),
                     "tracker": tracker, "static": self.static,
                     "per_sequence": {s.name: ope([p], [g]) for s, p, g in zip(seqs, preds, gts, strict=True)}}
        p = self.prefix
        return {f"{p}{k}": v for k, v in tracker.items()} | {f"{p}static_{k}": v for k, v in self.static.items()}


class TrackingReport:
    """``after_run``: prints the tracker-vs-static table of the last evaluation and
    writes it to ``<work_dir>/tracking_results.json`` (main process). Stateless."""

    priority = Priority.LOW

    def before_run(self, runner) -> None:
        if not isinstance(runner.evaluator, TrackingEvaluator):
            raise ValueError("components.report (TrackingReport) needs evaluator "
                             f"trainkit.tasks.sot.TrackingEvaluator, got {type(runner.evaluator).__name__}")

    def after_run(self, runner) -> None:
        last = runner.evaluator.last
        if not runner.is_main or last is None:
            return
        (runner.work_dir / "tracking_results.json").write_text(json.dumps(last, indent=2) + "\n")
        print(format_table(last))


def format_table(last: dict) -> str:
    rows = [("SiamRPN (trained)", last["tracker"]), ("static box (first frame)", last["static"])]
    lines = [f"One-pass evaluation after epoch {last['epoch']}: {last['sequences']} held-out sequences, "
             f"{last['frames']} frames",
             f"{'method':<26}{'success AUC':>12}{'precision@20px':>16}"]
    lines += [f"{name:<26}{r['success_auc']:>12.3f}{r['precision_20px']:>16.3f}" for name, r in rows]
    return "\n".join(lines)
