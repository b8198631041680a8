"""What the managed Flink application is configured with: the runtime (pinned to the
installed Flink), the connectors of its streams, its property groups, and the configuration
keys the service lets a job set in its own code. The lifecycle (create, start, stop, delete)
is labhelpers.analytics.managed."""

from __future__ import annotations

import re
from typing import Any

from ..errors import AppError
from ..infra.config import LabConfig
from ..job.params import JobParams
from ..job.pipeline import JobSettings

RUN_OPTIONS_GROUP = "kinesis.analytics.flink.run.options"
EMULATOR_DISCOVERY_INTERVAL = "30s"  # see emulator_settings
IDLE_FETCH_INTERVAL = "1s"  # see kinesis_source
_FLINK_RE = re.compile(r"^FLINK-(\d+)_(\d+)$")
# Flink configuration keys an application may change in its own code on the managed service:
# from Flink 2.2 the service throws on any other key ("Programmatic Flink configuration
# properties" in the Managed Service for Apache Flink developer guide). Everything else
# (parallelism, checkpointing, state backend) is set through the application's configuration
# (FlinkApplicationConfiguration), never in the job. tests/test_managed.py checks pipeline.build().
# Copied from that page (November 2026) without the ML, vector-search, Iceberg, delta-join and
# adaptive-join keys the lab has no use for: a stricter list is safe; check the page before
# adding a key.
PROGRAMMATIC_CONFIG_ALLOWED = frozenset("""
execution.runtime-mode pipeline.auto-generate-uids pipeline.auto-watermark-interval
pipeline.cached-files pipeline.classpaths pipeline.closure-cleaner-level pipeline.force-avro
pipeline.force-kryo pipeline.generic-types pipeline.global-job-parameters pipeline.jars
pipeline.jobvertex-parallelism-overrides pipeline.max-parallelism pipeline.name
pipeline.object-reuse pipeline.operator-chaining.chain-operators-with-different-max-parallelism
pipeline.operator-chaining.enabled pipeline.serialization-config pipeline.vertex-description-mode
pipeline.vertex-name-include-index-prefix pipeline.watermark-alignment.allow-unaligned-source-splits
execution.checkpointing.interval-during-backlog execution.checkpointing.unaligned
taskmanager.network.adaptive-partitioner.enabled
taskmanager.network.adaptive-partitioner.max-traverse-size
python.execution-mode python.operator-chaining.enabled python.job-options
python.internal.archives-key-map python.internal.files-key-map
python.internal.requirements-file-key
table.exec.async-lookup.buffer-capacity table.exec.async-lookup.key-ordered-enabled
table.exec.async-lookup.output-mode table.exec.async-lookup.timeout
table.exec.async-scalar.max-concurrent-operations table.exec.async-scalar.max-attempts
table.exec.async-scalar.retry-delay table.exec.async-scalar.retry-strategy
table.exec.async-scalar.timeout table.exec.async-state.enabled
table.exec.deduplicate.insert-update-after-sensitive-enabled
table.exec.deduplicate.mini-batch.compact-changes-enabled table.exec.disabled-operators
table.exec.interval-join.min-cleanup-interval table.exec.legacy-cast-behaviour
table.exec.mini-batch.allow-latency table.exec.mini-batch.enabled table.exec.mini-batch.size
table.exec.operator-fusion-codegen.enabled table.exec.simplify-operator-name-enabled
table.exec.sink.keyed-shuffle table.exec.sink.not-null-enforcer table.exec.sink.upsert-materialize
table.exec.sink.type-length-enforcer table.exec.sort.default-limit
table.exec.source.cdc-events-duplicate table.exec.source.idle-timeout table.exec.state.ttl
table.exec.uid.format table.exec.uid.generation table.exec.window-agg.buffer-size-limit
table.optimizer.agg-phase-strategy table.optimizer.distinct-agg.split.bucket-num
table.optimizer.distinct-agg.split.enabled table.optimizer.join-reorder-enabled
table.optimizer.multiple-input-enabled table.optimizer.non-deterministic-update.strategy
table.optimizer.reuse-source-enabled table.optimizer.reuse-sub-plan-enabled
table.builtin-catalog-name table.builtin-database-name table.dml-sync
table.dynamic-table-options.enabled table.generated-code.max-length table.local-time-zone
table.plan.compile.catalog-objects table.plan.force-recompile table.plan.restore.catalog-objects
table.rtas-ctas.atomicity-enabled table.sql-dialect
""".split())
_LOOPBACK_RE = re.compile(r"^https?://(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?/?$")


def _listed_runtimes() -> list[str]:
    import botocore.session

    model = botocore.session.get_session().get_service_model("kinesisanalyticsv2")
    return [v for v in model.shape_for("RuntimeEnvironment").enum if _FLINK_RE.match(v)]


def flink_runtime(flink_version: str | None = None) -> str:
    """The managed runtime for the installed apache-flink: ``FLINK-2_3`` for 2.3.x.

    The job is written and tested against that PyFlink, so the service must run the same
    minor version, whatever newer runtimes botocore lists. AppError when this botocore does not
    know it (the floor in pyproject.toml is the first release that does).
    """
    if flink_version is None:
        import importlib.metadata

        flink_version = importlib.metadata.version("apache-flink")
    m = re.match(r"^(\d+)\.(\d+)", flink_version)
    if not m:
        raise AppError(f"Cannot read the Flink version {flink_version!r}",
                       "reinstall the lab (pip install -e .), which pins apache-flink.")
    runtime = f"FLINK-{m.group(1)}_{m.group(2)}"
    listed = _listed_runtimes()
    if runtime not in listed:
        import botocore

        raise AppError(
            f"botocore {botocore.__version__} does not know the managed runtime {runtime} "
            f"(apache-flink {flink_version}); it lists {', '.join(listed) or 'none'}",
            "upgrade boto3 and botocore (pip install -U boto3 botocore, or reinstall the lab: "
            "pyproject.toml sets the floor).",
        )
    return runtime


def newest_runtime() -> str:
    """The newest ``FLINK-x_y`` runtime that this botocore's service model lists (informative;
    applications use ``flink_runtime``)."""
    found = _listed_runtimes()
    if not found:
        raise AppError("botocore lists no Flink runtime for Managed Service for Apache Flink",
                       "upgrade boto3 (pip install -U boto3).")

    def version(name: str) -> tuple[int, int]:
        major, minor = _FLINK_RE.match(name).groups()  # type: ignore[union-attr]
        return int(major), int(minor)

    return max(found, key=version)


# ---------------------------------------------------------------- connector options
def _endpoint_options(endpoint: str | None, credentials: dict[str, str] | None) -> dict[str, str]:
    opts: dict[str, str] = {}
    if credentials and not (endpoint and _LOOPBACK_RE.match(endpoint)):
        # Keys written into properties end up in the service's configuration and logs: only
        # the emulator's fake keys may go there; on AWS the application's role is used.
        raise AppError("Connector credentials are only allowed with a loopback emulator endpoint",
                       "leave credentials out on AWS (the application's IAM role is used).")
    if endpoint:
        opts["aws.endpoint"] = endpoint
        # Emulators speak HTTP/1.1 only; the connector's async (sink) client defaults to HTTP/2.
        # (Measured with the AWS SDK v2 against moto: HTTP/2 fails at the first frame.)
        opts["aws.http.protocol.version"] = "HTTP1_1"
    if credentials:
        opts["aws.credentials.provider"] = "BASIC"
        opts["aws.credentials.basic.accesskeyid"] = credentials["aws_access_key_id"]
        opts["aws.credentials.basic.secretkey"] = credentials["aws_secret_access_key"]
    return opts


def kinesis_source(stream_arn: str, region: str, *, start_position: str = "TRIM_HORIZON",
                   endpoint: str | None = None,
                   credentials: dict[str, str] | None = None) -> dict[str, str]:
    """Options of the ``kinesis`` table source reading raw lines (the SQL parses them).

    start_position: TRIM_HORIZON (everything the stream still holds, as the local app reads
    its log from the start) or LATEST.
    """
    if start_position not in ("TRIM_HORIZON", "LATEST"):
        raise AppError(f"Unknown start position {start_position!r}", "use TRIM_HORIZON or LATEST.")
    return {
        "connector": "kinesis",
        "stream.arn": stream_arn,
        "aws.region": region,
        "source.init.position": start_position,
        # A shard answers 5 GetRecords calls a second, shared by every reader: the source
        # (250 ms by default when idle: 4 a second) + Firehose (1) would leave the notebooks
        # nothing. Once a second when idle keeps the lab's readers within one shard's budget.
        "source.reader.empty-records-fetch-interval": IDLE_FETCH_INTERVAL,
        "format": "raw",
        **_endpoint_options(endpoint, credentials),
    }


def kinesis_sink(stream_arn: str, region: str, *, endpoint: str | None = None,
                 credentials: dict[str, str] | None = None) -> dict[str, str]:
    """Options of the ``kinesis`` table sink writing one JSON object per row."""
    return {
        "connector": "kinesis",
        "stream.arn": stream_arn,
        "aws.region": region,
        "format": "json",
        # a score row leaves within 1 s (the sink's default waits up to 5 s for a fuller
        # batch): it is what the alert's latency is made of, and the lab writes a few rows
        # a window, far below a shard's limits
        "sink.flush-buffer.timeout": "1000",
        **_endpoint_options(endpoint, credentials),
    }


def cloud_settings(
    cfg: LabConfig,
    outputs: dict[str, str],
    params: JobParams | dict | None = None,
    *,
    endpoint: str | None = None,
    credentials: dict[str, str] | None = None,
    runtime: dict[str, str] | None = None,
    start_position: str = "TRIM_HORIZON",
) -> JobSettings:
    """Job settings that read the input stream (from ``start_position``: TRIM_HORIZON or
    LATEST) and write the scores and dead-letter streams.

    ``outputs`` are the stack outputs (InputStreamArn, ScoresStreamArn, DeadLetterStreamArn).
    ``endpoint``/``credentials`` point the connector at a local emulator (tests and the local
    proof of the cloud configuration); on AWS leave them out.
    """
    missing = [k for k in ("InputStreamArn", "ScoresStreamArn", "DeadLetterStreamArn")
               if k not in outputs]
    if missing:
        raise AppError(f"The stack outputs lack {', '.join(missing)}",
                       "deploy the current template first (notebook 01 or "
                       "`python -m labhelpers deploy`).")
    region = cfg.region
    return JobSettings(
        input_connector=kinesis_source(outputs["InputStreamArn"], region, endpoint=endpoint,
                                       credentials=credentials, start_position=start_position),
        scores_connector=kinesis_sink(outputs["ScoresStreamArn"], region, endpoint=endpoint,
                                      credentials=credentials),
        dead_letter_connector=kinesis_sink(outputs["DeadLetterStreamArn"], region,
                                           endpoint=endpoint, credentials=credentials),
        params=JobParams.of(params),
        runtime=dict(runtime or {}),
    )


def emulator_settings(cfg: LabConfig, outputs: dict[str, str], jar, work,
                      params: JobParams | dict | None = None, *,
                      endpoint: str | None = None,
                      start_position: str = "TRIM_HORIZON") -> JobSettings:
    """The cloud configuration pointed at the local emulator, for the local mini-cluster.

    Same connectors and options as on AWS, plus the emulator's endpoint, its fake keys and
    ``pipeline.jars`` = the connector jar (the service loads it from the zip instead).
    endpoint: the emulator's URL; default ``cfg.endpoint_url`` (local backend). An aws-backend
    config rehearsed against the emulator passes its loopback endpoint here.
    """
    from pathlib import Path

    from ..flinkenv import local_runtime
    from ..infra.config import LOCAL_CREDENTIALS

    endpoint = endpoint or cfg.endpoint_url
    if not endpoint or not _LOOPBACK_RE.match(endpoint):
        raise AppError(f"emulator_settings needs a loopback emulator endpoint, not {endpoint!r}",
                       "use cloud_settings on AWS; for the emulator pass its URL "
                       "(http://127.0.0.1:PORT).")
    runtime = {**local_runtime(Path(work)), "pipeline.jars": Path(jar).resolve().as_uri()}
    settings = cloud_settings(cfg, outputs, params, endpoint=endpoint,
                              start_position=start_position,
                              credentials=dict(LOCAL_CREDENTIALS), runtime=runtime)
    # The connector's periodic shard discovery first fires one interval (default 10 s) after
    # start; if the initial discovery has not finished by then (a busy machine: measured here),
    # it fails with "exclusiveStartShardId cannot be null" and the job restarts in a loop
    # ("Partial recovery is not supported"). The lab's streams never reshard: look rarely.
    settings.input_connector["source.shard.discovery.interval"] = EMULATOR_DISCOVERY_INTERVAL
    return settings


def application_properties(settings: JobSettings) -> list[dict[str, Any]]:
    """The application's property groups: the run options the service needs to find the
    Python entry point, the jar and the Python dependencies, then the job's own groups."""
    from . import packaging

    run_options = {
        "python": packaging.MAIN_FILE,
        "jarfile": f"{packaging.LIB_DIR}/{packaging.JAR_NAME}",
        "pyFiles": f"{packaging.DEP_DIR}/",
    }
    groups = [{"PropertyGroupId": RUN_OPTIONS_GROUP, "PropertyMap": run_options}]
    # The service rejects an empty group (PropertyMap needs 1-50 entries).
    groups += [g for g in settings.to_properties() if g["PropertyMap"]]
    for g in groups:
        too_long = [k for k, v in g["PropertyMap"].items() if len(v) > 2048]
        if too_long:
            raise AppError(f"Property {g['PropertyGroupId']}.{too_long[0]} is over 2048 characters",
                           "shorten the value; the service limits property values to 2048.")
    if len(groups) > 50:
        raise AppError(f"{len(groups)} property groups", "the service allows at most 50.")
    return groups


def runtime_not_offered(cfg: LabConfig, runtime: str, answer: str,
                        partition: str = "aws") -> AppError:
    """The region refused the runtime: one sentence naming where to go instead.

    AWS publishes no machine-readable list of the regions per runtime (botocore lists the
    regions of the service, not of each runtime), so the regions named are those of the
    service nearest the chosen one's geography, to be checked in the console."""
    import boto3

    offered = boto3.Session().get_available_regions("kinesisanalyticsv2", partition)
    area = cfg.region.split("-")[0]
    near = [r for r in offered if r.startswith(area + "-") and r != cfg.region][:4] \
        or [r for r in ("us-east-1", "us-west-2", "eu-west-1") if r in offered]
    return AppError(
        f"Region {cfg.region} does not offer the managed runtime {runtime} (Apache Flink "
        f"{runtime[6:].replace('_', '.')}), which the lab's job is built for; the service "
        f"answered: {answer}",
        f"choose a region whose Managed Service for Apache Flink offers it (the console's "
        f"runtime list when creating an application), e.g. try {', '.join(near)} "
        "(LAB_REGION), then deploy again.")
