-- =====================================================================================
-- Real-time clickstream anomaly detection: the analytics application's SQL (Flink SQL).
--
-- This file is executed for real by the job (labhelpers/job/pipeline.py), locally and on the
-- managed service. Placeholders in double braces are filled by labhelpers.sqlfile from
-- the lab's configuration; a placeholder left unfilled is an error.
--
-- Each statement below is one "in-application stream" of the original lab:
--   click_records   the raw lines of the input stream, with their event time and fields
--   clicks          the valid records, parsed
--   bad_records     the lines set aside, each with the reason (dead-letter output)
--   window_ctr      clicks, impressions and CTR per site per tumbling window
-- The Random Cut Forest then scores each window_ctr row (Python, in Flink keyed state)
-- and the scored rows go to the scores stream.
-- =====================================================================================

-- 1. The input stream. Each record is one line of JSON such as
--    {"browseraction": "Click", "site": "example.com", "event_time": "2026-11-27T10:00:00.123Z"}
--    We read the line as text so that a malformed record can be set aside instead of
--    stopping the job. Windows run on EVENT time (when the generator made the record),
--    not on arrival time, so a replay gives the same answer as the live run.
--    WATERMARK: a record may arrive up to {{lateness_seconds}} s after a later one;
--    a record later than that falls into a window that has already been reported: it is
--    set aside with the reason 'late' (below), never dropped silently. A line whose event time cannot be read gets 1970-01-01 so it never
--    moves the watermark; it is counted as a bad record below. The parsed time must print
--    back as the same text: the parser alone would turn 2026-02-30 into 2026-02-28.
CREATE TABLE click_records (
  line STRING,
  -- Each field as JSON, looked up once here: JSON_QUERY ... WITH ARRAY WRAPPER shows a
  -- field as ["Click"] for the string "Click", [7] for the number 7, NULL when missing.
  -- Every JSON function parses the whole line again, and the source's columns are worked
  -- out once per record, however often the views below use them.
  -- Fast path: a line in the generator's own layout (GENERATOR_LINE_PATTERN in
  -- labhelpers/job/contracts.py: its keys in its order, no spaces, plain strings) is a JSON
  -- object whose strings hold no quote: cut at the quotes, its fields are pieces 3, 7 and 11
  -- (SPLIT_INDEX counts from 0), far cheaper than parsing. Any other line goes through the
  -- JSON functions. Both ways give the same values, and the checks below treat them alike.
  is_object AS CASE WHEN REGEXP(line, '{{generator_line_pattern}}') THEN TRUE
                    ELSE line IS JSON OBJECT END,
  action_json AS CASE WHEN REGEXP(line, '{{generator_line_pattern}}')
    THEN CONCAT('["', SPLIT_INDEX(line, '"', 3), '"]')
    ELSE JSON_QUERY(line, '$.browseraction' WITH ARRAY WRAPPER) END,
  site_json AS CASE WHEN REGEXP(line, '{{generator_line_pattern}}')
    THEN CONCAT('["', SPLIT_INDEX(line, '"', 7), '"]')
    ELSE JSON_QUERY(line, '$.site' WITH ARRAY WRAPPER) END,
  -- the site's text (used when site_json shows a string)
  site AS CASE WHEN REGEXP(line, '{{generator_line_pattern}}') THEN SPLIT_INDEX(line, '"', 7)
               ELSE JSON_VALUE(line, '$.site') END,
  event_time AS COALESCE(
    CASE WHEN REGEXP(line, '{{generator_line_pattern}}') THEN
      CASE WHEN DATE_FORMAT(
             TO_TIMESTAMP(SPLIT_INDEX(line, '"', 11), 'yyyy-MM-dd''T''HH:mm:ss.SSS''Z'''),
             'yyyy-MM-dd''T''HH:mm:ss.SSS''Z''')
           = SPLIT_INDEX(line, '"', 11)
        THEN TO_TIMESTAMP(SPLIT_INDEX(line, '"', 11), 'yyyy-MM-dd''T''HH:mm:ss.SSS''Z''')
      END
    WHEN DATE_FORMAT(
           TO_TIMESTAMP(JSON_VALUE(line, '$.event_time'), 'yyyy-MM-dd''T''HH:mm:ss.SSS''Z'''),
           'yyyy-MM-dd''T''HH:mm:ss.SSS''Z''') = JSON_VALUE(line, '$.event_time')
      THEN TO_TIMESTAMP(JSON_VALUE(line, '$.event_time'), 'yyyy-MM-dd''T''HH:mm:ss.SSS''Z''')
    END,
    TIMESTAMP '1970-01-01 00:00:00.000'),
  WATERMARK FOR event_time AS event_time - INTERVAL '{{lateness_seconds}}' SECOND
) WITH (
  {{input_connector}}
);

-- The job (labhelpers/job/pipeline.py) reads click_records ONCE and works out checked_records
-- (below) ONCE per record, then shares its rows (event_time still carrying the source's
-- watermark) between the windows and the dead letters: both see the same records, the same
-- reasons and the same watermark in the same order, so a record is either counted in its
-- window or set aside as late, never both, never neither.

-- 2. Why a line is not usable, or NULL when it is. The rules, their limits (in characters)
--    and the reason words are defined once, in labhelpers/job/contracts.py, and filled in here.
--    A non-empty string is [" and one more character that is not the closing quote.
--    'late': the record's {{window_seconds}}-s window has already been reported. A tumbling
--    window drops a record iff its window's end - 1 ms <= the current watermark; exactly
--    those records go to the dead letters instead, so the window never drops anything.
CREATE TEMPORARY VIEW checked_records AS
SELECT
  line,
  event_time,
  CASE action_json
    WHEN '["Click"]' THEN 'Click'
    WHEN '["Impression"]' THEN 'Impression'
    WHEN '["DiscoveryKinesisTest"]' THEN 'DiscoveryKinesisTest'
  END AS browseraction,
  site,
  CASE
    WHEN CHAR_LENGTH(line) > {{max_record_chars}} THEN '{{reason_oversized}}'
    WHEN NOT is_object THEN '{{reason_not_json}}'
    WHEN COALESCE(action_json, '')
         NOT IN ('["Click"]', '["Impression"]', '["DiscoveryKinesisTest"]')
      THEN CASE WHEN REGEXP(COALESCE(action_json, ''), '^\["[^"]') THEN '{{reason_unknown_browseraction}}'
                ELSE '{{reason_missing_browseraction}}' END
    WHEN NOT REGEXP(COALESCE(site_json, ''), '^\["[^"]')
      OR CHAR_LENGTH(site) > {{max_site_chars}} THEN '{{reason_missing_site}}'
    WHEN event_time = TIMESTAMP '1970-01-01 00:00:00.000' THEN '{{reason_bad_event_time}}'
    WHEN TIMESTAMPADD(SECOND,
           TIMESTAMPDIFF(SECOND, TIMESTAMP '1970-01-01 00:00:00', event_time)
           - MOD(TIMESTAMPDIFF(SECOND, TIMESTAMP '1970-01-01 00:00:00', event_time),
                 {{window_seconds}}) + {{window_seconds}},
           TIMESTAMP '1970-01-01 00:00:00') - INTERVAL '0.001' SECOND
         <= CURRENT_WATERMARK(event_time) THEN '{{reason_late}}'
    ELSE CAST(NULL AS STRING)
  END AS reason
FROM click_records;

-- 3. The valid click and impression records.
CREATE TEMPORARY VIEW clicks AS
SELECT site, browseraction, event_time
FROM checked_records
WHERE reason IS NULL;

-- 4. The records set aside, with the reason: they never stop the job and never change
--    the results of the good records.
CREATE TEMPORARY VIEW bad_records AS
SELECT reason, SUBSTRING(line FROM 1 FOR 512) AS line
FROM checked_records
WHERE reason IS NOT NULL;

-- 5. Clicks, impressions and click-through rate per site per {{window_seconds}}-second
--    tumbling window. ONE aggregate with FILTER keeps windows that have no clicks
--    (CTR 0, still scored); the original lab's inner join of two counts dropped them.
--    A window with clicks but no impressions has no CTR (NULL), not a division by zero.
CREATE TEMPORARY VIEW window_ctr AS
SELECT
  DATE_FORMAT(window_start, 'yyyy-MM-dd''T''HH:mm:ss.SSS''Z''') AS window_start,
  DATE_FORMAT(window_end, 'yyyy-MM-dd''T''HH:mm:ss.SSS''Z''') AS window_end,
  site,
  clicks,
  impressions,
  CASE WHEN impressions > 0 THEN 100.0E0 * clicks / impressions END AS ctr
FROM (
  SELECT
    window_start,
    window_end,
    site,
    COUNT(*) FILTER (WHERE browseraction = 'Click') AS clicks,
    COUNT(*) FILTER (WHERE browseraction = 'Impression') AS impressions
  FROM TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(event_time), INTERVAL '{{window_seconds}}' SECOND))
  GROUP BY window_start, window_end, site
)
WHERE clicks > 0 OR impressions > 0;

-- 6. Where the scored windows go (the scores stream) and where bad records go.
CREATE TABLE scores (
  window_start STRING,
  window_end STRING,
  site STRING,
  clicks BIGINT,
  impressions BIGINT,
  ctr DOUBLE,
  anomaly_score DOUBLE,
  is_anomaly BOOLEAN,
  forest_ready BOOLEAN,
  attribution STRING,
  episode_id STRING,
  complete BOOLEAN,
  run_score DOUBLE,
  usual_clicks DOUBLE,
  usual_impressions DOUBLE,
  usual_ctr DOUBLE,
  flagged_by STRING
) WITH (
  {{scores_connector}}
);

CREATE TABLE dead_letters (
  reason STRING,
  line STRING
) WITH (
  {{dead_letter_connector}}
);
