"""``python -m trainkit.train +recipe=NAME [overrides]``: see :mod:`trainkit.cli.train`."""
from ._compat import forwarder
from .cli.train import main, run_config

__all__ = ["main", "run_config"]
__getattr__ = forwarder("trainkit.train", "trainkit.build", {
    "build_runner": ("trainkit.build", "build_runner"),
    "build_model_and_optimizer": ("trainkit.build", "build_model_and_optimizer"),
    "_tracking_sinks": ("trainkit.build", "tracking_sinks"),
    "_log_planned_schedule": ("trainkit.cli.train", "log_planned_schedule")})

if __name__ == "__main__":
    main()
