"""Shared case list + recording for make_tables_mmengine.py / make_tables_mmcv.py.

Each case is run against the *real* reference builder:
  mmengine 0.10.7: mmengine.optim.build_optim_wrapper(model, optim_wrapper_cfg)
  mmcv 1.7.2:      mmcv.runner.build_optimizer(model, optimizer_cfg)
with the config shaped exactly as it would be in a config file.
"""
import copy
import inspect
import json
import sys
import types
import warnings

import torch

import toys

MISSING = object()  # paramwise_cfg key absent from the config

SGD_R = dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=0.0001)
ADAMW_C = dict(type='AdamW', lr=0.004, weight_decay=0.05, eps=1e-08,
               betas=(0.9, 0.999))
DEFAULT_OPT = {'resnet_toy': SGD_R, 'convnext_toy': ADAMW_C}
BOTH = ('resnet_toy', 'convnext_toy')

OVERLAP_KEYS = {
    'backbone': dict(lr_mult=0.1),
    'backbone.stages.0': dict(lr_mult=0.5, decay_mult=0.3),
    'norm': dict(decay_mult=0.),
    'pos_embed': dict(decay_mult=0.),
}


def _c(name, models, paramwise_cfg=MISSING, optimizer=None,
       model_kwargs=None, patch_dcn=False, note=''):
    out = []
    for m in models:
        out.append(dict(
            name=name, model=m, model_kwargs=model_kwargs or {},
            optimizer=copy.deepcopy(optimizer or DEFAULT_OPT[m]),
            paramwise_cfg=(paramwise_cfg if paramwise_cfg is MISSING
                           else copy.deepcopy(paramwise_cfg)),
            patch_dcn=patch_dcn,
            note=note))
    return out


def build_cases():
    C = []
    # 1. no paramwise_cfg
    C += _c('01_no_paramwise_cfg', BOTH)
    # 2-5. single rules
    C += _c('02_bias_lr2_decay0', BOTH,
            dict(bias_lr_mult=2., bias_decay_mult=0.))
    C += _c('03_norm_decay0', BOTH, dict(norm_decay_mult=0.))
    C += _c('04_dwconv_decay0', BOTH, dict(dwconv_decay_mult=0.))
    C += _c('05_flat_decay0', BOTH, dict(flat_decay_mult=0.))
    # 6. custom_keys precedence
    C += _c('06a_custom_keys_overlap', BOTH, dict(custom_keys=OVERLAP_KEYS))
    C += _c('06b_custom_keys_overlap_plus_rules', BOTH,
            dict(custom_keys=OVERLAP_KEYS, bias_lr_mult=2.,
                 bias_decay_mult=0., norm_decay_mult=0.,
                 dwconv_decay_mult=0.5, flat_decay_mult=0.25),
            note='custom_keys-matched params ignore every other rule')
    C += _c('06c_custom_keys_equal_length_tiebreak', ('convnext_toy',),
            dict(custom_keys={'stage': dict(lr_mult=0.5),
                              'norm.': dict(lr_mult=0.2),
                              'a': dict(lr_mult=3.)}),
            note="'stage' and 'norm.' both len 5 and both in "
                 "'backbone.stages.0.0.norm.weight': alphabetically lower "
                 "'norm.' wins; 1-char key 'a' matches anything with an 'a'")
    C += _c('06d_custom_keys_dot_prefix_and_param_name', ('convnext_toy',),
            dict(custom_keys={'.logit_scale': dict(lr_mult=0.),
                              'depthwise_conv.bias': dict(lr_mult=5.),
                              'stages.1': dict(lr_mult=0.25),
                              '.absolute_pos_embed': dict(decay_mult=0.)}),
            note="matched string is f'{prefix}.{name}', so a root param "
                 "is matched as '.logit_scale'")
    # 7. combined
    C += _c('07a_mmdet_style', BOTH,
            dict(norm_decay_mult=0., bias_decay_mult=0.,
                 custom_keys={'backbone': dict(lr_mult=0.1)}))
    C += _c('07b_all_options', BOTH,
            dict(bias_lr_mult=2., bias_decay_mult=0.5, norm_decay_mult=0.,
                 dwconv_decay_mult=0.1, flat_decay_mult=0.3,
                 dcn_offset_lr_mult=0.1,
                 custom_keys={'head.fc': dict(lr_mult=10., decay_mult=2.)}),
            note="'head.fc' is a substring of 'bbox_head.fc_cls.*' too")
    C += _c('07c_mmpretrain_swin_style', ('convnext_toy',),
            dict(norm_decay_mult=0.0, bias_decay_mult=0.0,
                 flat_decay_mult=0.0,
                 custom_keys={
                     '.absolute_pos_embed': dict(decay_mult=0.0),
                     '.relative_position_bias_table': dict(decay_mult=0.0)}),
            optimizer=dict(type='AdamW', lr=0.001, weight_decay=0.05,
                           eps=1e-8, betas=(0.9, 0.999)))
    C += _c('07d_swin_custom_keys_only', ('convnext_toy',),
            dict(custom_keys={'absolute_pos_embed': dict(decay_mult=0.),
                              'relative_position_bias_table':
                              dict(decay_mult=0.),
                              'norm': dict(decay_mult=0.)}),
            optimizer=dict(type='AdamW', lr=0.0001, betas=(0.9, 0.999),
                           weight_decay=0.05))
    # 8. duplicates (bbox_head.fc_reg.weight is bbox_head.fc_cls.weight)
    tied = dict(tie_fc_weight=True)
    C += _c('08a_shared_param_bypass_false', ('resnet_toy',),
            dict(norm_decay_mult=0.), model_kwargs=tied)
    C += _c('08b_shared_param_bypass_true', ('resnet_toy',),
            dict(norm_decay_mult=0., bypass_duplicate=True),
            model_kwargs=tied)
    C += _c('08c_shared_param_no_paramwise', ('resnet_toy',),
            model_kwargs=tied)
    C += _c('08d_shared_param_only_bypass_key', ('resnet_toy',),
            dict(bypass_duplicate=True), model_kwargs=tied)
    C += _c('08e_shared_frozen_param_bypass_true', ('resnet_toy',),
            dict(bypass_duplicate=True),
            model_kwargs=dict(tie_fc_weight=True, freeze_tied=True))
    C += _c('08f_shared_param_bypass_true_custom_key_on_alias',
            ('resnet_toy',),
            dict(bypass_duplicate=True,
                 custom_keys={'fc_reg': dict(lr_mult=0.5)}),
            model_kwargs=tied,
            note='first visit (fc_cls) decides the group; alias skipped')
    # 9. frozen params (backbone.conv1.weight is frozen in every resnet case)
    C += _c('09a_frozen_empty_paramwise_cfg', ('resnet_toy',), dict())
    C += _c('09b_frozen_paramwise_none', ('resnet_toy',), None)
    C += _c('09c_all_frozen_with_paramwise', ('resnet_toy',),
            dict(norm_decay_mult=0.), model_kwargs=dict(freeze_all=True))
    C += _c('09d_all_frozen_no_paramwise', ('resnet_toy',),
            model_kwargs=dict(freeze_all=True))
    # 10. no weight_decay in optimizer cfg
    sgd_nowd = dict(type='SGD', lr=0.02, momentum=0.9)
    C += _c('10a_no_wd_norm_decay_mult', ('resnet_toy',),
            dict(norm_decay_mult=0.), optimizer=sgd_nowd)
    C += _c('10b_no_wd_custom_key_decay_mult', ('resnet_toy',),
            dict(custom_keys={'backbone': dict(decay_mult=0.)}),
            optimizer=sgd_nowd)
    C += _c('10c_no_wd_custom_key_lr_only', ('resnet_toy',),
            dict(custom_keys={'backbone': dict(lr_mult=0.1)}),
            optimizer=sgd_nowd)
    C += _c('10d_no_wd_flat_decay_mult', BOTH, dict(flat_decay_mult=0.),
            optimizer=sgd_nowd)
    C += _c('10e_adamw_no_wd_key_flat_and_bias', ('convnext_toy',),
            dict(flat_decay_mult=0., bias_lr_mult=2.),
            optimizer=dict(type='AdamW', lr=0.001),
            note='torch AdamW default weight_decay=0.01 still applies')
    C += _c('10f_wd_zero_norm_decay_mult', ('resnet_toy',),
            dict(norm_decay_mult=0.),
            optimizer=dict(type='SGD', lr=0.02, momentum=0.9,
                           weight_decay=0.))
    C += _c('10g_no_wd_dwconv_bias_decay', ('resnet_toy',),
            dict(dwconv_decay_mult=0.), optimizer=sgd_nowd)
    # 11. optimizer types / defaults
    C += _c('11a_adamw_minimal', ('convnext_toy',),
            dict(bias_lr_mult=2., custom_keys={'head': dict(lr_mult=0.1)}),
            optimizer=dict(type='AdamW', lr=0.001))
    C += _c('11b_adam_betas_eps', ('convnext_toy',),
            dict(norm_decay_mult=0.),
            optimizer=dict(type='Adam', lr=0.001, betas=(0.9, 0.98),
                           eps=1e-06, weight_decay=0.01))
    C += _c('11c_sgd_nesterov', ('resnet_toy',), dict(bias_decay_mult=0.),
            optimizer=dict(type='SGD', lr=0.02, momentum=0.9, nesterov=True,
                           weight_decay=0.0001))
    C += _c('11d_no_lr_norm_only', ('convnext_toy',),
            dict(norm_decay_mult=0.),
            optimizer=dict(type='AdamW', weight_decay=0.05))
    C += _c('11e_no_lr_bias_lr_mult', ('convnext_toy',),
            dict(bias_lr_mult=2.),
            optimizer=dict(type='AdamW', weight_decay=0.05))
    C += _c('11f_type_is_class', ('resnet_toy',), dict(bias_lr_mult=2.),
            optimizer=dict(type=torch.optim.SGD, lr=0.02, momentum=0.9,
                           weight_decay=0.0001))
    C += _c('11g_no_lr_no_paramwise', ('convnext_toy',),
            optimizer=dict(type='AdamW', weight_decay=0.05))
    # 12. validation edge cases
    C += _c('12a_unknown_paramwise_keys', ('resnet_toy',),
            dict(bias_lr_mul=2., foo='bar'))
    C += _c('12b_custom_key_matches_nothing', ('resnet_toy',),
            dict(custom_keys={'non_exist_key': dict(lr_mult=0.)}))
    C += _c('12c_negative_multipliers', ('resnet_toy',),
            dict(bias_lr_mult=-1., norm_decay_mult=-2.,
                 custom_keys={'neck': dict(lr_mult=-0.5, decay_mult=-1.)}))
    C += _c('12d_custom_key_extra_entries', ('resnet_toy',),
            dict(custom_keys={'bbox_head': dict(lr_mult=0.5, lr=0.123,
                                                momentum=0.5, foo=1)}))
    C += _c('12e_custom_key_value_not_dict', ('resnet_toy',),
            dict(custom_keys={'backbone': 0.1}))
    C += _c('12f_paramwise_cfg_is_list', ('resnet_toy',), ['error'])
    C += _c('12g_custom_keys_is_list', ('resnet_toy',),
            dict(custom_keys=[0.1, 0.0001]))
    C += _c('12h_custom_key_empty_dict', ('resnet_toy',),
            dict(custom_keys={'neck': dict()}, bias_lr_mult=2.,
                 bias_decay_mult=0.),
            note='empty custom entry still blocks bias rules for neck.*')
    C += _c('12i_paramwise_only_dcn_mult', ('resnet_toy',),
            dict(dcn_offset_lr_mult=0.1))
    # 13. bias / norm / flat subtleties
    C += _c('13a_bias_vs_custom_and_flat', BOTH,
            dict(bias_lr_mult=2., bias_decay_mult=0., flat_decay_mult=0.5,
                 custom_keys={'head.fc': dict(lr_mult=0.1)}))
    C += _c('13b_norm_none_falls_through_to_bias_and_flat', BOTH,
            dict(bias_decay_mult=0.5, flat_decay_mult=0.25))
    C += _c('13c_dwconv_and_bias_both_set', BOTH,
            dict(bias_decay_mult=0.5, dwconv_decay_mult=0.1))
    # 14. DCN offset rule (resnet_toy backbone.layer2.0.conv2 is DCN-like)
    dcn_cfg = dict(dcn_offset_lr_mult=0.1, bias_lr_mult=2.,
                   bias_decay_mult=0., flat_decay_mult=0.5,
                   norm_decay_mult=0.)
    C += _c('14a_dcn_ops_unavailable', ('resnet_toy',), dcn_cfg,
            note='no mmcv._ext: DCN-like module is a plain nn.Module')
    C += _c('14b_dcn_ops_patched', ('resnet_toy',), dcn_cfg, patch_dcn=True,
            note='reference run with the ops-availability check patched to '
                 'True and mmcv.ops replaced by a module whose '
                 'ModulatedDeformConv2d is toys.ToyModulatedDeformConv2dPack '
                 '(same trick as the references\' own unit tests, which put '
                 'a MagicMock in sys.modules["mmcv.ops"])')
    C += _c('14c_dcn_ops_patched_custom_key', ('resnet_toy',),
            dict(dcn_offset_lr_mult=0.1,
                 custom_keys={'conv_offset': dict(lr_mult=0.01)}),
            patch_dcn=True)
    return C


# --------------------------------------------------------------------------
def jsonable(v):
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if inspect.isclass(v):
        return f'<class {v.__module__}.{v.__qualname__}>'
    if isinstance(v, torch.Tensor):
        return v.tolist()
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return repr(v)


def case_header(case, reference):
    h = dict(name=case['name'], reference=reference, model=case['model'])
    if case['model_kwargs']:
        h['model_kwargs'] = case['model_kwargs']
    h['optimizer'] = jsonable(case['optimizer'])
    h['paramwise_cfg'] = ('<absent>' if case['paramwise_cfg'] is MISSING
                          else jsonable(case['paramwise_cfg']))
    if case['patch_dcn']:
        h['patched'] = 'dcn_ops'
    if case['note']:
        h['note'] = case['note']
    return h


def record(model, optimizer, explicit_groups):
    """Per-parameter table. explicit_groups: list of dicts (keys that the
    constructor itself put in each group, before torch filled defaults), or
    None when the constructor passed model.parameters() directly."""
    aliases = {}
    for n, p in model.named_parameters(remove_duplicate=False):
        aliases.setdefault(id(p), []).append(n)
    groups = optimizer.param_groups
    where = {}
    for gi, g in enumerate(groups):
        for p in g['params']:
            where.setdefault(id(p), []).append(gi)
    rows = []
    for n, p in model.named_parameters():
        gis = where.get(id(p), [])
        row = dict(name=n, shape=list(p.shape), requires_grad=p.requires_grad,
                   in_optimizer=bool(gis))
        al = [a for a in aliases[id(p)] if a != n]
        if al:
            row['aliases'] = al
        if gis:
            g = groups[gis[0]]
            row['group_index'] = gis[0]
            if len(gis) > 1:
                row['group_indices'] = gis
            for k in ('lr', 'weight_decay', 'momentum', 'betas', 'eps'):
                if k in g:
                    row[k] = jsonable(g[k])
            full = {k: jsonable(v) for k, v in g.items() if k != 'params'}
            if explicit_groups is not None:
                ex = {k: jsonable(v) for k, v in
                      explicit_groups[gis[0]].items() if k != 'params'}
            else:
                ex = {}
            # torch fills every missing key from optimizer.defaults, so the
            # full group is always {**defaults, **explicit}; checked here.
            assert full == {**jsonable(optimizer.defaults), **ex}, (n, full, ex)
            row['explicit'] = ex
        rows.append(row)
    first_name = {id(p): n for n, p in model.named_parameters()}
    order = [[first_name.get(id(p), '?') for p in g['params']] for g in groups]
    return dict(groups_from=('model.parameters()' if explicit_groups is None
                             else 'add_params'),
                optimizer_class=type(optimizer).__name__,
                defaults=jsonable(optimizer.defaults), n_groups=len(groups),
                params=rows, group_order=order)


class DcnPatch:
    """Make the reference believe mmcv-full ops exist, with toy DCN classes."""

    def __init__(self, constructor_module, flag_name):
        self.mod = constructor_module
        self.flag_name = flag_name

    def __enter__(self):
        self.saved_flag = getattr(self.mod, self.flag_name)
        self.saved_mods = {k: sys.modules.get(k) for k in ('mmcv', 'mmcv.ops')}
        fake_ops = types.ModuleType('mmcv.ops')
        fake_ops.DeformConv2d = toys.ToyDeformConv2d
        fake_ops.ModulatedDeformConv2d = toys.ToyModulatedDeformConv2dPack
        if sys.modules.get('mmcv') is None:
            pkg = types.ModuleType('mmcv')
            pkg.__path__ = []
            sys.modules['mmcv'] = pkg
        sys.modules['mmcv.ops'] = fake_ops
        setattr(self.mod, self.flag_name, lambda: True)
        return self

    def __exit__(self, *exc):
        setattr(self.mod, self.flag_name, self.saved_flag)
        for k, v in self.saved_mods.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
        return False


def run_all(reference, build_fn, explicit_fn, patch_factory, log_capture=None):
    """build_fn(model, case) -> torch optimizer (via the real builder);
    explicit_fn(model, case) -> list of groups from constructor.add_params.
    """
    out = []
    for case in build_cases():
        entry = case_header(case, reference)
        model = toys.build(case['model'], **case['model_kwargs'])
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter('always')
            if log_capture is not None:
                log_capture.clear()
            ctx = patch_factory() if case['patch_dcn'] else _Null()
            with ctx:
                try:
                    opt = build_fn(model, case)
                except Exception as e:  # noqa: BLE001
                    entry['error'] = f'{type(e).__name__}: {e}'
                    opt = None
                logs = list(log_capture) if log_capture is not None else []
                explicit = None
                if opt is not None:
                    pw = case['paramwise_cfg']
                    if pw is not MISSING and pw:
                        with warnings.catch_warnings():
                            warnings.simplefilter('ignore')
                            explicit = explicit_fn(model, case)
        pyw = [f'{x.category.__name__}: {x.message}' for x in w
               if 'On January 1, 2023, MMCV' not in str(x.message)]
        if opt is not None:
            entry.update(record(model, opt, explicit))
            entry.update(getattr(opt, '_ref_extra', {}))
        if pyw:
            entry['python_warnings'] = pyw
        if logs:
            entry['log_warnings'] = [m for lv, m in logs if lv >= 30]
            entry['log_info'] = [m for lv, m in logs if 20 <= lv < 30]
        out.append(entry)
    return out


class _Null:

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def dump(obj, path):
    with open(path, 'w') as f:
        json.dump(obj, f, indent=1)
