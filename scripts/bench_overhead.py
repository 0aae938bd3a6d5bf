"""Per-iteration overhead of the trainkit loop against a plain PyTorch loop.

Same tiny model (Linear(32,32)-ReLU-Linear(32,10)), batch 64, 4 param groups, SGD
momentum 0.9, data in memory through the same kind of DataLoader, 1 thread. Prints
the median µs per iteration over several repeats and the ratio to the plain loop.
The W&B variant logs each step to an offline run in a temporary directory.

    python scripts/bench_overhead.py [--iters 3000] [--repeats 5]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

N_SAMPLES = 64 * 50


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(32, 32), nn.Linear(32, 10)

    def logits(self, x):
        return self.fc2(torch.relu(self.fc1(x)))

    def forward(self, batch):   # trainkit's model contract
        x, y = batch
        return {"loss": nn.functional.cross_entropy(self.logits(x), y)}


def make_data():
    g = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randn(N_SAMPLES, 32, generator=g), torch.randint(0, 10, (N_SAMPLES,), generator=g))


def four_groups(model: Tiny, lr: float = 0.01):
    return [{"name": f"g{i}", "params": [p], "lr": lr * (i + 1)} for i, p in enumerate(model.parameters())]


def _hand_loop(iters: int, accelerator=None) -> float:
    """µs per iteration of a hand-written loop; with ``accelerator``, everything prepared by it."""
    torch.manual_seed(0)
    model = Tiny()
    opt = torch.optim.SGD(four_groups(model), lr=0.01, momentum=0.9)
    loader = DataLoader(make_data(), batch_size=64, shuffle=True)
    backward = torch.Tensor.backward
    if accelerator is not None:
        model, opt, loader = accelerator.prepare(model, opt, loader)
        backward = accelerator.backward
    done, t0 = 0, time.perf_counter()
    while done < iters:
        for x, y in loader:
            backward(nn.functional.cross_entropy(model.logits(x), y))
            opt.step()
            opt.zero_grad(set_to_none=True)
            done += 1
            if done == iters:
                break
    return (time.perf_counter() - t0) / iters * 1e6


def plain_loop(iters: int) -> float:
    return _hand_loop(iters)


def accelerate_loop(iters: int) -> float:
    from accelerate import Accelerator

    return _hand_loop(iters, Accelerator(cpu=True))


def trainkit_loop(iters: int, components=None, sinks=None, log_interval: int = 10) -> float:
    from trainkit.core.runner import Runner

    torch.manual_seed(0)
    model = Tiny()
    opt = torch.optim.SGD(four_groups(model), lr=0.01, momentum=0.9)
    with tempfile.TemporaryDirectory() as d:
        runner = Runner(model, opt, make_data(), batch_size=64, max_iters=iters, work_dir=d,
                        progress=False, components=components or {}, sinks=sinks,
                        checkpoint_interval=10**9, log_interval=log_interval)
        runner._save = lambda *a: None   # time the loop, not checkpoint writing
        t0 = time.perf_counter()
        runner.run()
        dt = time.perf_counter() - t0
        for s in runner.sinks:
            s.close()
    return dt / iters * 1e6


def wandb_offline_loop(iters: int) -> float:
    """Every group's lr and momentum (and the loss) to metrics.jsonl and W&B offline, every step."""
    import os

    from trainkit.sinks.wandb import WandbSink

    os.environ.setdefault("WANDB_SILENT", "true")
    with tempfile.TemporaryDirectory() as d:
        sink = WandbSink(mode="offline", project="bench", dir=d)
        try:
            return trainkit_loop(iters, sinks=[sink], log_interval=1)
        finally:
            sink.close()


VARIANTS = {
    "plain PyTorch loop": plain_loop,
    "plain accelerate loop": accelerate_loop,
    "trainkit Runner": trainkit_loop,
    "trainkit, log every step (jsonl)": lambda iters: trainkit_loop(iters, log_interval=1),
    "trainkit + W&B offline, log every step": wandb_offline_loop,
}


def extra_variants() -> dict:
    """Variants that need later components; added when those modules exist."""
    out = {}
    try:
        from trainkit.schedules.mmcv_lr import CosineAnnealingLrUpdater

        def with_schedule(iters):
            comp = {"lr": CosineAnnealingLrUpdater(by_epoch=False, min_lr_ratio=0.01, warmup="linear",
                                                   warmup_iters=100, warmup_ratio=0.001)}
            return trainkit_loop(iters, components=comp, log_interval=1)
        out["trainkit + cosine/warmup, log every step"] = with_schedule
    except ImportError:
        pass
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=3000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--only", default=None, help="substring of the variants to run")
    args = ap.parse_args()
    torch.set_num_threads(1)
    variants = {**VARIANTS, **extra_variants()}
    if args.only:
        variants = {k: v for k, v in variants.items() if args.only in k or k == "plain PyTorch loop"}
    results = {}
    for name, fn in variants.items():
        fn(min(300, args.iters))   # warm-up
        times = [fn(args.iters) for _ in range(args.repeats)]
        results[name] = statistics.median(times)
    base = results["plain PyTorch loop"]
    print(f"{'loop':45s} {'µs/iter':>9s} {'ratio':>7s}")
    for name, us in results.items():
        print(f"{name:45s} {us:9.1f} {us / base:7.2f}x")


if __name__ == "__main__":
    main()
