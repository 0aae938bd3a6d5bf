"""Several machines, simulated on this one: two torchrun agents per run, one process each.

* two "nodes" on loopback (c10d rendezvous on 127.0.0.1), launched with the shipped accelerate
  config ``scripts/accelerate/multinode_2x1.yaml``: runs everywhere;
* two "hosts" in Linux network namespaces joined by a veth pair (10.77.0.1 and 10.77.0.2, gloo
  over that link, rendezvous on host 0's address), each with its OWN disk at the same path (a
  bind mount private to the host's namespace): no shared file system. Needs root (``ip netns``);
  skipped with the reason otherwise;
* elastic restarts: ``kill -9`` of one worker mid-epoch under ``--max-restarts 1``;
* a rank that hangs or dies without an elastic agent (two plain processes, ``env://``).

The expectation of every run is the uninterrupted 2-process run on one machine (``torchrun
--standalone``) with the same schedules as tests/test_two_processes.py (cosine lr + warmup,
cosine Adam beta1, a plateau reducer, the BYOL EMA, grad_accum=2, iteration checkpoints):
bitwise equal weights, EMA target, every iteration's lr/momentum/plateau/EMA state on both
ranks, and every logged lr. Every subprocess tree is killed after ``TIMEOUT`` seconds.
"""
from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch

from helpers import isolated_env
from test_two_processes import PLATEAU, SCHEDULES, T, trace
from trainkit.core import checkpoint as ckpt_io
from trainkit.core.record import read_jsonl
from wandb_file import read_run

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 120                         # seconds, for every group of processes
pytestmark = pytest.mark.slow
TRAIN = ["-m", "trainkit.train", "trainer.progress=false"]
RUN = [*SCHEDULES, PLATEAU, trace()]  # the schedules of tests/test_two_processes.py, traced on each rank


# ----------------------------------------------------------------- processes
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL ``proc`` and every descendant (torchrun starts its workers in sessions of their own)."""
    with contextlib.suppress(psutil.NoSuchProcess):
        for p in [*psutil.Process(proc.pid).children(recursive=True), psutil.Process(proc.pid)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.send_signal(signal.SIGKILL)
    proc.wait()


def run_together(commands, timeout=TIMEOUT):
    """Start every ``(argv, env, cwd)`` at once; wait for all, at most ``timeout`` s in total (then
    kill every process tree). Returns ``[(returncode, output)]``, returncode None on a timeout."""
    procs = []
    try:
        for argv, env, cwd in commands:
            procs.append(subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                          text=True, start_new_session=True))
        deadline = time.monotonic() + timeout
        outs = [p.communicate(timeout=max(0.1, deadline - time.monotonic()))[0] for p in procs]
        return [(p.returncode, out) for p, out in zip(procs, outs, strict=True)]
    except subprocess.TimeoutExpired:
        for p in procs:
            kill_tree(p)
        return [(None, p.stdout.read()) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                kill_tree(p)


def torchrun_node(endpoint, *args, restarts=0, extra=()):
    """One agent of a two-node torchrun job (one process per node, c10d rendezvous at ``endpoint``)."""
    return [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
            "--rdzv_backend", "c10d", "--rdzv_endpoint", endpoint, "--rdzv_id", "tk_two_nodes",
            "--max-restarts", str(restarts), *extra, *TRAIN, *args]


def ok(results):
    for rc, out in results:
        assert rc == 0, out[-4000:]


# ----------------------------------------------------------------- what a run left
def rank_trace(run_dir: Path, rank: int) -> dict[int, dict]:
    """A rank's trace as {iter: row}; a resumed run's rows replace those of the attempt it continues."""
    rows = [json.loads(x) for x in (run_dir / f"trace_rank{rank}.jsonl").read_text().splitlines()]
    return {row["iter"]: row for row in rows}


def lrs(run_dir: Path) -> dict[int, float]:
    return {r["step"]: r["lr/pg0"] for r in read_jsonl(run_dir / "metrics.jsonl") if "lr/pg0" in r}


def assert_same_as(ref: Path, dirs: list[Path]) -> None:
    """The run whose rank ``r`` wrote into ``dirs[r]`` (rank 0's: checkpoints and metrics) ended
    exactly as the reference run: every iteration's traced state on each rank, the final weights
    and EMA target on each rank, the last checkpoint and every logged lr."""
    for r, d in enumerate(dirs):
        assert rank_trace(d, r) == rank_trace(ref, r), f"rank {r}"
        assert sorted(rank_trace(d, r)) == list(range(T))
        fa, fb = torch.load(ref / f"final_rank{r}.pt"), torch.load(d / f"final_rank{r}.pt")
        for part in ("params", "target"):
            assert fa[part].keys() == fb[part].keys()
            assert all(torch.equal(fa[part][n], fb[part][n]) for n in fa[part]), (r, part)
    a, b = ckpt_io.load(ref / "checkpoints" / "last.pt"), ckpt_io.load(dirs[0] / "checkpoints" / "last.pt")
    assert a["counters"] == b["counters"] == {"epoch": 2, "iter": T, "inner_iter": 0}
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert lrs(dirs[0]) == lrs(ref) and sorted(lrs(ref)) == list(range(T))


def wandb_segments(run_dir: Path) -> list[Path]:
    return sorted(Path(p) for p in glob.glob(str(run_dir / "wandb" / "offline-run-*")))


def finished(segment: Path):
    """The W&B run file of ``segment``, read once its writer has closed it (exit code set)."""
    file = next(segment.glob("run-*.wandb"))
    deadline = time.monotonic() + 30
    while (run := read_run(file)).exit_code is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return run


@pytest.fixture
def reference(byol_two_processes):
    """The uninterrupted run: 2 processes on one machine, W&B offline (tests/conftest.py)."""
    return byol_two_processes[1]


# ----------------------------------------------------------------- two nodes on loopback
def test_two_nodes_on_loopback_with_the_accelerate_config_equal_one_machine(reference, tmp_path):
    """``accelerate launch --config_file scripts/accelerate/multinode_2x1.yaml --machine_rank N`` on
    two "nodes" (agents) of this machine: one run directory, one metrics.jsonl, one W&B run,
    checkpoints written once by rank 0, and the run is the one-machine run, bit for bit."""
    port, run_dir = free_port(), tmp_path / "run"
    env = isolated_env(tmp_path, ROOT)
    config = str(ROOT / "scripts" / "accelerate" / "multinode_2x1.yaml")
    nodes = [([sys.executable, "-m", "accelerate.commands.launch", "--config_file", config, "--machine_rank", str(n),
               "--main_process_ip", "127.0.0.1", "--main_process_port", str(port), *TRAIN, *RUN,
               f"hydra.run.dir={run_dir}"], env, ROOT) for n in (0, 1)]
    ok(run_together(nodes))
    assert_same_as(reference, [run_dir, run_dir])
    assert [Path(p) for p in glob.glob(str(tmp_path / "**" / "metrics.jsonl"), recursive=True)] == \
        [run_dir / "metrics.jsonl"]
    assert not (run_dir / "saves_rank1.jsonl").exists() and (run_dir / "saves_rank0.jsonl").exists()
    (segment,) = wandb_segments(run_dir)
    wb = finished(segment)
    assert wb.exit_code == 0
    assert {h["_step"]: h["lr/pg0"] for h in wb.history if "lr/pg0" in h} == lrs(reference)


# ----------------------------------------------------------------- elastic restart
def test_kill_9_of_a_worker_under_max_restarts_resumes_exactly(reference, tmp_path):
    """``torchrun --standalone --nproc_per_node 2 --max-restarts 1``, the default run directory
    (``outputs/byol/${launch_time:...}``, here under the test's working directory): rank 0 is
    killed with SIGKILL before iteration 18 (mid-epoch; the last checkpoint is after 16
    iterations). The agent restarts both workers, which resume (trainer.resume unset means auto
    under a restart) in the same run directory and end exactly as the uninterrupted run; the W&B
    run continues with the same id, and rows logged after the checkpoint are superseded."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "--max-restarts", "1", *TRAIN, *RUN, "+components.kill={_target_:scale_probe.KillOnRank,rank:0,at:18}"]
    ((rc, out),) = run_together([(cmd, isolated_env(tmp_path, ROOT), tmp_path)])
    assert rc == 0, out[-4000:]
    assert "exitcode: -9" in out and "elastic restart 1 of this worker group" in out
    (run_dir,) = (tmp_path / "outputs" / "byol").iterdir()        # one run directory, not one per attempt
    assert "resumed from " + str(run_dir / "checkpoints" / "last.pt") + " at epoch 1, iter 16" in out
    assert_same_as(reference, [run_dir, run_dir])
    superseded = {r["step"] for r in read_jsonl(run_dir / "metrics.superseded.jsonl")} \
        if (run_dir / "metrics.superseded.jsonl").exists() else set()
    assert superseded <= {16, 17}          # what the killed rank 0 had flushed after the checkpoint
    run_id = (run_dir / "wandb_run_id").read_text().strip()
    first, second = wandb_segments(run_dir)   # the killed attempt's and the restart's, one W&B run
    assert first.name.endswith(run_id) and second.name.endswith(run_id)
    wb = finished(second)
    assert wb.run_id == run_id and wb.exit_code == 0
    assert {h["_step"]: h["lr/pg0"] for h in wb.history if "lr/pg0" in h} == \
        {k: v for k, v in lrs(reference).items() if k >= 16}


# ----------------------------------------------------------------- a lost rank, no agent
@pytest.mark.parametrize("fault", ["hangs", "dies"])
def test_without_an_agent_a_lost_rank_fails_the_other_in_bounded_time(tmp_path, fault):
    """Two plain processes (``env://``, no elastic agent, ``trainer.dist_timeout=5``): rank 1
    stops responding before iteration 3 (sleeps 10 minutes) or is killed there (SIGKILL).
    Rank 0 fails within the timeout plus the roll call (5 s) with an error that names rank 1,
    instead of waiting forever (a hung rank) or blaming itself."""
    port = free_port()
    probe = ("{_target_:scale_probe.HangOnRank,rank:1,at:3,seconds:600}" if fault == "hangs"
             else "{_target_:scale_probe.KillOnRank,rank:1,at:3}")
    args = ["+recipe=digits_baseline", "model.width=8", "trainer.max_epochs=1", "trainer.dist_timeout=5",
            "logger=none", f"hydra.run.dir={tmp_path / 'run'}", f"+components.fault={probe}"]
    procs = []
    for r in (0, 1):
        env = {**isolated_env(tmp_path, ROOT), "RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": "2",
               "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        procs.append(subprocess.Popen([sys.executable, *TRAIN, *args], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True, start_new_session=True))
    try:
        out0 = procs[0].communicate(timeout=TIMEOUT)[0]
        ended = time.time()
        assert procs[0].returncode == 1, out0[-3000:]
        assert "CollectiveError: rank 0 of 2: a collective at epoch 0, iter 3 failed" in out0
        assert "trainer.dist_timeout=5 s; rank 1 did not report it: it hangs" in out0
        if fault == "hangs":
            assert procs[1].poll() is None      # still asleep: rank 0 did not wait for it
        else:
            procs[1].wait(timeout=10)
            assert procs[1].returncode == -signal.SIGKILL
        fault = float((tmp_path / "run" / "fault_time").read_text())
        assert ended - fault < 5 + 5 + 5      # the timeout, the roll call, slack for a loaded machine
    finally:
        for p in procs:
            if p.poll() is None:
                kill_tree(p)


# ----------------------------------------------------------------- two hosts, network namespaces
def _ip(*args):
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20)


@pytest.fixture(scope="module")
def hosts():
    """Two network namespaces joined by a veth pair, created and removed here: ``[(namespace,
    interface, address)]`` for host 0 (10.77.0.1) and host 1 (10.77.0.2). Skips, saying why,
    where ``ip netns`` is missing or not permitted."""
    if shutil.which("ip") is None:
        pytest.skip("iproute2 ('ip') is not installed: the two-host tests need network namespaces")
    tag = f"tk{os.getpid() % 100000}"
    names = [f"{tag}h0", f"{tag}h1"]
    links = [f"{tag}v0", f"{tag}v1"]
    try:
        probe = _ip("netns", "add", names[0])
        if probe.returncode != 0:
            pytest.skip(f"'ip netns add' is not permitted here ({probe.stderr.strip()}): two-host tests skipped")
        steps = [("netns", "add", names[1]), ("link", "add", links[0], "type", "veth", "peer", "name", links[1])]
        for h in (0, 1):
            steps += [("link", "set", links[h], "netns", names[h]),
                      ("-n", names[h], "addr", "add", f"10.77.0.{h + 1}/24", "dev", links[h]),
                      ("-n", names[h], "link", "set", "lo", "up"), ("-n", names[h], "link", "set", links[h], "up")]
        for step in steps:
            done = _ip(*step)
            if done.returncode != 0:
                pytest.skip(f"'ip {' '.join(step)}' failed ({done.stderr.strip()}): two-host tests skipped")
        yield [(names[h], links[h], f"10.77.0.{h + 1}") for h in (0, 1)]
    finally:
        for name in names:   # the veth pair goes with its namespaces
            _ip("netns", "del", name)


def on_host(host, disk: Path, mount: Path, argv):
    """``argv`` run inside ``host``'s network namespace, with ``disk`` mounted at ``mount`` for it
    alone (``ip netns exec`` gives the command a mount namespace of its own)."""
    ns = host[0]
    return ["ip", "netns", "exec", ns, "sh", "-c", f'mount --bind "{disk}" "{mount}" && exec "$@"', "sh", *argv]


def two_hosts(hosts, tmp_path, port, *args, restarts=0, env_extra=None):
    """The same torchrun command on both hosts (rendezvous on host 0's address, which hosts the
    c10d store: ``is_host``), each host with its own disk at ``<tmp>/disk``: returns the
    directories behind the run directory ``<tmp>/disk/run`` on host 0 and on host 1."""
    mount = tmp_path / "disk"
    disks = [tmp_path / "disk_host0", tmp_path / "disk_host1"]
    for d in (mount, *disks):
        d.mkdir()
    commands = []
    for h, host in enumerate(hosts):
        argv = torchrun_node(f"{hosts[0][2]}:{port}", *args, "logger=none", f"hydra.run.dir={mount / 'run'}",
                             restarts=restarts,
                             extra=["--local_addr", host[2], "--rdzv_conf", f"is_host={int(h == 0)}"])
        env = {**isolated_env(tmp_path, ROOT), "GLOO_SOCKET_IFNAME": host[1], **(env_extra or {})}
        commands.append((on_host(host, disks[h], mount, argv), env, ROOT))
    ok(run_together(commands))
    return [d / "run" for d in disks]


def test_two_hosts_without_a_shared_disk_equal_one_machine(reference, hosts, tmp_path):
    """torchrun on two hosts (network namespaces, gloo over the veth link), each with its own disk:
    rank 0 writes the run (checkpoints, metrics) on host 0's disk only; host 1's holds nothing of
    trainkit's (only what Hydra and the test's probe write). The run is the one-machine run, bit for bit."""
    run0, run1 = two_hosts(hosts, tmp_path, 29400, *RUN)
    assert_same_as(reference, [run0, run1])
    assert {p.name for p in run1.iterdir()} <= {".hydra", "train.log", "trace_rank1.jsonl", "final_rank1.pt"}
    assert (run0 / "checkpoints" / "last.pt").is_file() and (run0 / "metrics.jsonl").is_file()


def test_two_hosts_elastic_restart_sends_the_checkpoint_to_the_host_without_it(reference, hosts, tmp_path):
    """Two hosts, no shared disk, ``--max-restarts 1`` (TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1, as
    docs/scaling.md requires on several nodes): rank 1 (host 1) is killed with SIGKILL before
    iteration 18. After the restart, rank 1's disk has no checkpoint: rank 0 reads
    ``last.pt`` and sends it; both resume at iteration 16 and end exactly as the uninterrupted run."""
    probe = "+components.kill={_target_:scale_probe.KillOnRank,rank:1,at:18}"
    run0, run1 = two_hosts(hosts, tmp_path, 29401, *RUN, probe, restarts=1,
                           env_extra={"TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"})
    assert_same_as(reference, [run0, run1])
    assert not (run1 / "checkpoints").exists()
    log = (run0 / "train.log").read_text()
    assert f"checkpoint {tmp_path / 'disk' / 'run' / 'checkpoints' / 'last.pt'} (" in log
    assert "is not on the file system of rank 1 (no shared trainer.work_dir): rank 0 sends it" in log
    assert "at epoch 1, iter 16" in log
