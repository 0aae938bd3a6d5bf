"""Fine-tuning from a pre-trained checkpoint vs training from scratch (``trainer.load_from``).

For each seed: ``convnext_pretrain`` (digits 0-4, training split) writes a checkpoint;
``convnext_layer_decay`` then trains twice with the same seed and schedule, once from that
checkpoint's backbone and once from scratch (``trainer.load_from=null``). Printed: the first
epoch whose validation accuracy reaches the target, and the final accuracy, per seed and as the
median over seeds.

    OMP_NUM_THREADS=1 python scripts/bench_finetune.py [--seeds 0 1 2 3 4] [--target 0.97] [--out DIR]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def compose(*overrides):
    from hydra import compose as hydra_compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from trainkit import config as C

    C.register()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(C.CONF_DIR), version_base="1.3"):
        return hydra_compose("config", overrides=["trainer.progress=false", "logger=none", *overrides])


def accuracies(run_dir: Path) -> list[float]:
    from trainkit.core.record import read_jsonl

    return [r["val/acc"] for r in read_jsonl(run_dir / "metrics.jsonl") if "val/acc" in r]


def first_epoch(accs: list[float], target: float) -> int | None:
    return next((e for e, a in enumerate(accs, 1) if a >= target), None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--target", type=float, default=0.97)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    from trainkit.cli.train import run_config

    out = args.out or Path(tempfile.mkdtemp(prefix="bench_finetune_"))
    rows = []
    for seed in args.seeds:
        t0 = time.perf_counter()
        run_config(compose("+recipe=convnext_pretrain", f"seed={seed}"), out / f"pretrain_{seed}")
        pre = out / f"pretrain_{seed}" / "checkpoints" / "last.pt"
        t1 = time.perf_counter()
        run_config(compose("+recipe=convnext_layer_decay", f"seed={seed}", f"trainer.load_from={pre}"),
                   out / f"finetune_{seed}")
        run_config(compose("+recipe=convnext_layer_decay", f"seed={seed}", "trainer.load_from=null"),
                   out / f"scratch_{seed}")
        ft, sc = accuracies(out / f"finetune_{seed}"), accuracies(out / f"scratch_{seed}")
        rows.append((seed, first_epoch(ft, args.target), first_epoch(sc, args.target), ft[-1], sc[-1],
                     accuracies(out / f"pretrain_{seed}")[-1]))
        print(f"seed {seed}: pretrain {t1 - t0:.0f} s (val/acc on digits 0-4 {rows[-1][5]:.3f}); "
              f"val/acc per epoch\n  fine-tune {' '.join(f'{a:.3f}' for a in ft)}\n"
              f"  scratch   {' '.join(f'{a:.3f}' for a in sc)}", flush=True)
    print(f"\nfirst epoch with val/acc >= {args.target} (15 epochs each; None: never), final val/acc:")
    print("| seed | fine-tuned from convnext_pretrain | from scratch | final (fine-tuned) | final (scratch) |")
    print("|---|---|---|---|---|")
    for seed, e_ft, e_sc, a_ft, a_sc, _ in rows:
        print(f"| {seed} | {e_ft} | {e_sc} | {a_ft:.3f} | {a_sc:.3f} |")

    def med(xs):
        xs = [x for x in xs if x is not None]
        return statistics.median(xs) if xs else None

    print(f"| median | {med([r[1] for r in rows])} | {med([r[2] for r in rows])} | "
          f"{med([r[3] for r in rows]):.3f} | {med([r[4] for r in rows]):.3f} |")
    print(f"runs under {out}")


if __name__ == "__main__":
    main()
