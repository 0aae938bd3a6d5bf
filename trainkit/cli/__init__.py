"""The command lines: ``train`` (``python -m trainkit.train``), ``schedule`` (the preview),
``plot`` (a run's logged schedule) and ``sweep`` (the multirun results callback). The
``python -m trainkit.<name>`` modules are thin entry points into these. May import anything.
"""
