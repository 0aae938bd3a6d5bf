"""Schedule preview: every iteration's lr and momentum of every param group, without training.

``preview(groups, components, epochs, iters_per_epoch)`` runs the real components on
the real event bus: a :class:`~trainkit.core.runner.Runner` in ``dry_run`` mode (no model
step) over a :class:`~trainkit.core.data.CountingLoader`, with a recorder that reads each
group's lr and momentum at ``after_step``, i.e. the values ``optimizer.step()`` would use.
The command line around it is :mod:`trainkit.cli.schedule` (``python -m trainkit.schedule``).
"""
from __future__ import annotations

import csv
import json
import math
from array import array
from pathlib import Path
from typing import Any
from collections.abc import Mapping, Sequence

import torch

from ..core.checks import validation_epochs
from ..core.events import Priority
from ..core.groups import get_momentum
from ..core.instantiate import instantiate_node

RECORDER, CHECKS = "_schedule_recorder", "_schedule_checks"
TRACES = ("improve_then_flat", "improve", "flat")


class ScheduleTable(Sequence):
    """Every optimizer step's ``epoch``, ``iter`` and values (``lr/<group>``, ``momentum/<group>``,
    ``<param>/<group>``), kept as two flat arrays (8 bytes a number, no container per step).

    A read-only sequence of rows: ``table[k]`` is row ``k`` as a dict, ``table[a:b:c]`` a list of
    them (built on demand); :meth:`column` one value column; :meth:`tuples` streams rows."""

    def __init__(self, keys: Sequence[str]):
        self.keys = list(keys)
        self.width = len(self.keys)
        self.counters, self.values = array("q"), array("d")

    def __len__(self) -> int:
        return len(self.counters) // 2

    def _row(self, k: int) -> dict[str, Any]:
        w, c = self.width, self.counters
        return {"epoch": c[2 * k], "iter": c[2 * k + 1],
                **dict(zip(self.keys, self.values[k * w:(k + 1) * w], strict=True))}

    def __getitem__(self, k):
        if isinstance(k, slice):
            return [self._row(i) for i in range(*k.indices(len(self)))]
        n = len(self)
        if not -n <= k < n:
            raise IndexError(f"row {k} of {n}")
        return self._row(k % n)

    @property
    def fields(self) -> list[str]:
        return ["epoch", "iter", *self.keys]

    def column(self, key: str) -> list:
        """One column (``epoch``, ``iter`` or a value key) as a list."""
        if key in ("epoch", "iter"):
            return self.counters[key == "iter"::2].tolist()
        return self.values[self.keys.index(key)::self.width].tolist()

    def tuples(self, chunk: int = 65536):
        """Rows as tuples ``(epoch, iter, *values)``, ``chunk`` rows converted at a time."""
        w = self.width
        for start in range(0, len(self), chunk):
            stop = min(start + chunk, len(self))
            c = self.counters[2 * start:2 * stop].tolist()
            v = self.values[w * start:w * stop].tolist()
            for k in range(stop - start):
                yield (c[2 * k], c[2 * k + 1], *v[k * w:(k + 1) * w])

    def rows(self) -> list[dict[str, Any]]:
        return self[:]

    def csv_blocks(self, chunk: int = 16384):
        """The rows as CSV text (``csv.writer``'s dialect: ``,`` and ``\\r\\n``; floats by repr), ``chunk``
        rows per block, column by column: a column's repeated values are formatted once."""
        import numpy as np

        w, n = self.width, len(self)
        values = np.frombuffer(self.values, dtype=np.float64).reshape(n, w) if n else None
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            c = self.counters[2 * start:2 * stop].tolist()
            cols = [list(map(str, c[0::2])), list(map(str, c[1::2]))]
            cols += [_repr_column(values[start:stop, j]) for j in range(w)]
            yield "\r\n".join(map(",".join, zip(*cols, strict=True))) + "\r\n"


def _repr_column(col) -> list[str]:
    """``repr`` of each float of a numpy column; values that repeat a lot are formatted once (``-0.0`` kept)."""
    import numpy as np

    uniq, inverse = np.unique(col, return_inverse=True)
    if 4 * len(uniq) > len(col) or bool(np.any(np.signbit(col) & (col == 0))):
        return list(map(float.__repr__, col.tolist()))
    text = list(map(float.__repr__, uniq.tolist()))
    return [text[k] for k in inverse.tolist()]


class _Recorder:
    """Fills a :class:`ScheduleTable` with epoch, iter and every group's lr and momentum (and the
    ``extra`` group keys some component schedules, e.g. ``weight_decay``) after each optimizer step."""

    priority = Priority.LOWEST

    def __init__(self, extra: Sequence[str] = ()) -> None:
        self.extra = list(extra)
        self.table = ScheduleTable([])

    def before_run(self, runner) -> None:
        groups, names = runner.optimizer.param_groups, runner.group_names
        self.groups = groups
        self.momentum_groups = [g for g in groups if get_momentum(g) is not None]
        keys = [f"lr/{n}" for n in names]
        keys += [f"momentum/{n}" for n, g in zip(names, groups, strict=True) if get_momentum(g) is not None]
        self.extra_cols = [(p, g) for p in self.extra for g in groups if p in g]
        keys += [f"{p}/{n}" for p in self.extra for n, g in zip(names, groups, strict=True) if p in g]
        self.table = ScheduleTable(keys)
        self._counters, self._values = self.table.counters, self.table.values

    def after_step(self, runner) -> None:
        self._counters.extend((runner.epoch, runner.iter))
        values = self._values
        values.extend([g["lr"] for g in self.groups])
        if self.momentum_groups:   # get_momentum, inlined: this runs once per previewed iteration
            values.extend([g["momentum"] if "momentum" in g else g["betas"][0] for g in self.momentum_groups])
        if self.extra_cols:
            values.extend([g[p] for p, g in self.extra_cols])


class _Checks:
    """What components put into ``runner.scalars`` at ``after_val`` / ``after_epoch``
    (runs after them, before the logger takes the scalars)."""

    priority = 80

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def _take(self, runner) -> None:
        if runner.scalars:
            self.rows.append({"epoch": runner.epoch, "iter": runner.iter, **runner.scalars})

    after_val = after_epoch = _take


class _TraceEvaluator:
    """Validation metrics replayed from ``{name: [value per validation]}``."""

    def __init__(self, trace: Mapping[str, Sequence[float]]):
        self.trace = {k: list(v) for k, v in trace.items()}
        self.calls = 0

    def __call__(self, runner) -> dict[str, float]:
        self.calls += 1
        return {k: float(v[self.calls - 1]) for k, v in self.trace.items()}


class _Dummy(torch.nn.Module):
    def __init__(self, n: int):
        super().__init__()
        self.p = torch.nn.ParameterList(torch.nn.Parameter(torch.zeros(())) for _ in range(n))


def _build_components(components: Mapping[str, Any]) -> dict[str, Any]:
    built = {}
    for name, node in components.items():
        if node is None:
            continue
        is_node = isinstance(node, Mapping) and "_target_" in node   # dict or DictConfig
        built[name] = instantiate_node(node, f"components.{name}") if is_node else node
    return built


def validation_iters(epochs: int | None, iters_per_epoch: int, max_iters: int | None = None,
                     val_interval: int = 1, val_begin: int = 1) -> list[int]:
    """The completed iterations at which a run validates: after every epoch the loop's rule
    (:func:`trainkit.core.checks.validation_due`: from ``val_begin``, every ``val_interval``
    epochs and after the last) picks, the last epoch cut short when ``max_iters`` ends it."""
    total = (max_iters or 0) if epochs is None else epochs * iters_per_epoch
    n_epochs = math.ceil(total / iters_per_epoch)
    return [min(e * iters_per_epoch, total) for e in validation_epochs(n_epochs, val_interval, val_begin)]


def validations(epochs: int | None, iters_per_epoch: int, max_iters: int | None = None,
                val_interval: int = 1, val_begin: int = 1) -> int:
    """How many times a run validates (:func:`validation_iters`)."""
    return len(validation_iters(epochs, iters_per_epoch, max_iters, val_interval, val_begin))


def preview(groups: Sequence[Mapping[str, Any]], components: Mapping[str, Any], epochs: int | None = None,
            iters_per_epoch: int = 1, metric_trace: Mapping[str, Sequence[float]] | None = None, *,
            max_iters: int | None = None, val_interval: int = 1, val_begin: int = 1) -> list[dict[str, Any]]:
    """One row per optimizer step: ``epoch``, ``iter``, ``lr/<group>`` and ``momentum/<group>``.

    ``groups``: param-group hyper-parameters, e.g. ``{"name": "head", "lr": 0.1, "momentum": 0.9}``
    (``betas`` for Adam-style groups). ``components``: name → config node with ``_target_`` (as in
    a recipe's ``components``) or an already built component. Give ``epochs`` or ``max_iters``.
    ``metric_trace``: ``{metric: [value of validation 1, 2, ...]}`` served as validation results
    at each validation the run takes (:func:`validation_iters`), for components that react to metrics.
    """
    return _preview(groups, components, epochs, iters_per_epoch, metric_trace, max_iters, val_interval,
                    val_begin)[0].rows()


def _preview(groups, components, epochs, iters_per_epoch, metric_trace, max_iters, val_interval, val_begin=1):
    """``(table, checks)``: the per-iteration :class:`ScheduleTable` and the scalars logged at
    validations / epoch ends."""
    from ..core.data import CountingLoader
    from ..core.runner import Runner

    if not groups:
        raise ValueError("preview needs at least one param group")
    n_val = validations(epochs, iters_per_epoch, max_iters, val_interval, val_begin)
    every = "once per epoch" if val_interval == 1 else f"every {val_interval} epochs and after the last"
    every += f", from epoch {val_begin}" if val_begin > 1 else ""
    for name, values in (metric_trace or {}).items():
        if len(values) < n_val:
            raise ValueError(f"metric_trace[{name!r}] has {len(values)} values but the run validates "
                             f"{n_val} times ({every})")
    model = _Dummy(len(groups))
    param_groups = []
    for i, (spec, p) in enumerate(zip(groups, model.p, strict=True)):
        spec = dict(spec)
        if "lr" not in spec:
            raise ValueError(f"param group {i} ({spec.get('name', '?')}) has no 'lr'")
        spec.pop("params", None)
        param_groups.append({"params": [p], **spec})
    optimizer = torch.optim.Optimizer(param_groups, {})
    built = _build_components(components)
    extra = dict.fromkeys(p for c in built.values() for p in getattr(c, "extra_params", ()))
    recorder, checks = _Recorder(list(extra)), _Checks()
    if RECORDER in built or CHECKS in built:
        raise ValueError(f"component names {RECORDER!r} and {CHECKS!r} are reserved")
    runner = Runner(model, optimizer, train_loader=CountingLoader(iters_per_epoch), dry_run=True,
                    components={**built, RECORDER: recorder, CHECKS: checks}, max_epochs=epochs,
                    max_iters=max_iters, val_interval=val_interval, val_begin=val_begin,
                    evaluator=_TraceEvaluator(metric_trace) if metric_trace else None, progress=False)
    runner.run()
    return recorder.table, checks.rows


# ------------------------------------------------------------------ output
def write_csv(rows: ScheduleTable | Sequence[Mapping[str, Any]], path: Path) -> None:
    """One line per row; floats written with repr, so they read back exactly. A
    :class:`ScheduleTable` is streamed from its arrays (no dict per row)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        if isinstance(rows, ScheduleTable):
            writer.writerow(rows.fields)
            for block in rows.csv_blocks():
                f.write(block)
            return
        fields = list(dict.fromkeys(k for r in rows for k in r)) or ["epoch", "iter"]
        writer.writerow(fields)
        writer.writerows([r.get(k, "") for k in fields] for r in rows)


def write_json(rows: ScheduleTable | Sequence[Mapping[str, Any]], path: Path) -> None:
    """A JSON list of row objects, written row by row."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("[")
        if isinstance(rows, ScheduleTable):
            fields = rows.fields
            items = (dict(zip(fields, t, strict=True)) for t in rows.tuples())
        else:
            items = iter(rows)
        for k, r in enumerate(items):
            f.write((", " if k else "") + json.dumps(r))
        f.write("]")


def thinned(x: Sequence[float], y: Sequence[float], max_points: int = 4000) -> tuple[list, list]:
    """At most about ``max_points`` points of a curve that keep its shape: beyond that, each of
    ``max_points // 2`` consecutive buckets keeps its lowest and highest point, in order."""
    import numpy as np

    n = len(x)
    if n <= max_points:
        return list(x), list(y)
    xs, ys = np.asarray(x), np.asarray(y, dtype=float)
    edges = np.linspace(0, n, max_points // 2 + 1).astype(int)
    keep = []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        if b > a:
            lo, hi = a + int(np.argmin(ys[a:b])), a + int(np.argmax(ys[a:b]))
            keep.extend(sorted({lo, hi}))
    keep = sorted(set(keep) | {0, n - 1})
    return xs[keep].tolist(), ys[keep].tolist()


def plot(rows: ScheduleTable | Sequence[Mapping[str, Any]], path: Path, title: str = "",
         metrics: Mapping[str, tuple[Sequence[int], Sequence[float]]] | None = None) -> None:
    """lr and momentum against iteration, one curve per group (thinned, :func:`thinned`);
    ``metrics`` (``{name: (iterations, values)}``, e.g. a metric trace) in a third panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = rows.keys if isinstance(rows, ScheduleTable) else list(rows[0])
    column = rows.column if isinstance(rows, ScheduleTable) else (lambda k: [r[k] for r in rows])
    lr_keys = [k for k in keys if k.startswith("lr/")]
    mom_keys = [k for k in keys if k.startswith("momentum/")]
    panels = [("lr", lr_keys)] + ([("momentum", mom_keys)] if mom_keys else [])
    panels += [("metric", list(metrics))] if metrics else []
    fig, axes = plt.subplots(len(panels), 1, sharex=True, figsize=(10, 3.2 * len(panels)), squeeze=False)
    x = column("iter")
    for ax, (label, keys_) in zip(axes[:, 0], panels, strict=True):
        for k in keys_:
            if label == "metric":
                ax.plot(*metrics[k], "o-", label=k, markersize=3, linewidth=1)
            else:
                ax.plot(*thinned(x, column(k)), label=k.split("/", 1)[1], linewidth=1.2)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if len(keys_) <= 12:
            ax.legend(fontsize=8, loc="best")
    axes[-1, 0].set_xlabel("iteration")
    if title:
        axes[0, 0].set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------- metric traces
def synthetic_trace(kind: str, n: int, mode: str = "min") -> list[float]:
    """``n`` validation values that improve by 5 % each (``10·1.05^k`` for mode max,
    ``10·0.95^k`` for min): ``improve`` all along, ``flat`` never (10 throughout),
    ``improve_then_flat`` for the first ``m = ceil(n/3)`` values, then stays at value ``m − 1``."""
    if kind not in TRACES:
        raise ValueError(f"metric_trace={kind!r} is not valid; allowed: a JSON file, a list, {', '.join(TRACES)}")
    rate = 1.05 if mode == "max" else 0.95
    m = {"improve": n, "flat": 1, "improve_then_flat": max(1, math.ceil(n / 3))}[kind]
    return [10.0 * rate ** min(k, m - 1) for k in range(n)]


def monitored_metrics(components: Mapping[str, Any]) -> dict[str, str]:
    """``{val_metric: mode}`` of the components (config nodes or built) that monitor a validation metric."""
    found = {}
    for c in components.values():
        if hasattr(c, "monitors"):          # e.g. an mmengine list's ReduceOnPlateau members
            found.update(c.monitors())
            continue
        get = c.get if isinstance(c, Mapping) else lambda k, d=None, c=c: getattr(c, k, d)
        if get("val_metric"):
            found[str(get("val_metric"))] = str(get("mode", "min"))
    return found


def trace_from_spec(spec: str, monitored: Mapping[str, str], n: int) -> dict[str, list[float]]:
    """A metric trace from the command line: a synthetic kind (:data:`TRACES`), an inline JSON
    list (the values of every monitored metric; the last one repeats up to ``n``) or object,
    or a JSON file ``{metric: [values]}``."""
    text = str(spec).strip()
    if text in TRACES or text[:1] == "[":
        if not monitored:
            raise ValueError(f"metric_trace={spec!r} needs a component with a val_metric to feed")
        if text in TRACES:
            return {m: synthetic_trace(text, n, mode) for m, mode in monitored.items()}
    if text[:1] in "[{":
        try:
            value = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"metric_trace={spec!r} is not valid JSON: {e}") from None
    elif Path(text).is_file():
        value = json.loads(Path(text).read_text())
    else:
        raise ValueError(f"metric_trace={spec!r} is neither a file, a JSON list or object, nor one of "
                         f"{', '.join(TRACES)}")
    if isinstance(value, list):
        if not value or not all(isinstance(v, (int, float)) for v in value):
            raise ValueError(f"metric_trace={spec!r} must be a non-empty list of numbers")
        value = {m: value + value[-1:] * (n - len(value)) for m in monitored}
    return {str(k): [float(x) for x in v] for k, v in value.items()}


def _reductions(checks: list[dict[str, Any]]) -> list[str]:
    """One line per check that reduced the lr (from the plateau reducer's logged state)."""
    lines, seen = [], 0
    for c in checks:
        n = c.get("plateau/reductions", seen)
        if n > seen:
            factors = ", ".join(f"{k.rsplit('/', 1)[1]} x{v:.4g}" for k, v in c.items()
                                if k.startswith("plateau/factor/"))
            lines.append(f"  reduction {n} at the check after epoch {c['epoch']} (iter {c['iter']}): "
                         f"value {c['plateau/value']:.6g}, best {c['plateau/best']:.6g}"
                         + (f" -> {factors}" if factors else ""))
        seen = n
    return lines


def group_hparams(optimizer, names: Sequence[str]) -> list[dict[str, Any]]:
    """Each param group's hyper-parameters (everything but ``params``) under its name."""
    return [{**{k: v for k, v in g.items() if k != "params"}, "name": n}
            for g, n in zip(optimizer.param_groups, names, strict=True)]
