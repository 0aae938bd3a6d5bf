"""Times a schedule preview, and what writing its CSV costs.

    python scripts/bench_preview.py [--groups 30] [--epochs 20] [--iters 1000]            # mmcv updaters
    python scripts/bench_preview.py --schedule mmengine --groups 3 --epochs 1 --iters 1000000 --csv /tmp/s.csv
    python scripts/bench_preview.py ... --memory      # peak Python memory (tracemalloc: slower, run it apart)

``mmcv``: per-iteration cosine lr with linear warmup and per-iteration cosine momentum (every iteration writes
every group's lr and momentum: the costly case). ``mmengine``: an mmseg/mmdet-style list, a 500-iteration
LinearLR warmup chained with a by-iteration PolyLR over the whole run (every iteration steps both; the
warmup only counts after its window). Imports and a warm-up call are excluded; the median of ``--repeats``.
"""
import argparse
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trainkit.schedules.preview import _preview, write_csv  # noqa: E402

SCHEDULES = {
    "none": {},      # the dry-run loop and the recorder alone: the baseline
    "mmcv": {
        "lr": {"_target_": "trainkit.schedules.CosineAnnealingLrUpdater", "by_epoch": False, "min_lr_ratio": 0.01,
               "warmup": "linear", "warmup_iters": 500, "warmup_ratio": 0.001},
        "momentum": {"_target_": "trainkit.schedules.CosineAnnealingMomentumUpdater", "by_epoch": False,
                     "min_momentum_ratio": 0.99 / 0.9},
    },
    "mmengine": {
        "lr": {"_target_": "trainkit.schedules.param_scheduler", "schedulers": [
            {"type": "LinearLR", "start_factor": 0.001, "by_epoch": False, "begin": 0, "end": 500},
            {"type": "PolyLR", "eta_min": 1e-4, "power": 0.9, "by_epoch": False, "begin": 0}]},
    },
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--schedule", choices=sorted(SCHEDULES), default="mmcv")
    ap.add_argument("--baseline", action="store_true", help="also time the same preview without components, "
                    "interleaved with the timed one (a ratio within one run, on a shared machine)")
    ap.add_argument("--groups", type=int, default=30)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--iters", type=int, default=1000, help="iterations per epoch")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--csv", type=Path, help="also write the CSV (streamed from the table's arrays)")
    ap.add_argument("--memory", action="store_true", help="report the peak Python memory of one preview (+ CSV)")
    args = ap.parse_args()
    comps = SCHEDULES[args.schedule]
    groups = [{"name": f"g{i}", "lr": 0.01 * (i + 1), "momentum": 0.9} for i in range(args.groups)]
    _preview(groups[:1], comps, 1, 10, None, None, 1)   # imports, first-call costs
    times, csv_times, base = [], [], []
    for _ in range(args.repeats):
        if args.baseline:
            t0 = time.perf_counter()
            _preview(groups, {}, args.epochs, args.iters, None, None, 1)
            base.append(time.perf_counter() - t0)
        if args.memory:
            tracemalloc.start()
        t0 = time.perf_counter()
        table, _ = _preview(groups, comps, args.epochs, args.iters, None, None, 1)
        times.append(time.perf_counter() - t0)
        if args.csv:
            t0 = time.perf_counter()
            write_csv(table, args.csv)
            csv_times.append(time.perf_counter() - t0)
        if args.memory:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            arrays = table.counters.itemsize * len(table.counters) + table.values.itemsize * len(table.values)
            print(f"peak Python memory {peak / 2**20:.1f} MiB (the table's arrays: {arrays / 2**20:.1f} MiB)")
        del table
    n = args.epochs * args.iters
    print(f"preview ({args.schedule}): {n} iterations x {args.groups} groups in {statistics.median(times):.2f} s"
          f" (median of {len(times)}; {1e6 * statistics.median(times) / n:.2f} us/iteration)")
    if base:
        print(f"without components: {statistics.median(base):.2f} s; the schedule adds "
              f"{statistics.median(t - b for t, b in zip(times, base, strict=True)):.2f} s "
              f"(x{statistics.median(t / b for t, b in zip(times, base, strict=True)):.2f})")
    if csv_times:
        size = args.csv.stat().st_size
        print(f"csv: {statistics.median(csv_times):.2f} s, {size / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
