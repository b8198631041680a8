"""Schema discovery from the running lab: the newest records of its input stream (the
on-disk stream log locally, the Kinesis stream on AWS, read through the backend) given to
``analytics.schema_discovery.discover``. Notebook 03 imports it as ``schema_discovery``."""

from __future__ import annotations

from ..analytics.schema_discovery import SAMPLE_SIZE, Discovery, discover
from ..backends import for_config
from ..errors import GeneratorError
from ..infra.config import LabConfig


def sample_records(cfg: LabConfig, n: int = SAMPLE_SIZE) -> list[str]:
    """The newest ``n`` records of the input stream, oldest first.

    Local: the last lines of the on-disk stream log. AWS: the newest of the records the
    Kinesis stream received in the last minute.
    """
    if n < 1:
        raise GeneratorError(f"Sample size {n} is too small", "ask for at least 1 record.")
    lines = for_config(cfg).input_lines(n)
    where = f"the input stream {cfg.input_stream}"
    if not lines:
        raise GeneratorError(
            f"No records in {where} yet",
            "start the traffic (notebook 02 or `python -m labhelpers generate start`), wait a "
            "few seconds, then discover again.")
    return lines


def discover_live(cfg: LabConfig, n: int = SAMPLE_SIZE) -> Discovery:
    """Discover the schema of the newest ``n`` records of the running lab's input stream."""
    lines = sample_records(cfg, n)
    return discover(lines, source=f"stream {cfg.input_stream}")
