"""The baseline of bench/bench_throughput.py: a plain PyFlink job with the lab's windows.

    python bench/_plain_job.py INPUT.jsonl OUT_DIR WORK_DIR

Flink's JSON format (one parse per record, no checks, no dead letters, no forest), the same
10-s tumbling event-time windows and counts as the lab's SQL, written as JSON lines to
OUT_DIR. Run with the lab's mini-cluster settings (flinkenv.local_runtime, no checkpoints),
so that the two jobs differ only in what the lab adds.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pyflink.common import Configuration
from pyflink.table import EnvironmentSettings, TableEnvironment

from labhelpers.flinkenv import local_runtime


def main(src: str, out: str, work: str) -> None:
    conf = Configuration()
    for key, value in local_runtime(Path(work), checkpoint_interval=None).items():
        conf.set_string(key, value)
    t_env = TableEnvironment.create(
        EnvironmentSettings.new_instance().in_streaming_mode().with_configuration(conf).build())
    t_env.get_config().set("table.local-time-zone", "UTC")
    t_env.execute_sql(f"""
        CREATE TABLE clicks (
          browseraction STRING, site STRING, event_time STRING,
          ts AS TO_TIMESTAMP(event_time, 'yyyy-MM-dd''T''HH:mm:ss.SSS''Z'''),
          WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
        ) WITH ('connector' = 'filesystem', 'path' = '{src}', 'format' = 'json')""")
    t_env.execute_sql(f"""
        CREATE TABLE windows (window_start STRING, site STRING, clicks BIGINT,
                              impressions BIGINT)
        WITH ('connector' = 'filesystem', 'path' = '{out}', 'format' = 'json')""")
    t_env.execute_sql("""
        INSERT INTO windows
        SELECT DATE_FORMAT(window_start, 'yyyy-MM-dd''T''HH:mm:ss.SSS''Z'''), site,
               COUNT(*) FILTER (WHERE browseraction = 'Click'),
               COUNT(*) FILTER (WHERE browseraction = 'Impression')
        FROM TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(ts), INTERVAL '10' SECOND))
        GROUP BY window_start, window_end, site""").wait()


if __name__ == "__main__":
    main(*sys.argv[1:4])
