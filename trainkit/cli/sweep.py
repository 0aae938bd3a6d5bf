"""A Hydra callback that keeps a sweep's results next to its jobs.

Every job of a multirun (``python -m trainkit.train -m ...``: grid, Optuna, any launcher)
appends one JSON line to ``<hydra.sweep.dir>/results.jsonl`` when it ends::

    {"job": <override_dirname>, "num": <job number>, "overrides": [...], "dir": <run dir>,
     "status": "COMPLETED" | "FAILED", "monitor": <trainer.monitor>,
     "value": <what the task returned: metrics[trainer.monitor]>, "error": <if FAILED>}

Jobs in parallel workers (joblib) append their own line (one ``write`` each). Under several
processes per job only rank 0 writes. Single runs write nothing.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

RESULTS = "results.jsonl"


class SweepResults(Callback):
    def on_job_end(self, config: Any, job_return: Any, **kwargs: Any) -> None:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
        if hc.mode != RunMode.MULTIRUN or int(os.environ.get("RANK", "0")) != 0:
            return
        ok = job_return.status.name == "COMPLETED"
        row = {"job": hc.job.override_dirname, "num": hc.job.num, "overrides": list(hc.overrides.task),
               "dir": hc.runtime.output_dir, "status": job_return.status.name,
               "monitor": config.trainer.monitor, "value": job_return.return_value if ok else None}
        if not ok:
            row["error"] = repr(job_return._return_value)
        path = Path(hc.sweep.dir) / RESULTS
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")


def read_results(sweep_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of ``<sweep_dir>/results.jsonl``, in the order the jobs ended."""
    with open(Path(sweep_dir) / RESULTS, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
