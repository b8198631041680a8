"""What the running lab costs on AWS per hour, before you deploy it, and how to stop paying.

An estimate from list prices (``PRICES``: us-east-1, on-demand, as published in 2025; other
regions cost up to ~30 % more). It counts what the lab keeps running: the managed Flink
application's KPUs, the Kinesis streams, the two Firehose archives, the alert Lambda and the
logs. Free tiers are ignored (they would only lower the figure). Check the AWS pricing pages
for your region before a long run; the local backend costs nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..errors import ConfigError

HOURS_PER_MONTH = 730.0
# us-east-1 list prices (USD). Keys name the unit.
PRICES = {
    "flink_kpu_hour": 0.11,              # Managed Service for Apache Flink, per KPU-hour
    "flink_storage_gb_month": 0.10,      # running application storage, 50 GB per KPU
    "kinesis_shard_hour": 0.015,         # provisioned mode
    "kinesis_put_unit_million": 0.014,   # provisioned: per million 25 KB PUT payload units
    "kinesis_ondemand_stream_hour": 0.04,
    "kinesis_ondemand_in_gb": 0.08,
    "kinesis_ondemand_out_gb": 0.04,
    "firehose_gb": 0.029,                # ingested, each record rounded up to 5 KB
    "lambda_request_million": 0.20,
    "lambda_gb_second": 0.0000166667,    # x86
    "logs_ingest_gb": 0.50,              # CloudWatch Logs
}
FLINK_STORAGE_GB_PER_KPU = 50
STOP_PAYING = (
    "How to stop paying:\n"
    "  - stop the analytics app (labhelpers.analytics.managed.stop(cfg)): the KPUs, most of "
    "the cost, stop at once; the streams still cost their shard-hours;\n"
    "  - delete everything: notebook 05 or `python -m labhelpers --backend aws cleanup` "
    "(deletes the app, empties the buckets, deletes the stack, then lists anything still "
    "tagged with your prefix). After that the lab costs nothing."
)


@dataclass
class CostItem:
    """One line of the estimate: what, dollars per hour, and how it was computed."""

    component: str
    usd_per_hour: float
    basis: str


@dataclass
class CostEstimate:
    items: list[CostItem] = field(default_factory=list)

    @property
    def usd_per_hour(self) -> float:
        return sum(i.usd_per_hour for i in self.items)

    @property
    def usd_per_day(self) -> float:
        return 24 * self.usd_per_hour

    def as_dict(self) -> dict:
        return {"usd_per_hour": round(self.usd_per_hour, 4),
                "usd_per_day": round(self.usd_per_day, 2),
                "items": {i.component: round(i.usd_per_hour, 5) for i in self.items}}


def estimate(
    records_per_second: float = 2.0,
    record_bytes: int = 120,
    sites: int = 1,
    window_seconds: int = 10,
    input_mode: str = "PROVISIONED",
    input_shards: int = 1,
    parallelism: int = 1,
    app_running: bool = True,
    log_mb_per_hour: float = 20.0,
) -> CostEstimate:
    """Hourly cost of the running lab.

    records_per_second: input records (the lab's traffic: 1 click + 1 impression per second
    per site, so 2 per site). record_bytes: size of one click record. The app writes one score
    row per site per window; the alert Lambda is invoked about once per second while rows come.
    """
    if input_mode not in ("PROVISIONED", "ON_DEMAND"):
        raise ConfigError(f"Unknown input_mode {input_mode!r}", "use PROVISIONED or ON_DEMAND.")
    if records_per_second < 0 or record_bytes <= 0 or sites < 1 or parallelism < 1:
        raise ConfigError("Negative or zero sizes in the cost estimate",
                          "give records_per_second >= 0, record_bytes > 0, sites >= 1, "
                          "parallelism >= 1.")
    p = PRICES
    items: list[CostItem] = []
    if app_running:
        work_kpus = parallelism  # the app runs 1 parallel task per KPU (ParallelismPerKPU 1)
        kpus = work_kpus + 1  # the service adds 1 KPU per application for orchestration
        items.append(CostItem(
            "Managed Flink app (KPUs)", kpus * p["flink_kpu_hour"],
            f"{kpus} KPU x ${p['flink_kpu_hour']}/KPU-hour ({work_kpus} for parallelism "
            f"{parallelism}, +1 the service adds per application)"))
        storage = work_kpus * FLINK_STORAGE_GB_PER_KPU
        items.append(CostItem(
            "Managed Flink app (storage)",
            storage * p["flink_storage_gb_month"] / HOURS_PER_MONTH,
            f"{storage} GB running storage x ${p['flink_storage_gb_month']}/GB-month"))

    per_hour = records_per_second * 3600
    gb_in = per_hour * record_bytes / 1e9
    score_rows = sites * 3600 / window_seconds
    # Input stream.
    if input_mode == "PROVISIONED":
        units = per_hour * math.ceil(record_bytes / 25_000)
        items.append(CostItem(
            "Kinesis input stream", input_shards * p["kinesis_shard_hour"]
            + units / 1e6 * p["kinesis_put_unit_million"],
            f"{input_shards} shard x ${p['kinesis_shard_hour']}/h + {units:,.0f} PUT units/h"))
    else:
        # Read twice: by the app and by the raw-archive Firehose.
        items.append(CostItem(
            "Kinesis input stream", p["kinesis_ondemand_stream_hour"]
            + gb_in * p["kinesis_ondemand_in_gb"] + 2 * gb_in * p["kinesis_ondemand_out_gb"],
            f"on-demand ${p['kinesis_ondemand_stream_hour']}/stream-hour + {gb_in * 1e3:.2f} MB/h"))
    # Scores and dead-letter streams: provisioned, one shard each.
    items.append(CostItem(
        "Kinesis scores + dead-letter streams", 2 * p["kinesis_shard_hour"]
        + score_rows / 1e6 * p["kinesis_put_unit_million"],
        f"2 shards x ${p['kinesis_shard_hour']}/h + {score_rows:,.0f} score rows/h"))
    # Firehose: every record billed as at least 5 KB.
    billed_gb = (per_hour * max(record_bytes, 5_000) + score_rows * 5_000) / 1e9
    items.append(CostItem(
        "Firehose archives (raw + scores)", billed_gb * p["firehose_gb"],
        f"{billed_gb:.3f} GB/h billed (5 KB minimum per record) x ${p['firehose_gb']}/GB"))
    # Alert Lambda: at most one batch per second (batching window 1 s) while scores come.
    invocations = min(3600.0, score_rows)
    gb_seconds = invocations * 0.2 * 128 / 1024
    items.append(CostItem(
        "Alert Lambda", invocations / 1e6 * p["lambda_request_million"]
        + gb_seconds * p["lambda_gb_second"],
        f"{invocations:,.0f} invocations/h x ~0.2 s x 128 MB"))
    items.append(CostItem(
        "CloudWatch logs", log_mb_per_hour / 1e3 * p["logs_ingest_gb"],
        f"~{log_mb_per_hour:.0f} MB/h of logs x ${p['logs_ingest_gb']}/GB"))
    return CostEstimate(items)


def format_estimate(est: CostEstimate) -> str:
    """The estimate as a small table, the daily figure, and how to stop paying."""
    width = max(len(i.component) for i in est.items)
    lines = [f"Estimated cost of the running lab (us-east-1 list prices, {len(est.items)} items):"]
    for i in est.items:
        lines.append(f"  {i.component:<{width}}  ${i.usd_per_hour:8.4f}/h   {i.basis}")
    lines.append(f"  {'total':<{width}}  ${est.usd_per_hour:8.4f}/h   "
                 f"(about ${est.usd_per_day:.2f} per day left running)")
    lines.append(STOP_PAYING)
    return "\n".join(lines)
