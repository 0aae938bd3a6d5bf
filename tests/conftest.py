import os

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture
def make_cfg():
    """Compose the real Hydra config (conf/ + recipes/) with overrides, as the CLI does."""
    from trainkit import config as C

    C.register()

    def _compose(*overrides):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(C.CONF_DIR), version_base="1.3"):
            return compose(config_name="config", overrides=list(overrides))

    yield _compose
    GlobalHydra.instance().clear()


@pytest.fixture(scope="session")
def byol_two_processes(tmp_path_factory):
    """The uninterrupted byol run of tests/test_two_processes.py (its schedules, traced on each rank)
    on 2 processes (``torchrun --standalone``), W&B offline; shared by that module and
    tests/test_several_machines.py. Its Hydra run dir names the rank (``..._r${oc.env:RANK}``), as if
    the ranks had read ``${now:}`` in different seconds: rank 1 must end up writing into rank 0's.
    Returns ``(tmp, run_dir)``."""
    from test_two_processes import PLATEAU, SCHEDULES, torchrun, trace

    tmp = tmp_path_factory.mktemp("two_proc")
    proc = torchrun(tmp, *SCHEDULES, PLATEAU, trace(), "hydra.run.dir=" + str(tmp / "full_r${oc.env:RANK}"))
    assert proc.returncode == 0, proc.stderr[-4000:]
    return tmp, tmp / "full_r0"
