"""The background traffic process: ``generate.traffic.start`` launches it with the lab's
settings (``LabConfig.to_args``) and a plan; it sends into the backend's input sink (archived
as the backend does), which is why it lives above the seam and not in ``generate/``."""

from __future__ import annotations

import argparse
import json
import sys

from ..backends import for_config
from ..errors import LabError
from ..generate.traffic import run_child, traffic_dir
from ..infra.config import LabConfig
from ..logs import logger

log = logger(__name__)


def main(argv: list[str] | None = None) -> int:
    """Parse the settings and the plan, then run the generator until it ends or is stopped."""
    parser = argparse.ArgumentParser(prog="python -m labhelpers.run.traffic_child")
    LabConfig.add_arguments(parser)
    parser.add_argument("--plan", required=True)
    try:
        args = parser.parse_args(argv)
        cfg = LabConfig.from_args(args)
        lab = for_config(cfg)
        sink = lab.archive(lab.input_sink(failure_log=traffic_dir(cfg) / "failures.jsonl"))
        return run_child(cfg, json.loads(args.plan), sink)
    except LabError as err:  # shown by start() from this process's log
        log.info(f"error: {err}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
