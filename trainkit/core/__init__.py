"""The loop and what it owns: the event bus (``events``), the :class:`Runner` (``runner``), the
trainer's options (``config``), checkpoints (``checkpoint``) and which one a run resumes
(``resume``), data plumbing (``data``), the run's record, ``metrics.jsonl`` (``record``),
param-group names and momentum (``groups``), the default evaluator, config-node instantiation,
value checks (``checks``) and the typed contracts of a component (``protocols``). ``core``
imports only the standard library, torch, accelerate and Hydra/OmegaConf — never a component
(``schedules``, ``optim``, ``sinks``, ``tasks``), ``build`` or ``cli``.
"""
