"""Reference tables for mmengine 0.10.7 param schedulers.

Drives the REAL mmengine scheduler classes (built through the real
``PARAM_SCHEDULERS.build`` / ``build_scheduler_from_cfg`` with the same
``default_args`` the Runner passes) and the REAL ``ParamSchedulerHook``
methods, inside a tiny loop that copies the order of calls of
``EpochBasedTrainLoop`` / ``IterBasedTrainLoop`` / ``ValLoop``
(mmengine/runner/loops.py) and of ``RuntimeInfoHook`` (message-hub updates).
A few cases are re-run through a real ``mmengine.runner.Runner`` and
compared value-for-value.

Run:  /work/ref/venv/bin/python make_tables.py   [--no-runner]
Writes tables.json next to this file (158 cases; reduce_tables.py keeps what the tests read).
Versions: mmengine(-lite) 0.10.7, mmagic 1.2.0 (see README.md), torch 2.13.0+cpu, python 3.11.7.
"""
import copy
import json
import os
import re
import shutil
import sys
import tempfile
import types
import warnings

import torch
import torch.nn as nn

import mmengine
from mmengine.hooks import Hook, ParamSchedulerHook
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper
from mmengine.registry import PARAM_SCHEDULERS

HERE = os.path.dirname(os.path.abspath(__file__))
torch.set_num_threads(1)
print(f'mmengine {mmengine.__version__}  torch {torch.__version__}  '
      f'python {sys.version.split()[0]}')

# --------------------------------------------------------------------------
# mmagic 1.2.0 schedulers/hook, loaded from the unpacked wheel WITHOUT running
# mmagic/__init__.py (which needs mmcv 2): stub the package modules.
# --------------------------------------------------------------------------
MMAGIC = {}
_mroot = os.path.join(HERE, 'mmagic_pkg')
if os.path.isdir(os.path.join(_mroot, 'mmagic', 'engine', 'schedulers')):
    sys.path.insert(0, _mroot)
    for _n in ('mmagic', 'mmagic.engine', 'mmagic.engine.schedulers',
               'mmagic.engine.hooks'):
        _m = types.ModuleType(_n)
        _m.__path__ = [os.path.join(_mroot, *_n.split('.'))]
        sys.modules[_n] = _m
    from mmagic.engine.hooks.reduce_lr_scheduler_hook import \
        ReduceLRSchedulerHook
    from mmagic.engine.schedulers.linear_lr_scheduler_with_interval import \
        LinearLrInterval
    from mmagic.engine.schedulers.reduce_lr_scheduler import ReduceLR
    # register manually into mmengine's registry so type='ReduceLR' works
    for _c in (LinearLrInterval, ReduceLR):
        PARAM_SCHEDULERS.register_module(module=_c, force=True)
    MMAGIC = dict(ReduceLRSchedulerHook=ReduceLRSchedulerHook)
    print('mmagic 1.2.0 schedulers loaded from', _mroot)
else:
    print('mmagic wheel not unpacked; mmagic cases skipped')


# --------------------------------------------------------------------------
# optimizer / model helpers
# --------------------------------------------------------------------------
class Toy(nn.Module):
    def __init__(self, n):
        super().__init__()
        torch.manual_seed(0)
        self.lins = nn.ModuleList([nn.Linear(2, 1) for _ in range(n)])

    def loss(self, x):
        return sum((lin(x) ** 2).mean() for lin in self.lins) * 1e-3


def make_optim(model, opt, groups, defaults):
    pg = []
    for lin, g in zip(model.lins, groups, strict=True):
        d = dict(params=list(lin.parameters()))
        d.update({k: (tuple(v) if k == 'betas' else v) for k, v in g.items()})
        pg.append(d)
    kw = {k: (tuple(v) if k == 'betas' else v) for k, v in defaults.items()}
    cls = getattr(torch.optim, opt)
    return cls(pg, **kw)


def _mom(group):
    if 'betas' in group:
        return group['betas'][0]
    return group.get('momentum')


def snapshot(ow, track_wd):
    """Values of every real group (and of OptimWrapper's hidden group)."""
    real = ow.optimizer.param_groups
    r = dict(lr=[g['lr'] for g in real])
    m = [_mom(g) for g in real]
    if any(v is not None for v in m):
        r['momentum'] = m
    if track_wd:
        r['weight_decay'] = [g['weight_decay'] for g in real]
    if ow.base_param_settings is not None:
        h = ow.base_param_settings
        hd = dict(lr=h['lr'])
        if _mom(h) is not None:
            hd['momentum'] = _mom(h)
        if track_wd:
            hd['weight_decay'] = h.get('weight_decay')
        r['hidden'] = hd
    return r


def describe_built(s):
    keys = ('begin', 'end', 'by_epoch', 'T_max', 'eta_min', 'eta_min_ratio',
            'step_size', 'gamma', 'total_iters', 'total_steps', 'periods',
            'cumulative_periods', 'restart_weights', 'factor', 'start_factor',
            'end_factor', 'power', 'interval', 'patience', 'cooldown',
            'min_values', 'param_name', 'base_values')
    d = dict(type=type(s).__name__)
    for k in keys:
        if hasattr(s, k):
            v = getattr(s, k)
            if isinstance(v, tuple):
                v = list(v)
            d[k] = v
    if hasattr(s, 'milestones'):
        d['milestones'] = {str(k): v for k, v in s.milestones.items()}
    if hasattr(s, '_schedule_phases'):
        d['phases_end_step'] = [p['end_step'] for p in s._schedule_phases]
    return d


class FakeRunner:
    """Just the attributes the scheduler hooks and helpers read."""

    def __init__(self, ow, mh, scheds, max_epochs, max_iters):
        self.optim_wrapper = ow
        self.message_hub = mh
        self.param_schedulers = scheds
        self.epoch = 0
        self.iter = 0
        self.max_epochs = max_epochs
        self.max_iters = max_iters


def build_schedulers(cfgs, ow, L, max_epochs, max_iters):
    """Copy of Runner._build_param_scheduler (runner.py:1157-1188)."""
    out = []
    for cfg in cfgs:
        c = copy.deepcopy(cfg)
        default_end = max_epochs if c.get('by_epoch', True) else max_iters
        c.setdefault('end', default_end)
        out.append(
            PARAM_SCHEDULERS.build(
                c, default_args=dict(optimizer=ow, epoch_length=L)))
    return out


_case_no = [0]


def drive(case):
    """Run one case; returns (rows, val_events, built, final, error)."""
    _case_no[0] += 1
    n = len(case['groups'])
    model = Toy(n)
    opt = make_optim(model, case['optimizer'], case['groups'],
                     case['defaults'])
    ow = OptimWrapper(opt)
    case['_effective_groups'] = [
        {k: (list(g[k]) if k == 'betas' else g[k])
         for k in ('lr', 'momentum', 'betas', 'weight_decay') if k in g}
        for g in opt.param_groups]
    mh = MessageHub.get_instance(f'driver_{_case_no[0]}')  # now "current"
    L = case['iters_per_epoch']
    by_epoch_loop = 'max_epochs' in case
    if by_epoch_loop:
        max_epochs, max_iters = case['max_epochs'], case['max_epochs'] * L
    else:
        max_epochs, max_iters = 1, case['max_iters']
    track_wd = case.get('track_wd', False)
    rows, vals = [], []
    state = dict(stage='build')
    trace = list(case.get('metric_trace') or [])
    loss_trace = case.get('loss_trace')
    monitor = case.get('monitor', 'loss')
    x = torch.ones(2, 2)
    hook = None
    try:
        scheds = build_schedulers(case['schedulers'], ow, L, max_epochs,
                                  max_iters)
        built = [describe_built(s) for s in scheds]
        runner = FakeRunner(ow, mh, scheds, max_epochs, max_iters)
        hk = case.get('hook')
        if hk is None:
            hook = ParamSchedulerHook()
        else:
            hook = MMAGIC[hk['type']](
                **{k: v for k, v in hk.items() if k != 'type'})
        vi = case.get('val_interval', 1)
        vb = case.get('val_begin', 1)
        do_val = bool(case.get('metric_trace'))

        def one_iter(batch_idx):
            state['stage'] = f'iter {runner.iter}'
            mh.update_info('iter', runner.iter)  # RuntimeInfoHook
            row = dict(iter=runner.iter, epoch=runner.epoch)
            row.update(snapshot(ow, track_wd))
            rows.append(row)
            loss = model.loss(x)
            ow.update_params(loss)  # backward + optimizer.step + zero_grad
            lv = (loss_trace[runner.iter] if loss_trace else loss.item())
            mh.update_scalar('train/loss', lv)  # RuntimeInfoHook
            state['stage'] = f'after_train_iter of iter {runner.iter}'
            hook.after_train_iter(runner, batch_idx, data_batch=[0, 0],
                                  outputs=dict(loss=loss))
            runner.iter += 1

        def one_val(after):
            state['stage'] = f'after_val_epoch after {after}'
            metrics = {monitor: trace.pop(0)}
            hook.after_val_epoch(runner, metrics=metrics)
            ev = dict(after=after, metrics=metrics)
            ev.update(snapshot(ow, track_wd))
            vals.append(ev)

        if by_epoch_loop:  # EpochBasedTrainLoop.run / run_epoch / run_iter
            while runner.epoch < max_epochs:
                mh.update_info('epoch', runner.epoch)
                for idx in range(L):
                    one_iter(idx)
                state['stage'] = f'after_train_epoch {runner.epoch}'
                hook.after_train_epoch(runner)
                runner.epoch += 1
                if (do_val and trace and runner.epoch >= vb
                        and (runner.epoch % vi == 0
                             or runner.epoch == max_epochs)):
                    one_val(f'epoch {runner.epoch}')
        else:  # IterBasedTrainLoop.run
            mh.update_info('epoch', 0)
            while runner.iter < max_iters:
                one_iter(runner.iter)
                if (do_val and trace and runner.iter >= vb
                        and (runner.iter % vi == 0
                             or runner.iter == max_iters)):
                    one_val(f'iter {runner.iter}')
            state['stage'] = 'after_train_epoch (end of IterBasedTrainLoop)'
            hook.after_train_epoch(runner)
        final = snapshot(ow, track_wd)
        return rows, vals, built, final, None
    except Exception as e:  # noqa
        return rows, vals, None, None, describe_error(e, state['stage'])


def describe_error(e, at):
    msg = re.sub(r'0x[0-9a-fA-F]+', '0x...', str(e))  # memory addresses
    d = dict(type=type(e).__name__, message=msg, at=at)
    if isinstance(e, KeyError) and e.args and isinstance(e.args[0], str):
        d['arg'] = re.sub(r'0x[0-9a-fA-F]+', '0x...', e.args[0])
    return d


# --------------------------------------------------------------------------
# case definitions
# --------------------------------------------------------------------------
SGD3 = dict(optimizer='SGD',
            groups=[dict(lr=0.1), dict(lr=0.05), dict(lr=0.01)],
            defaults=dict(lr=0.1, momentum=0.9, weight_decay=0.0001))
SGD3M = dict(optimizer='SGD',
             groups=[dict(lr=0.1, momentum=0.9), dict(lr=0.05, momentum=0.95),
                     dict(lr=0.01, momentum=0.8)],
             defaults=dict(lr=0.1, momentum=0.9, weight_decay=0.0001))
SGD1 = dict(optimizer='SGD', groups=[dict(lr=0.1)],
            defaults=dict(lr=0.1, momentum=0.9, weight_decay=0.0001))
ADAM2 = dict(optimizer='Adam',
             groups=[dict(lr=0.1, betas=[0.9, 0.999]),
                     dict(lr=0.05, betas=[0.8, 0.99])],
             defaults=dict(lr=0.1, betas=[0.9, 0.999], weight_decay=0.0))
SGD3_HID = dict(optimizer='SGD',
                groups=[dict(lr=0.1), dict(lr=0.05), dict(lr=0.01)],
                defaults=dict(lr=0.02, momentum=0.9, weight_decay=0.0001))

CASES = []


def add(name, schedulers, opt=SGD3, L=4, E=None, N=None, section='', **kw):
    c = dict(name=name, section=section, schedulers=schedulers)
    c.update(copy.deepcopy(opt))
    c['iters_per_epoch'] = L
    if N is not None:
        c['max_iters'] = N
        c['loop'] = 'IterBasedTrainLoop'
    else:
        c['max_epochs'] = E if E is not None else 5
        c['loop'] = 'EpochBasedTrainLoop'
    c.update(kw)
    CASES.append(c)
    return c


# ---- 1. every LR scheduler, by_epoch True / False (E=5 epochs x L=4) ----
S = '1-lr-schedulers'
for be in (True, False):
    tag = 'epoch' if be else 'iter'
    u = 1 if be else 4  # unit: epochs or iters (L=4)
    B = dict(by_epoch=be)
    add(f'ConstantLR_{tag}', [dict(type='ConstantLR', factor=0.5, end=3 * u,
                                   **B)], section=S)
    add(f'ConstantLR_end_omitted_{tag}',
        [dict(type='ConstantLR', factor=0.5, **B)], section=S)
    add(f'CosineAnnealingLR_default_{tag}',
        [dict(type='CosineAnnealingLR', **B)], section=S)
    add(f'CosineAnnealingLR_Tmax_short_eta_min_{tag}',
        [dict(type='CosineAnnealingLR', T_max=2 * u if be else 6,
              eta_min=0.001, **B)], section=S,
        note='T_max smaller than the window: cosine goes back up '
             '(the (last_step-1-T_max) % (2*T_max) == 0 branch)')
    add(f'CosineAnnealingLR_eta_min_ratio_{tag}',
        [dict(type='CosineAnnealingLR', T_max=4 * u, eta_min_ratio=0.1,
              begin=0, end=5 * u, **B)], section=S)
    add(f'ExponentialLR_{tag}', [dict(type='ExponentialLR', gamma=0.8, **B)],
        section=S)
    add(f'LinearLR_warmup_{tag}',
        [dict(type='LinearLR', start_factor=0.25, end=4 * u if be else 10,
              **B)], section=S)
    add(f'LinearLR_decay_end_factor_{tag}',
        [dict(type='LinearLR', start_factor=1.0, end_factor=0.5, **B)],
        section=S)
    add(f'MultiStepLR_dup_milestone_{tag}',
        [dict(type='MultiStepLR', milestones=[1 * u, 3 * u, 3 * u],
              gamma=0.5, **B)], section=S)
    add(f'MultiStepLR_nonincreasing_{tag}',
        [dict(type='MultiStepLR', milestones=[3 * u, 1 * u], gamma=0.5,
              **B)], section=S,
        note='milestones are a Counter: order is irrelevant, no error')
    add(f'StepLR_{tag}',
        [dict(type='StepLR', step_size=2 * u if be else 3, gamma=0.5, **B)],
        section=S)
    add(f'PolyLR_power1_{tag}', [dict(type='PolyLR', power=1.0, **B)],
        section=S)
    add(f'PolyLR_power0.9_eta_min_{tag}',
        [dict(type='PolyLR', power=0.9, eta_min=0.001, **B)], section=S)
    add(f'OneCycleLR_cos_{tag}',
        [dict(type='OneCycleLR', eta_max=0.2, **B)], section=S,
        note='eta_max scalar -> same for all groups incl. hidden group; '
             'initial_lr is OVERWRITTEN with eta_max/div_factor')
    add(f'OneCycleLR_linear_{tag}',
        [dict(type='OneCycleLR', eta_max=0.2, anneal_strategy='linear',
              pct_start=0.25, **B)], section=S)
    add(f'OneCycleLR_three_phase_{tag}',
        [dict(type='OneCycleLR', eta_max=[0.2, 0.1, 0.02, 0.2],
              three_phase=True, final_div_factor=100.0, **B)], section=S,
        note='eta_max list must have len(optim_wrapper.param_groups)=4 '
             '(3 real + hidden base group)')
    add(f'CosineRestartLR_eta_min_{tag}',
        [dict(type='CosineRestartLR', periods=[2 * u, 2 * u] if be else [6, 8],
              restart_weights=[1, 0.5], eta_min=0.001, **B)], section=S,
        note='periods sum < run length: after the last period the value '
             'is left unchanged')
    add(f'CosineRestartLR_eta_min_ratio_{tag}',
        [dict(type='CosineRestartLR', periods=[3 * u, 2 * u] if be else
              [10, 10], restart_weights=[1, 0.8], eta_min_ratio=0.1, **B)],
        section=S)

# ReduceOnPlateauLR (only by_epoch=True is allowed; by_epoch=False -> error)
ROP_TRACE_MIN = [1.0, 0.9, 0.95, 0.96, 0.97, 0.5, 0.55, 0.56, 0.57, 0.58]
ROP_TRACE_MAX = [0.5, 0.6, 0.6, 0.601, 0.59, 0.7, 0.7, 0.7, 0.71, 0.7]
add('ReduceOnPlateauLR_less_rel_patience1',
    [dict(type='ReduceOnPlateauLR', monitor='loss', rule='less', factor=0.5,
          patience=1)], L=3, E=10, metric_trace=ROP_TRACE_MIN, section=S)
add('ReduceOnPlateauLR_less_rel_patience0_cooldown2',
    [dict(type='ReduceOnPlateauLR', monitor='loss', rule='less', factor=0.5,
          patience=0, cooldown=2)], L=3, E=10, metric_trace=ROP_TRACE_MIN,
    section=S)
add('ReduceOnPlateauLR_greater_abs_thr0.005',
    [dict(type='ReduceOnPlateauLR', monitor='acc', rule='greater',
          factor=0.1, patience=1, threshold=0.005, threshold_rule='abs')],
    L=3, E=10, monitor='acc', metric_trace=ROP_TRACE_MAX, section=S)
add('ReduceOnPlateauLR_greater_rel_min_value_list',
    [dict(type='ReduceOnPlateauLR', monitor='acc', rule='greater',
          factor=0.1, patience=0, threshold=0.1, threshold_rule='rel',
          min_value=[0.01, 0.001, 0.0005])],
    L=3, E=10, monitor='acc', metric_trace=ROP_TRACE_MAX, section=S,
    note='min_value list of 3 for 3 groups; OptimWrapper appends the last '
         'one for the hidden group')
add('ReduceOnPlateauLR_window_begin2_end6',
    [dict(type='ReduceOnPlateauLR', monitor='loss', factor=0.5, patience=0,
          begin=2, end=6)], L=3, E=10,
    metric_trace=[1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8, 1.9],
    section=S, note='window compared with _global_step = number of '
                    'completed train epochs at validation time')
add('ReduceOnPlateauLR_val_interval2',
    [dict(type='ReduceOnPlateauLR', monitor='loss', factor=0.5, patience=0)],
    L=3, E=10, val_interval=2, metric_trace=[1.0, 1.1, 1.2, 0.5, 0.6],
    section=S)
add('ReduceOnPlateauLR_in_IterBasedTrainLoop',
    [dict(type='ReduceOnPlateauLR', monitor='loss', factor=0.5, patience=0)],
    L=4, N=24, val_interval=4,
    metric_trace=[1.0, 1.1, 1.2, 0.5, 0.6, 0.7], section=S,
    note='the "iteration" form: by_epoch stays True, the scheduler is '
         'stepped by after_val_epoch every val_interval iters')

# ---- 2. windows ----
S = '2-windows'
add('window_begin_gt0_LinearLR_iter',
    [dict(type='LinearLR', start_factor=0.2, by_epoch=False, begin=5,
          end=10)], section=S)
add('window_end_lt_run_StepLR_epoch',
    [dict(type='StepLR', step_size=1, gamma=0.5, begin=1, end=3)],
    section=S, note='after end the value is frozen (not restored)')
add('window_gap_LinearLR_then_Cosine_iter',
    [dict(type='LinearLR', start_factor=0.2, by_epoch=False, begin=0, end=5),
     dict(type='CosineAnnealingLR', by_epoch=False, begin=10, end=20,
          eta_min=0.0)], section=S)
add('window_overlap_Exponential_MultiStep_epoch',
    [dict(type='ExponentialLR', gamma=0.9),
     dict(type='MultiStepLR', milestones=[2, 3], gamma=0.5)], section=S,
    note='chained: both multiply the current value')
add('window_overlap_Linear_Cosine_iter',
    [dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=3,
          end=12),
     dict(type='CosineAnnealingLR', by_epoch=False, begin=0, end=20,
          eta_min=0.005)], section=S)
add('window_after_run_end_StepLR',
    [dict(type='StepLR', step_size=1, gamma=0.5, begin=10, end=12)],
    section=S, note='never active; lr stays at base')
add('window_end_omitted_by_epoch_and_by_iter',
    [dict(type='LinearLR', start_factor=0.5, by_epoch=True),
     dict(type='PolyLR', by_epoch=False, eta_min=0.0, power=1.0, begin=10)],
    section=S, note='end filled with max_epochs=5 and max_iters=20')
add('by_epoch_scheduler_in_IterBasedTrainLoop',
    [dict(type='StepLR', step_size=1, gamma=0.5),
     dict(type='LinearLR', start_factor=0.5, by_epoch=False, end=6)],
    L=4, N=16, section=S,
    note='by_epoch scheduler: end filled with max_epochs=1, so its window '
         'is [0,1): it applies only at construction (StepLR: no change); '
         'the single after_train_epoch at the end of the loop is outside')

# ---- 3. convert_to_iter_based ----
S = '3-convert_to_iter_based'
add('convert_mmpretrain_LinearLR_warmup_Cosine',
    [dict(type='LinearLR', start_factor=0.001, by_epoch=True, begin=0, end=1,
          convert_to_iter_based=True),
     dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=1,
          convert_to_iter_based=True)], L=6, E=5, section=S)
add('convert_mmpretrain_warmup_convert_Cosine_by_epoch',
    [dict(type='LinearLR', start_factor=0.001, by_epoch=True, begin=0, end=2,
          convert_to_iter_based=True),
     dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=2)],
    L=6, E=5, section=S, note='cosine stays by epoch (end=max_epochs)')
add('convert_fractional_begin_end_Tmax',
    [dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0,
          end=1.5, convert_to_iter_based=True),
     dict(type='CosineAnnealingLR', T_max=2.5, eta_min=0.0, by_epoch=True,
          begin=1.5, end=4.3, convert_to_iter_based=True)], L=7, E=5,
    section=S, note='begin/end int()-truncated (10.5->10, 30.1->30), '
                    'T_max kept float 17.5')
add('convert_MultiStepLR',
    [dict(type='MultiStepLR', milestones=[2, 4], gamma=0.1, by_epoch=True,
          convert_to_iter_based=True)], L=5, E=5, section=S)
add('convert_MultiStepLR_fractional_milestones_L4',
    [dict(type='MultiStepLR', milestones=[1.5, 2.5], gamma=0.1,
          convert_to_iter_based=True)], L=4, E=4, section=S,
    note='milestones become 6.0 and 10.0 (floats, not int-cast); they still '
         'match the int last_step')
add('convert_MultiStepLR_fractional_milestones_L5',
    [dict(type='MultiStepLR', milestones=[1.5, 2.5], gamma=0.1,
          convert_to_iter_based=True)], L=5, E=4, section=S,
    note='milestones become 7.5 and 12.5: never equal to an int last_step, '
         'so the lr never decays')
add('convert_StepLR', [dict(type='StepLR', step_size=2, gamma=0.5,
                            convert_to_iter_based=True)], L=3, E=5,
    section=S)
add('convert_PolyLR', [dict(type='PolyLR', power=1.0,
                            convert_to_iter_based=True)], L=3, E=5, section=S)
add('convert_OneCycleLR_total_steps',
    [dict(type='OneCycleLR', eta_max=0.2, total_steps=5,
          convert_to_iter_based=True)], L=3, E=5, section=S)
add('convert_CosineRestartLR_periods',
    [dict(type='CosineRestartLR', periods=[2, 3], restart_weights=[1, 0.5],
          eta_min=0.0, convert_to_iter_based=True)], L=3, E=5, section=S)
add('convert_ConstantLR', [dict(type='ConstantLR', factor=0.5, end=2,
                                convert_to_iter_based=True)],
    L=3, E=4, section=S)
add('convert_ExponentialLR', [dict(type='ExponentialLR', gamma=0.9,
                                   convert_to_iter_based=True)],
    L=3, E=3, section=S)

# ---- 4. chains ----
S = '4-chains'
MMDET = dict(optimizer='SGD', groups=[dict(lr=0.02)],
             defaults=dict(lr=0.02, momentum=0.9, weight_decay=0.0001))
add('mmdet_schedule_1x_mini',
    [dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
          end=120),
     dict(type='MultiStepLR', begin=0, end=4, by_epoch=True,
          milestones=[2, 3], gamma=0.1)], opt=MMDET, L=50, E=4, section=S)
add('mmdet_schedule_1x_literal_L100',
    [dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
          end=500),
     dict(type='MultiStepLR', begin=0, end=12, by_epoch=True,
          milestones=[8, 11], gamma=0.1)], opt=MMDET, L=100, E=12,
    section=S)
add('warmup_then_cosine_overlap_linear_first',
    [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=8),
     dict(type='CosineAnnealingLR', by_epoch=False, begin=0, end=20,
          eta_min=0.01)], section=S)
add('warmup_then_cosine_overlap_cosine_first',
    [dict(type='CosineAnnealingLR', by_epoch=False, begin=0, end=20,
          eta_min=0.01),
     dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
          end=8)], section=S)
add('warmup_then_cosine_sequential',
    [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=8),
     dict(type='CosineAnnealingLR', by_epoch=False, begin=8, end=20,
          eta_min=0.01)], section=S)
add('warmup_overlapping_milestone',
    [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
          end=12),
     dict(type='MultiStepLR', milestones=[1, 3], gamma=0.1, by_epoch=True)],
    L=5, E=4, section=S)

# ---- 5. momentum schedulers on SGD momentum and Adam betas[0] ----
S = '5-momentum'
MOM = [
    ('ConstantMomentum', dict(factor=0.5, end=6)),
    ('CosineAnnealingMomentum', dict(eta_min=0.85)),
    ('ExponentialMomentum', dict(gamma=0.95)),
    ('LinearMomentum', dict(start_factor=0.9, end=8)),
    ('MultiStepMomentum', dict(milestones=[4, 8, 8], gamma=0.9)),
    ('StepMomentum', dict(step_size=5, gamma=0.9)),
    ('PolyMomentum', dict(eta_min=0.5, power=2.0)),
    ('CosineRestartMomentum', dict(periods=[8, 8], restart_weights=[1, 0.9],
                                   eta_min=0.5)),
]
for opt_name, opt in (('SGD', SGD3M), ('Adam', ADAM2)):
    for t, kw in MOM:
        add(f'{t}_iter_{opt_name}', [dict(type=t, by_epoch=False, **kw)],
            opt=opt, section=S)
    add(f'LinearMomentum_epoch_{opt_name}',
        [dict(type='LinearMomentum', start_factor=0.9, end=3)], opt=opt,
        section=S)
    add(f'ReduceOnPlateauMomentum_{opt_name}',
        [dict(type='ReduceOnPlateauMomentum', monitor='loss', factor=0.9,
              patience=0)], opt=opt, L=3, E=6,
        metric_trace=[1.0, 1.1, 0.9, 1.0, 1.0, 0.5], section=S)
add('OneCycleLR_with_CosineAnnealingMomentum_Adam',
    [dict(type='OneCycleLR', eta_max=0.1, by_epoch=False),
     dict(type='CosineAnnealingMomentum', by_epoch=False, eta_min=0.85,
          end=6),
     dict(type='CosineAnnealingMomentum', by_epoch=False, eta_min=0.85,
          begin=6, T_max=14)], opt=ADAM2, section=S)

# ---- 6. generic param_name schedulers ----
S = '6-generic-param_name'
SGDWD = dict(optimizer='SGD',
             groups=[dict(lr=0.1, weight_decay=0.01),
                     dict(lr=0.05, weight_decay=0.001)],
             defaults=dict(lr=0.1, momentum=0.9, weight_decay=0.0001))
add('CosineAnnealingParamScheduler_weight_decay_iter',
    [dict(type='CosineAnnealingParamScheduler', param_name='weight_decay',
          by_epoch=False, eta_min_ratio=0.1)], opt=SGDWD, track_wd=True,
    section=S)
add('LinearParamScheduler_weight_decay_epoch',
    [dict(type='LinearParamScheduler', param_name='weight_decay',
          start_factor=0.1, end=3)], opt=SGDWD, track_wd=True, section=S)
add('StepParamScheduler_weight_decay_convert',
    [dict(type='StepParamScheduler', param_name='weight_decay', step_size=2,
          gamma=0.5, convert_to_iter_based=True)], opt=SGDWD, track_wd=True,
    section=S)
add('MultiStepParamScheduler_lr_equals_MultiStepLR',
    [dict(type='MultiStepParamScheduler', param_name='lr',
          milestones=[2, 3], gamma=0.1)], opt=SGDWD, section=S)

# ---- 7. mmagic ----
S = '7-mmagic'
if MMAGIC:
    add('mmagic_ReduceLR_without_its_hook_ERROR',
        [dict(type='ReduceLR', by_epoch=True, mode='max', patience=0)],
        opt=SGD1, L=5, E=3, section=S,
        note='with the plain mmengine ParamSchedulerHook nobody writes '
             'MessageHub("reduce_lr") scalar "value"; run before the other '
             'mmagic cases (the named hub is global and keeps old values)')
    add('mmagic_LinearLR_warmup_plus_ReduceLR_val_metric',
        [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
              end=20),
         dict(type='ReduceLR', by_epoch=True, mode='max', factor=0.5,
              patience=0, threshold=0.01, threshold_mode='abs',
              min_lr=0.001)],
        opt=SGD3, L=5, E=6,
        hook=dict(type='ReduceLRSchedulerHook', val_metric='PSNR',
                  by_epoch=True, interval=1),
        monitor='PSNR', metric_trace=[20.0, 21.0, 21.005, 21.1, 20.0, 25.0],
        section=S,
        note='ReduceLRSchedulerHook(val_metric=...) replaces '
             'ParamSchedulerHook: after_train_iter/after_train_epoch do '
             'nothing, after_val_epoch steps EVERY scheduler (by_epoch or '
             'not) once -> the by-iter warmup only advances once per val')
    add('mmagic_ReduceLR_train_loss_by_iter',
        [dict(type='ReduceLR', by_epoch=False, mode='min', factor=0.5,
              patience=1)],
        opt=SGD1, L=4, N=24,
        hook=dict(type='ReduceLRSchedulerHook', val_metric=None,
                  by_epoch=False, interval=4),
        loss_trace=[1.0] * 4 + [0.9] * 4 + [0.95] * 4 + [0.95] * 4 +
        [0.96] * 4 + [0.5] * 4, section=S,
        note='val_metric=None: mean of train/loss over `interval` iters, '
             'by-iter schedulers stepped every `interval` iters only')
    add('mmagic_LinearLrInterval_begin0',
        [dict(type='LinearLrInterval', interval=4, by_epoch=False,
              start_factor=0.5, end_factor=0.0, begin=0, end=20)],
        opt=SGD3, L=4, N=24, section=S,
        note='returns start_factor+(end-start)*k ABSOLUTE (not times lr); '
             'reads MessageHub.get_current_instance() info "iter"')
    add('mmagic_LinearLrInterval_begin10_mmagic_style',
        [dict(type='LinearLrInterval', interval=4, by_epoch=False,
              start_factor=0.0002, end_factor=0.0, begin=10, end=30)],
        opt=dict(optimizer='Adam', groups=[dict(lr=0.0002,
                                                 betas=[0.5, 0.999])],
                 defaults=dict(lr=0.0002, betas=[0.5, 0.999])),
        L=4, N=36, section=S)
    add('mmagic_LinearLrInterval_by_epoch',
        [dict(type='LinearLrInterval', interval=2, by_epoch=True,
              start_factor=0.5, end_factor=0.1, begin=1, end=6)],
        opt=SGD1, L=2, E=7, section=S)

# ---- 8. OptimWrapper hidden base group ----
S = '8-hidden-base-group'
add('hidden_group_defaults_lr_differs',
    [dict(type='LinearLR', start_factor=0.5, by_epoch=False, end=4),
     dict(type='MultiStepLR', milestones=[2], gamma=0.1)],
    opt=SGD3_HID, L=3, E=3, section=S, record_logged=True,
    note='logged train/lr = groups[0] lr, train/base_lr = hidden group '
         '(built from optimizer.defaults, lr=0.02) scheduled like a group')
add('hidden_group_OneCycle_scalar',
    [dict(type='OneCycleLR', eta_max=0.3, by_epoch=False)],
    opt=SGD3_HID, L=3, E=3, section=S, record_logged=True)
add('single_group_no_hidden',
    [dict(type='LinearLR', start_factor=0.5, by_epoch=False, end=4)],
    opt=SGD1, L=3, E=2, section=S, record_logged=True)

# ---- 9. error / crash cases ----
S = '9-errors'
E9 = [
    ('err_begin_eq_end', [dict(type='LinearLR', begin=5, end=5)], {}),
    ('err_begin_gt_end_ROP', [dict(type='ReduceOnPlateauLR', begin=3,
                                   end=2)], {}),
    ('err_begin_beyond_filled_end', [dict(type='StepLR', step_size=1,
                                          begin=10)], {}),
    ('err_cosine_eta_min_and_ratio',
     [dict(type='CosineAnnealingLR', eta_min=0.0, eta_min_ratio=0.1)], {}),
    ('err_cosine_restart_neither_eta_min',
     [dict(type='CosineRestartLR', periods=[5], restart_weights=[1])], {}),
    ('err_cosine_restart_len_mismatch',
     [dict(type='CosineRestartLR', periods=[5, 5], restart_weights=[1],
           eta_min=0.0)], {}),
    ('err_linear_start_factor_gt1', [dict(type='LinearLR',
                                          start_factor=1.5)], {}),
    ('err_linear_start_factor_neg', [dict(type='LinearLR',
                                          start_factor=-0.1)], {}),
    ('err_linear_end_factor_gt1', [dict(type='LinearLR', end_factor=1.01)],
     {}),
    ('err_linear_start_factor_0_zero_division',
     [dict(type='LinearLR', start_factor=0.0, by_epoch=False, end=5)], {}),
    ('err_constant_factor_gt1', [dict(type='ConstantLR', factor=2.0)], {}),
    ('err_constant_factor_0_zero_division',
     [dict(type='ConstantLR', factor=0.0, by_epoch=False, end=3)], {}),
    ('err_step_size_0', [dict(type='StepLR', step_size=0,
                              by_epoch=False)], {}),
    ('err_momentum_on_Adagrad',
     [dict(type='LinearMomentum', start_factor=0.5)],
     dict(opt=dict(optimizer='Adagrad', groups=[dict(lr=0.1)],
                   defaults=dict(lr=0.1)))),
    ('ok_momentum_on_SGD_momentum0',
     [dict(type='LinearMomentum', start_factor=0.5, by_epoch=False, end=5)],
     dict(opt=dict(optimizer='SGD', groups=[dict(lr=0.1)],
                   defaults=dict(lr=0.1)))),
    ('edge_ConstantLR_window_len1_never_restored',
     [dict(type='ConstantLR', factor=0.5, begin=1, end=2)], {}),
    ('edge_LinearLR_window_len1_never_reaches_end_factor',
     [dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=2,
           end=3)], {}),
    ('edge_MultiStepLR_milestone_0_applies_at_construction',
     [dict(type='MultiStepLR', milestones=[0, 2], gamma=0.5)], {}),
    ('err_convert_with_by_epoch_False',
     [dict(type='LinearLR', by_epoch=False, convert_to_iter_based=True)],
     {}),
    ('err_ROP_by_epoch_False', [dict(type='ReduceOnPlateauLR',
                                     by_epoch=False)], {}),
    ('err_ROP_convert_to_iter_based',
     [dict(type='ReduceOnPlateauLR', convert_to_iter_based=True)], {}),
    ('err_ROP_factor_ge1', [dict(type='ReduceOnPlateauLR', factor=1.0)], {}),
    ('err_ROP_bad_rule', [dict(type='ReduceOnPlateauLR', rule='min')], {}),
    ('err_ROP_bad_threshold_rule',
     [dict(type='ReduceOnPlateauLR', threshold_rule='relative')], {}),
    ('err_ROP_negative_threshold',
     [dict(type='ReduceOnPlateauLR', threshold=-0.1)], {}),
    ('err_ROP_min_value_len_mismatch',
     [dict(type='ReduceOnPlateauLR', min_value=[0.1, 0.1])], {}),
    ('err_ROP_monitor_missing',
     [dict(type='ReduceOnPlateauLR', monitor='acc')],
     dict(metric_trace=[1.0, 1.0], monitor='loss', E=2, L=2)),
    ('err_OneCycle_eta_max_len_real_groups',
     [dict(type='OneCycleLR', eta_max=[0.2, 0.1, 0.02])], {}),
    ('err_OneCycle_pct_start_int', [dict(type='OneCycleLR', eta_max=0.2,
                                         pct_start=1)], {}),
    ('err_OneCycle_total_steps_float',
     [dict(type='OneCycleLR', eta_max=0.2, total_steps=10.0)], {}),
    ('err_OneCycle_bad_anneal', [dict(type='OneCycleLR', eta_max=0.2,
                                      anneal_strategy='exp')], {}),
    ('err_OneCycle_stepped_past_total_steps',
     [dict(type='OneCycleLR', eta_max=0.2, total_steps=5, by_epoch=False)],
     {}),
    ('err_OneCycle_param_name_momentum',
     [dict(type='OneCycleParamScheduler', param_name='momentum',
           eta_max=0.95)], {}),
    ('err_last_step_without_initial',
     [dict(type='LinearLR', last_step=3)], {}),
    ('err_unknown_type_convert',
     [dict(type='NoSuchLR', convert_to_iter_based=True)], {}),
    ('err_unknown_type', [dict(type='NoSuchLR')], {}),
]
for name, scheds, kw in E9:
    kw = dict(kw)
    opt = kw.pop('opt', SGD3)
    add(name, scheds, opt=opt, L=kw.pop('L', 3), E=kw.pop('E', 3),
        section=S, **kw)

# ---- X. more coverage (added for trainkit issue 13: every class windowed / chained / converted) ----
S = 'X-coverage'
add('chain_Constant_Exponential_windows_epoch',
    [dict(type='ConstantLR', factor=0.5, begin=1, end=4),
     dict(type='ExponentialLR', gamma=0.9, begin=2, end=5)], E=6, section=S)
add('chain_LinearLR_then_CosineRestart_window_iter',
    [dict(type='LinearLR', start_factor=0.1, by_epoch=False, end=5),
     dict(type='CosineRestartLR', periods=[6, 6], restart_weights=[1, 0.6],
          eta_min_ratio=0.05, by_epoch=False, begin=5)], section=S)
add('chain_ConstantLR_then_OneCycle_window_iter',
    [dict(type='ConstantLR', factor=0.5, by_epoch=False, end=4),
     dict(type='OneCycleLR', eta_max=[0.2, 0.1, 0.02, 0.2], by_epoch=False,
          begin=4, end=18)], section=S,
    note='OneCycle (absolute) overwrites initial_lr at construction; '
         'its window starts after the ConstantLR one')
add('chain_Step_convert_Poly_iter',
    [dict(type='StepLR', step_size=1, gamma=0.5, convert_to_iter_based=True),
     dict(type='PolyLR', eta_min=0.001, power=2.0, by_epoch=False, begin=3)],
    L=3, E=4, section=S)
add('MultiStepLR_increasing_iter_and_MultiStepMomentum_Adam',
    [dict(type='MultiStepLR', milestones=[5, 13], gamma=0.2, by_epoch=False),
     dict(type='MultiStepMomentum', milestones=[4, 8], gamma=0.9,
          by_epoch=False)], opt=ADAM2, section=S)
add('chain_generic_weight_decay_Poly_Exponential',
    [dict(type='PolyParamScheduler', param_name='weight_decay', power=1.0,
          eta_min=0.0, by_epoch=False, end=12),
     dict(type='ExponentialParamScheduler', param_name='weight_decay',
          gamma=0.9, begin=2)], opt=SGDWD, track_wd=True, section=S)
add('iter_based_loop_converted_windows',
    [dict(type='LinearLR', start_factor=0.1, end=1, convert_to_iter_based=True),
     dict(type='CosineAnnealingLR', begin=1, end=5, eta_min=0.001,
          convert_to_iter_based=True),
     dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=25)],
    L=5, N=30, section=S)
if MMAGIC:
    add('mmagic_LinearLR_warmup_then_LinearLrInterval_iter',
        [dict(type='LinearLR', start_factor=0.1, by_epoch=False, end=6),
         dict(type='LinearLrInterval', interval=3, by_epoch=False,
              start_factor=0.05, end_factor=0.0, begin=8, end=20)],
        opt=SGD3, L=4, N=24, section=S)
    add('mmagic_LinearLrInterval_convert',
        [dict(type='LinearLrInterval', interval=2, by_epoch=True,
              start_factor=0.5, end_factor=0.1, begin=1, end=4,
              convert_to_iter_based=True)], opt=SGD1, L=3, E=5, section=S)
    add('mmagic_ReduceLR_window_begin2',
        [dict(type='ReduceLR', by_epoch=True, mode='min', factor=0.5,
              patience=0, begin=2, end=5)],
        opt=SGD3, L=3, E=7,
        hook=dict(type='ReduceLRSchedulerHook', val_metric='loss',
                  by_epoch=True, interval=1),
        monitor='loss', metric_trace=[1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6],
        section=S, note='the first in-window step (check 2) discards its '
                        'value; checks 5, 6 are past the window')
    add('mmagic_ReduceLR_val_interval2_offbyone',
        [dict(type='LinearLR', start_factor=0.5, by_epoch=True, end=3),
         dict(type='ReduceLR', by_epoch=True, mode='max', factor=0.5,
              patience=0)],
        opt=SGD1, L=2, E=7,
        hook=dict(type='ReduceLRSchedulerHook', val_metric='acc',
                  by_epoch=True, interval=2),
        monitor='acc', metric_trace=[0.5, 0.6, 0.6, 0.55, 0.5, 0.5, 0.5],
        section=S, note='every_n_epochs after the epoch increment: checks '
                        'after validations 1, 3, 5, 7 (averaging 1, 2+3, '
                        '4+5, 6+7)')
    add('mmagic_ReduceLR_train_loss_by_epoch_with_StepLR',
        [dict(type='StepLR', step_size=2, gamma=0.5, by_epoch=True),
         dict(type='ReduceLR', by_epoch=True, mode='min', factor=0.5,
              patience=0, threshold=0.05),
         dict(type='LinearLR', start_factor=0.5, by_epoch=False, end=4)],
        opt=SGD1, L=3, E=6,
        hook=dict(type='ReduceLRSchedulerHook', val_metric=None,
                  by_epoch=True, interval=1),
        loss_trace=[1.0] * 3 + [0.9] * 3 + [0.89] * 3 + [0.5] * 3 +
        [0.49] * 3 + [0.48] * 3, section=S,
        note='val_metric=None, by_epoch hook: by-epoch schedulers step '
             'after every epoch on the mean train loss; the by-iter '
             'LinearLR is never stepped after construction')


# ---- the schedules of trainkit's recipes, in their geometry ----
add('recipe_digits_mmengine_schedule',
    [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
     dict(type='CosineAnnealingLR', eta_min_ratio=0.01, by_epoch=True, begin=0,
          convert_to_iter_based=True)],
    opt=dict(optimizer='SGD', groups=[dict(lr=0.05), dict(lr=0.1)],
             defaults=dict(lr=0.1, momentum=0.9, weight_decay=0.0005)),
    L=23, E=8, section=S, note='recipes/digits_mmengine_schedule.yaml: '
                               'backbone at 0.5x, 1438 digits / batch 64')
if MMAGIC:
    add('recipe_restoration_mmengine_plateau',
        [dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=3),
         dict(type='ReduceLR', by_epoch=True, mode='max', factor=0.5,
              patience=2, cooldown=1, threshold=0.001, min_lr=1e-05)],
        opt=dict(optimizer='Adam', groups=[dict(lr=0.003)],
                 defaults=dict(lr=0.003)),
        L=45, E=30,
        hook=dict(type='ReduceLRSchedulerHook', by_epoch=True, interval=1,
                  val_metric='val/psnr'),
        monitor='val/psnr',
        metric_trace=[10.0 * 1.05 ** min(k, 9) for k in range(30)],
        section=S, note='recipes/restoration_mmengine_plateau.yaml with the '
                        'preview\'s improve_then_flat trace (mode max)')


# --------------------------------------------------------------------------
# real Runner verification
# --------------------------------------------------------------------------
RUNNER_EXTRA = ['ReduceOnPlateauLR_in_IterBasedTrainLoop',
                'ReduceOnPlateauLR_val_interval2',
                'convert_fractional_begin_end_Tmax',
                'OneCycleLR_three_phase_epoch', 'CosineRestartLR_eta_min_iter',
                'by_epoch_scheduler_in_IterBasedTrainLoop',
                'mmagic_LinearLrInterval_begin0',
                'mmagic_LinearLrInterval_by_epoch',
                'chain_ConstantLR_then_OneCycle_window_iter',
                'mmagic_LinearLR_warmup_then_LinearLrInterval_iter',
                'mmagic_ReduceLR_val_interval2_offbyone',
                'iter_based_loop_converted_windows']
RUNNER_CASES = [c for c in CASES if c['name'] in RUNNER_EXTRA] + [
    add('runner_epoch_chain_hidden_group',
        [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
              end=7),
         dict(type='MultiStepLR', milestones=[1, 2], gamma=0.5),
         dict(type='CosineAnnealingMomentum', T_max=3, eta_min=0.8,
              by_epoch=True, convert_to_iter_based=True)],
        opt=SGD3_HID, L=5, E=3, section='R-runner-verified',
        record_logged=True),
    add('runner_iter_based_loop',
        [dict(type='LinearLR', start_factor=0.1, by_epoch=False, end=6),
         dict(type='CosineAnnealingLR', by_epoch=False, begin=6,
              eta_min=0.001),
         dict(type='MultiStepLR', milestones=[1], gamma=0.5, by_epoch=True,
              convert_to_iter_based=True),
         dict(type='StepLR', step_size=1, gamma=0.5, by_epoch=True)],
        opt=SGD3, L=4, N=20, section='R-runner-verified', record_logged=True,
        note='IterBasedTrainLoop: by_epoch end defaults to max_epochs=1, so '
             'the converted MultiStepLR gets end=4 and its milestone 4 is '
             'never reached; StepLR(by_epoch) only steps at the very end'),
    add('runner_ROP_lr_and_momentum_Adam',
        [dict(type='ReduceOnPlateauLR', monitor='loss', factor=0.5,
              patience=0, cooldown=1),
         dict(type='ReduceOnPlateauMomentum', monitor='loss', factor=0.9,
              patience=1),
         dict(type='LinearLR', start_factor=0.5, by_epoch=False, end=5)],
        opt=ADAM2, L=3, E=6, metric_trace=[1.0, 1.1, 1.2, 0.9, 0.95, 0.97],
        section='R-runner-verified', record_logged=True),
    add('runner_schedule_1x_mini',
        [dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
              end=120),
         dict(type='MultiStepLR', begin=0, end=4, by_epoch=True,
              milestones=[2, 3], gamma=0.1)], opt=MMDET, L=50, E=4,
        section='R-runner-verified', record_logged=True),
]
if MMAGIC:
    RUNNER_CASES.append(add(
        'runner_mmagic_warmup_ReduceLR',
        [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
              end=20),
         dict(type='ReduceLR', by_epoch=True, mode='max', factor=0.5,
              patience=0, threshold=0.01, threshold_mode='abs')],
        opt=SGD3, L=5, E=4,
        hook=dict(type='ReduceLRSchedulerHook', val_metric='PSNR',
                  by_epoch=True, interval=1),
        monitor='PSNR', metric_trace=[20.0, 21.0, 21.005, 19.0],
        section='R-runner-verified', record_logged=True))


def run_real_runner(case, workdir):
    from mmengine.evaluator import BaseMetric, Evaluator
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    n = len(case['groups'])
    L = case['iters_per_epoch']
    rows, vals = [], []
    track_wd = case.get('track_wd', False)
    monitor = case.get('monitor', 'loss')

    class Model(BaseModel):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.lins = nn.ModuleList([nn.Linear(2, 1) for _ in range(n)])

        def forward(self, inputs, data_samples=None, mode='tensor'):
            x = torch.stack(inputs) if isinstance(inputs, list) else inputs
            if mode == 'loss':
                return dict(loss=sum((lin(x) ** 2).mean()
                                     for lin in self.lins) * 1e-3)
            return [0] * x.shape[0]

    class DS(torch.utils.data.Dataset):
        def __len__(self):
            return L

        def __getitem__(self, i):
            return dict(inputs=torch.ones(2))

    trace = list(case.get('metric_trace') or [])

    class Script(BaseMetric):
        default_prefix = None

        def process(self, data_batch, data_samples):
            self.results.append(0)

        def compute_metrics(self, results):
            return {monitor: trace.pop(0)}

    class Rec(Hook):
        priority = 'LOWEST'

        def before_train_iter(self, runner, batch_idx, data_batch=None):
            row = dict(iter=runner.iter, epoch=runner.epoch)
            row.update(snapshot(runner.optim_wrapper, track_wd))
            row['logged'] = {
                k: runner.message_hub.get_scalar(k).current()
                for k in ('train/lr', 'train/base_lr')
                if k in runner.message_hub.log_scalars}
            rows.append(row)

        def after_val_epoch(self, runner, metrics=None):
            after = (f'epoch {runner.epoch}' if 'max_epochs' in case
                     else f'iter {runner.iter}')
            ev = dict(after=after, metrics=dict(metrics))
            ev.update(snapshot(runner.optim_wrapper, track_wd))
            vals.append(ev)

    model = Model()
    opt = make_optim(model, case['optimizer'], case['groups'],
                     case['defaults'])
    if 'max_epochs' in case:
        train_cfg = dict(by_epoch=True, max_epochs=case['max_epochs'],
                         val_interval=case.get('val_interval', 1))
    else:
        train_cfg = dict(by_epoch=False, max_iters=case['max_iters'],
                         val_interval=case.get('val_interval', 1000))
    dl = dict(dataset=DS(), batch_size=1, num_workers=0,
              sampler=dict(type='DefaultSampler', shuffle=False))
    default_hooks = dict(checkpoint=None)
    if case.get('hook'):
        hk = case['hook']
        default_hooks['param_scheduler'] = MMAGIC[hk['type']](
            **{k: v for k, v in hk.items() if k != 'type'})
    kw = {}
    if case.get('metric_trace'):
        kw = dict(val_dataloader=copy.deepcopy(dl), val_cfg=dict(),
                  val_evaluator=Evaluator([Script()]))
    runner = Runner(
        model=model, work_dir=workdir,
        experiment_name=f'verify_{case["name"]}',
        train_dataloader=dl, train_cfg=train_cfg,
        optim_wrapper=OptimWrapper(opt),
        param_scheduler=copy.deepcopy(case['schedulers']),
        default_hooks=default_hooks, custom_hooks=[Rec()],
        log_level='ERROR', **kw)
    runner.train()
    final = snapshot(runner.optim_wrapper, track_wd)
    return rows, vals, final


# --------------------------------------------------------------------------
def main():
    do_runner = '--no-runner' not in sys.argv
    out = []
    for case in CASES:
        with warnings.catch_warnings(record=True) as wl:
            warnings.simplefilter('always')
            rows, vals, built, final, err = drive(case)
        c = dict(ref=f'mmengine {mmengine.__version__} / torch '
                 f'{torch.__version__}')
        c.update({k: v for k, v in case.items()
                  if k not in ('record_logged', '_effective_groups')})
        c['groups_spec'] = c.pop('groups')
        c['groups'] = case['_effective_groups']
        c['groups_info'] = dict(
            optimizer=case['optimizer'], constructor_defaults=case['defaults'],
            hidden_base_group=len(case['groups']) > 1,
            note='OptimWrapper adds a hidden group built from '
                 'optimizer.defaults when there is more than one group')
        if built is not None:
            c['built'] = built
        if case.get('record_logged'):
            for r in rows:
                r['logged'] = {'train/lr': r['lr'][0]}
                if 'hidden' in r:
                    r['logged']['train/base_lr'] = r['hidden']['lr']
        c['rows'] = rows
        if vals:
            c['val_events'] = vals
        if final is not None:
            c['final'] = final
        if err is not None:
            c['error'] = err
        ws = []
        for w in wl:
            s = f'{w.category.__name__}: {w.message}'
            if s not in ws:
                ws.append(s)
        if ws:
            c['warnings'] = ws
        out.append(c)
        status = (f'ERROR {err["type"]} at {err["at"]}' if err else
                  f'{len(rows)} rows')
        print(f'{case["section"]:24s} {case["name"]:52s} {status}')

    if do_runner:
        byname = {c['name']: c for c in out}
        tmp = tempfile.mkdtemp(prefix='mmengine_runner_', dir=HERE)
        try:
            for case in RUNNER_CASES:
                c = byname[case['name']]
                try:
                    rrows, rvals, rfinal = run_real_runner(
                        case, os.path.join(tmp, case['name']))
                except Exception as e:  # noqa
                    c['runner_verified'] = dict(
                        ok=False, error=describe_error(e, 'runner'))
                    print('RUNNER FAILED', case['name'], type(e).__name__, e)
                    continue
                strip = [{k: v for k, v in r.items() if k != 'logged'}
                         for r in rrows]
                mine = [{k: v for k, v in r.items() if k != 'logged'}
                        for r in c['rows']]
                logged_ok = all(
                    rr['logged'] == mr['logged']
                    for rr, mr in zip(rrows, c["rows"], strict=False)) if \
                    case.get('record_logged') else None
                res = dict(
                    ok=(strip == mine and rvals == c.get('val_events', [])
                        and rfinal == c.get('final') and logged_ok
                        is not False),
                    rows_equal=strip == mine, n_rows=len(rrows),
                    val_events_equal=rvals == c.get('val_events', []),
                    final_equal=rfinal == c.get('final'),
                    logged_equal=logged_ok,
                    method='mmengine.runner.Runner.train() with a LOWEST-'
                           'priority hook recording param_groups in '
                           'before_train_iter; exact float ==')
                if not res['ok']:
                    for i, (a, b) in enumerate(zip(strip, mine, strict=False)):
                        if a != b:
                            res['first_diff'] = dict(iter=i, runner=a,
                                                     driver=b)
                            break
                c['runner_verified'] = res
                print('RUNNER', case['name'], 'OK' if res['ok'] else res)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    path = os.path.join(HERE, 'tables.json')
    with open(path, 'w') as f:
        json.dump(out, f, indent=1)
    print('wrote', path, len(out), 'cases')


if __name__ == '__main__':
    main()
