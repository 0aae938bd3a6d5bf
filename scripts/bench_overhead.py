"""Per-iteration overhead of the trainkit loop against a plain PyTorch loop.

Same tiny model (Linear(32,32)-ReLU-Linear(32,10)), batch 64, SGD momentum 0.9, data in
memory through the same kind of DataLoader, 1 thread. ``--groups G`` param groups: the
model's 4 tensors one per group, and beyond 4, groups of one unused scalar each (no grad:
every loop, hand-written or not, pays the same optimizer cost; the rows carry G groups).

Prints, for every loop, the median µs per iteration over ``--repeats`` repeats (the
variants interleaved, so a load change hits all of them), min and max, and the ratio of
medians to the plain loop of the same run. For loops with a sink: the training thread's
time inside each sink per logged row (all of it over the rows, and the 99th percentile of one
call; wall time, so being preempted inside counts), and the end-of-run ``close`` of all sinks
(the last rows + W&B finish).
W&B runs are offline, in a temporary directory; a trainkit W&B loop is timed once its
writer has started W&B (``wait_started``: init runs beside training, not in it).

A second table: the cost of one row + its ``metrics.jsonl`` line with G groups, trainkit's
LoggerHook + JsonlSink against a hand-written dict + ``json.dumps`` line (median of
repeats of ``--row-calls`` rows each).

    python scripts/bench_overhead.py [--iters 3000] [--repeats 5] [--groups 4] [--only SUBSTR]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

N_SAMPLES = 64 * 50
os.environ.setdefault("WANDB_SILENT", "true")


class Tiny(nn.Module):
    def __init__(self, groups: int = 4):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(32, 32), nn.Linear(32, 10)
        self.extra = nn.ParameterList([nn.Parameter(torch.zeros(())) for _ in range(max(0, groups - 4))])

    def logits(self, x):
        return self.fc2(torch.relu(self.fc1(x)))

    def forward(self, batch):   # trainkit's model contract
        x, y = batch
        return {"loss": nn.functional.cross_entropy(self.logits(x), y)}


def make_data():
    g = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randn(N_SAMPLES, 32, generator=g), torch.randint(0, 10, (N_SAMPLES,), generator=g))


def param_groups(model: Tiny, lr: float = 0.01):
    """One group per parameter tensor, named g0, g1, ... with lr = lr * (i + 1)."""
    return [{"name": f"g{i}", "params": [p], "lr": lr * (i + 1)} for i, p in enumerate(model.parameters())]


def _make(groups: int):
    torch.manual_seed(0)
    model = Tiny(groups)
    opt = torch.optim.SGD(param_groups(model), lr=0.01, momentum=0.9)
    assert len(opt.param_groups) == max(groups, 4)
    return model, opt


# ------------------------------------------------------------------ hand loops
def _hand_loop(iters: int, groups: int, accelerator=None, row_to=None) -> dict:
    """µs per iteration of a hand-written loop; with ``accelerator``, everything prepared by
    it; with ``row_to(row, step)``, every group's lr/momentum + loss handed to it every step."""
    model, opt = _make(groups)
    loader = DataLoader(make_data(), batch_size=64, shuffle=True)
    backward = torch.Tensor.backward
    if accelerator is not None:
        model, opt, loader = accelerator.prepare(model, opt, loader)
        backward = accelerator.backward
    names = [g["name"] for g in opt.param_groups]
    done, epoch, t0 = 0, 0, time.perf_counter()
    while done < iters:
        for x, y in loader:
            loss = nn.functional.cross_entropy(model.logits(x), y)
            backward(loss)
            opt.step()
            opt.zero_grad(set_to_none=True)
            if row_to is not None:
                row = {"epoch": epoch, "loss": loss.item()}
                for name, g in zip(names, opt.param_groups, strict=True):
                    row[f"lr/{name}"] = g["lr"]
                    row[f"momentum/{name}"] = g["momentum"]
                row_to(row, done)
            done += 1
            if done == iters:
                break
        epoch += 1
    return {"us": (time.perf_counter() - t0) / iters * 1e6}


def plain_loop(iters: int, groups: int) -> dict:
    return _hand_loop(iters, groups)


def accelerate_loop(iters: int, groups: int) -> dict:
    from accelerate import Accelerator

    return _hand_loop(iters, groups, Accelerator(cpu=True))


def plain_jsonl_loop(iters: int, groups: int) -> dict:
    """The hand loop writing ``{"step": i, **row}`` as a JSON line every step."""
    with tempfile.TemporaryDirectory() as d, open(Path(d) / "metrics.jsonl", "a", encoding="utf-8") as f:
        return _hand_loop(iters, groups, row_to=lambda row, step: f.write(json.dumps({"step": step, **row}) + "\n"))


def plain_wandb_loop(iters: int, groups: int) -> dict:
    """The hand loop calling ``run.log(row, step=i)`` itself (W&B offline, in this process;
    run in a fresh interpreter so that no W&B thread outlives it into the other loops)."""
    code = ("import json, sys; sys.argv = ['x']; import scripts.bench_overhead as b; "
            f"print(json.dumps(b._plain_wandb_child({iters}, {groups})))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    return json.loads(out.stdout.strip().splitlines()[-1])


def _plain_wandb_child(iters: int, groups: int) -> dict:
    import wandb

    from trainkit.sinks.wandb_writer import LEAN_SETTINGS, _no_client_analytics

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as d:
        run = wandb.init(mode="offline", project="bench", dir=d, settings=wandb.Settings(**LEAN_SETTINGS))
        _no_client_analytics()
        out = _hand_loop(iters, groups, row_to=lambda row, step: run.log(row, step=step))
        t0 = time.perf_counter()
        run.finish()
        out["close_s"] = time.perf_counter() - t0
    return out


# ----------------------------------------------------------------- trainkit
class _Timed:
    """Wraps a sink's ``log``/``flush`` to record the training thread's (wall) time inside each
    call; it includes being preempted there, so a sink that wakes other processes pays for it."""

    def __init__(self, sink):
        self.sink, self.calls, self.rows = sink, [], 0
        log, flush = sink.log, getattr(sink, "flush", None)
        clock, calls = time.perf_counter, self.calls

        def timed_log(row, step):
            t = clock()
            log(row, step)
            calls.append(clock() - t)

        def timed_flush():
            t = clock()
            flush()
            calls.append(clock() - t)

        sink.log = timed_log
        if flush is not None:
            sink.flush = timed_flush

    def per_row(self) -> tuple[float, float]:
        """(µs per logged row: all the time inside the sink / rows, the 99th percentile of one call)."""
        rows = max(1, len(self.calls))
        ordered = sorted(self.calls)
        return sum(ordered) / rows * 1e6, ordered[int(0.99 * (len(ordered) - 1))] * 1e6 if ordered else 0.0


def trainkit_loop(iters: int, groups: int, components=None, wandb: bool = False, log_interval: int = 10) -> dict:
    from trainkit.core.record import JsonlSink
    from trainkit.core.runner import Runner

    model, opt = _make(groups)
    with tempfile.TemporaryDirectory() as d:
        sinks = [JsonlSink(Path(d) / "metrics.jsonl")]
        if wandb:
            from trainkit.sinks.wandb import WandbSink

            sinks.append(WandbSink(mode="offline", project="bench", dir=d))
            assert sinks[-1].wait_started() == "offline"
        timed = [_Timed(s) for s in sinks]
        runner = Runner(model, opt, make_data(), batch_size=64, max_iters=iters, work_dir=d,
                        progress=False, components=components or {}, sinks=sinks,
                        checkpoint_interval=10**9, log_interval=log_interval)
        runner._save = lambda *a: None   # time the loop, not checkpoint writing
        t0 = time.perf_counter()
        runner.run()
        dt = time.perf_counter() - t0
        t1 = time.perf_counter()
        for s in runner.sinks:
            s.close()
        close_s = time.perf_counter() - t1
    out = {"us": dt / iters * 1e6, "sink_us": {type(t.sink).__name__: t.per_row() for t in timed}}
    if wandb:
        out["close_s"] = close_s
        out["wandb"] = {"logged": sinks[-1].logged, "dropped": sinks[-1].dropped, "errors": sinks[-1].errors}
    return out


def _cosine():
    from trainkit.schedules.mmcv_lr import CosineAnnealingLrUpdater

    return {"lr": CosineAnnealingLrUpdater(by_epoch=False, min_lr_ratio=0.01, warmup="linear",
                                           warmup_iters=100, warmup_ratio=0.001)}


VARIANTS = {
    "plain PyTorch loop": plain_loop,
    "plain accelerate loop": accelerate_loop,
    "plain loop + jsonl row every step": plain_jsonl_loop,
    "plain loop + wandb.log every step": plain_wandb_loop,
    "trainkit Runner (jsonl every 10, logger=none)": lambda n, g: trainkit_loop(n, g),
    "trainkit + W&B offline, log_interval=10": lambda n, g: trainkit_loop(n, g, wandb=True),
    "trainkit, log every step (jsonl)": lambda n, g: trainkit_loop(n, g, log_interval=1),
    "trainkit + cosine/warmup, log every step": lambda n, g: trainkit_loop(n, g, _cosine(), log_interval=1),
    "trainkit + W&B offline, log every step": lambda n, g: trainkit_loop(n, g, wandb=True, log_interval=1),
    "trainkit + cosine/warmup + W&B offline, every step":
        lambda n, g: trainkit_loop(n, g, _cosine(), wandb=True, log_interval=1),
}


# ------------------------------------------------------------- row cost
def row_cost(groups: int, calls: int, repeats: int) -> dict[str, list[float]]:
    """µs per row + its metrics.jsonl line: hand dict + json.dumps vs LoggerHook + JsonlSink."""
    from types import SimpleNamespace

    from trainkit.core.groups import group_names
    from trainkit.core.record import JsonlSink, LoggerHook

    _, opt = _make(groups)
    loss = torch.tensor(2.302585)
    runner = SimpleNamespace(optimizer=opt, group_names=group_names(opt), outputs={"loss": loss}, scalars={},
                             epoch=0, iter=0, inner_iter=0, iters_per_epoch=10**9, max_iters=10**9, last_row=None)

    def hand(d):
        names = runner.group_names
        with open(Path(d) / "hand.jsonl", "a", encoding="utf-8") as f:
            t0 = time.perf_counter()
            for i in range(calls):
                row = {"step": i, "epoch": 0, "loss": loss.item()}
                for name, g in zip(names, opt.param_groups, strict=True):
                    row[f"lr/{name}"] = g["lr"]
                    row[f"momentum/{name}"] = g["momentum"]
                f.write(json.dumps(row) + "\n")
            return time.perf_counter() - t0

    def trainkit(d):
        sink = JsonlSink(Path(d) / "trainkit.jsonl")
        hook = LoggerHook([sink], interval=1)
        t0 = time.perf_counter()
        for i in range(calls):
            runner.iter = i
            hook.after_iter(runner)
        dt = time.perf_counter() - t0
        sink.close()
        return dt

    out: dict[str, list[float]] = {"hand dict + json.dumps line": [], "trainkit LoggerHook + JsonlSink": []}
    with tempfile.TemporaryDirectory() as d:
        for _ in range(repeats):
            for name, fn in zip(out, (hand, trainkit), strict=True):
                out[name].append(fn(d) / calls * 1e6)
        a, b = (Path(d) / "hand.jsonl").read_text(), (Path(d) / "trainkit.jsonl").read_text()
        assert a == b, "the two lines differ"   # the same bytes: same work
    return out


# ------------------------------------------------------------------- main
def _fmt(xs: list[float]) -> str:
    return f"{statistics.median(xs):9.1f} {min(xs):8.1f} {max(xs):8.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=3000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--groups", type=int, default=4, help="param groups (>= 4)")
    ap.add_argument("--only", default=None, help="substring of the loops to run (the plain loop always runs)")
    ap.add_argument("--row-calls", type=int, default=0, help="rows per repeat of the row-cost table (0: auto)")
    ap.add_argument("--no-rows", action="store_true", help="skip the row-cost table")
    args = ap.parse_args()
    torch.set_num_threads(1)
    variants = dict(VARIANTS)
    if args.only:
        variants = {k: v for k, v in variants.items() if args.only in k or k == "plain PyTorch loop"}
    print(f"load average before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}; "
          f"{args.groups} groups, {args.iters} iterations x {args.repeats} repeats")
    results: dict[str, list[dict]] = {k: [] for k in variants}
    for fn in variants.values():
        fn(min(300, args.iters), args.groups)   # warm-up
    for _ in range(args.repeats):   # interleaved: every repeat runs every loop once
        for name, fn in variants.items():
            results[name].append(fn(args.iters, args.groups))
    base = statistics.median(r["us"] for r in results["plain PyTorch loop"])
    print(f"{'loop (µs per iteration)':52s} {'median':>9s} {'min':>8s} {'max':>8s} {'ratio':>7s}  sinks")
    for name, rs in results.items():
        us = [r["us"] for r in rs]
        extra = []
        if "sink_us" in rs[0]:
            for sink in rs[0]["sink_us"]:
                mean = statistics.median(r["sink_us"][sink][0] for r in rs)
                p99 = statistics.median(r["sink_us"][sink][1] for r in rs)
                extra.append(f"{sink} {mean:.1f} µs/row (p99 {p99:.0f})")
        if "close_s" in rs[0]:
            extra.append(f"close {statistics.median(r['close_s'] for r in rs):.2f} s")
        if "wandb" in rs[0]:
            w = [r["wandb"] for r in rs]
            extra.append(f"dropped {sum(x['dropped'] for x in w)}, errors {sum(x['errors'] for x in w)}")
        print(f"{name:52s} {_fmt(us)} {statistics.median(us) / base:6.2f}x  {'; '.join(extra)}")
    if not args.no_rows:
        calls = args.row_calls or max(200, 200_000 // args.groups)
        rows = row_cost(args.groups, calls, max(args.repeats, 5))
        hand = statistics.median(rows["hand dict + json.dumps line"])
        print(f"\n{'row + metrics.jsonl line, ' + str(args.groups) + ' groups (µs per row)':52s} "
              f"{'median':>9s} {'min':>8s} {'max':>8s} {'ratio':>7s}  per group")
        for name, xs in rows.items():
            m = statistics.median(xs)
            print(f"{name:52s} {_fmt(xs)} {m / hand:6.2f}x  {m / args.groups:.3f} µs")
    print(f"load average after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}")


if __name__ == "__main__":
    main()
