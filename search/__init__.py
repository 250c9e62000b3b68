"""search: the leuksearch service (space -> Ray Tune + Optuna -> store -> reports, CLI)."""

__version__ = "0.1.0"
