"""Reduce the full reference tables (tables.json, ~1.5 MB) to what tests/test_paramwise.py reads.

Run: python3 reduce_tables.py   (after make_tables_mmengine.py / make_tables_mmcv.py; make_all.sh does both)
Keeps, per case: its header (name, reference, model, model_kwargs, optimizer, paramwise_cfg, patched),
the error or n_groups, the duplicate/frozen warnings, and one row per parameter (``model.named_parameters()``
order) with the columns below. Each model variant's parameter names, requires_grad and aliases are
stored once, under ``models[<model>:<model_kwargs as JSON>]``. Values are copied as the reference wrote
them (floats by repr, so == comparisons stay exact).
"""
import json

COLUMNS = ['in_optimizer', 'group_index', 'lr', 'weight_decay', 'momentum', 'betas', 'eps']
MODEL_COLUMNS = ['name', 'requires_grad', 'aliases']
HEADER = ['name', 'reference', 'model', 'model_kwargs', 'optimizer', 'paramwise_cfg', 'patched', 'error',
          'n_groups', 'python_warnings', 'log_warnings']
VERSIONS = {'mmengine-0.10.7': 'mmengine-lite 0.10.7 DefaultOptimWrapperConstructor via build_optim_wrapper',
            'mmcv-1.7.2': 'mmcv 1.7.2 (MMCV_WITH_OPS=0) DefaultOptimizerConstructor via build_optimizer',
            'torch': '2.13.0+cpu'}


def model_key(entry):
    return f"{entry['model']}:{json.dumps(entry.get('model_kwargs', {}), sort_keys=True)}"


def reduce(entry, models):
    out = {k: entry[k] for k in HEADER if k in entry}
    if 'params' in entry:
        rows = [[row.get(c) for c in MODEL_COLUMNS] for row in entry['params']]
        assert models.setdefault(model_key(entry), rows) == rows, entry['name']
        out['params'] = [[row.get(c) for c in COLUMNS] for row in entry['params']]
    return out


if __name__ == '__main__':
    with open('tables.json') as f:
        tables = json.load(f)
    models = {}
    cases = [reduce(e, models) for e in tables]
    doc = {'versions': VERSIONS, 'columns': COLUMNS, 'model_columns': MODEL_COLUMNS, 'models': models,
           'cases': cases}
    with open('tables_reduced.json', 'w') as f:
        json.dump(doc, f, separators=(',', ':'))
        f.write('\n')
    print('tables_reduced.json:', len(doc['cases']), 'cases')
