"""``python -m trainkit.plot RUN_DIR [--out FILE] [--no-loss]``: see :mod:`trainkit.cli.plot`."""
from .cli.plot import curves, main, plot_run, render

__all__ = ["curves", "main", "plot_run", "render"]

if __name__ == "__main__":
    main()
