"""Reference tables from mmcv 1.7.2 DefaultOptimizerConstructor (MMCV_WITH_OPS=0).

Run: PYTHONPATH=_stubs /work/ref/venv_mmcv/bin/python make_tables_mmcv.py
     -> tables_mmcv.json
(_stubs/torchvision is a stub: mmcv/runner/checkpoint.py imports torchvision at
 module level but only uses it for torchvision:// checkpoint URLs.)
"""
import copy
import warnings

with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    import mmcv
    from mmcv.runner import DefaultOptimizerConstructor, build_optimizer
    import mmcv.runner.optimizer.default_constructor as dc

import harness

assert mmcv.__version__ == '1.7.2', mmcv.__version__
REF = 'mmcv-1.7.2'


def optimizer_cfg(case):
    cfg = copy.deepcopy(case['optimizer'])
    if case['paramwise_cfg'] is not harness.MISSING:
        cfg['paramwise_cfg'] = copy.deepcopy(case['paramwise_cfg'])
    return cfg


def build_fn(model, case):
    return build_optimizer(model, optimizer_cfg(case))


def explicit_fn(model, case):
    cons = DefaultOptimizerConstructor(copy.deepcopy(case['optimizer']),
                                       copy.deepcopy(case['paramwise_cfg']))
    params = []
    cons.add_params(params, model)
    return params


def patch():
    return harness.DcnPatch(dc, 'check_ops_exist')


if __name__ == '__main__':
    assert not dc.check_ops_exist(), 'expected mmcv built without ops'
    out = harness.run_all(REF, build_fn, explicit_fn, patch, None)
    harness.dump(out, 'tables_mmcv.json')
    print(len(out), 'cases;', sum('error' in e for e in out), 'errors')
