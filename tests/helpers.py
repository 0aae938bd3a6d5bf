"""Small components and settings shared by the tests (``tests/`` is on ``sys.path``)."""
import os


class StopAt:
    """Simulates an interruption: raises ``error`` (Ctrl-C by default) before iteration ``at``."""

    def __init__(self, at, error=KeyboardInterrupt):
        self.at, self.error = at, error

    def before_iter(self, runner):
        if runner.iter == self.at:
            raise self.error


class StepLrs:
    """Records each group's lr as the optimizer step of each iteration uses it: ``seen[iter]``."""

    priority = 100

    def __init__(self, seen=None):
        self.seen = {} if seen is None else seen

    def after_step(self, runner):
        self.seen[runner.iter] = [g["lr"] for g in runner.optimizer.param_groups]


def isolated_env(tmp, root):
    """Environment for a child ``python -m trainkit.train``: W&B offline, its files under
    ``tmp``, an unreachable loopback server, one thread, and ``tests/`` importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    home = tmp / "wandb_home"
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(root / "tests"), str(root)]),
               WANDB_MODE="offline", WANDB_BASE_URL="http://127.0.0.1:9", WANDB_SILENT="true",
               WANDB_ERROR_REPORTING="false", WANDB_CONFIG_DIR=str(home / "config"),
               WANDB_CACHE_DIR=str(home / "cache"), WANDB_DATA_DIR=str(home / "data"),
               XDG_CACHE_HOME=str(home / "xdg"))
    return env


class Snapshot:
    """Keeps a copy of the model's state_dict as the run starts (``before_run``): ``state``."""

    def __init__(self):
        self.state = None

    def before_run(self, runner):
        self.state = {k: v.detach().clone() for k, v in runner.unwrapped_model.state_dict().items()}


def same_state(a, b, path="state"):
    """Assert two checkpoint states are equal, recursively: tensors bit for bit (``torch.equal``),
    numpy arrays element for element, everything else with ``==``. Names the first difference."""
    import numpy as np
    import torch

    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        assert isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype \
            and a.shape == b.shape and torch.equal(a, b), path
    elif isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        assert np.array_equal(a, b), path
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{path}: keys {sorted(map(str, set(a) ^ set(b)))}"
        for k in a:
            same_state(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            same_state(x, y, f"{path}[{i}]")
    else:
        assert a == b or (a != a and b != b), f"{path}: {a!r} != {b!r}"   # NaN equals NaN here


class KillAt:
    """``kill -9`` of its own process before iteration ``at`` (no cleanup, no exception handlers run):
    an interruption at a known point, for resume tests run in a child process."""

    def __init__(self, at):
        self.at = at

    def before_iter(self, runner):
        if runner.iter == self.at:
            import signal
            os.kill(os.getpid(), signal.SIGKILL)
