"""The row the LoggerHook builds and the metrics.jsonl line it becomes.

The references are written out here the plain way (an f-string key per group, ``get_momentum``
per group, ``json.dumps`` of ``{"step": s, **row}``): the fast versions must give the same
dicts, in the same key order, and the same bytes.
"""
import json
import math
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from trainkit.core.groups import get_momentum, group_names
from trainkit.core.record import GroupColumns, JsonlSink, LoggerHook, _jsonable, jsonl_line, optimizer_scalars


def reference_line(row, step):
    """Strict JSON (issue 15): what json.dumps writes, with every non-finite number as null."""
    def finite(x):
        if isinstance(x, float):
            return x if math.isfinite(x) else None
        if isinstance(x, dict):
            return {k: finite(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [finite(v) for v in x]
        return x

    return json.dumps(finite({"step": step, **row}), default=_jsonable) + "\n"


def reference_scalars(optimizer, names):
    row = {}
    for name, g in zip(names, optimizer.param_groups, strict=True):
        row[f"lr/{name}"] = float(g["lr"])
        m = get_momentum(g)
        if m is not None:
            row[f"momentum/{name}"] = float(m)
    return row


ODD_VALUES = [0.1, 1e-5, 1.0, -0.0, 5e-324, 1e300, 2.5e-17, 123456789.125, 0, 7, -3, 2**70, 2**1100, True, False, None,
              float("nan"), float("inf"), float("-inf"), "text", "100% \"quoted\" ü", np.float64(0.3),
              np.float32(0.3), np.int64(4), torch.tensor(0.25), [1.0, 2.0], {"a": 1.0}]


@pytest.mark.parametrize("value", ODD_VALUES, ids=repr)
def test_a_line_is_json_dumps_of_step_and_row_byte_for_byte(value):
    for row in ({"x": value}, {"epoch": 2, "loss": 0.5, "x": value, "lr/g": 0.01}):
        assert jsonl_line(row, 17) == reference_line(row, 17)


def test_lines_of_random_rows_and_odd_keys_match_json_dumps():
    rnd = random.Random(0)
    keys = ["epoch", "loss", "lr/backbone", "momentum/head", "100%", "a\"b", "ключ", "tab\t", "%s", "%%d", "step"]
    for _ in range(2000):
        row = {}
        for k in rnd.sample(keys, rnd.randint(0, len(keys))):
            row[k] = rnd.choice([rnd.random(), rnd.uniform(-1e9, 1e9), rnd.randint(-10, 10),
                                 10.0 ** rnd.randint(-320, 308), rnd.choice(ODD_VALUES[:20])])
        step = rnd.choice([0, 5, 123456, True, 3.0, np.int64(3)])
        assert jsonl_line(row, step) == reference_line(row, step), (row, step)


def test_a_row_with_its_own_step_keeps_it_first_as_dumps_does():
    row = {"loss": 1.0, "step": 99}
    assert jsonl_line(row, 3) == reference_line(row, 3) == '{"step": 99, "loss": 1.0}\n'


def _optimizer(kind):
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(5)]
    groups = [{"params": [p], "lr": 0.01 * (i + 1), "name": f"g{i}"} for i, p in enumerate(params)]
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=0.1, momentum=0.9)
    if kind == "adam":
        return torch.optim.Adam(groups, lr=0.1, betas=(0.8, 0.99))
    if kind == "adagrad":   # neither momentum nor betas
        return torch.optim.Adagrad(groups, lr=0.1)
    opt = torch.optim.SGD(groups, lr=0.1, momentum=0.9)   # mixed: one group Adam-like, one without any
    opt.param_groups[1]["betas"] = (0.7, 0.9)
    del opt.param_groups[1]["momentum"]
    del opt.param_groups[3]["momentum"]
    return opt


@pytest.mark.parametrize("kind", ["sgd", "adam", "adagrad", "mixed"])
def test_group_columns_give_the_reference_scalars_in_order(kind):
    opt = _optimizer(kind)
    names = group_names(opt)
    columns = GroupColumns(opt, names)
    for step in range(3):
        for i, g in enumerate(opt.param_groups):   # values change, keys stay
            g["lr"] = 0.5 ** (step + i)
            if "momentum" in g:
                g["momentum"] = 0.9 - 0.01 * step
            if "betas" in g:
                g["betas"] = (0.8 - 0.01 * step, g["betas"][1])
        expected = reference_scalars(opt, names)
        assert list(columns.items()) == list(expected.items())
        assert optimizer_scalars(opt) == expected


def _runner(opt, outputs, scalars=None):
    return SimpleNamespace(optimizer=opt, group_names=group_names(opt), outputs=outputs, scalars=dict(scalars or {}),
                           epoch=1, iter=0, inner_iter=0, iters_per_epoch=100, max_iters=1000, last_row=None)


def test_logger_hook_rows_and_lines_equal_the_plain_construction(tmp_path):
    opt = _optimizer("mixed")
    sink = JsonlSink(tmp_path / "metrics.jsonl")
    hook = LoggerHook([sink], interval=1)
    expected_lines = []
    for i in range(4):
        outputs = {"loss": torch.tensor(1.0 / (i + 1)), "acc": torch.tensor(0.5, dtype=torch.float64),
                   "count": 3, "vec": torch.ones(3), "half": torch.tensor(0.1, dtype=torch.float16)}
        runner = _runner(opt, outputs, {"ema/momentum": 0.999, "plateau/bad": i})
        runner.iter = runner.inner_iter = i
        opt.param_groups[0]["lr"] = 0.1 / (i + 1)
        if i == 2:   # a group changes its kind of momentum: the columns are rebuilt
            opt.param_groups[2]["betas"] = (0.6, 0.9)
            del opt.param_groups[2]["momentum"]
        row = {"epoch": 1, "loss": torch.tensor(1.0 / (i + 1)).float().item(),
               "train/acc": torch.tensor(0.5, dtype=torch.float64).float().item(), "train/count": 3.0,
               "train/half": torch.tensor(0.1, dtype=torch.float16).float().item(),
               **reference_scalars(opt, runner.group_names), "ema/momentum": 0.999, "plateau/bad": i}
        hook.after_iter(runner)
        assert list(runner.last_row.items()) == list(row.items())
        assert runner.scalars == {}
        expected_lines.append(reference_line(row, i))
    sink.close()
    assert (tmp_path / "metrics.jsonl").read_text() == "".join(expected_lines)


def test_a_sink_with_its_own_log_interval_gets_only_its_iterations():
    class Sink:
        def __init__(self, log_interval=None):
            self.log_interval, self.steps = log_interval, []

        def log(self, row, step):
            self.steps.append(step)

    every, fifth = Sink(), Sink(log_interval=5)
    hook = LoggerHook([every], interval=2)
    hook.sinks.append(fifth)   # added after the hook was built, as build_runner does
    opt = _optimizer("sgd")
    runner = _runner(opt, {"loss": torch.tensor(1.0)})
    runner.iters_per_epoch, runner.max_iters = 8, 16
    for i in range(16):
        runner.iter, runner.inner_iter = i, i % 8
        hook.after_iter(runner)
    assert every.steps == [1, 3, 5, 7, 9, 11, 13, 15]            # every 2nd; epoch ends 7, 15 among them
    assert fifth.steps == [4, 7, 9, 14, 15]                      # every 5th, and the epoch ends / last
    assert math.isclose(runner.last_row["lr/g0"], 0.01)
