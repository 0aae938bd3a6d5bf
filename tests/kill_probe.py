"""Kill -9 a training run at seeded random moments and resume it, in forked children.

``python tests/kill_probe.py SPEC.json [SPEC.json ...]``: each SPEC is ``{"out": DIR, "seed": S,
"first_save": N, "overrides": [...]}`` (N: the iteration count of the run's first checkpoint).
The driver composes the recipe once, then forks one child per segment, each calling
``run_config`` as ``python -m trainkit.train`` would (``logger=none``):

- ``DIR/full/run``: the uninterrupted run;
- ``DIR/cut/run``: the same config with ``trainer.resume=auto``, killed (``SIGKILL`` sent by the
  child to itself: nothing is flushed, no ``finally`` runs) at one moment per segment, in order:
  1. before the first checkpoint (an iteration before the first save),
  2. inside a checkpoint write (the segment's second, after a random number of the file's bytes),
  3. right after an epoch checkpoint,
  4. between saves (a random iteration after the resume point),
  then run to the end.

Moments come from ``random.Random(seed)``. The parent does no torch work (forking is safe); it
writes ``DIR/kills.json`` (what each segment did) and exits 0. The test compares the two runs.
"""
import json
import os
import random
import signal
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def compose(overrides):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from trainkit import config as C

    C.register()
    with initialize_config_dir(config_dir=str(C.CONF_DIR), version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides))


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def install(kind, arg):
    """Arm one kill in this (child) process."""
    from trainkit.core import checkpoint as ckpt_io
    from trainkit.core.runner import Runner

    if kind in ("before_first", "between"):
        step = Runner._train_step

        def train_step(self, batch, sync):
            if self.iter == arg:
                die()
            return step(self, batch, sync)
        Runner._train_step = train_step
    elif kind == "in_save":
        save, calls = torch.save, [0]

        class Cut:   # the checkpoint file: dies after `arg` bytes of it reach the disk
            def __init__(self, f):
                self.f, self.n = f, 0

            def write(self, b):
                b = bytes(b)
                if self.n + len(b) >= arg:
                    self.f.write(b[:max(0, arg - self.n)])
                    self.f.flush()
                    os.fsync(self.f.fileno())
                    die()
                self.n += len(b)
                return self.f.write(b)

            def flush(self):
                self.f.flush()

        def cut_save(obj, f, *a, **k):   # the segment's second save is cut: the first one is intact
            calls[0] += 1
            return save(obj, Cut(f) if calls[0] == 2 else f, *a, **k)
        ckpt_io.torch.save = cut_save
    elif kind == "after_epoch_save":
        save_all = Runner._save

        def save_then_die(self, *names):
            save_all(self, *names)
            if any(n.startswith("epoch_") for n in names):
                die()
        Runner._save = save_then_die


def segment(cfg, work_dir, kill):
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            from trainkit.cli.train import run_config

            if kill is not None:
                install(*kill)
            run_config(cfg, work_dir)
        except BaseException as e:   # noqa: BLE001 (reported to the parent through the exit code)
            print(f"segment failed: {type(e).__name__}: {e}", file=sys.stderr)
            code = 3
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    code = os.WEXITSTATUS(status)
    if code != 0:
        raise SystemExit(f"segment {kill} exited with {code}")
    return "finished"


def checkpoint_iter(work_dir):
    from trainkit.core import checkpoint as ckpt_io

    last = Path(work_dir) / "checkpoints" / "last.pt"
    try:
        return ckpt_io.load(last)["counters"]["iter"]
    except Exception:
        return 0


def prewarm():
    """Import in the parent what every child would import lazily (sklearn, torch._dynamo, the
    tasks): each fork then starts warm. Nothing here runs a torch op or starts a thread."""
    import accelerate  # noqa: F401
    import sklearn.datasets  # noqa: F401
    import torch._dynamo  # noqa: F401

    import trainkit.build  # noqa: F401
    import trainkit.cli.train  # noqa: F401
    import trainkit.optim  # noqa: F401
    import trainkit.schedules  # noqa: F401
    import trainkit.tasks.byol  # noqa: F401
    import trainkit.tasks.digits  # noqa: F401
    import trainkit.tasks.restoration  # noqa: F401


def main(spec_path):
    spec = json.loads(Path(spec_path).read_text())
    out, rng = Path(spec["out"]), random.Random(spec["seed"])
    base = ["logger=none", "trainer.progress=false", *spec["overrides"]]
    full_dir, cut_dir = out / "full" / "run", out / "cut" / "run"
    segment(compose(base), full_dir, None)
    total = checkpoint_iter(full_dir)
    first_save = spec["first_save"]        # the iteration count of the run's first checkpoint
    cfg = compose([*base, "trainer.resume=auto"])
    size = (full_dir / "checkpoints" / "last.pt").stat().st_size
    plan = [("before_first", rng.randrange(1, first_save)),
            ("in_save", rng.randrange(64, size - 64)),
            ("after_epoch_save", None),
            ("between", None)]
    done = []
    for kind, arg in plan:
        if kind == "between":
            arg = rng.randrange(checkpoint_iter(cut_dir) + 1, total)
        done.append({"kind": kind, "arg": arg, "resumed_at": checkpoint_iter(cut_dir),
                     "outcome": segment(cfg, cut_dir, (kind, arg))})
    done.append({"kind": "to the end", "resumed_at": checkpoint_iter(cut_dir), "outcome": segment(cfg, cut_dir, None)})
    (out / "kills.json").write_text(json.dumps(done, indent=1))


if __name__ == "__main__":
    prewarm()
    for path in sys.argv[1:]:
        main(path)
