"""An OpenMMLab config's training-loop part, as a trainkit recipe (pure: dict in, dict out).

:func:`port` takes the merged config as a plain dict (``mmengine.Config.fromfile(...)``,
``_base_`` files, ``_delete_`` and ``{{_base_.x}}`` already resolved by mmengine) and returns
the recipe and a report: one :class:`Line` per top-level key, saying what became of it —

* ``mapped``: to which trainkit keys (``optimizer``, ``trainer.max_epochs``, ``components.lr``...);
* ``placeholder``: the user's part (``model``, ``data``, the evaluator), written as ``???`` with the
  original kept as a comment, so Hydra refuses to train until it is filled in;
* ``n/a``: means nothing for trainkit (``dist_params``, ``env_cfg``, visualisers, ...);
* ``variable``: a module-level helper variable of the config (``crop_size``, ``norm_cfg``): its
  uses are already resolved into the dicts that read it;
* ``unsupported``: has no trainkit counterpart, with the reason (``LARS``, ``EMAHook``, ...).

Both dialects are read: mmcv 1.x (``optimizer``/``optimizer_config``/``lr_config``/
``momentum_config``/``runner``/``checkpoint_config``/``log_config``/``evaluation``/
``custom_hooks``/``workflow``) and mmengine (``optim_wrapper``/``param_scheduler``/``train_cfg``/
``default_hooks``/``custom_hooks``/``auto_scale_lr``/``randomness``). See docs/port.md.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

MISSING = "???"

#: torch.optim classes an OpenMMLab ``type`` may name
TORCH_OPTIMIZERS = ("SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam",
                    "ASGD", "Rprop", "LBFGS", "SparseAdam")

PLACEHOLDER_KEYS = {
    "model": "model",
    "data": "data", "train_dataloader": "data", "val_dataloader": "data", "test_dataloader": "data",
    "train_pipeline": "data", "val_pipeline": "data", "test_pipeline": "data", "eval_pipeline": "data",
    "train_pipeline1": "data", "train_pipeline2": "data", "demo_pipeline": "data",
    "dataset_type": "data", "train_dataset_type": "data", "val_dataset_type": "data", "data_root": "data",
    "data_source": "data", "data_prefix": "data", "img_norm_cfg": "data", "data_preprocessor": "model",
    "val_evaluator": "evaluator", "test_evaluator": "evaluator",
}
NOT_APPLICABLE = {
    "dist_params": "the process group is set up by torchrun / accelerate",
    "launcher": "the launcher is torchrun / accelerate launch",
    "env_cfg": "process environment (cudnn, mp start method, dist backend): accelerate sets it up",
    "log_level": "trainkit logs at INFO through the 'trainkit' logger",
    "work_dir": "the run directory is Hydra's (outputs/<name>/<time>)",
    "gpu_ids": "devices come from the launcher (accelerate / torchrun)",
    "cudnn_benchmark": "not a loop setting (set torch.backends.cudnn.benchmark in your model code)",
    "opencv_num_threads": "data-pipeline setting of OpenMMLab",
    "mp_start_method": "data-pipeline setting of OpenMMLab",
    "persistent_workers": "data-pipeline setting (trainer.num_workers is trainkit's)",
    "prefetch": "data-pipeline setting of OpenMMLab",
    "default_scope": "OpenMMLab registry scope: trainkit uses _target_ paths",
    "custom_imports": "OpenMMLab registry imports: trainkit uses _target_ paths",
    "vis_backends": "visualisation: trainkit logs to metrics.jsonl and W&B",
    "visualizer": "visualisation: trainkit logs to metrics.jsonl and W&B",
    "log_processor": "log smoothing of OpenMMLab's LoggerHook: trainkit logs raw values",
    "val_cfg": "the validation loop: trainkit validates with the evaluator every trainer.val_interval epochs",
    "test_cfg": "the test loop / test settings: not part of training",
    "tta_model": "test-time augmentation: not part of training",
    "tta_pipeline": "test-time augmentation: not part of training",
    "model_wrapper_cfg": "DDP wrapping is accelerate's",
    "experiment_name": "the run is named after the recipe (name)",
    "save_dir": "the run directory is Hydra's",
    "deterministic": "not a loop setting",
    "checkpoint_file": "a path variable of the model part",
}
#: hooks whose job trainkit's loop or logging already does
HOOKS_NOT_APPLICABLE = {
    "NumClassCheckHook", "SyncNormHook", "SyncBuffersHook", "IterTimerHook", "DistSamplerSeedHook",
    "ParamSchedulerHook", "LoggerHook", "TextLoggerHook", "TensorboardLoggerHook", "WandbLoggerHook",
    "MlflowLoggerHook", "DetVisualizationHook", "SegVisualizationHook", "Det3DVisualizationHook",
    "VisualizationHook", "BasicVisualizationHook", "EmptyCacheHook", "MeanTeacherHook",
}


@dataclass
class Line:
    """One top-level key of the config and what became of it."""

    key: str
    status: str              # mapped | placeholder | n/a | variable | unsupported
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.key:<22} {self.status:<12} {self.detail}"


@dataclass
class Port:
    """What :func:`port` returns: the recipe (a dict to write as YAML), the report, and the
    originals of the placeholders (``{"model": {...}, "data": {...}}``) to keep as comments."""

    recipe: dict[str, Any]
    report: list[Line]
    originals: dict[str, dict[str, Any]] = field(default_factory=dict)

    def line(self, key: str) -> Line:
        return next(x for x in self.report if x.key == key)


class _Builder:
    """Collects the recipe and the report while the mapping functions run."""

    def __init__(self, cfg: dict[str, Any], options: dict[str, Any]):
        self.cfg, self.options = cfg, options
        self.recipe: dict[str, Any] = {}
        self.report: dict[str, Line] = {}
        self.originals: dict[str, dict[str, Any]] = {}

    def set(self, dotted: str, value: Any) -> None:
        node = self.recipe
        *parents, last = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value

    def get(self, dotted: str, default: Any = None) -> Any:
        node: Any = self.recipe
        for p in dotted.split("."):
            if not isinstance(node, dict) or p not in node:
                return default
            node = node[p]
        return node

    def say(self, key: str, status: str, detail: str) -> None:
        if key in self.report and self.report[key].status == "mapped" and status == "mapped":
            self.report[key].detail += "; " + detail
        else:
            self.report[key] = Line(key, status, detail)


# ----------------------------------------------------------------- helpers
def type_name(t: Any) -> str:
    """``'SGD'`` for ``'SGD'``, ``'torch.optim.sgd.SGD'``, the class ``torch.optim.SGD`` or a lazy
    import of it (the lazy-import config style gives dotted names or classes)."""
    if isinstance(t, str):
        return t.rsplit(".", 1)[-1]
    name = getattr(t, "__name__", None) or str(t)
    return str(name).rsplit(".", 1)[-1]


def _plain(x: Any) -> Any:
    """Config values as YAML-able plain data (tuples → lists, classes → their names)."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    return type_name(x)


def _optimizer(b: _Builder, key: str, node: dict[str, Any]) -> str | None:
    """``optimizer: {_target_: torch.optim.<type>, lr, ...}`` from an OpenMMLab optimizer dict;
    returns the problem if the type is not a torch optimizer (then SGD stands in)."""
    node = dict(node)
    name = type_name(node.pop("type", "SGD"))
    for k in ("paramwise_cfg", "paramwise_options", "constructor"):
        node.pop(k, None)
    problem = None
    if name not in TORCH_OPTIMIZERS:
        problem = (f"{key}.type={name!r} is not a torch optimizer; torch.optim.SGD with the same lr/momentum/"
                   f"weight_decay stands in so that the schedule previews; put your {name} class in "
                   "optimizer._target_ to train")
        keep = {k: node[k] for k in ("lr", "momentum", "weight_decay", "nesterov", "dampening") if k in node}
        node, name = keep, "SGD"
    b.set("optimizer", {"_target_": f"torch.optim.{name}", **_plain(node)})
    return problem


def _paramwise(b: _Builder, key: str, paramwise: dict[str, Any] | None, constructor: Any, dialect: str) -> str:
    """``param_groups`` from ``paramwise_cfg`` and ``constructor``; returns what it mapped to."""
    cname = type_name(constructor) if constructor else None
    scope = str(b.cfg.get("default_scope") or "")
    if cname in ("LearningRateDecayOptimizerConstructor", "LayerDecayOptimizerConstructor") \
            and scope in ("mmseg", "mmpretrain", "mmcls", "mmselfsup"):
        raise _Unsupported(f"{key}.constructor={cname!r} of {scope} (default_scope) assigns layers unlike mmdet's "
                           "constructor, the one trainkit.optim.LayerDecayConstructor reproduces")
    if cname in ("LearningRateDecayOptimizerConstructor", "LayerDecayOptimizerConstructor"):
        b.set("param_groups", {"_target_": "trainkit.optim.LayerDecayConstructor",
                               "paramwise_cfg": _plain(paramwise or {})})
        return "param_groups (trainkit.optim.LayerDecayConstructor, mmdet's layer-wise lr decay)"
    if cname not in (None, "DefaultOptimWrapperConstructor", "DefaultOptimizerConstructor"):
        raise _Unsupported(f"{key}.constructor={cname!r} has no trainkit counterpart")
    if not paramwise:
        return ""
    b.set("param_groups", {"_target_": "trainkit.optim.ParamwiseGroups", "dialect": dialect,
                           "paramwise_cfg": _plain(paramwise)})
    return f"param_groups (trainkit.optim.ParamwiseGroups, {dialect}'s default constructor rules)"


class _Unsupported(Exception):
    pass


def _clip(b: _Builder, key: str, clip: Any) -> str:
    if not clip:
        return ""
    clip = dict(clip)
    if clip.get("norm_type", 2) not in (2, 2.0):
        raise _Unsupported(f"{key}: norm_type={clip['norm_type']} (trainkit clips the L2 norm only)")
    if "max_norm" not in clip:
        raise _Unsupported(f"{key}={clip!r}: only max_norm clipping is supported")
    b.set("trainer.clip_grad", float(clip["max_norm"]))
    return f"trainer.clip_grad={float(clip['max_norm'])}"


def _join(*parts: str) -> str:
    return ", ".join(p for p in parts if p)


# ------------------------------------------------------------- mmcv 1.x keys
def _map_optimizer(b: _Builder, v: Any) -> None:
    if "optim_wrapper" in b.cfg:
        b.say("optimizer", "variable", "a variable the optim_wrapper reads (the optim_wrapper is ported)")
        return
    v = dict(v)
    problems = [_optimizer(b, "optimizer", v)]
    if "paramwise_options" in v:
        problems.append("paramwise_options (mmselfsup 0.x's regex keys, lars_exclude) has no trainkit counterpart: "
                        "one param group")
        groups = ""
    else:
        groups = _paramwise(b, "optimizer", v.get("paramwise_cfg"), v.get("constructor"), "mmcv")
    problems = [p for p in problems if p]
    mapped = _join(f"optimizer (torch.optim.{type_name(b.get('optimizer._target_'))})", groups)
    if problems:
        b.say("optimizer", "unsupported", "; ".join(problems) + f" (mapped: {mapped})")
    else:
        b.say("optimizer", "mapped", mapped)


def _map_optimizer_config(b: _Builder, v: Any) -> None:
    v = dict(v or {})
    kind = type_name(v.pop("type", "OptimizerHook"))
    done = [_clip(b, "optimizer_config.grad_clip", v.pop("grad_clip", None))]
    accum = v.pop("cumulative_iters", None) or v.pop("update_interval", None)
    if accum:
        b.set("trainer.grad_accum", int(accum))
        done.append(f"trainer.grad_accum={int(accum)}")
    if "Fp16" in kind:
        b.set("trainer.mixed_precision", "fp16")
        done.append("trainer.mixed_precision=fp16 (dynamic loss scale)")
        v.pop("loss_scale", None)
    if kind == "SiameseRPNOptimizerHook":
        start, layers = v.pop("backbone_start_train_epoch", 10), v.pop("backbone_train_layers", [])
        b.set("components.unfreeze", {"_target_": "trainkit.tasks.sot.BackboneUnfreeze", "start_epoch": start,
                                      "layers": _plain(layers)})
        done.append(f"components.unfreeze (trainkit.tasks.sot.BackboneUnfreeze from epoch {start})")
    elif kind not in ("OptimizerHook", "DistOptimizerHook", "GradientCumulativeOptimizerHook", "Fp16OptimizerHook",
                      "GradientCumulativeFp16OptimizerHook"):
        raise _Unsupported(f"optimizer_config.type={kind!r} has no trainkit counterpart")
    v.pop("detect_anomalous_params", None)
    if v:
        raise _Unsupported(f"optimizer_config keys {sorted(v)} have no trainkit counterpart"
                           + (f" (mapped: {_join(*done)})" if _join(*done) else ""))
    b.say("optimizer_config", "mapped", _join(*done) or "nothing to do (no clipping, no accumulation)")


def _map_lr_config(b: _Builder, v: Any) -> None:
    if v is None:
        b.say("lr_config", "mapped", "null: the lr stays at the optimizer's")
        return
    v = _plain(dict(v))
    b.set("components.lr", {"_target_": "trainkit.schedules.lr_config", **v})
    b.say("lr_config", "mapped", f"components.lr (trainkit.schedules.lr_config, policy={v.get('policy')!r})")


def _map_momentum_config(b: _Builder, v: Any) -> None:
    if v is None:
        b.say("momentum_config", "mapped", "null")
        return
    v = _plain(dict(v))
    b.set("components.momentum", {"_target_": "trainkit.schedules.momentum_config", **v})
    b.say("momentum_config", "mapped",
          f"components.momentum (trainkit.schedules.momentum_config, policy={v.get('policy')!r})")


def _set_length(b: _Builder, by_epoch: bool, n: Any, key: str) -> str:
    if by_epoch:
        b.set("trainer.max_epochs", int(n))
        b.set("trainer.max_iters", None)
        return f"trainer.max_epochs={int(n)}"
    b.set("trainer.max_iters", int(n))
    b.set("trainer.max_epochs", None)
    return f"trainer.max_iters={int(n)}, trainer.max_epochs=null"


def _map_runner(b: _Builder, v: Any) -> None:
    v = dict(v)
    kind = type_name(v.get("type", "EpochBasedRunner"))
    if kind == "IterBasedRunner":
        b.say("runner", "mapped", _set_length(b, False, v["max_iters"], "runner.max_iters"))
    elif kind == "EpochBasedRunner":
        b.say("runner", "mapped", _set_length(b, True, v["max_epochs"], "runner.max_epochs"))
    else:
        raise _Unsupported(f"runner.type={kind!r} has no trainkit counterpart")


def _map_total_epochs(b: _Builder, v: Any) -> None:
    if "runner" in b.cfg:
        b.say("total_epochs", "variable", "the runner's max_epochs is ported")
        return
    b.say("total_epochs", "mapped", _set_length(b, True, v, "total_epochs"))


def _checkpoint(b: _Builder, key: str, v: dict[str, Any], by_epoch: bool) -> str:
    v = dict(v)
    done = []
    interval = v.pop("interval", 1)
    by_epoch = v.pop("by_epoch", by_epoch)
    if interval is not None and interval > 0:
        k = "trainer.checkpoint_interval" if by_epoch else "trainer.checkpoint_interval_iters"
        b.set(k, int(interval))
        done.append(f"{k}={int(interval)}")
    else:
        done.append(f"interval={interval}: no periodic checkpoints (trainkit always keeps last.pt)")
        b.set("trainer.checkpoint.max_keep", 0)
    if v.get("max_keep_ckpts") not in (None, -1):
        b.set("trainer.checkpoint.max_keep", int(v["max_keep_ckpts"]))
        done.append(f"trainer.checkpoint.max_keep={int(v['max_keep_ckpts'])}")
    v.pop("max_keep_ckpts", None)
    done.append(_best(b, v.pop("save_best", None), v.pop("rule", None)))
    for k in ("type", "out_dir", "save_optimizer", "save_last", "save_param_scheduler", "filename_tmpl",
              "file_client_args", "backend_args", "published_keys", "less_keys", "greater_keys", "meta"):
        v.pop(k, None)
    if v:
        done.append(f"not ported: {sorted(v)}")
    return _join(*done)


def _best(b: _Builder, save_best: Any, rule: Any) -> str:
    if save_best in (None, "auto"):
        return "" if save_best is None else "save_best='auto' (the first metric): not ported"
    metric = save_best if isinstance(save_best, str) else save_best[0]
    b.set("trainer.checkpoint.save_best", str(metric))
    out = f"trainer.checkpoint.save_best={metric!r} (name it as your evaluator does, e.g. val/{metric})"
    if rule:
        b.set("trainer.checkpoint.rule", str(rule if isinstance(rule, str) else rule[0]))
        out += f", rule={rule!r}"
    return out


def _map_checkpoint_config(b: _Builder, v: Any) -> None:
    b.say("checkpoint_config", "mapped", _checkpoint(b, "checkpoint_config", v or {}, True))


def _map_log_config(b: _Builder, v: Any) -> None:
    v = dict(v or {})
    hooks = [type_name(h.get("type")) for h in v.get("hooks", [])]
    out = []
    if "interval" in v:
        b.set("trainer.log_interval", int(v["interval"]))
        out.append(f"trainer.log_interval={int(v['interval'])}")
    if hooks:
        out.append(f"hooks {hooks}: trainkit writes metrics.jsonl and W&B (logger=...)")
    b.say("log_config", "mapped", _join(*out))


def _map_evaluation(b: _Builder, v: Any) -> None:
    v = dict(v or {})
    out = []
    if "interval" in v:
        if v.get("by_epoch", True) is False:
            out.append(f"interval={v['interval']} iterations: not ported (trainkit validates every "
                       "trainer.val_interval epochs and at the end)")
        else:
            b.set("trainer.val_interval", int(v["interval"]))
            out.append(f"trainer.val_interval={int(v['interval'])}")
    if v.get("start") is not None:
        b.set("trainer.val_begin", int(v["start"]))
        out.append(f"trainer.val_begin={int(v['start'])}")
    out.append(_best(b, v.get("save_best"), v.get("rule")))
    if "metric" in v:
        out.append(f"metric={_plain(v['metric'])!r}: the evaluator is yours (evaluator: ???)")
        b.originals.setdefault("evaluator", {})["evaluation"] = _plain(v)
    b.say("evaluation", "mapped", _join(*out))


def _map_custom_hooks(b: _Builder, v: Any) -> None:
    mapped, rest = [], []
    for hook in v or []:
        hook = dict(hook)
        kind = type_name(hook.get("type"))
        if kind in ("BYOLHook", "MomentumUpdateHook"):
            model = b.cfg.get("model") or {}
            node = {"_target_": "trainkit.optim.MomentumEMA",
                    "base_momentum": model.get("base_momentum", 0.996 if kind == "BYOLHook" else None),
                    "end_momentum": hook.get("end_momentum", 1.0),
                    "update_interval": int(hook.get("update_interval", 1))}
            b.set("components.ema", node)
            mapped.append(f"{kind} → components.ema (trainkit.optim.MomentumEMA, base_momentum="
                          f"{node['base_momentum']} from model.base_momentum)")
        elif kind in HOOKS_NOT_APPLICABLE:
            rest.append(f"{kind} (n/a)")
        elif kind == "EMAHook":
            rest.append("EMAHook unsupported: an EMA copy of the whole model for evaluation (trainkit's "
                        "MomentumEMA averages a target network inside the model)")
        else:
            rest.append(f"{kind} unsupported: no trainkit counterpart")
    if not mapped and any("unsupported" in r for r in rest):
        b.say("custom_hooks", "unsupported", "; ".join(rest))
    else:
        b.say("custom_hooks", "mapped" if mapped else "n/a", "; ".join(mapped + rest) or "none")


def _map_load_from(b: _Builder, v: Any) -> None:
    if v:
        b.set("trainer.load_from", str(v))
        b.say("load_from", "mapped", f"trainer.load_from={v!r}")
    else:
        b.say("load_from", "mapped", "null: training starts from the model's initialisation")


def _map_resume_from(b: _Builder, v: Any) -> None:
    if v:
        b.set("trainer.resume", str(v))
        b.say("resume_from", "mapped", f"trainer.resume={v!r}")
    else:
        b.say("resume_from", "mapped", "null: a fresh run (trainer.resume=auto continues one)")


def _map_resume(b: _Builder, v: Any) -> None:
    if v is True:
        b.set("trainer.resume", "auto")
        b.say("resume", "mapped", "trainer.resume=auto (mmengine's resume=True: the latest checkpoint)")
    else:
        b.say("resume", "mapped", f"{v!r}: a fresh run")


def _map_workflow(b: _Builder, v: Any) -> None:
    phases = [p[0] for p in v or []]
    if phases == ["train"]:
        b.say("workflow", "n/a", "[('train', 1)]: trainkit trains; it validates per trainer.val_interval")
    else:
        raise _Unsupported(f"workflow={_plain(v)}: a 'val' phase computing losses is not ported "
                           "(trainkit validates with the evaluator every trainer.val_interval epochs)")


def _map_fp16(b: _Builder, v: Any) -> None:
    b.set("trainer.mixed_precision", "fp16")
    scale = (v or {}).get("loss_scale")
    note = "" if scale in (None, "dynamic") else f"; loss_scale={scale} becomes dynamic scaling (torch's GradScaler)"
    b.say("fp16", "mapped", "trainer.mixed_precision=fp16" + note)


def _map_seed(b: _Builder, v: Any) -> None:
    if v is None:
        b.say("seed", "mapped", "null: trainkit's seed (0)")
    else:
        b.set("seed", int(v))
        b.say("seed", "mapped", f"seed={int(v)}")


def _map_find_unused(b: _Builder, v: Any) -> None:
    b.set("trainer.find_unused_parameters", bool(v))
    b.say("find_unused_parameters", "mapped", f"trainer.find_unused_parameters={bool(v)}")


# ------------------------------------------------------------- mmengine keys
def _map_optim_wrapper(b: _Builder, v: Any) -> None:
    v = dict(v)
    kind = type_name(v.pop("type", "OptimWrapper"))
    constructor = v.pop("constructor", None)
    out = []
    if type_name(constructor) == "MultiOptimWrapperConstructor" or "optimizer" not in v:
        subs = [k for k, s in v.items() if isinstance(s, dict) and "optimizer" in s]
        if not subs:
            raise _Unsupported(f"optim_wrapper without an optimizer: {sorted(v)}")
        first = subs[0]
        sub = dict(v[first])
        problem = _optimizer(b, f"optim_wrapper.{first}.optimizer", sub["optimizer"])
        b.say("optim_wrapper", "unsupported",
              f"{len(subs)} optimizers ({', '.join(subs)}): trainkit trains one; optimizer is "
              f"optim_wrapper.{first}.optimizer so that its schedule previews" + (f"; {problem}" if problem else ""))
        return
    problem = _optimizer(b, "optim_wrapper.optimizer", v.pop("optimizer"))
    out.append(f"optimizer (torch.optim.{b.get('optimizer._target_').rsplit('.', 1)[-1]})")
    out.append(_paramwise(b, "optim_wrapper", v.pop("paramwise_cfg", None), constructor, "mmengine"))
    if kind == "AmpOptimWrapper":
        dtype = str(v.pop("dtype", None) or "float16")
        mp = {"float16": "fp16", "torch.float16": "fp16", "bfloat16": "bf16", "torch.bfloat16": "bf16"}.get(dtype)
        if mp is None:
            raise _Unsupported(f"optim_wrapper.dtype={dtype!r}")
        b.set("trainer.mixed_precision", mp)
        out.append(f"trainer.mixed_precision={mp} (AmpOptimWrapper)")
        v.pop("loss_scale", None)
    elif kind != "OptimWrapper":
        raise _Unsupported(f"optim_wrapper.type={kind!r} has no trainkit counterpart")
    out.append(_clip(b, "optim_wrapper.clip_grad", v.pop("clip_grad", None)))
    accum = v.pop("accumulative_counts", None)
    if accum:
        b.set("trainer.grad_accum", int(accum))
        out.append(f"trainer.grad_accum={int(accum)}")
    if v:
        out.append(f"not ported: {sorted(v)}")
    b.say("optim_wrapper", "unsupported" if problem else "mapped", (problem + "; " if problem else "") + _join(*out))


def _map_param_scheduler(b: _Builder, v: Any) -> None:
    items = [v] if isinstance(v, dict) else list(v or [])
    schedulers = []
    for s in items:
        s = _plain(dict(s))
        s["type"] = type_name(s["type"])
        schedulers.append(s)
    node: dict[str, Any] = {"_target_": "trainkit.schedules.param_scheduler", "schedulers": schedulers}
    hook = ((b.cfg.get("default_hooks") or {}).get("param_scheduler") or {})
    if type_name(hook.get("type", "")) == "ReduceLRSchedulerHook":
        node["hook"] = {**_plain(dict(hook)), "type": "ReduceLRSchedulerHook"}
    b.set("components.param_scheduler", node)
    kinds = ", ".join(s["type"] for s in schedulers)
    b.say("param_scheduler", "mapped", f"components.param_scheduler (trainkit.schedules.param_scheduler: {kinds})")


def _map_train_cfg(b: _Builder, v: Any) -> None:
    v = dict(v or {})
    kind = type_name(v.pop("type", ""))
    by_epoch = v.pop("by_epoch", kind != "IterBasedTrainLoop")
    if kind not in ("", "EpochBasedTrainLoop", "IterBasedTrainLoop"):
        raise _Unsupported(f"train_cfg.type={kind!r} has no trainkit counterpart")
    out = [_set_length(b, by_epoch, v.pop("max_epochs" if by_epoch else "max_iters"), "train_cfg")]
    if "val_interval" in v:
        n = int(v.pop("val_interval"))
        if by_epoch:
            b.set("trainer.val_interval", n)
            out.append(f"trainer.val_interval={n}")
        else:
            out.append(f"val_interval={n} iterations: not ported (trainkit validates every trainer.val_interval "
                       "epochs, an epoch being one pass over the data, and at the end)")
    if "val_begin" in v:
        n = int(v.pop("val_begin"))
        if by_epoch:
            b.set("trainer.val_begin", n)
            out.append(f"trainer.val_begin={n}")
        else:
            out.append(f"val_begin={n} iterations: not ported")
    v.pop("dynamic_intervals", None)
    if v:
        out.append(f"not ported: {sorted(v)}")
    b.say("train_cfg", "mapped", _join(*out))


def _map_default_hooks(b: _Builder, v: Any) -> None:
    out = []
    by_epoch = b.cfg.get("train_cfg", {}).get("by_epoch", type_name(b.cfg.get("train_cfg", {}).get("type", ""))
                                              != "IterBasedTrainLoop")
    for name, hook in (v or {}).items():
        if hook is None:
            continue
        kind = type_name(hook.get("type", ""))
        if kind == "CheckpointHook":
            out.append("checkpoint: " + _checkpoint(b, "default_hooks.checkpoint", hook, by_epoch))
        elif kind == "LoggerHook":
            if "interval" in hook:
                b.set("trainer.log_interval", int(hook["interval"]))
                out.append(f"logger: trainer.log_interval={int(hook['interval'])}")
        elif kind == "ReduceLRSchedulerHook":
            out.append(f"param_scheduler: ReduceLRSchedulerHook val_metric={hook.get('val_metric')!r} "
                       "→ components.param_scheduler.hook")
        elif kind in HOOKS_NOT_APPLICABLE:
            continue
        else:
            out.append(f"{name}: {kind} not ported")
    b.say("default_hooks", "mapped", "; ".join(out) or "nothing trainkit needs")


def _map_auto_scale_lr(b: _Builder, v: Any) -> None:
    v = dict(v or {})
    base = v.get("base_batch_size")
    total = b.options.get("total_batch_size")
    if not v.get("enable", False) and not b.options.get("auto_scale_lr"):
        b.say("auto_scale_lr", "n/a", f"enable={v.get('enable', False)} (base_batch_size={base}): the lr is "
                                      "the config's (mmengine scales only with enable=True or --auto-scale-lr)")
        return
    if not total or not base:
        raise _Unsupported(f"auto_scale_lr is enabled (base_batch_size={base}): give --total-batch-size N "
                           "(batch size × processes) to scale the lr as mmengine does")
    lr = b.get("optimizer.lr")
    scaled = lr * total / base
    b.set("optimizer.lr", scaled)
    b.say("auto_scale_lr", "mapped", f"optimizer.lr = {lr} × {total} / {base} = {scaled}")


def _map_randomness(b: _Builder, v: Any) -> None:
    v = dict(v or {})
    out = []
    if v.get("seed") is not None:
        b.set("seed", int(v["seed"]))
        out.append(f"seed={int(v['seed'])}")
    else:
        out.append("seed=null: trainkit's seed (0)")
    for k in ("deterministic", "diff_rank_seed"):
        if v.get(k):
            out.append(f"{k}=True not ported")
    b.say("randomness", "mapped", _join(*out))


MAPPERS = {
    "optimizer": _map_optimizer, "optimizer_config": _map_optimizer_config, "lr_config": _map_lr_config,
    "momentum_config": _map_momentum_config, "runner": _map_runner, "total_epochs": _map_total_epochs,
    "checkpoint_config": _map_checkpoint_config, "log_config": _map_log_config, "evaluation": _map_evaluation,
    "custom_hooks": _map_custom_hooks, "load_from": _map_load_from, "resume_from": _map_resume_from,
    "resume": _map_resume, "workflow": _map_workflow, "fp16": _map_fp16, "seed": _map_seed,
    "find_unused_parameters": _map_find_unused,
    "optim_wrapper": _map_optim_wrapper, "param_scheduler": _map_param_scheduler, "train_cfg": _map_train_cfg,
    "default_hooks": _map_default_hooks, "auto_scale_lr": _map_auto_scale_lr, "randomness": _map_randomness,
}
#: keys whose mapping reads others' results (the lr to scale): mapped last
LATE = ("auto_scale_lr",)


def batch_size(cfg: dict[str, Any]) -> int | None:
    """Samples per process per iteration: mmengine ``train_dataloader.batch_size`` or mmcv
    ``data.samples_per_gpu``."""
    loader = cfg.get("train_dataloader") or {}
    if isinstance(loader, dict) and loader.get("batch_size"):
        return int(loader["batch_size"])
    data = cfg.get("data") or {}
    if isinstance(data, dict) and data.get("samples_per_gpu"):
        return int(data["samples_per_gpu"])
    return None


def port(cfg: dict[str, Any], *, name: str, imported: set[str] = frozenset(), **options: Any) -> Port:
    """The recipe and the report for the merged config ``cfg`` (a plain dict).

    ``imported``: keys that are imported names of a lazy-import config (``SGD``, ``read_base``).
    ``options``: ``total_batch_size`` and ``auto_scale_lr`` (see :func:`_map_auto_scale_lr`).
    """
    cfg = copy.deepcopy(cfg)
    b = _Builder(cfg, options)
    b.recipe["name"] = name
    order = [k for k in cfg if k not in LATE] + [k for k in LATE if k in cfg]
    for key in order:
        value = cfg[key]
        try:
            if key in imported:
                b.say(key, "n/a", "an imported name of the lazy-import config")
            elif key in MAPPERS:
                MAPPERS[key](b, value)
            elif key in PLACEHOLDER_KEYS:
                part = PLACEHOLDER_KEYS[key]
                b.originals.setdefault(part, {})[key] = _plain(value)
                b.say(key, "placeholder", f"{part}: ??? (yours to fill in; the original is kept as a comment)")
            elif key in NOT_APPLICABLE:
                b.say(key, "n/a", NOT_APPLICABLE[key])
            elif key.startswith("_"):
                b.say(key, "variable", "a private variable of the config")
            else:
                b.say(key, "variable", "a module-level variable; its uses are resolved where the config reads it")
        except _Unsupported as e:
            b.say(key, "unsupported", str(e))
    bs = batch_size(cfg)
    if bs:
        b.set("trainer.batch_size", bs)
    for part in ("model", "data"):
        b.recipe[part] = MISSING
    if "evaluator" in b.originals:
        b.recipe["evaluator"] = MISSING
    if b.get("optimizer") is None:
        b.recipe["optimizer"] = MISSING
    return Port(b.recipe, list(b.report.values()), b.originals)
