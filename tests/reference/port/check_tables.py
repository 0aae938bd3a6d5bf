"""Spot checks of trajectories.json against closed forms written out here (plain Python, no OpenMMLab package).

Each check restates a schedule in its closed form (my own statement of the documented formula) and compares it
with the reference's recorded trajectory: exactly where the reference computes the value in one expression,
to a relative 1e-9 where the reference's chained (recursive) form accumulates rounding. Run:

    python tests/reference/port/check_tables.py [--mmengine-sched-tables /work/ref/mmengine_sched/tables.json]

The optional file is a colleague's independently driven mmengine table set; its ``mmdet_schedule_1x_literal_L100``
case has the same geometry as ``mmdet3_faster_rcnn_1x_lazy`` and must agree row for row.
"""
from __future__ import annotations

import argparse
import json
import math
import os

HERE = os.path.dirname(os.path.abspath(__file__))
FAILED: list[str] = []


def close(a: float, b: float, rel: float = 1e-9) -> bool:
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-300)


def check(name: str, ok: bool, detail: str = "") -> None:
    print(f"{'ok  ' if ok else 'FAIL'} {name} {detail}")
    if not ok:
        FAILED.append(name)


def by_iter(t: dict) -> dict[int, list]:
    return {r[0]: r for r in t["rows"]}


def mmcv_step_with_linear_warmup(t, base, steps, gamma, warmup_iters, ratio):
    """mmcv StepLrUpdaterHook (by epoch) + linear warmup: regular = base * gamma ** #(steps <= epoch);
    during warmup lr = regular * (1 - (1 - i / W) * (1 - ratio))."""
    bad = 0
    for i, e, lr, _ in t["rows"]:
        regular = base * gamma ** len([s for s in steps if e >= s])
        want = regular * (1 - (1 - i / warmup_iters) * (1 - ratio)) if i < warmup_iters else regular
        bad += lr != want
    return bad


def mmengine_linear_then_multistep(t, base, start, warm_end, milestones, gamma):
    """LinearLR(start_factor, by iteration, end=warm_end) chained with MultiStepLR (by epoch):
    lr ~= base * (start + (1 - start) * min(i, W - 1) / (W - 1)) * gamma ** #(milestones <= epoch)."""
    worst = 0.0
    for i, e, lr, _ in t["rows"]:
        f = start + (1 - start) * min(i, warm_end - 1) / (warm_end - 1)
        want = base * f * gamma ** len([m for m in milestones if e >= m])
        worst = max(worst, abs(lr - want) / want)
    return worst


def linear_then_cosine_by_epoch(t, base, start, warm_epochs, eta_min, max_epochs):
    """LinearLR(by epoch, converted to W = warm*L iterations) then CosineAnnealingLR(by epoch, begin=warm,
    NOT converted): i < W: base * (start + (1 - start) * i / (W - 1)); epoch e >= warm: eta_min + (base - eta_min)
    * (1 + cos(pi * (e - warm) / (max - warm))) / 2 (epoch `warm` keeps the warmup's last value ~ base)."""
    W = warm_epochs * t["iters_per_epoch"]
    worst = 0.0
    for i, e, lr, _ in t["rows"]:
        if i < W:
            want = base * (start + (1 - start) * i / (W - 1))
        else:
            f = (e - warm_epochs) / (max_epochs - warm_epochs)
            want = eta_min + (base - eta_min) * (1 + math.cos(math.pi * f)) / 2
        worst = max(worst, abs(lr - want) / want)
    return worst


def cos_anneal(start, end, factor):
    return end + (start - end) / 2 * (math.cos(math.pi * factor) + 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mmengine-sched-tables", default=None)
    args = ap.parse_args()
    with open(os.path.join(HERE, "trajectories.json")) as f:
        T = json.load(f)["tables"]

    # ---- mmdet 2.x schedule_1x (mmcv): step [8, 11] + linear warmup 500 iterations, ratio 0.001
    for name in ("mmdet2_faster_rcnn_1x", "mmdet2_faster_rcnn_1x@7330"):
        bad = mmcv_step_with_linear_warmup(T[name], 0.02, [8, 11], 0.1, 500, 0.001)
        check(name, bad == 0, f"{bad} rows differ from the closed form (exact)")
    r = by_iter(T["mmdet2_faster_rcnn_1x@7330"])
    check("mmdet2@7330 warmup edge", (r[499][2], r[500][2]) == (0.02 * (1 - (1 / 500) * 0.999), 0.02),
          f"iteration 499 {r[499][2]!r}, 500 {r[500][2]!r}")
    r = by_iter(T["mmdet2_faster_rcnn_1x"])
    check("mmdet2 ipe=50 iteration 499 (inside warmup, after the epoch-8 step)",
          r[499][2] == 0.002 * (1 - (1 / 500) * 0.999), repr(r[499][2]))

    # ---- mmengine LinearLR + MultiStepLR
    for name, base, start, end, ms in (("mmdet3_faster_rcnn_1x", 0.02, 0.001, 500, [8, 11]),
                                       ("mmdet3_faster_rcnn_1x_lazy", 0.02, 0.001, 500, [8, 11]),
                                       ("mmdet3_convnext_mask_rcnn_3x", 1e-4, 0.001, 1000, [27, 33])):
        worst = mmengine_linear_then_multistep(T[name], base, start, end, ms, 0.1)
        check(name, worst < 1e-12, f"worst relative difference from the closed form {worst:.1e}")
    r = by_iter(T["mmdet3_faster_rcnn_1x_lazy"])
    check("mmdet3 lazy ipe=100: warmup ends at 0.019999999999999952 (iteration 499) and stays",
          r[499][2] == 0.019999999999999952 and r[799][2] == 0.019999999999999952 and r[800][2] < 0.002,
          f"{r[499][2]!r} {r[799][2]!r} {r[800][2]!r}")

    # ---- mmpretrain: LinearLR 20 epochs (converted to iterations) + cosine by epoch to 300
    for name, base in (("mmpretrain_swin_tiny", 1e-3), ("mmpretrain_convnext_tiny", 4e-3),
                       ("mmpretrain_convnext_tiny_lazy", 4e-3), ("mmpretrain_convnext_tiny@313", 4e-3)):
        worst = linear_then_cosine_by_epoch(T[name], base, 0.001, 20, 1e-5, 300)
        check(name, worst < 1e-9, f"worst relative difference from the closed form {worst:.1e}")
    a, b = T["mmpretrain_convnext_tiny"], T["mmpretrain_convnext_tiny_lazy"]
    check("convnext lazy twin loads the same schedule", a["loaded"]["param_scheduler"][0]["start_factor"]
          == b["loaded"]["param_scheduler"][0]["start_factor"] and a["built"][1]["eta_min"] == b["built"][1]["eta_min"])

    # ---- mmseg PolyLR: (1 - 1/(N - t + 1)) ** p chained = ((N - t) / N) ** p, N = end - begin - 1 = 159999
    t = T["mmseg_pspnet_160k"]
    N = 159999
    worst = max(abs(lr - (1e-4 + (0.01 - 1e-4) * (1 - i / N) ** 0.9)) / lr for i, _, lr, _ in t["rows"])
    check("mmseg_pspnet_160k PolyLR", worst < 1e-9, f"worst relative difference {worst:.1e}")

    # ---- mmagic CycleGAN LinearLrInterval (absolute values, exact)
    t = T["mmagic_cyclegan_linear_lr_interval"]
    bad = 0
    for i, _, lr, m in t["rows"]:
        if i < 40000:
            want = 2e-4
        elif i == 40000:
            want = 2e-4 * 2e-4
        else:
            want = 2e-4 + (0 - 2e-4) * ((max(0, (i - 1) - 40000) // 400) / ((80000 - 40000) // 400))
        bad += lr != want or m != 0.5
    check("mmagic_cyclegan_linear_lr_interval", bad == 0, f"{bad} rows differ (exact)")

    # ---- mmagic CAIN ReduceLR: plateau logic restated on the stored metric trace
    t = T["mmagic_cain_reduce_lr"]
    lr, best, bad_epochs, want = 1e-4, math.inf, 0, []
    for v in t["metric_trace"]:
        if v < best * (1.0 - 1e-4):
            best, bad_epochs = v, 0
        else:
            bad_epochs += 1
        if bad_epochs > 5:
            bad_epochs = 0
            if lr - lr * 0.5 > 1e-8:
                lr = max(lr * 0.5, 0.0)
        want.append(lr)
    got = [ev["lr"] for ev in t["val_events"]]
    L = t["iters_per_epoch"]
    rows_ok = all(lr == ([1e-4] + want)[i // L] for i, _, lr, _ in t["rows"])
    check("mmagic_cain_reduce_lr", got == want and rows_ok,
          f"{sum(a != b for a, b in zip(got, want, strict=True))} val events differ; reductions after epochs "
          f"{[k + 1 for k in range(len(want)) if want[k] != ([1e-4] + want)[k]]}")

    # ---- SiameseRPN: lr = 0.005 * factor[epoch], factor = 0.2 * 5 ** (e / 5) (e < 5), logspace(0, -1, 15)
    t = T["mmtrack_siamese_rpn"]
    factors = [0.2 * (1.0 / 0.2) ** (e / 5) for e in range(5)] + [10 ** (-k / 14) for k in range(15)]
    worst = max(abs(lr - 0.005 * factors[e]) / lr for _, e, lr, _ in t["rows"])
    check("mmtrack_siamese_rpn", worst < 1e-12, f"worst relative difference {worst:.1e}")

    # ---- BYOL (mmcv): cosine by epoch to 0 over 200 epochs, linear warmup over 10 epochs (by epoch)
    for name in ("mmselfsup_byol_accum16", "mmselfsup_byol_fp16_accum2"):
        t = T[name]
        W = 10 * t["iters_per_epoch"]
        worst = 0.0
        for i, e, lr, _ in t["rows"]:
            regular = cos_anneal(4.8, 0.0, e / 200)
            want = regular * (1 - (1 - i / W) * (1 - 1e-4)) if i < W else regular
            worst = max(worst, abs(lr - want) / want)
        check(name, worst < 1e-12, f"worst relative difference {worst:.1e}")

    # ---- mmdet3d cyclic: mmcv (ratios) vs mmengine 1.x port (absolute eta_min)
    t = T["mmdet3d_second_cyclic_mmcv"]
    n, up = t["n_iters"], int(0.4 * t["n_iters"])
    worst = 0.0
    for i, _, lr, m in t["rows"]:
        if i < up:
            want, wm = cos_anneal(0.0018, 0.018, i / up), cos_anneal(0.95, 0.85, i / up)
        else:
            f = (i - up) / (n - up)
            want, wm = cos_anneal(0.018, 0.0018 * 1e-4, f), cos_anneal(0.85, 0.95, f)
        worst = max(worst, abs(lr - want) / want, abs(m - wm) / wm)
    check("mmdet3d_second_cyclic_mmcv", worst < 1e-9, f"worst relative difference (lr and beta1) {worst:.1e}")
    for name in ("mmdet3d_second_cyclic_40e", "mmdet3d_second_cyclic_40e@155", "mmdet3d_centerpoint_cyclic_20e"):
        t = T[name]
        L = t["iters_per_epoch"]
        c1, c2, m1_, m2_ = t["built"]            # CosineAnnealingLR x2, CosineAnnealingMomentum x2 (converted)
        p1, tot = c1["end"] // L, c2["end"] // L
        base = t["optimizer"]["lr"]
        beta = t["optimizer"].get("betas", [0.9])[0]
        rows = by_iter(t)
        lr1, m1 = rows[p1 * L][2], rows[p1 * L][3]      # phase 2's first step keeps the value phase 1 reached
        worst = 0.0
        for i, _, lr, m in t["rows"]:
            if i < p1 * L:
                want, wm = cos_anneal(base, c1["eta_min"], i / (p1 * L)), cos_anneal(beta, m1_["eta_min"], i / (p1 * L))
            else:
                f = (i - p1 * L) / ((tot - p1) * L)
                want, wm = cos_anneal(lr1, c2["eta_min"], f), cos_anneal(m1, m2_["eta_min"], f)
            worst = max(worst, abs(lr - want) / want, abs(m - wm) / wm)
        check(name, worst < 1e-9, f"worst relative difference (lr and beta1) {worst:.1e}")

    if args.mmengine_sched_tables:
        with open(args.mmengine_sched_tables) as f:
            other = {c["name"]: c for c in json.load(f)}["mmdet_schedule_1x_literal_L100"]
        mine = [[r[0], r[1], r[2], r[3]] for r in T["mmdet3_faster_rcnn_1x_lazy"]["rows"]]
        theirs = [[r["iter"], r["epoch"], r["lr"][0], r["momentum"][0]] for r in other["rows"]]
        check("mmdet3_faster_rcnn_1x_lazy == mmengine_sched mmdet_schedule_1x_literal_L100", mine == theirs,
              f"{len(mine)} rows")
    print("FAILED: " + ", ".join(FAILED) if FAILED else "all checks passed")
    raise SystemExit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
