"""``python -m trainkit.schedule +recipe=NAME [overrides] [options]``: see :mod:`trainkit.cli.schedule`."""
from ._compat import forwarder
from .cli.schedule import cli, main

__all__ = ["cli", "main"]
__getattr__ = forwarder("trainkit.schedule", "trainkit.schedules.preview", {
    "iters_per_epoch_from_config": ("trainkit.build", "iters_per_epoch_from_config"),
    "groups_from_config": ("trainkit.build", "groups_from_config"),
    "planned_rows": ("trainkit.build", "planned_rows")})

if __name__ == "__main__":
    import sys

    sys.exit(cli())
