"""Reduce ``tables.json`` (written by ``make_tables.py``, ~1 MB) to what the tests read:
``mmengine_tables.json`` next to this file.

Per case: the config list and run geometry as given to mmengine, the effective groups, and
the rows as columns (``iter``, ``epoch``, ``lr[g]``, ``momentum[g]``, ``weight_decay[g]``: the
values each real param group held when ``optimizer.step()`` ran), the values after each
validation's scheduler step, and for crash cases mmengine's exception type and message.
Dropped: the OptimWrapper's hidden base group (no real group depends on it), the logged
``train/lr``, the built-object attributes, the per-row dicts.

    /work/ref/venv/bin/python make_tables.py && python reduce_tables.py
"""
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
KEEP = ("name", "section", "schedulers", "optimizer", "defaults", "iters_per_epoch", "max_epochs", "max_iters",
        "loop", "val_interval", "metric_trace", "monitor", "hook", "loss_trace", "track_wd", "ref")


def reduce(case: dict) -> dict:
    out = {k: case[k] for k in KEEP if k in case}
    out["groups"] = case["groups"]
    if "error" in case:
        out["error"] = {k: case["error"][k] for k in ("type", "message", "at")}
        return out
    rows = case["rows"]
    cols = {"iter": [r["iter"] for r in rows], "epoch": [r["epoch"] for r in rows]}
    for key in ("lr", "momentum", "weight_decay"):
        if key in rows[0]:
            cols[key] = [list(v) for v in zip(*[r[key] for r in rows], strict=True)]
    out["cols"] = cols
    if "val_events" in case:
        out["val_events"] = [{k: v for k, v in e.items() if k != "hidden"} for e in case["val_events"]]
    return out


def main() -> None:
    cases = json.loads((HERE / "tables.json").read_text())
    text = json.dumps([reduce(c) for c in cases], separators=(",", ":"))
    (HERE / "mmengine_tables.json").write_text(text + "\n")
    print(f"{len(cases)} cases, {len(text) / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
