"""The analytics application: the lab's Flink SQL plus a Random Cut Forest in keyed state.

Run as a program (``python -m labhelpers.job.pipeline --properties FILE``) by the local
runner (labhelpers/analytics/runner.py) and by ``replay``; the properties file has the same
shape as the managed service's runtime properties (a list of property groups), so the same job
runs in the cloud.

Pipeline: SQL (source -> checked records, worked out once and shared: ``_share_checked`` ->
window_ctr) -> to DataStream -> key by site -> ForestScorer (krcf forest per site in
ValueState) -> back to a table -> INSERT INTO scores; bad records -> INSERT INTO dead_letters.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .contracts import SCORE_COLUMNS, SCORE_TYPES, sql_values
from .errors import ConfigError
from .forest import ForestParams, SiteModel
from .params import JobParams
from .sqlfile import connector_options, render_sql, split_statements

# Property group ids of the connectors and runtime (the parameters': job/params.py).
GROUP_INPUT = "lab.connector.input"
GROUP_SCORES = "lab.connector.scores"
GROUP_DEAD = "lab.connector.dead_letters"
GROUP_RUNTIME = "lab.runtime"
# Where the app's reported windows begin (see JobSettings.report_from_ms); optional.
GROUP_START = "lab.start"
CLOUD_PROPERTIES = Path("/etc/flink/application_properties.json")
# Learned windows between two forest snapshots in keyed state (see ForestScorer).
SNAPSHOT_EVERY = 64


@dataclass
class JobSettings:
    """Everything the job needs: the parameters (``JobParams``) plus where it reads and
    writes and the Flink runtime settings; built from property groups (``from_properties``)."""

    input_connector: dict[str, str]
    scores_connector: dict[str, str]
    dead_letter_connector: dict[str, str]
    params: JobParams = field(default_factory=JobParams)
    runtime: dict[str, str] = field(default_factory=dict)
    # Warm-up: windows that end at or before this instant (epoch ms) are read and learned by
    # the forest but not reported (no score row, no alert); None reports every window.
    report_from_ms: int | None = None

    @property
    def window_seconds(self) -> int:
        return self.params.window_seconds

    @property
    def lateness_seconds(self) -> int:
        return self.params.lateness_seconds

    @property
    def forest(self) -> ForestParams:
        return self.params.forest

    def to_properties(self) -> list[dict[str, Any]]:
        """The property groups, as written to a local file or the managed service."""

        def group(gid: str, values: dict[str, Any]) -> dict[str, Any]:
            return {"PropertyGroupId": gid, "PropertyMap": {k: str(v) for k, v in values.items()}}

        start = [] if self.report_from_ms is None else [
            group(GROUP_START, {"report_from_ms": int(self.report_from_ms)})]
        return [
            *self.params.groups(),
            group(GROUP_INPUT, self.input_connector),
            group(GROUP_SCORES, self.scores_connector),
            group(GROUP_DEAD, self.dead_letter_connector),
            group(GROUP_RUNTIME, self.runtime),
            *start,
        ]

    @classmethod
    def from_properties(cls, groups: list[dict[str, Any]]) -> JobSettings:
        """Parse and validate property groups; a missing group or unknown key is an error."""
        by_id = {g["PropertyGroupId"]: dict(g.get("PropertyMap", {})) for g in groups}
        for gid in (GROUP_INPUT, GROUP_SCORES, GROUP_DEAD):
            if gid not in by_id or "connector" not in by_id[gid]:
                raise ConfigError(
                    f"Property group {gid} is missing or has no 'connector'",
                    "write the properties with labhelpers (JobSettings.to_properties).",
                )
        start = by_id.get(GROUP_START, {})
        unknown = set(start) - {"report_from_ms"}
        try:
            report_from = int(start["report_from_ms"]) if "report_from_ms" in start else None
        except ValueError:
            unknown.add("report_from_ms")
        if unknown:
            raise ConfigError(
                f"Property group {GROUP_START} has unknown or bad keys: {sorted(unknown)}",
                "give only report_from_ms, in epoch milliseconds (JobSettings.to_properties).",
            )
        return cls(
            input_connector=by_id[GROUP_INPUT],
            scores_connector=by_id[GROUP_SCORES],
            dead_letter_connector=by_id[GROUP_DEAD],
            params=JobParams.from_groups(by_id),
            runtime=by_id.get(GROUP_RUNTIME, {}),
            report_from_ms=report_from,
        )

    def sql(self) -> str:
        """The lab's SQL with this job's values filled in."""
        return render_sql(
            {
                "input_connector": connector_options(self.input_connector),
                "scores_connector": connector_options(self.scores_connector),
                "dead_letter_connector": connector_options(self.dead_letter_connector),
                "window_seconds": int(self.window_seconds),
                "lateness_seconds": int(self.lateness_seconds),
                **sql_values(),
            }
        )


def filesystem_source(path: Path | str, continuous: bool, monitor_interval: str = "1s") -> dict:
    """Connector options for reading a local stream log (or one file) as raw lines."""
    opts = {"connector": "filesystem", "path": str(path), "format": "raw"}
    if continuous:
        opts["source.monitor-interval"] = monitor_interval
    return opts


def filesystem_sink(path: Path | str, rollover: str = "1s") -> dict:
    """Connector options for writing JSON lines into a local stream-log folder.

    Files become visible when a checkpoint commits them, so the checkpoint interval bounds
    the latency from a window closing to its score being readable.
    """
    return {
        "connector": "filesystem",
        "path": str(path),
        "format": "json",
        "sink.rolling-policy.rollover-interval": rollover,
        "sink.rolling-policy.check-interval": rollover,
        "sink.rolling-policy.inactivity-interval": rollover,
    }


def _score_type():
    from pyflink.common import Types

    kinds = {"BIGINT": Types.LONG(), "DOUBLE": Types.DOUBLE(), "BOOLEAN": Types.BOOLEAN()}
    types = [kinds[SCORE_TYPES[c]] if c in SCORE_TYPES else Types.STRING()
             for c in SCORE_COLUMNS]
    return Types.ROW_NAMED(list(SCORE_COLUMNS), types)


# Flink's watermark at the end of a bounded input (Long.MAX_VALUE).
END_OF_INPUT = 2**63 - 1


def _iso_ms(ms: int) -> str:
    """Epoch ms as the SQL's window text (yyyy-MM-ddTHH:mm:ss.SSSZ)."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{ms % 1000:03d}Z"


def _make_scorer(params: ForestParams, report_from_ms: int | None = None):
    """The keyed process function; built in a function so that importing this module
    does not need PyFlink (the CLI and tests import it without a JVM)."""
    from pyflink.common import Row, Types
    from pyflink.datastream import KeyedProcessFunction, RuntimeContext
    from pyflink.datastream.state import ListStateDescriptor, ValueStateDescriptor

    class ForestScorer(KeyedProcessFunction):
        """One forest per site, in Flink keyed state (checkpointed): a forest snapshot every
        SNAPSHOT_EVERY learned windows, the points learned since, and a small meta record.
        Between windows the live model stays in this worker's cache, which open() empties;
        open() runs again whenever the job restores from a checkpoint, so a restored job
        rebuilds every model from its state instead of trusting a stale one.

        Windows are scored on an event-time timer at their end, not when they arrive:
        - a window row waits in keyed state (``pending``) until the watermark passes its
          end. If that watermark is the end of a bounded input (Long.MAX_VALUE) and no
          window of any site started at or after its end, the input ended inside it: it is
          reported with ``complete`` false and never scored or alerted on;
        - a site that sent a window but has no row for the next one when the watermark
          passes its end went silent: it gets a window with zero counts, scored like any
          other (a dark site is an anomaly), for at most ``dark_windows`` windows in a row.
          No zero window is made after the end of a bounded input, nor for a site that
          never sent anything. Timers and pending rows are keyed state, so they are in the
          checkpoint and a restored job emits the same windows as an uninterrupted one.
        """

        def __init__(self, params_dict: dict[str, Any], report_from_ms: int | None) -> None:
            self.params_dict = params_dict
            self.report_from_ms = report_from_ms

        def open(self, runtime_context: RuntimeContext) -> None:
            self.params = ForestParams.from_dict(self.params_dict)
            self.meta_state = runtime_context.get_state(
                ValueStateDescriptor("model_meta", Types.STRING()))
            self.snapshot_state = runtime_context.get_state(
                ValueStateDescriptor("forest_snapshot", Types.PICKLED_BYTE_ARRAY()))
            self.points_state = runtime_context.get_list_state(
                ListStateDescriptor("points_since_snapshot", Types.STRING()))
            # window rows waiting for their timer: {window_end_ms: row} as JSON, and the
            # site's window length (for the next window's silence timer)
            self.pending_state = runtime_context.get_state(
                ValueStateDescriptor("pending_windows", Types.STRING()))
            self.cache: dict[str, SiteModel] = {}
            self.since_snapshot: dict[str, int] = {}
            # the latest window start seen by this worker (any site): a window that ends
            # at or before it was followed by more input, so it is complete
            self.latest_start_ms = -(2**62)

        def _model(self, site: str) -> SiteModel:
            model = self.cache.get(site)
            if model is not None:
                return model
            raw = self.meta_state.value()
            if raw is None:
                model = SiteModel(self.params)
                self.since_snapshot[site] = 0
            else:
                points = [json.loads(p) for p in (self.points_state.get() or [])]
                self.since_snapshot[site] = len(points)
                model = SiteModel.restore(self.params, json.loads(raw),
                                          self.snapshot_state.value(), points)
            self.cache[site] = model
            return model

        def _pending(self) -> dict[str, Any]:
            raw = self.pending_state.value()
            return {"rows": {}, "window_ms": None} if raw is None else json.loads(raw)

        def process_element(self, value, ctx):
            row = value.as_dict()
            # window_start/end come from the SQL's DATE_FORMAT, always ...T..:..:..Z
            start_ms = int(datetime.fromisoformat(row["window_start"]).timestamp() * 1000)
            end_ms = int(datetime.fromisoformat(row["window_end"]).timestamp() * 1000)
            self.latest_start_ms = max(self.latest_start_ms, start_ms)
            pending = self._pending()
            pending["rows"][str(end_ms)] = row
            pending["window_ms"] = end_ms - start_ms
            self.pending_state.update(json.dumps(pending))
            ctx.timer_service().register_event_time_timer(end_ms - 1)
            return iter(())

        def on_timer(self, timestamp: int, ctx):
            end_ms = timestamp + 1
            at_end = ctx.timer_service().current_watermark() >= END_OF_INPUT
            pending = self._pending()
            row = pending["rows"].pop(str(end_ms), None)
            site = ctx.get_current_key()
            window_ms = pending["window_ms"]
            if row is None:
                model = self._model(site)
                # a silent window: only while the input goes on, only for a site that has
                # sent something, and only for dark_windows windows in a row
                if at_end or model.silent >= self.params.dark_windows:
                    return
                row = {"window_start": _iso_ms(end_ms - window_ms),
                       "window_end": _iso_ms(end_ms), "site": site, "clicks": 0,
                       "impressions": 0, "ctr": None}
                complete = True
            else:
                model = self._model(site)
                complete = not at_end or end_ms <= self.latest_start_ms
            self.pending_state.update(json.dumps(pending))
            out = model.score(row, end_ms, complete=complete)
            if model.learned_point is not None:
                n = self.since_snapshot[site] + 1
                if n >= SNAPSHOT_EVERY:
                    self.snapshot_state.update(model.forest_bytes())
                    self.points_state.clear()
                    n = 0
                else:
                    self.points_state.add(json.dumps(model.learned_point))
                self.since_snapshot[site] = n
            self.meta_state.update(json.dumps(model.meta()))
            if not at_end and self.params.dark_windows > 0:
                # watch the next window: no row for it by then means the site went silent
                ctx.timer_service().register_event_time_timer(end_ms + window_ms - 1)
            if self.report_from_ms is not None and end_ms <= self.report_from_ms:
                return  # warm-up: learned above, not reported
            yield Row(*[out[c] for c in SCORE_COLUMNS])

    return ForestScorer(params.to_dict(), report_from_ms)


def _share_checked(t_env) -> None:
    """Replace the view ``checked_records`` by its rows worked out once, shared by the windows
    (``clicks``) and the dead letters (``bad_records``); see the SQL. As a plain view, each of
    the two would evaluate the record checks again, and two reads of the source would each have
    their own watermark: the 'late' decision of one would not match the other's window."""
    from pyflink.table import Schema

    shared = t_env.to_data_stream(t_env.from_path("checked_records"))
    schema = Schema.new_builder().watermark("event_time", "SOURCE_WATERMARK()").build()
    t_env.drop_temporary_view("checked_records")
    t_env.create_temporary_view("checked_records", t_env.from_data_stream(shared, schema))


def build(settings: JobSettings):
    """Create the environments, run the SQL DDL, wire the forest, return a statement set."""
    from pyflink.common import Configuration
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.table import StreamTableEnvironment

    # Only the lab.runtime group (the local mini-cluster's settings; empty on the managed
    # service, whose parallelism comes from the application's ParallelismConfiguration) is
    # configured here. From Flink 2.2 the service throws when code changes a key that is not on
    # its allow-list (managed_config.PROGRAMMATIC_CONFIG_ALLOWED), so nothing else is set in code
    # except table.local-time-zone, which is on it (tests/test_managed.py checks both).
    conf = Configuration()
    for key, value in settings.runtime.items():
        conf.set_string(key, str(value))
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    t_env = StreamTableEnvironment.create(env)
    t_env.get_config().set("table.local-time-zone", "UTC")
    for statement in split_statements(settings.sql()):
        t_env.execute_sql(statement)
        if statement.startswith("CREATE TEMPORARY VIEW checked_records"):
            _share_checked(t_env)
    windows = t_env.to_data_stream(t_env.from_path("window_ctr"))
    scored = (
        windows.key_by(lambda r: r["site"])
        .process(_make_scorer(settings.forest, settings.report_from_ms),
                 output_type=_score_type())
        .name("random_cut_forest")
    )
    statements = t_env.create_statement_set()
    statements.add_insert("scores", t_env.from_data_stream(scored))
    statements.add_insert_sql("INSERT INTO dead_letters SELECT reason, line FROM bad_records")
    return statements


def run(settings: JobSettings, wait: bool = True):
    """Submit the job; with ``wait`` block until it ends (bounded input) or is cancelled."""
    result = build(settings).execute()
    if wait:
        result.wait()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the lab's analytics application.")
    parser.add_argument("--properties", type=Path, default=None,
                        help=f"property groups JSON (default on the managed service: "
                             f"{CLOUD_PROPERTIES})")
    args = parser.parse_args(argv)
    path = args.properties or CLOUD_PROPERTIES
    if not path.exists():
        print(f"Properties file {path} not found. Fix: start the app with "
              f"`python -m labhelpers app start`.", file=sys.stderr)
        return 2
    run(JobSettings.from_properties(json.loads(path.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
