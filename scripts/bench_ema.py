"""Times one EMA update of a ~28M-parameter target (180 tensors), 1 thread, against the
memory-bandwidth ceiling.

An update reads the target and the online weights and writes the target: 12 bytes per
fp32 parameter. The ceiling is the fastest in-place kernel with that same traffic on
the same flat buffers: ``t.add_(o)`` or ``t.copy_(o)`` (whose read of ``t`` is the
cache's write-allocate). Methods, each timed in interleaved rounds (best of N):

- ``mmselfsup``: the reference, ``t.data = t.data * m + o.data * (1 - m)`` per tensor
- ``naive loop``: in place per tensor, ``t.mul_(m).add_(o, alpha=1 - m)``
- ``_foreach_lerp_``: one call over the 180 separate tensors
- ``MomentumEMA``: trainkit's update, one ``lerp_`` over flat buffers

Usage: ``python scripts/bench_ema.py [--rounds 30]``
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from trainkit.optim.ema import MomentumEMA  # noqa: E402

M = 0.996


class Net(nn.Module):
    """60 blocks of conv 3x3 (no bias) + BatchNorm: 180 parameter tensors, ~28.3M parameters."""

    def __init__(self):
        super().__init__()
        chans = [64] * 15 + [128] * 15 + [256] * 15 + [352] * 15
        blocks = [nn.Sequential(nn.Conv2d(c, c, 3, bias=False), nn.BatchNorm2d(c)) for c in chans]
        self.online_net = nn.Sequential(*blocks)
        self.target_net = copy.deepcopy(self.online_net).requires_grad_(False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)

    flat_model, loose = Net(), Net()
    n_params = sum(p.numel() for p in flat_model.online_net.parameters())
    n_tensors = len(list(flat_model.online_net.parameters()))
    ema = MomentumEMA(base_momentum=M)
    ema.before_run(SimpleNamespace(model=flat_model, optimizer=torch.optim.SGD(
        flat_model.online_net.parameters(), lr=0.1)))
    (ft, fo), = ema._flat
    targets = [p.data for p in loose.target_net.parameters()]
    onlines = [p.data for p in loose.online_net.parameters()]

    def mmselfsup():
        for t, o in zip(loose.target_net.parameters(), loose.online_net.parameters(), strict=True):
            t.data = t.data * M + o.data * (1.0 - M)

    def naive():
        for t, o in zip(targets, onlines, strict=True):
            t.mul_(M).add_(o, alpha=1.0 - M)

    methods = {
        "ceiling: t.add_(o)": lambda: ft.add_(fo),
        "ceiling: t.copy_(o)": lambda: ft.copy_(fo),
        "mmselfsup (per tensor, new tensors)": mmselfsup,
        "naive loop (per tensor, mul_/add_)": naive,
        "_foreach_lerp_ (180 tensors)": lambda: torch._foreach_lerp_(targets, onlines, 1.0 - M),
        "MomentumEMA.update (flat lerp_)": lambda: ema.update(M),
    }
    times: dict[str, list[float]] = {k: [] for k in methods}
    for f in methods.values():   # warm-up
        f()
    for _ in range(args.rounds):
        for name, f in methods.items():
            t0 = time.perf_counter()
            f()
            times[name].append(time.perf_counter() - t0)

    nbytes = 3 * 4 * n_params
    ceiling = min(min(times["ceiling: t.add_(o)"]), min(times["ceiling: t.copy_(o)"]))
    print(f"target: {n_params / 1e6:.1f}M fp32 parameters in {n_tensors} tensors; "
          f"{nbytes / 1e6:.0f} MB moved per update; 1 thread; best of {args.rounds}")
    print(f"{'method':<38}{'best ms':>9}{'median ms':>11}{'GB/s':>8}{'of ceiling':>12}")
    for name, ts in times.items():
        best = min(ts)
        print(f"{name:<38}{best * 1e3:>9.2f}{statistics.median(ts) * 1e3:>11.2f}"
              f"{nbytes / best / 1e9:>8.1f}{ceiling / best:>11.0%}")


if __name__ == "__main__":
    main()
