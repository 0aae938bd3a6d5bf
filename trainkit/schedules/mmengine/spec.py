"""An mmengine ``param_scheduler`` list, read and checked: one :class:`Spec` per entry.

Everything that does not depend on the run is checked here, when the component is built;
what needs the run (the Runner's ``end`` fill-in, ``convert_to_iter_based``, the groups) is
resolved by :func:`trainkit.schedules.mmengine.members.resolve` at ``before_run``. Every
error names the entry (``param_scheduler[i] (Type)``), the key, the value and what is allowed.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...core.checks import as_list, is_int, is_number

INF = int(1e9)   # mmengine's default ``end`` (and ReduceOnPlateau's initial best)
REQUIRED = object()

# family -> its own arguments and mmengine's defaults (REQUIRED: no default)
FAMILIES: dict[str, dict[str, Any]] = {
    "Step": {"step_size": REQUIRED, "gamma": 0.1},
    "MultiStep": {"milestones": REQUIRED, "gamma": 0.1},
    "Constant": {"factor": 1.0 / 3},
    "Exponential": {"gamma": REQUIRED},
    "CosineAnnealing": {"T_max": None, "eta_min": None, "eta_min_ratio": None},
    "Linear": {"start_factor": 1.0 / 3, "end_factor": 1.0},
    "Poly": {"eta_min": 0, "power": 1.0},
    "OneCycle": {"eta_max": 0, "total_steps": None, "pct_start": 0.3, "anneal_strategy": "cos",
                 "div_factor": 25., "final_div_factor": 1e4, "three_phase": False},
    "CosineRestart": {"periods": REQUIRED, "restart_weights": (1,), "eta_min": None, "eta_min_ratio": None},
    "ReduceOnPlateau": {"monitor": "loss", "rule": "less", "factor": 0.1, "patience": 10, "threshold": 1e-4,
                        "threshold_rule": "rel", "cooldown": 0, "min_value": 0., "eps": 1e-8},
    "LinearInterval": {"start_factor": 1.0 / 3, "end_factor": 1.0, "interval": 1},          # mmagic
    "ReduceLR": {"mode": "min", "factor": 0.1, "patience": 10, "threshold": 1e-4, "threshold_mode": "rel",
                 "cooldown": 0, "min_lr": 0., "eps": 1e-8},                                   # mmagic
}
MMENGINE = ("Constant", "CosineAnnealing", "Exponential", "Linear", "MultiStep", "Step", "Poly", "OneCycle",
            "CosineRestart", "ReduceOnPlateau")
COMMON = ("type", "begin", "end", "by_epoch", "convert_to_iter_based", "last_step", "verbose")
PLATEAU = ("ReduceOnPlateau", "ReduceLR")


def _types() -> dict[str, tuple[str, str | None]]:
    """type name -> (family, param: 'lr', 'momentum', or None for ``param_name``)."""
    types: dict[str, tuple[str, str | None]] = {}
    for fam in MMENGINE:
        types[f"{fam}LR"] = (fam, "lr")
        if fam != "OneCycle":    # mmengine has no OneCycleMomentum
            types[f"{fam}Momentum"] = (fam, "momentum")
        types[f"{fam}ParamScheduler"] = (fam, None)
    types["LinearLrInterval"] = ("LinearInterval", "lr")
    types["ReduceLR"] = ("ReduceLR", "lr")
    return types


TYPES = _types()


@dataclass
class Spec:
    """One entry of the list, as written (numbers checked, nothing resolved yet)."""

    index: int
    type: str
    family: str
    param: str                    # 'lr', 'momentum' (SGD momentum or Adam betas[0]) or a group key
    generic: bool                 # a ``*ParamScheduler`` (``param_name`` given): plain group key, no betas
    by_epoch: bool
    begin: float
    end: float | None             # None: filled in by the run (mmengine Runner's setdefault)
    convert: bool
    verbose: bool
    args: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"param_scheduler[{self.index}] ({self.type})"

    @property
    def is_plateau(self) -> bool:
        return self.family in PLATEAU

    def error(self, message: str) -> ValueError:
        return ValueError(f"{self.label}: {message}")


def as_entries(schedulers: Any) -> list[Mapping[str, Any]]:
    """The list as mmengine's Runner takes it: a list of dicts, or one dict (wrapped)."""
    if isinstance(schedulers, Mapping):
        if "type" not in schedulers:
            raise ValueError("param_scheduler: a dict without 'type' (one list per optimizer, mmengine's "
                             "OptimWrapperDict form) is not supported; give one list of schedulers for the "
                             f"optimizer, got keys {sorted(schedulers)}")
        return [schedulers]
    entries = as_list(schedulers)
    if not entries:
        raise ValueError(f"param_scheduler must be a non-empty list of scheduler dicts (or one dict), "
                         f"got {schedulers!r}")
    for i, e in enumerate(entries):
        if not isinstance(e, Mapping):
            raise ValueError(f"param_scheduler[{i}] must be a dict with 'type', got {e!r}")
    return entries


def parse(i: int, entry: Mapping[str, Any]) -> Spec:
    """Read and check entry ``i``."""
    cfg = dict(entry)
    typ = type_name(cfg.get("type"))
    if typ not in TYPES:
        raise ValueError(f"param_scheduler[{i}]: type={typ!r} is not valid; allowed: {', '.join(sorted(TYPES))}")
    family, param = TYPES[typ]
    label = f"param_scheduler[{i}] ({typ})"
    own = FAMILIES[family]
    allowed = set(COMMON) | set(own) | ({"param_name"} if param is None else set())
    unknown = sorted(set(cfg) - allowed)
    if unknown:
        k = unknown[0]
        raise ValueError(f"{label}: unknown key {k}={cfg[k]!r}; allowed: {', '.join(sorted(allowed))}")
    generic = param is None
    if generic:
        param = cfg.get("param_name")
        if not isinstance(param, str) or not param:
            raise ValueError(f"{label}: param_name={param!r} is required (the param group key to schedule, "
                             "e.g. 'lr', 'momentum', 'weight_decay')")
    if cfg.get("last_step", -1) != -1:
        raise ValueError(f"{label}: last_step={cfg['last_step']!r} is not supported (only -1: resume from a "
                         "trainkit checkpoint instead, which restores every scheduler's step)")
    flags = {k: cfg.get(k, d) for k, d in (("by_epoch", True), ("convert_to_iter_based", False), ("verbose", False))}
    for k, v in flags.items():
        if not isinstance(v, bool):
            raise ValueError(f"{label}: {k}={v!r} must be true or false")
    convert = flags["convert_to_iter_based"]
    if convert and not flags["by_epoch"]:
        raise ValueError(f"{label}: convert_to_iter_based=True needs by_epoch=True (its begin/end/... are in "
                         "epochs and are converted to iterations); got by_epoch=False")
    begin, end = cfg.get("begin", 0), cfg.get("end")
    _window(label, begin, end, convert, "end" in cfg)
    args = {k: cfg.get(k, d) for k, d in own.items()}
    for k, v in args.items():
        if v is REQUIRED:
            raise ValueError(f"{label}: {k} is required")
    spec = Spec(i, typ, family, param, generic, flags["by_epoch"], begin, end, convert, flags["verbose"], args)
    CHECKS[family](spec)
    return spec


def type_name(typ: Any) -> Any:
    """The registry name of ``type``: as written (``'LinearLR'``), with an mmengine registry scope or a
    module path (``'mmengine.LinearLR'``, ``'mmengine.optim.scheduler.lr_scheduler.LinearLR'``), or the
    class itself (a lazy-import config); anything else is returned as is (and rejected by the caller)."""
    if isinstance(typ, type):
        return typ.__name__
    if isinstance(typ, str) and "." in typ and typ.rsplit(".", 1)[1] in TYPES:
        return typ.rsplit(".", 1)[1]
    return typ


def _window(label: str, begin: Any, end: Any, convert: bool, has_end: bool) -> None:
    kind = "a number" if convert else "an integer"
    ok = is_number if convert else is_int
    if not ok(begin) or begin < 0:
        raise ValueError(f"{label}: begin={begin!r} must be {kind} >= 0")
    if has_end:
        if not ok(end):
            raise ValueError(f"{label}: end={end!r} must be {kind} (or omitted: the run's length)")
        if end <= begin:
            raise ValueError(f"{label}: begin={begin!r} must be before end={end!r} (the window is [begin, end))")


# ------------------------------------------------------------------- per-family checks
def _num(spec: Spec, key: str, *, low: float | None = None, high: float | None = None, low_open: bool = False,
         high_open: bool = False, why: str = "") -> float:
    v = spec.args[key]
    bad = not is_number(v) or (low is not None and (v < low or (low_open and v == low))) or \
        (high is not None and (v > high or (high_open and v == high)))
    if bad:
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        span = f"{'(' if low_open else '['}{lo}, {hi}{')' if high_open else ']'}"
        raise spec.error(f"{key}={v!r} is not valid; allowed: a number in {span}{why}")
    return v


def _opt_num(spec: Spec, key: str, **kw: Any) -> None:
    if spec.args[key] is not None:
        _num(spec, key, **kw)


def _choice(spec: Spec, key: str, allowed: tuple[str, ...]) -> None:
    if spec.args[key] not in allowed:
        raise spec.error(f"{key}={spec.args[key]!r} is not valid; allowed: {', '.join(allowed)}")


def _int(spec: Spec, key: str, low: int) -> None:
    v = spec.args[key]
    if not is_int(v) or v < low:
        raise spec.error(f"{key}={v!r} must be an integer >= {low}")


def _numbers(spec: Spec, key: str, *, positive: bool = False) -> list:
    v = as_list(spec.args[key])
    if not v or not all(is_number(x) and (x > 0 if positive else x >= 0) for x in v):
        kind = "positive" if positive else "non-negative"
        raise spec.error(f"{key}={spec.args[key]!r} must be a non-empty list of {kind} numbers")
    spec.args[key] = v
    return v


def _no_convert(spec: Spec, why: str) -> None:
    if spec.convert:
        raise spec.error(f"convert_to_iter_based=True is not supported ({why})")


def _step(spec: Spec) -> None:
    _num(spec, "step_size", low=0, low_open=True)
    _num(spec, "gamma")


def _multistep(spec: Spec) -> None:
    ms = _numbers(spec, "milestones")
    _num(spec, "gamma")
    for a, b in zip(ms, ms[1:], strict=False):
        if b <= a:
            hint = (f"; mmengine counts a repeated milestone and multiplies by gamma**2 at {b}: keep it once and "
                    f"move it to a second {spec.type} with milestones=[{b}], gamma={spec.args['gamma']}**2"
                    if a == b else "; mmengine ignores their order: sort them")
            raise spec.error(f"milestones={ms!r} must be increasing{hint}")
    if not spec.convert:
        frac = [m for m in ms if m != int(m)]
        if frac:
            unit = "epoch" if spec.by_epoch else "iteration"
            raise spec.error(f"milestones={ms!r}: {frac[0]!r} is not a whole {unit} (mmengine's step counter "
                             "never equals it: it would never apply)")


def _constant(spec: Spec) -> None:
    _num(spec, "factor", low=0, high=1, low_open=True,
         why=" (0 would divide by zero when mmengine restores the value, 1/factor, at step end-1)")


def _exponential(spec: Spec) -> None:
    _num(spec, "gamma")


def _eta(spec: Spec, required: bool) -> None:
    e, r = spec.args["eta_min"], spec.args["eta_min_ratio"]
    if e is not None and r is not None:
        raise spec.error(f"give eta_min or eta_min_ratio, not both (got eta_min={e!r}, eta_min_ratio={r!r})")
    if required and e is None and r is None:
        raise spec.error("give eta_min or eta_min_ratio (CosineRestart has no default)")
    _opt_num(spec, "eta_min")
    _opt_num(spec, "eta_min_ratio")


def _cosine(spec: Spec) -> None:
    _eta(spec, required=False)
    if spec.args["T_max"] is not None:
        _num(spec, "T_max", low=0, low_open=True, why=" (or omitted: end - begin; mmengine reads 0 as omitted)")


def _linear(spec: Spec) -> None:
    _num(spec, "start_factor", low=0, high=1, low_open=True,
         why=" (mmengine's range is [0, 1], but 0 divides by zero at the step after the first)")
    _num(spec, "end_factor", low=0, high=1)


def _poly(spec: Spec) -> None:
    _num(spec, "eta_min")
    _num(spec, "power")


def _onecycle(spec: Spec) -> None:
    if spec.param != "lr":
        raise spec.error(f"param_name={spec.param!r} is not supported: OneCycle schedules the lr only (as in mmengine)")
    m = spec.args["eta_max"]
    values = as_list(m) if as_list(m) is not None else [m]
    if not values or not all(is_number(x) and x > 0 for x in values):
        raise spec.error(f"eta_max={m!r} must be a positive number or a list of them (one per param group; "
                         "mmengine's default 0 would keep the lr at 0)")
    spec.args["eta_max"] = values if as_list(m) is not None else m
    ts = spec.args["total_steps"]
    if ts is not None and (not is_int(ts) or ts <= 0):
        raise spec.error(f"total_steps={ts!r} must be a positive integer (or omitted: end - begin)")
    pct = spec.args["pct_start"]
    if not isinstance(pct, float) or not 0 <= pct <= 1:
        raise spec.error(f"pct_start={pct!r} must be a float in [0, 1] (mmengine rejects an int such as 1; write 1.0)")
    _choice(spec, "anneal_strategy", ("cos", "linear"))
    _num(spec, "div_factor", low=0, low_open=True)
    _num(spec, "final_div_factor", low=0, low_open=True)
    if not isinstance(spec.args["three_phase"], bool):
        raise spec.error(f"three_phase={spec.args['three_phase']!r} must be true or false")


def _restart(spec: Spec) -> None:
    periods = _numbers(spec, "periods", positive=True)
    weights = as_list(spec.args["restart_weights"])
    if weights is None or not all(is_number(w) for w in weights):
        raise spec.error(f"restart_weights={spec.args['restart_weights']!r} must be a list of numbers")
    if len(weights) != len(periods):
        raise spec.error(f"periods={periods!r} and restart_weights={weights!r} must have the same length")
    spec.args["restart_weights"] = weights
    _eta(spec, required=True)


def _plateau_common(spec: Spec, mode_key: str, modes: tuple[str, str], threshold_key: str) -> None:
    _choice(spec, mode_key, modes)
    _choice(spec, threshold_key, ("rel", "abs"))
    _num(spec, "factor", low=0, high=1, high_open=True)
    _int(spec, "patience", 0)
    _int(spec, "cooldown", 0)
    _num(spec, "threshold", low=0)
    _num(spec, "eps", low=0)


def _rop(spec: Spec) -> None:
    if not spec.by_epoch:
        raise spec.error("by_epoch=False is not supported (mmengine: 'Now ReduceOnPlateau only support "
                         "by_epoch=True'); it is stepped after every validation")
    _no_convert(spec, "mmengine's ReduceOnPlateau has no iteration form")
    if not isinstance(spec.args["monitor"], str) or not spec.args["monitor"]:
        raise spec.error(f"monitor={spec.args['monitor']!r} must be a validation metric name")
    _plateau_common(spec, "rule", ("less", "greater"), "threshold_rule")
    mv = spec.args["min_value"]
    values = as_list(mv)
    if values is None:
        _num(spec, "min_value", low=0)
    elif not values or not all(is_number(x) and x >= 0 for x in values):
        raise spec.error(f"min_value={mv!r} must be a number >= 0 or a list of them (one per param group)")
    else:
        spec.args["min_value"] = values


def _interval(spec: Spec) -> None:
    _num(spec, "start_factor", low=0, high=1)
    _num(spec, "end_factor", low=0, high=1)
    _int(spec, "interval", 1)


def _reduce_lr(spec: Spec) -> None:
    _no_convert(spec, "mmagic's ReduceLR has no iteration form")
    _plateau_common(spec, "mode", ("min", "max"), "threshold_mode")
    _num(spec, "min_lr", low=0, why=" (one number for every group, as in mmagic)")


CHECKS = {"Step": _step, "MultiStep": _multistep, "Constant": _constant, "Exponential": _exponential,
          "CosineAnnealing": _cosine, "Linear": _linear, "Poly": _poly, "OneCycle": _onecycle,
          "CosineRestart": _restart, "ReduceOnPlateau": _rop, "LinearInterval": _interval, "ReduceLR": _reduce_lr}


# ------------------------------------------------------------------------------ the hook
HOOKS = ("ParamSchedulerHook", "ReduceLRSchedulerHook")


@dataclass(frozen=True)
class Hook:
    """What steps the list: mmengine's ``ParamSchedulerHook`` (``mmagic=False``) or mmagic's
    ``ReduceLRSchedulerHook`` (``val_metric``, ``by_epoch``, ``interval``)."""

    mmagic: bool = False
    val_metric: str | None = None
    by_epoch: bool = True
    interval: int = 1


def parse_hook(hook: Any) -> Hook:
    """``None`` or ``{type: ParamSchedulerHook}``, or mmagic's
    ``{type: ReduceLRSchedulerHook, val_metric, by_epoch, interval}`` (a config's
    ``default_hooks.param_scheduler``)."""
    if hook is None:
        return Hook()
    if not isinstance(hook, Mapping) or hook.get("type") not in HOOKS:
        got = hook.get("type") if isinstance(hook, Mapping) else hook
        raise ValueError(f"hook: type={got!r} is not valid; allowed: {', '.join(HOOKS)}")
    cfg = dict(hook)
    if cfg.pop("type") == "ParamSchedulerHook":
        if cfg:
            raise ValueError(f"hook: ParamSchedulerHook takes no arguments, got {sorted(cfg)}")
        return Hook()
    allowed = {"val_metric", "by_epoch", "interval"}
    if set(cfg) - allowed:
        k = sorted(set(cfg) - allowed)[0]
        raise ValueError(f"hook (ReduceLRSchedulerHook): unknown key {k}={cfg[k]!r}; "
                         f"allowed: {', '.join(sorted(allowed))}")
    vm, by_epoch, interval = cfg.get("val_metric"), cfg.get("by_epoch", True), cfg.get("interval", 1)
    if vm is not None and (not isinstance(vm, str) or not vm):
        raise ValueError(f"hook (ReduceLRSchedulerHook): val_metric={vm!r} must be a metric name or null "
                         "(null: the mean training loss)")
    if not isinstance(by_epoch, bool):
        raise ValueError(f"hook (ReduceLRSchedulerHook): by_epoch={by_epoch!r} must be true or false")
    if not is_int(interval) or interval < 1:
        raise ValueError(f"hook (ReduceLRSchedulerHook): interval={interval!r} must be an integer >= 1")
    return Hook(True, vm, by_epoch, interval)
