"""The batch baseline of the benches: every 10-s window's clicks and impressions per site,
counted by DuckDB over the same JSON-lines file the job reads."""

from __future__ import annotations

from pathlib import Path


def recount(src: Path) -> dict[tuple[str, str], tuple[int, int]]:
    """The windows' counts computed by DuckDB over the file (the reference)."""
    import duckdb

    rows = duckdb.connect().execute(f"""
        SELECT strftime(to_timestamp(floor(epoch_ms(ts) / 10000) * 10) AT TIME ZONE 'UTC',
                        '%Y-%m-%dT%H:%M:%S.000Z') AS window_start, site,
               count(*) FILTER (WHERE browseraction = 'Click') AS clicks,
               count(*) FILTER (WHERE browseraction = 'Impression') AS impressions
        FROM (SELECT site, browseraction,
                     strptime(event_time, '%Y-%m-%dT%H:%M:%S.%gZ') AS ts
              FROM read_json('{src}', format='newline_delimited',
                             columns={{browseraction: 'VARCHAR', site: 'VARCHAR',
                                       event_time: 'VARCHAR'}}))
        GROUP BY ALL""").fetchall()
    return {(r[0], r[1]): (r[2], r[3]) for r in rows}
