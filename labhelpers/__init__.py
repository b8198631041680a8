"""labhelpers: the code behind the clickstream anomaly-detection lab's notebooks.

One subpackage per stage of the lab, as in the architecture picture (README):

    generate/   templates, plans, timelines, sinks, the background traffic, the panel
    stream/     the local stream log and its readers (and Kinesis reads on AWS)
    analytics/  the SQL loader, the job's parameters, the Flink job, the forest, the local
                runner, replay, the JVM start-up cache, the managed service, the package
    alerts/     the handler that runs as the Lambda, the local poller, the inbox, the demo
    monitor/    tables, plots, the live monitor, the architecture diagram
    infra/      config, emulator, stack, wiring, credentials, cost, clean-up
    evaluate/   labelled scenarios, the evaluation, score-series
    backends/   the seam: one interface, a local and an aws implementation
    run/        headless runs (make run) and their report; cli.py is the command line

The notebooks call ``backend_for(cfg)`` for everything that differs between backends.
"""

from __future__ import annotations

from typing import Any

from .analytics.forest import ForestParams
from .analytics.params import JobParams
from .errors import LabError
from .infra.config import LabConfig, load_config

__all__ = ["Backend", "ForestParams", "JobParams", "LabConfig", "LabError", "backend_for",
           "load_config"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # the seam is imported on first use: the Flink job imports this package too, and needs
    # none of the notebook side
    if name in ("backend_for", "Backend"):
        from . import backends

        return backends.for_config if name == "backend_for" else backends.Backend
    raise AttributeError(f"module 'labhelpers' has no attribute {name!r}")
