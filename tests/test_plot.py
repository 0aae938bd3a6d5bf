"""``python -m trainkit.plot``: the curves it draws are the logged rows, per group."""
import json
import math

import pytest

from trainkit.cli import plot

STEPS = 12


def _lr(group, i):   # a cosine over 12 steps, head at 10x the backbone
    base = {"backbone": 0.01, "head": 0.1}[group]
    return base * 0.5 * (1 + math.cos(math.pi * i / STEPS))


def _rows():
    rows = []
    for i in range(0, STEPS, 2):
        rows.append({"step": i, "epoch": i // 6, "loss": 2.0 / (i + 1),
                     "lr/backbone": _lr("backbone", i), "lr/head": _lr("head", i),
                     "momentum/backbone": 0.85 + 0.01 * i, "momentum/head": 0.95 - 0.01 * i})
        if i == 4:   # an epoch-end row with validation metrics only
            rows.append({"step": 6, "epoch": 1, "val/acc": 0.5, "val/loss": 1.0})
    return rows


@pytest.fixture
def run_dir(tmp_path):
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows()))
    return tmp_path


def test_render_draws_each_group_from_the_rows(run_dir):
    from trainkit.core.record import read_jsonl

    fig = plot.render(read_jsonl(run_dir / "metrics.jsonl"))
    axes = fig.axes
    assert [ax.get_ylabel() for ax in axes] == ["lr", "momentum", "loss"]
    steps = list(range(0, STEPS, 2))
    lines = {ax.get_ylabel(): {ln.get_label(): ln.get_xydata().tolist() for ln in ax.get_lines()} for ax in axes}
    assert lines["lr"] == {g: [[i, _lr(g, i)] for i in steps] for g in ("backbone", "head")}
    assert lines["momentum"] == {"backbone": [[i, 0.85 + 0.01 * i] for i in steps],
                                 "head": [[i, 0.95 - 0.01 * i] for i in steps]}
    assert lines["loss"] == {"loss": [[i, 2.0 / (i + 1)] for i in steps]}
    assert [ax.get_ylabel() for ax in plot.render(_rows(), loss=False).axes] == ["lr", "momentum"]


def test_cli_writes_png(run_dir, tmp_path, capsys):
    plot.main([str(run_dir)])
    default = run_dir / "schedule.png"
    assert default.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = tmp_path / "sub.png"
    plot.main([str(run_dir), "--out", str(out), "--no-loss"])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(out) in capsys.readouterr().out


def test_cli_errors_name_the_problem(tmp_path, capsys):
    with pytest.raises(SystemExit):
        plot.main([str(tmp_path)])
    assert "metrics.jsonl not found" in capsys.readouterr().err
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 0, "val/acc": 1.0}) + "\n")
    with pytest.raises(SystemExit):
        plot.main([str(tmp_path)])
    assert "no lr/, momentum/ or loss values" in capsys.readouterr().err
