"""trainkit: a small training loop on accelerate whose schedules are exact and visible."""
__version__ = "0.1.0"
