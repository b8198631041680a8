"""matplotlib's pyplot for every figure of the lab: in a notebook the kernel's own (inline)
backend, so figures show; anywhere else the headless Agg backend, so scripts, tests and
headless runs never need a display."""

from __future__ import annotations

import sys


def pyplot():
    """The pyplot module; switches to Agg only outside a Jupyter kernel (switching inside one
    would stop every later figure of the notebook from showing)."""
    import matplotlib

    if "ipykernel" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
