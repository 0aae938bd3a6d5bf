"""``python -m trainkit.plot RUN_DIR [--out FILE] [--no-loss]``: the logged schedule as a PNG.

Reads ``RUN_DIR/metrics.jsonl`` (the same rows W&B gets) and draws one panel per
quantity against ``trainer/global_step`` (the rows' ``step``): every group's
``lr/<group>``, every group's ``momentum/<group>``, and ``loss`` when logged.
Needs no W&B and no display (matplotlib's Agg canvas).
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any
from collections.abc import Sequence

from ..core.record import read_jsonl

Curves = dict[str, tuple[list[int], list[float]]]
PANELS = ("lr/", "momentum/", "loss")


def curves(rows: Sequence[dict[str, Any]], key: str) -> Curves:
    """``{label: (steps, values)}``: one curve per ``key<label>`` when ``key`` ends
    with ``/`` (``lr/`` → one per group), else the single curve of ``key``."""
    out: Curves = {}
    for row in rows:
        for k, v in row.items():
            if k == key or (key.endswith("/") and k.startswith(key)):
                xs, ys = out.setdefault(k[len(key):] or k, ([], []))
                xs.append(row["step"])
                ys.append(float(v))
    return out


def render(rows: Sequence[dict[str, Any]], loss: bool = True):
    """A matplotlib ``Figure`` with one axes per non-empty panel, in ``PANELS`` order;
    each axes' lines carry the group names as labels."""
    from matplotlib.figure import Figure

    panels = [(key, c) for key in PANELS if (loss or key != "loss") and (c := curves(rows, key))]
    if not panels:
        raise ValueError("no lr/, momentum/ or loss values among the rows")
    fig = Figure(figsize=(8, 2.6 * len(panels)), layout="constrained")
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (key, c) in zip(axes, panels, strict=True):
        for label, (xs, ys) in c.items():
            ax.plot(xs, ys, label=label, linewidth=1.2)
        ax.set_ylabel(key.rstrip("/"))
        ax.grid(alpha=0.3)
        if key.endswith("/"):
            ax.legend(fontsize="small", loc="best")
    axes[-1].set_xlabel("trainer/global_step")
    return fig


def plot_run(run_dir: str | os.PathLike, out: str | os.PathLike | None = None, loss: bool = True) -> Path:
    """Render ``run_dir/metrics.jsonl`` to ``out`` (default ``run_dir/schedule.png``)."""
    run_dir = Path(run_dir)
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: RUN_DIR must be a trainkit run directory")
    out = Path(out) if out is not None else run_dir / "schedule.png"
    render(read_jsonl(path), loss=loss).savefig(out, dpi=110)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m trainkit.plot", description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", help="a run directory holding metrics.jsonl")
    ap.add_argument("--out", default=None, help="PNG path (default RUN_DIR/schedule.png)")
    ap.add_argument("--no-loss", action="store_true", help="leave out the loss panel")
    args = ap.parse_args(argv)
    try:
        print(plot_run(args.run_dir, args.out, loss=not args.no_loss))
    except (FileNotFoundError, ValueError) as e:
        ap.error(str(e))


if __name__ == "__main__":
    main()
