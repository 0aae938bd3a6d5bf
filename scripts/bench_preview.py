"""Times a schedule preview: 20 epochs x 1,000 iterations x 30 param groups.

    python scripts/bench_preview.py [--groups 30] [--epochs 20] [--iters 1000]

Components: per-iteration cosine lr with linear warmup and per-iteration cosine momentum
(every iteration writes every group's lr and momentum: the costly case). Imports and a
warm-up call are excluded; the printed time is the preview call itself.
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trainkit.schedules.preview import preview  # noqa: E402

COMPONENTS = {
    "lr": {"_target_": "trainkit.schedules.CosineAnnealingLrUpdater", "by_epoch": False, "min_lr_ratio": 0.01,
           "warmup": "linear", "warmup_iters": 500, "warmup_ratio": 0.001},
    "momentum": {"_target_": "trainkit.schedules.CosineAnnealingMomentumUpdater", "by_epoch": False,
                 "min_momentum_ratio": 0.99 / 0.9},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--groups", type=int, default=30)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--iters", type=int, default=1000)
    args = ap.parse_args()
    groups = [{"name": f"g{i}", "lr": 0.01 * (i + 1), "momentum": 0.9} for i in range(args.groups)]
    preview(groups[:1], COMPONENTS, 1, 10)   # imports, first-call costs
    t0 = time.perf_counter()
    rows = preview(groups, COMPONENTS, args.epochs, args.iters)
    dt = time.perf_counter() - t0
    print(f"preview: {len(rows)} iterations x {args.groups} groups in {dt:.2f} s")


if __name__ == "__main__":
    main()
