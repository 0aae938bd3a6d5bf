"""The README's "Porting an OpenMMLab 2.0 schedule" plot: mmdet 3.x's schedule_1x, previewed.

    python scripts/plot_schedule_1x.py [--iters-per-epoch 7330] [--out docs/img/schedule_1x.png]

One param group at lr 0.02 (SGD momentum 0.9), 12 epochs of 7330 iterations (COCO train2017 at 16 images
per batch), the config's ``param_scheduler`` list as written in
``mmdetection/configs/_base_/schedules/schedule_1x.py``.
"""
import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from trainkit.schedules.preview import _preview, plot  # noqa: E402

SCHEDULE_1X = [
    {"type": "LinearLR", "start_factor": 0.001, "by_epoch": False, "begin": 0, "end": 500},
    {"type": "MultiStepLR", "begin": 0, "end": 12, "by_epoch": True, "milestones": [8, 11], "gamma": 0.1},
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters-per-epoch", type=int, default=7330)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "schedule_1x.png")
    args = ap.parse_args()
    node = {"_target_": "trainkit.schedules.param_scheduler", "schedulers": SCHEDULE_1X}
    table, _ = _preview([{"name": "all", "lr": 0.02, "momentum": 0.9}], {"lr": node}, 12, args.iters_per_epoch,
                        None, None, 1)
    lr = table.column("lr/all")
    plot(table, args.out, title=f"mmdet schedule_1x: 12 epochs x {args.iters_per_epoch} iterations")
    print(f"{args.out}: lr[0] = {lr[0]!r}, lr[499] = {lr[499]!r}, epoch 8: {lr[8 * args.iters_per_epoch]!r}, "
          f"epoch 11: {lr[11 * args.iters_per_epoch]!r}")


if __name__ == "__main__":
    main()
