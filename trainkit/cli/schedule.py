"""``python -m trainkit.schedule +recipe=NAME [overrides] [options]``: a recipe's schedule,
previewed without training (:func:`trainkit.schedules.preview.preview`).

``--help`` (``-h``) prints this text. A bad value is one short error naming the key
(``HYDRA_FULL_ERROR=1`` shows the traceback).

Options (besides Hydra overrides)::

    [out=DIR] [format=csv|json] [iters_per_epoch=N | num_processes=N]
    [metric_trace=FILE.json|[v1,v2,...]|improve_then_flat|improve|flat]

writes ``schedule.csv`` (or ``.json``) and ``schedule.png`` into ``out``
(default ``outputs/<name>/schedule``), and ``checks.csv`` when components logged
scalars at validations / epoch ends (the plateau reducer's state). ``metric_trace``
defaults to the recipe's ``extra.metric_trace``. ``num_processes=N`` previews a run on
``N`` processes: an iteration is one batch per process, and each process's training
sampler takes ``len(train) // N`` samples per epoch, so
``iters_per_epoch = ceil(len(train) // N / batch_size)`` (``floor`` with ``drop_last``).
The components previewed are those that declare ``writes_param_groups = True``.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from collections.abc import Sequence

from .. import build as B
from .. import config as C
from ..schedules.preview import (_preview, _reductions, monitored_metrics, plot, trace_from_spec, validation_iters,
                                 validations, write_csv, write_json)

OPTIONS = ("out", "format", "iters_per_epoch", "num_processes", "metric_trace")


def _split_args(argv: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    ours, overrides = {}, []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if sep and key in OPTIONS:
            ours[key] = value
        else:
            overrides.append(arg)
    return ours, overrides


def _positive_int(key: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{key}={text!r} is not valid; allowed: an integer >= 1")
    return value


USAGE = __doc__


def cli(argv: Sequence[str] | None = None) -> int:
    """The command: ``--help`` prints the usage; a bad value (or override) prints one short error
    on stderr and returns 2 (``HYDRA_FULL_ERROR=1`` re-raises it with its traceback)."""
    import os

    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    args = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in args):
        print(USAGE.strip())
        return 0
    try:
        main(args)
    except (ValueError, TypeError, FileNotFoundError, HydraException, OmegaConfBaseException) as e:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        cause = f"\n{e.__cause__}" if isinstance(e.__cause__, OmegaConfBaseException) else ""
        print(f"Error: {e}{cause}\n(HYDRA_FULL_ERROR=1 shows the traceback; --help shows the usage)", file=sys.stderr)
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> Path:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    ours, overrides = _split_args(sys.argv[1:] if argv is None else argv)
    fmt = ours.get("format", "csv")
    if fmt not in ("csv", "json"):
        raise ValueError(f"format={fmt!r} is not valid; allowed: csv, json")
    C.register()
    with initialize_config_dir(version_base="1.3", config_dir=str(C.CONF_DIR), job_name="schedule"):
        cfg = compose(config_name="config", overrides=overrides)
    if OmegaConf.is_missing(cfg, "optimizer"):
        raise ValueError(f"give a recipe: +recipe=NAME (available: {', '.join(C.recipe_names())})")
    if OmegaConf.is_missing(cfg, "data") and "iters_per_epoch" not in ours:
        raise ValueError(f"the recipe {cfg.name!r} has data: ??? (a ported config?): give iters_per_epoch=N")
    t = B.trainer_config(cfg)   # the trainer's values checked as for training
    t0 = time.perf_counter()
    groups = B.groups_from_config(cfg)
    if OmegaConf.is_missing(cfg, "model"):
        print(f"model: ??? in {cfg.name!r}: previewing the optimizer's base group (fill in the model to see "
              "its real param groups)")
    if "iters_per_epoch" in ours and "num_processes" in ours:
        raise ValueError("give iters_per_epoch or num_processes, not both")
    world = _positive_int("num_processes", ours.get("num_processes", "1"))
    ipe = _positive_int("iters_per_epoch", ours["iters_per_epoch"]) if "iters_per_epoch" in ours \
        else B.iters_per_epoch_from_config(cfg, world)
    components, skipped = B.schedule_components(cfg)
    n_val = validations(t.max_epochs, ipe, t.max_iters, t.val_interval, t.val_begin)
    spec = ours.get("metric_trace", (cfg.extra or {}).get("metric_trace"))
    trace = None if spec is None else trace_from_spec(spec, monitored_metrics(components), n_val)
    rows, checks = _preview(groups, components, t.max_epochs, ipe, trace, t.max_iters, t.val_interval, t.val_begin)
    out = Path(ours.get("out", Path("outputs") / cfg.name / "schedule"))
    out.mkdir(parents=True, exist_ok=True)
    table = out / f"schedule.{fmt}"
    (write_csv if fmt == "csv" else write_json)(rows, table)
    metrics = None
    if trace:
        val_iters = validation_iters(t.max_epochs, ipe, t.max_iters, t.val_interval, t.val_begin)
        metrics = {k: (val_iters, v[:n_val]) for k, v in trace.items()}
    plot(rows, out / "schedule.png", title=f"{cfg.name}: {len(groups)} groups, {len(rows)} iterations",
         metrics=metrics)
    print(f"schedule of {cfg.name}: {len(rows)} iterations x {len(groups)} param groups "
          f"({ipe} iters/epoch{f' per process, {world} processes' if world > 1 else ''}) "
          f"in {time.perf_counter() - t0:.2f} s")
    print(f"  table: {table}\n  plot:  {out / 'schedule.png'}")
    if skipped:
        print(f"  not previewed (they change no lr/momentum): {', '.join(skipped)}")
    for k, v in (trace or {}).items():
        print(f"  metric trace ({spec}): {k} = {', '.join(f'{x:.4g}' for x in v[:n_val])}")
    if checks:
        write_csv(checks, out / "checks.csv")
        print(f"  checks: {out / 'checks.csv'}")
        print("\n".join(_reductions(checks)) or "  no lr reduction")
    return out


if __name__ == "__main__":
    sys.exit(cli())
