"""mmengine 0.10.7's ``param_scheduler`` list (``trainkit.schedules.param_scheduler``) against the real
mmengine: every lr / momentum / weight decay of every param group at every iteration, in a preview and in
real training, equal (``==``) to ``tests/reference/mmengine_sched/mmengine_tables.json`` (produced by
``make_tables.py`` with mmengine 0.10.7 and mmagic 1.2.0; see its README), plus closed forms and mmengine's
own unit-test values where they can be checked by hand.
"""
import bisect
import json
import math
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from trainkit.core.runner import Runner
from trainkit.core.record import read_jsonl
from trainkit.schedules import param_scheduler
from trainkit.schedules.preview import _preview, preview

REF = Path(__file__).resolve().parent / "reference" / "mmengine_sched" / "mmengine_tables.json"
CASES = {c["name"]: c for c in json.loads(REF.read_text())}
P = "trainkit.schedules.param_scheduler"

# trainkit refuses these configs (issue 13's bad-input rules); test_the_fixes_... shows the suggested rewrite
REFUSED = {"MultiStepLR_dup_milestone_epoch", "MultiStepLR_dup_milestone_iter", "MultiStepLR_nonincreasing_epoch",
           "MultiStepLR_nonincreasing_iter", "MultiStepMomentum_iter_SGD", "MultiStepMomentum_iter_Adam"}
# a preview has no training loss: these run in real training below
NEEDS_LOSS = {"mmagic_ReduceLR_train_loss_by_iter", "mmagic_ReduceLR_train_loss_by_epoch_with_StepLR"}
VALUE_CASES = sorted(n for n, c in CASES.items() if "error" not in c and n not in REFUSED | NEEDS_LOSS)


def close(x):
    return pytest.approx(x, rel=1e-12, abs=1e-18)


# --------------------------------------------------------------------------- running a case
def groups_of(case):
    out = []
    for i, g in enumerate(case["groups"]):
        d = {"name": f"g{i}", "lr": g["lr"]}
        for k in ("momentum", "weight_decay"):
            if k in g:
                d[k] = g[k]
        if "betas" in g:
            d["betas"] = tuple(g["betas"])
        out.append(d)
    return out


def node_of(case, schedulers=None):
    node = {"_target_": P, "schedulers": case["schedulers"] if schedulers is None else schedulers}
    if case.get("hook"):
        node["hook"] = case["hook"]
    return node


def geometry(case):
    """(max_epochs, max_iters, val_interval in trainkit epochs). mmengine's IterBasedTrainLoop validates every
    val_interval iterations: here every val_interval / L epochs (the cases use multiples of L)."""
    L, vi = case["iters_per_epoch"], case.get("val_interval", 1)
    if "max_iters" in case:
        return None, case["max_iters"], (vi // L if case.get("metric_trace") else 1)
    return case["max_epochs"], None, vi


def preview_case(case, schedulers=None):
    epochs, iters, vi = geometry(case)
    trace = {case.get("monitor", "loss"): case["metric_trace"]} if case.get("metric_trace") else None
    table, _ = _preview(groups_of(case), {"s": node_of(case, schedulers)}, epochs, case["iters_per_epoch"], trace,
                        iters, vi)
    return table


def expected_columns(case):
    """{column key: values per iteration} of the reference table."""
    cols = case["cols"]
    out = {"iter": cols["iter"]}
    if "max_epochs" in case:     # mmengine's IterBasedTrainLoop keeps runner.epoch at 0; trainkit counts epochs
        out["epoch"] = cols["epoch"]
    for key in ("lr", "momentum", "weight_decay"):
        for i, values in enumerate(cols.get(key, [])):
            if all(v is not None for v in values):
                out[f"{key}/g{i}"] = values
    return out


def assert_table_equal(case, got):
    """``got``: {column key: values per iteration}; every reference column must be there, value for value."""
    want = expected_columns(case)
    for key, values in want.items():
        assert key in got, (key, sorted(got))
        assert len(got[key]) == len(values), (key, len(got[key]), len(values))
        bad = [(i, v, g) for i, (v, g) in enumerate(zip(values, got[key], strict=True)) if v != g]
        assert not bad, f"{case['name']} {key}: {len(bad)} differ, first (iter, mmengine, trainkit): {bad[:3]}"


# --------------------------------------------------------------------------- the reference table
QUIET = pytest.mark.filterwarnings("ignore::trainkit.schedules.ScheduleWarning")   # test_warnings checks them


@QUIET
@pytest.mark.parametrize("name", VALUE_CASES)
def test_preview_equals_mmengine_at_every_iteration(name):
    case = CASES[name]
    table = preview_case(case)
    assert_table_equal(case, {k: table.column(k) for k in table.fields})


ERROR_CASES = sorted(n for n, c in CASES.items() if "error" in c)
ACCEPTED = {"err_OneCycle_eta_max_len_real_groups"}   # n eta_max values for n groups: taken (mmengine wants n + 1)
AT_VALIDATION = {"err_ROP_monitor_missing"}          # a metric's absence shows only when the metrics exist


@QUIET
@pytest.mark.parametrize("name", ERROR_CASES)
def test_every_mmengine_failure_is_a_clear_error_before_training(name):
    """Each config mmengine rejects (at build, or by crashing mid-run: ZeroDivisionError, ValueError 'Tried to
    step', KeyError from the MessageHub) is a ValueError naming the entry here, before the first iteration."""
    case = CASES[name]
    seen = []

    class Probe:
        def before_iter(self, runner):
            seen.append(runner.iter)

    epochs, iters, vi = geometry(case)
    trace = {case.get("monitor", "loss"): case["metric_trace"]} if case.get("metric_trace") else None
    comps = {"s": node_of(case), "probe": Probe()}
    if name in ACCEPTED:
        table, _ = _preview(groups_of(case), comps, epochs, case["iters_per_epoch"], trace, iters, vi)
        assert table.column("lr/g0")[-1] == pytest.approx(0.2 / 25 / 1e4, rel=1e-12)
        return
    with pytest.raises(ValueError, match=r"param_scheduler\[0\] \(\w+\)|param_scheduler\[0\]: type="):
        _preview(groups_of(case), comps, epochs, case["iters_per_epoch"], trace, iters, vi)
    assert seen == [] or name in AT_VALIDATION, seen


def test_the_table_covers_every_class_and_setting():
    """The reference cases include each class in both by_epoch settings (where mmengine allows), converted,
    windowed and chained (a guard against the parametrized test above silently shrinking)."""
    def has(pred):
        return [n for n in VALUE_CASES + sorted(REFUSED) if pred(CASES[n])]

    for fam in ("Constant", "CosineAnnealing", "Exponential", "Linear", "MultiStep", "Step", "Poly", "OneCycle",
                "CosineRestart"):
        lr = f"{fam}LR"
        assert has(lambda c, t=lr: any(s["type"] == t and s.get("by_epoch", True) for s in c["schedulers"])), lr
        assert has(lambda c, t=lr: any(s["type"] == t and s.get("by_epoch") is False for s in c["schedulers"])), lr
        assert has(lambda c, f=fam: any(s["type"].startswith(f) and s.get("convert_to_iter_based")
                                        for s in c["schedulers"])), fam
    assert len(has(lambda c: len(c["schedulers"]) > 1)) >= 12
    assert len(has(lambda c: any("begin" in s for s in c["schedulers"]))) >= 10
    assert len(VALUE_CASES) >= 100


def test_float_artefacts_of_schedule_1x():
    """mmdet 3.x schedule_1x with lr 0.02 (research notes §9): the warmup ends at 0.019999999999999952."""
    case = CASES["mmdet_schedule_1x_literal_L100"]
    lr = preview_case(case).column("lr/g0")
    assert lr[0] == 2e-05 and lr[1] == 6.004008016032065e-05
    assert lr[499] == lr[799] == 0.019999999999999952
    assert lr[800] == 0.0019999999999999953 and lr[1100] == 0.00019999999999999955


# --------------------------------------------------------------------------- real training
class PerGroup(torch.nn.Module):
    """One small parameter per param group; the loss is a tiny quadratic, or the scripted ``losses`` (one per
    forward call) for the cases that monitor the training loss."""

    def __init__(self, n, losses=None):
        super().__init__()
        torch.manual_seed(0)
        self.w = torch.nn.ParameterList(torch.nn.Parameter(torch.randn(2)) for _ in range(n))
        self.losses, self.calls = losses, 0

    def forward(self, batch):
        loss = sum((w ** 2).sum() for w in self.w) * 1e-3
        if self.losses is not None:
            loss = loss * 0 + self.losses[self.calls]
        self.calls += 1
        return {"loss": loss}


class Seen:
    """Each group's lr / momentum / weight decay at ``after_step`` (what ``optimizer.step()`` used)."""

    priority = 100

    def __init__(self):
        self.cols = {}

    def after_step(self, runner):
        self.cols.setdefault("iter", []).append(runner.iter)
        self.cols.setdefault("epoch", []).append(runner.epoch)
        for i, g in enumerate(runner.optimizer.param_groups):
            self.cols.setdefault(f"lr/g{i}", []).append(g["lr"])
            m = g["betas"][0] if "betas" in g else g.get("momentum")
            self.cols.setdefault(f"momentum/g{i}", []).append(m)
            self.cols.setdefault(f"weight_decay/g{i}", []).append(g.get("weight_decay"))


class Trace:
    """Validation k (1-based: after epoch k · val_interval, or at the run's end mid-epoch) returns
    ``{monitor: trace[k - 1]}`` (from the counters, so a resumed run sees the same values)."""

    def __init__(self, monitor, trace):
        self.monitor, self.trace = monitor, trace

    def __call__(self, runner):
        epochs = runner.epoch if runner.inner_iter == 0 else runner.epoch + 1
        return {self.monitor: self.trace[math.ceil(epochs / runner.val_interval) - 1]}


def make_optimizer(case, model):
    groups = []
    for i, (p, g) in enumerate(zip(model.w, case["groups"], strict=True)):
        groups.append({"params": [p], "name": f"g{i}", **{k: (tuple(v) if k == "betas" else v) for k, v in g.items()}})
    defaults = {k: (tuple(v) if k == "betas" else v) for k, v in case["defaults"].items()}
    return getattr(torch.optim, case["optimizer"])(groups, **defaults)


def train_case(case, tmp_path, log_interval=1, components=None, **options):
    L = case["iters_per_epoch"]
    epochs, iters, vi = geometry(case)
    model = PerGroup(len(case["groups"]), case.get("loss_trace"))
    seen = Seen()
    comps = {"s": param_scheduler(case["schedulers"], case.get("hook")), **(components or {}), "seen": seen}
    ev = Trace(case.get("monitor", "loss"), case["metric_trace"]) if case.get("metric_trace") else None
    Runner(model, make_optimizer(case, model), TensorDataset(torch.zeros(L)), batch_size=1, max_epochs=epochs,
           max_iters=iters, val_interval=vi, evaluator=ev, components=comps, work_dir=tmp_path, progress=False,
           log_interval=log_interval, **options).run()
    return seen.cols


RUNNER_CASES = ["runner_epoch_chain_hidden_group", "runner_iter_based_loop", "runner_ROP_lr_and_momentum_Adam",
                "runner_schedule_1x_mini", "runner_mmagic_warmup_ReduceLR", "ReduceOnPlateauLR_in_IterBasedTrainLoop",
                "ReduceOnPlateauLR_val_interval2", "convert_fractional_begin_end_Tmax", "OneCycleLR_three_phase_epoch",
                "CosineRestartLR_eta_min_iter", "by_epoch_scheduler_in_IterBasedTrainLoop",
                "mmagic_LinearLrInterval_begin0", "mmagic_LinearLrInterval_by_epoch",
                "mmagic_ReduceLR_train_loss_by_iter",
                "OneCycleLR_with_CosineAnnealingMomentum_Adam", "CosineAnnealingParamScheduler_weight_decay_iter",
                "StepParamScheduler_weight_decay_convert", "ReduceOnPlateauMomentum_Adam",
                "mmagic_LinearLrInterval_begin10_mmagic_style", "PolyMomentum_iter_Adam",
                "mmagic_ReduceLR_train_loss_by_epoch_with_StepLR", "chain_ConstantLR_then_OneCycle_window_iter",
                "iter_based_loop_converted_windows", "mmagic_LinearLR_warmup_then_LinearLrInterval_iter",
                "mmagic_ReduceLR_val_interval2_offbyone", "chain_generic_weight_decay_Poly_Exponential"]


@QUIET
@pytest.mark.parametrize("name", RUNNER_CASES)
def test_real_training_equals_mmengine_and_logs_it(name, tmp_path):
    """Real SGD/Adam steps through the Runner: the lr (momentum, weight decay) each step used equals mmengine's,
    and every logged ``lr/<group>`` / ``momentum/<group>`` row is that value."""
    case = CASES[name]
    got = train_case(case, tmp_path)
    assert_table_equal(case, got)
    rows = [r for r in read_jsonl(tmp_path / "metrics.jsonl") if "lr/g0" in r and "loss" in r]
    assert [r["lr/g0"] for r in rows] == case["cols"]["lr"][0]
    if "momentum" in case["cols"]:
        assert [r["momentum/g0"] for r in rows] == case["cols"]["momentum"][0]


def rewritten(sched):
    """The rewrite trainkit's error suggests for a MultiStep with unsorted or repeated milestones: sorted, and one
    scheduler per repeat count c with gamma**c (mmengine multiplies by gamma**count at a milestone)."""
    counts = {m: sched["milestones"].count(m) for m in sorted(set(sched["milestones"]))}
    return [{**sched, "milestones": [m for m, c in counts.items() if c == n], "gamma": sched["gamma"] ** n}
            for n in sorted(set(counts.values()))]


@QUIET
@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_milestones_and_the_suggested_rewrite_reproduces_mmengine(name):
    """trainkit refuses non-increasing milestones (issue 13); the rewrite its message suggests gives mmengine's
    values exactly."""
    case = CASES[name]
    sched = case["schedulers"][0]
    ms = sched["milestones"]
    if len(set(ms)) < len(ms):
        m = next(x for x in ms if ms.count(x) > 1)
        match = (rf"milestones=\[{', '.join(map(str, ms))}\] must be increasing; mmengine counts a repeated milestone "
                 rf"and multiplies by gamma\*\*2 at {m}: keep it once and move it to a second {sched['type']} with "
                 rf"milestones=\[{m}\], gamma={sched['gamma']}\*\*2")
    else:
        match = rf"milestones=\[{', '.join(map(str, ms))}\] must be increasing; mmengine ignores their order: sort them"
    with pytest.raises(ValueError, match=rf"param_scheduler\[0\] \({sched['type']}\): " + match):
        preview_case(case)
    table = preview_case(case, rewritten(sched))
    assert_table_equal(case, {k: table.column(k) for k in table.fields})


# --------------------------------------------------------------------------- mmengine's own unit tests
def lrs(schedulers, epochs=10, ipe=1, lr=0.05, by_epoch=True, **kw):
    """lr of one group at each epoch (``by_epoch``, first iteration of the epoch) or iteration."""
    rows = preview([{"name": "g", "lr": lr, "momentum": 0.01}], {"s": {"_target_": P, "schedulers": schedulers}},
                   epochs, ipe, **kw)
    return [r["lr/g"] for r in rows if not by_epoch or r["iter"] % ipe == 0]


COS5 = [1e-10 + (0.05 * 0.9 ** 4 - 1e-10) * (1 + math.cos(math.pi * x / 5)) / 2 for x in range(5)]
UNIT = {   # mmengine tests/test_optim/test_scheduler/test_lr_scheduler.py (lr 0.05): schedulers, targets per epoch
    "step": ([{"type": "StepLR", "gamma": 0.1, "step_size": 3}], [0.05] * 3 + [0.005] * 3 + [0.0005] * 3 + [5e-5]),
    "multi_step": ([{"type": "MultiStepLR", "gamma": 0.1, "milestones": [2, 5, 9]}],
                   [0.05] * 2 + [0.005] * 3 + [0.0005] * 4 + [5e-5]),
    "constant": ([{"type": "ConstantLR", "factor": 0.5, "end": 5}], [0.025] * 4 + [0.05] * 6),
    "linear": ([{"type": "LinearLR", "start_factor": 0.5, "end": 5}], [0.025, 0.03125, 0.0375, 0.04375] + [0.05] * 6),
    "effective_interval": ([{"type": "LinearLR", "start_factor": 0.5, "begin": 1, "end": 6}],
                           [0.05, 0.025, 0.03125, 0.0375, 0.04375] + [0.05] * 5),
    "exp": ([{"type": "ExponentialLR", "gamma": 0.9}], [0.05 * 0.9 ** x for x in range(10)]),
    "cos_anneal": ([{"type": "CosineAnnealingLR", "T_max": 10, "eta_min": 1e-10}],
                   [1e-10 + (0.05 - 1e-10) * (1 + math.cos(math.pi * x / 10)) / 2 for x in range(12)]),
    "no_overlap_linear_multistep": ([{"type": "LinearLR", "start_factor": 0.5, "begin": 0, "end": 5},
                                     {"type": "MultiStepLR", "gamma": 0.1, "milestones": [3, 6], "begin": 5,
                                      "end": 12}],
                                    [0.025, 0.03125, 0.0375, 0.04375] + [0.05] * 4 + [0.005] * 3 + [0.0005]),
    "overlap_linear_multistep": ([{"type": "LinearLR", "start_factor": 0.5, "begin": 0, "end": 5},
                                  {"type": "MultiStepLR", "gamma": 0.1, "milestones": [3, 6, 9]}],
                                 [0.025, 0.03125, 0.0375, 0.004375] + [0.005] * 2 + [0.0005] * 3 + [5e-5]),
    "no_overlap_exp_cosine": ([{"type": "ExponentialLR", "gamma": 0.9, "begin": 0, "end": 5},
                               {"type": "CosineAnnealingLR", "T_max": 5, "eta_min": 1e-10, "begin": 5, "end": 10}],
                              [0.05 * 0.9 ** x for x in range(5)] + COS5),
    "gap_exp_cosine": ([{"type": "ExponentialLR", "gamma": 0.9, "begin": 0, "end": 5},
                        {"type": "CosineAnnealingLR", "T_max": 5, "eta_min": 1e-10, "begin": 10, "end": 15}],
                       [0.05 * 0.9 ** x for x in range(5)] + [0.05 * 0.9 ** 4] * 5 + COS5),
}


@pytest.mark.parametrize("name", sorted(UNIT))
@pytest.mark.parametrize("by_epoch", [True, False], ids=["by_epoch", "by_iter"])
def test_mmengine_unit_test_values(name, by_epoch):
    """The same list by epoch (3 iterations per epoch) or by iteration gives mmengine's hand-written targets."""
    schedulers, targets = UNIT[name]
    scheds = [{**s, "by_epoch": by_epoch} for s in schedulers]
    got = lrs(scheds, epochs=len(targets), ipe=3 if by_epoch else 1, by_epoch=True)
    assert got == [close(t) for t in targets]


# --------------------------------------------------------------------------- closed forms
G2 = [{"name": "a", "lr": 0.1, "momentum": 0.9}, {"name": "b", "lr": 0.02, "momentum": 0.9}]


def run_list(schedulers, epochs=None, ipe=4, groups=G2, max_iters=None, **kw):
    return preview(groups, {"s": {"_target_": P, "schedulers": schedulers}}, epochs, ipe, max_iters=max_iters, **kw)


def step_of(row, by_epoch, ipe, begin):
    """The scheduler's step in effect at this row: the window's steps are begin, begin+1, ... (epochs or iterations)."""
    return (row["epoch"] if by_epoch else row["iter"]) - begin


def poly(b, t, n, eta, p):
    return eta + (b - eta) * (1 - t / n) ** p


CLOSED = {
    # name: (scheduler (without by_epoch), window begin, f(base, t) for t >= 0 in the window, frozen after end?)
    "StepLR": ({"type": "StepLR", "step_size": 2, "gamma": 0.5}, 0, lambda b, t: b * 0.5 ** (t // 2)),
    "MultiStepLR": ({"type": "MultiStepLR", "milestones": [1, 4], "gamma": 0.1}, 0,
                    lambda b, t: b * 0.1 ** bisect.bisect_right([1, 4], t)),
    "ConstantLR": ({"type": "ConstantLR", "factor": 0.25, "begin": 1, "end": 5}, 1,
                   lambda b, t: b * 0.25 if t < 3 else b),                  # restored at end - 1
    "ExponentialLR": ({"type": "ExponentialLR", "gamma": 0.8, "begin": 2}, 2, lambda b, t: b * 0.8 ** t),
    "LinearLR": ({"type": "LinearLR", "start_factor": 0.2, "end_factor": 0.6, "begin": 1, "end": 6}, 1,
                 lambda b, t: b * (0.2 + 0.4 * min(t, 4) / 4)),           # end_factor reached at end - 1
    "PolyLR": ({"type": "PolyLR", "eta_min": 0.001, "power": 2.0, "begin": 0, "end": 6}, 0,
               lambda b, t: poly(b, min(t, 5), 5, 0.001, 2.0)),
    "CosineAnnealingLR": ({"type": "CosineAnnealingLR", "eta_min_ratio": 0.1, "begin": 0, "end": 7}, 0,
                          lambda b, t: 0.1 * b + 0.9 * b * (1 + math.cos(math.pi * min(t, 6) / 7)) / 2),
    "CosineRestartLR": ({"type": "CosineRestartLR", "periods": [3, 4], "restart_weights": [1, 0.5],
                         "eta_min": 0.001}, 0,
                        lambda b, t: 0.001 + (b - 0.001) * (1 + math.cos(math.pi * t / 3)) / 2 if t < 3 else
                        0.001 + (0.5 * b - 0.001) * (1 + math.cos(math.pi * (min(t, 6) - 3) / 4)) / 2),
}


@QUIET
@pytest.mark.parametrize("name", sorted(CLOSED))
@pytest.mark.parametrize("by_epoch", [True, False], ids=["by_epoch", "by_iter"])
def test_closed_forms_with_windows(name, by_epoch):
    """Each class's chained recurrence equals its closed form (rel 1e-12) at every iteration, by epoch or by
    iteration, before its window (base lr), inside it and after it (frozen), for two groups."""
    sched, begin, f = CLOSED[name]
    ipe = 3 if by_epoch else 1
    rows = run_list([{**sched, "by_epoch": by_epoch}], epochs=9, ipe=ipe)
    for r in rows:
        t = step_of(r, by_epoch, ipe, begin)
        for g in G2:
            want = g["lr"] if t < 0 else f(g["lr"], t)
            assert r[f"lr/{g['name']}"] == close(want), (name, r)


def test_convert_to_iter_based_closed_form():
    """A by-epoch window/milestones/T_max converted with the run's iterations per epoch (L = 5):
    MultiStepLR [2, 4] epochs acts at iterations 10, 20; cosine over [1, 4) epochs = [5, 20) iterations."""
    rows = run_list([{"type": "MultiStepLR", "milestones": [2, 4], "gamma": 0.1, "convert_to_iter_based": True}],
                    epochs=6, ipe=5)
    assert [r["lr/a"] for r in rows] == [close(0.1 * 0.1 ** bisect.bisect_right([10, 20], r["iter"])) for r in rows]
    cosine = {"type": "CosineAnnealingLR", "begin": 1, "end": 4, "eta_min": 0.0, "convert_to_iter_based": True}
    rows = run_list([cosine], epochs=6, ipe=5)
    for r in rows:
        t = min(max(r["iter"] - 5, -1), 14)
        assert r["lr/a"] == close(0.1 if t < 0 else 0.05 * (1 + math.cos(math.pi * t / 15))), r


def test_one_cycle_closed_form_and_group_lists():
    """OneCycle is absolute: eta_max/div_factor rising by a cosine to eta_max over pct_start·total − 1 steps, then
    down to eta_max/div_factor/final_div_factor; a list gives each group its own peak (mmengine's list counts its
    OptimWrapper's hidden base group last: n + 1 values are accepted too)."""
    for eta_max in ([0.4, 0.2], [0.4, 0.2, 0.9]):
        rows = run_list([{"type": "OneCycleLR", "eta_max": eta_max, "by_epoch": False, "pct_start": 0.25}],
                        epochs=5, ipe=4)
        for r in rows:
            t = r["iter"]
            up = 0.25 * 20 - 1
            for g, peak in (("a", 0.4), ("b", 0.2)):
                start, low = peak / 25, peak / 25 / 1e4
                if t <= up:
                    want = peak + (start - peak) / 2 * (math.cos(math.pi * t / up) + 1)
                else:
                    want = low + (peak - low) / 2 * (math.cos(math.pi * (t - up) / (19 - up)) + 1)
                assert r[f"lr/{g}"] == close(want), r


def test_reduce_on_plateau_hand_example():
    """ReduceOnPlateauLR (rule less, patience 2, cooldown 1, factor 0.5) on the metrics 10, 9, 9, ...: no step at
    construction, the first validation already counts; reductions after validations 5 and 9."""
    rows = run_list([{"type": "ReduceOnPlateauLR", "monitor": "val/m", "patience": 2, "cooldown": 1, "factor": 0.5}],
                    epochs=10, ipe=2, metric_trace={"val/m": [10, 9, 9, 9, 9, 9, 9, 9, 9, 9]})
    by_epoch = {r["epoch"]: r["lr/a"] for r in rows}
    assert [by_epoch[e] for e in range(10)] == [0.1] * 5 + [0.05] * 4 + [0.025]


def test_momentum_on_sgd_and_adam_betas():
    """A momentum scheduler writes SGD's momentum and Adam's betas[0] (betas[1] kept); the lr is untouched."""
    groups = [{"name": "sgd", "lr": 0.1, "momentum": 0.9}, {"name": "adam", "lr": 0.1, "betas": (0.8, 0.99)}]
    rows = run_list([{"type": "LinearMomentum", "start_factor": 0.5, "by_epoch": False, "end": 5}], epochs=2, ipe=4,
                    groups=groups)
    for r in rows:
        f = 0.5 + 0.5 * min(r["iter"], 4) / 4
        assert (r["momentum/sgd"], r["momentum/adam"]) == (close(0.9 * f), close(0.8 * f))
        assert r["lr/sgd"] == r["lr/adam"] == 0.1


def test_generic_param_scheduler_previews_its_key():
    """``CosineAnnealingParamScheduler(param_name='weight_decay')``: the preview shows weight_decay/<group>."""
    groups = [{"name": "a", "lr": 0.1, "weight_decay": 0.01}, {"name": "b", "lr": 0.1, "weight_decay": 0.0}]
    rows = run_list([{"type": "CosineAnnealingParamScheduler", "param_name": "weight_decay", "by_epoch": False,
                      "eta_min": 0.0}], epochs=1, ipe=8, groups=groups)
    assert [r["weight_decay/a"] for r in rows] == [close(0.005 * (1 + math.cos(math.pi * t / 8))) for t in range(8)]
    assert {r["weight_decay/b"] for r in rows} == {0.0} and {r["lr/a"] for r in rows} == {0.1}


def test_single_dict_and_the_class_api():
    """One dict instead of a list (CAIN / CycleGAN configs), and trainkit.schedules.ParamSchedulerList."""
    from trainkit.schedules import ParamSchedulerList

    one = run_list({"type": "ExponentialLR", "gamma": 0.5, "by_epoch": False}, epochs=1, ipe=3)
    assert [r["lr/a"] for r in one] == [0.1, 0.05, 0.025]
    comp = ParamSchedulerList([{"type": "ExponentialLR", "gamma": 0.5, "by_epoch": False}])
    assert [r["lr/a"] for r in preview(G2, {"s": comp}, 1, 3)] == [0.1, 0.05, 0.025]


def test_plateau_members_decide_on_the_mean_across_processes():
    """Under several processes a ReduceOnPlateau member consumes the mean of every rank's metric (through the
    plateau machinery shared with ReduceLR), so every rank takes the same decision."""
    from types import SimpleNamespace

    class TwoRanks:    # rank 0 of 2; the other rank reports `other`
        num_processes, process_index, device = 2, 0, torch.device("cpu")

        def __init__(self):
            self.other = 0.0

        def gather(self, t):
            return torch.cat([t, torch.full_like(t, self.other)])

    acc = TwoRanks()
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0, momentum=0.9)
    runner = SimpleNamespace(optimizer=opt, group_names=["g"], iters_per_epoch=2, max_epochs=6, max_iters=12,
                             config=SimpleNamespace(max_iters=None), evaluator=object(), dry_run=False, val_interval=1,
                             accelerator=acc, metrics={}, scalars={}, epoch=0, iter=0)
    comp = param_scheduler([{"type": "ReduceOnPlateauLR", "monitor": "val/m", "patience": 0, "factor": 0.5}])
    comp.before_run(runner)
    seen = []
    for mine, other in ((4.0, 2.0), (3.0, 3.5), (1.0, 4.0)):    # means 3.0, 3.25 (worse: reduce), 2.5 (better)
        comp.after_epoch(runner)
        runner.epoch += 1
        runner.metrics, acc.other = {"val/m": mine}, other
        comp.after_val(runner)
        seen.append((runner.scalars["plateau/value"], opt.param_groups[0]["lr"]))
    assert seen == [(3.0, 1.0), (3.25, 0.5), (2.5, 0.5)]


def test_type_names_with_a_registry_scope_a_module_path_or_the_class():
    """``type`` as configs write it: ``'LinearLR'``, ``'mmengine.LinearLR'`` (a registry scope), a module path, or
    the class itself (lazy-import configs): the same scheduler."""
    class LinearLR:    # stands for mmengine.optim.LinearLR, which trainkit never imports
        pass

    want = [r["lr/a"] for r in run_list([{"type": "LinearLR", "start_factor": 0.5, "by_epoch": False, "end": 3}],
                                        epochs=1, ipe=4)]
    for typ in ("mmengine.LinearLR", "mmengine.optim.scheduler.lr_scheduler.LinearLR", LinearLR):
        got = run_list([{"type": typ, "start_factor": 0.5, "by_epoch": False, "end": 3}], epochs=1, ipe=4)
        assert [r["lr/a"] for r in got] == want, typ
    with pytest.raises(ValueError, match=r"type='mmengine.NoSuchLR' is not valid"):
        param_scheduler([{"type": "mmengine.NoSuchLR"}])



def test_a_standalone_plateau_reducer_composes_with_a_chained_list():
    """trainkit's own ReduceLR (its lr_factor F) beside an mmengine list: the list keeps chaining from its own
    value S (``scheduled_lr``), every write is S·F — the plateau factor never enters the chain."""
    comps = {"sched": {"_target_": P, "schedulers": [{"type": "ExponentialLR", "gamma": 0.5, "by_epoch": False}]},
             "plateau": {"_target_": "trainkit.schedules.ReduceLR", "val_metric": "val/m", "factor": 0.1,
                         "patience": 0}}
    rows = preview([{"name": "g", "lr": 1.0}], comps, 4, 2, metric_trace={"val/m": [1.0, 1.0, 1.0, 1.0]})
    # check 1 (after epoch 1): best = 1.0; checks 2 and 3 are not better: F = 0.1 from epoch 2, 0.1·0.1 from epoch 3
    factor = {0: 1.0, 1: 1.0, 2: 1.0 * 0.1, 3: 1.0 * 0.1 * 0.1}
    assert [r["lr/g"] for r in rows] == [0.5 ** i * factor[r["epoch"]] for i, r in enumerate(rows)]
