"""Reference tables from mmengine 0.10.7 DefaultOptimWrapperConstructor.

Run: /work/ref/venv/bin/python make_tables_mmengine.py  -> tables_mmengine.json
"""
import copy
import logging

import mmengine
from mmengine.logging import MMLogger
from mmengine.optim import DefaultOptimWrapperConstructor, build_optim_wrapper
import mmengine.optim.optimizer.default_constructor as dc

import harness

assert mmengine.__version__ == '0.10.7', mmengine.__version__
REF = 'mmengine-0.10.7'


class ListHandler(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append((record.levelno, record.getMessage()))


logger = MMLogger.get_instance('paramwise_tables', log_level='DEBUG')
assert MMLogger.get_current_instance() is logger
handler = ListHandler()
logger.handlers = [handler]   # silence console, keep records


class Capture(list):
    def clear(self):
        handler.records.clear()

    def __iter__(self):
        return iter(list(handler.records))


def wrapper_cfg(case):
    cfg = dict(type='OptimWrapper', optimizer=copy.deepcopy(case['optimizer']))
    if case['paramwise_cfg'] is not harness.MISSING:
        cfg['paramwise_cfg'] = copy.deepcopy(case['paramwise_cfg'])
    return cfg


def build_fn(model, case):
    wrapper = build_optim_wrapper(model, wrapper_cfg(case))
    opt = wrapper.optimizer
    # OptimWrapper.param_groups appends a fake 'base_param_settings' group
    # (params=tensor([0.]) + optimizer.defaults) when there is >1 real group.
    opt._ref_extra = dict(
        wrapper_type=type(wrapper).__name__,
        wrapper_param_groups_len=len(wrapper.param_groups))
    return opt


def explicit_fn(model, case):
    cons = DefaultOptimWrapperConstructor(
        dict(optimizer=copy.deepcopy(case['optimizer'])),
        copy.deepcopy(case['paramwise_cfg']))
    params = []
    cons.add_params(params, model)
    return params


def patch():
    return harness.DcnPatch(dc, 'mmcv_full_available')


if __name__ == '__main__':
    out = harness.run_all(REF, build_fn, explicit_fn, patch, Capture())
    harness.dump(out, 'tables_mmengine.json')
    print(len(out), 'cases;', sum('error' in e for e in out), 'errors')
