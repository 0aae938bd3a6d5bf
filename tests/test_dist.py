"""The single-process side of trainkit.core.dist: the timeout option, the elastic-restart
defaults, the launch-time stamp of the run directory, the refusal of restarts that cannot work
and which errors count as a lost rank. The multi-process behaviour is in test_several_machines.py."""
import datetime
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trainkit.core import dist
from trainkit.core.runner import Runner

ROOT = Path(__file__).resolve().parent.parent


def tiny_runner(work_dir, **options):
    model = torch.nn.Linear(2, 1)
    data = torch.utils.data.TensorDataset(torch.zeros(4, 2))
    return Runner(model, torch.optim.SGD(model.parameters(), lr=0.1), data, max_epochs=1, progress=False,
                  work_dir=work_dir, **options)


@pytest.mark.parametrize("value", [0, -1, 0.0, float("nan"), float("inf"), True, "300"])
def test_dist_timeout_must_be_a_positive_number_of_seconds(tmp_path, value):
    with pytest.raises(ValueError, match=r"trainer.dist_timeout=.* is not valid; allowed: a (finite )?number"):
        tiny_runner(tmp_path, dist_timeout=value)


def test_dist_timeout_is_the_process_group_timeout_given_to_accelerate(tmp_path):
    assert dist.init_kwargs(7.5).to_kwargs() == {"timeout": datetime.timedelta(seconds=7.5)}
    assert tiny_runner(tmp_path, dist_timeout=45).dist_timeout == 45.0
    assert tiny_runner(tmp_path).dist_timeout == 300.0          # TrainerConfig's default: five minutes


def test_dist_timeout_from_the_command_line_refuses_a_string(make_cfg):
    with pytest.raises(Exception, match="dist_timeout"):
        make_cfg("+recipe=digits_baseline", "trainer.dist_timeout=soon")


@pytest.mark.parametrize("count, given, expected", [("2", None, "auto"), ("0", None, None), (None, None, None),
                                                    ("1", "/some/ckpt.pt", "/some/ckpt.pt")])
def test_an_elastic_restart_resumes_by_default(monkeypatch, count, given, expected):
    """One process here: the restart count is this process's ``TORCHELASTIC_RESTART_COUNT``."""
    if count is None:
        monkeypatch.delenv(dist.RESTART_COUNT, raising=False)
    else:
        monkeypatch.setenv(dist.RESTART_COUNT, count)
    assert dist.default_resume(given) == expected


def _agent_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TORCHELASTIC_")}
    return {**env, "PYTHONPATH": str(ROOT), dist.RUN_ID: "job-1", **extra}


def _started(pid: int) -> str:
    """A process's start time as ``ps`` reports it, to the second."""
    out = subprocess.run(["ps", "-o", "lstart=", "-p", str(pid)], capture_output=True, text=True, check=True)
    return datetime.datetime.strptime(out.stdout.strip(), "%a %b %d %H:%M:%S %Y").strftime("%Y-%m-%d_%H-%M-%S")


@pytest.mark.parametrize("wrapped", [False, True])
def test_launch_time_under_an_agent_is_the_agents_start_time(wrapped):
    """A child whose environment has TORCHELASTIC_RUN_ID (as torchrun gives its workers) stamps
    the start time of the nearest ancestor without it: here this test process plays the agent,
    with or without a shell script in between. A restarted worker therefore stamps the same
    directory as the first attempt, however much later it starts."""
    code = "from trainkit.core.dist import launch_time; print(launch_time('%Y-%m-%d_%H-%M-%S'))"
    argv = [sys.executable, "-c", code]
    if wrapped:
        argv = ["sh", "-c", '"$@"; true', "sh", *argv]
    out = subprocess.run(argv, env=_agent_env(), capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == _started(os.getpid())


def test_launch_time_outside_an_agent_is_now():
    code = "from trainkit.core.dist import launch_time; print(launch_time('%Y-%m-%d %H:%M:%S'))"
    env = {k: v for k, v in _agent_env().items() if k != dist.RUN_ID}
    before = datetime.datetime.now().replace(microsecond=0)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, timeout=60)
    stamp = datetime.datetime.strptime(out.stdout.strip(), "%Y-%m-%d %H:%M:%S")
    assert before <= stamp <= datetime.datetime.now()


def test_the_default_run_directory_is_stamped_with_the_launch_time():
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from trainkit import config as C

    C.register()
    GlobalHydra.instance().clear()
    before = datetime.datetime.now().replace(microsecond=0)
    try:
        with initialize_config_dir(config_dir=str(C.CONF_DIR), version_base="1.3"):
            cfg = compose(config_name="config", overrides=["+recipe=digits_baseline"], return_hydra_config=True)
            assert cfg.hydra.run._get_node("dir")._value() == "outputs/${name}/${launch_time:%Y-%m-%d_%H-%M-%S}"
            name, stamp = Path(cfg.hydra.run.dir).parts[1:]
    finally:
        GlobalHydra.instance().clear()
    assert name == "digits_baseline"
    assert before <= datetime.datetime.strptime(stamp, "%Y-%m-%d_%H-%M-%S") <= datetime.datetime.now()


@pytest.mark.parametrize("env, refused", [
    ({"TORCHELASTIC_USE_AGENT_STORE": "True", "GROUP_WORLD_SIZE": "2", "TORCHELASTIC_MAX_RESTARTS": "1"}, True),
    ({"TORCHELASTIC_USE_AGENT_STORE": "False", "GROUP_WORLD_SIZE": "2", "TORCHELASTIC_MAX_RESTARTS": "1"}, False),
    ({"TORCHELASTIC_USE_AGENT_STORE": "True", "GROUP_WORLD_SIZE": "1", "TORCHELASTIC_MAX_RESTARTS": "3"}, False),
    ({"TORCHELASTIC_USE_AGENT_STORE": "True", "GROUP_WORLD_SIZE": "2", "TORCHELASTIC_MAX_RESTARTS": "0"}, False),
])
def test_restarts_on_several_nodes_need_their_own_store(monkeypatch, env, refused):
    """On several nodes with torch's shared agent store, a restart would read the first attempt's
    addresses: refused before anything starts, with the fix in the message (the environment
    variable that gives each attempt its own store)."""
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv(dist.RUN_ID, "job-1")
    if refused:
        with pytest.raises(RuntimeError, match="TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1"):
            dist.process_state(300)
    else:
        dist.check_elastic_store()


class _TwoRanks:
    process_index, num_processes = 0, 2


@pytest.mark.parametrize("error, lost", [
    (RuntimeError("Application timeout caused pair closure"), True),
    (RuntimeError("[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/unbound_buffer.cc:129] "
                  "Timed out waiting 5000ms for send operation to complete"), True),
    (RuntimeError("[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:553] "
                  "Connection closed by peer [10.77.0.2]:4242"), True),
    (RuntimeError("mat1 and mat2 shapes cannot be multiplied (4x2 and 3x1)"), False),
    (RuntimeError("DataLoader timed out after 5 seconds"), False),
    (ValueError("Connection closed"), False),
    (torch.distributed.DistBackendError("NCCL error"), True),
])
def test_which_errors_are_a_lost_rank(error, lost):
    assert dist.is_collective_failure(error, _TwoRanks()) is lost
    assert dist.is_collective_failure(error, None) is False     # one process: there is no other rank
