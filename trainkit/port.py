"""``python -m trainkit.port CONFIG.py [-o RECIPE.yaml]``: see :mod:`trainkit.cli.port`."""
from .cli.port import main

__all__ = ["main"]

if __name__ == "__main__":
    main()
