"""labhelpers: the code behind the clickstream anomaly-detection lab's notebooks.

One subpackage per stage of the lab, as in the architecture picture (README):

    generate/   templates, plans, timelines, sinks, the background traffic, the panel
    stream/     the local stream log and its readers (and Kinesis reads on AWS)
    job/        what runs inside Flink, locally and on the managed service: the SQL loader,
                the job's parameters, the pipeline, the forest and its alert rule, the record
                contracts; it imports nothing of the rest of the package
    analytics/  controls the job: the local runner, replay, schema discovery, the JVM start-up
                cache, the managed service, the application's package
    alerts/     the handler that runs as the Lambda, the local poller, the ESM runner, the
                inbox, the demo
    infra/      config (and the world it selects), emulator, stack, credentials, cost
    evaluate/   labelled scenarios, the evaluation, score-series
    backends/   the seam: one interface, one backend per world (local, aws rehearsed on the
                emulator, aws); no stage imports it
    monitor/    tables, plots, the live monitor, the architecture diagram, the wiring, the
                live schema sample
    teach/      the notebooks' teaching aids: concepts, figures, the original lab, exercises
    run/        headless runs (make run) and their report, the clean-up, the traffic
                process; cli.py is the command line

The notebooks call ``backend_for(cfg)`` for everything that differs between the worlds.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = ["Backend", "ForestParams", "JobParams", "LabConfig", "LabError", "backend_for",
           "load_config"]
__version__ = "0.1.0"

# Imported on first use: the Flink job (labhelpers.job) imports this package too, locally and
# from the managed application's zip, which carries only the job package and this file.
_LAZY = {
    "ForestParams": ("labhelpers.job.forest", "ForestParams"),
    "JobParams": ("labhelpers.job.params", "JobParams"),
    "LabError": ("labhelpers.job.errors", "LabError"),
    "LabConfig": ("labhelpers.infra.config", "LabConfig"),
    "load_config": ("labhelpers.infra.config", "load_config"),
    "Backend": ("labhelpers.backends", "Backend"),
    "backend_for": ("labhelpers.backends", "for_config"),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'labhelpers' has no attribute {name!r}")
    module, attr = _LAZY[name]
    return getattr(import_module(module), attr)
