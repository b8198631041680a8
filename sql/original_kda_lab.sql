-- =====================================================================================
-- The ORIGINAL lab's analytics application (Kinesis Data Analytics for SQL, 2019),
-- re-written here from its description, for comparison. It is NOT run by this lab
-- and cannot run anywhere today: KDA for SQL stopped taking new applications in
-- October 2025 and deleted the rest in January 2026.
--
-- KDA SQL works with "in-application streams" and "pumps": a pump is a continuous
-- INSERT that moves rows from one stream into another. SOURCE_SQL_STREAM_001 was the
-- input, its columns found by the console's schema discovery from live records.
-- ROWTIME is the time KDA received a row: the records themselves carried no time.
-- =====================================================================================

-- A. Clicks per 10-second window of ARRIVAL time (ROWTIME), all sites together.
CREATE OR REPLACE STREAM "CLICK_COUNTS" (click_count INTEGER);
CREATE OR REPLACE PUMP "CLICK_PUMP" AS
  INSERT INTO "CLICK_COUNTS"
  SELECT STREAM COUNT(*)
  FROM "SOURCE_SQL_STREAM_001"
  WHERE "browseraction" = 'Click'
  GROUP BY STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '10' SECOND);

-- B. The same for impressions.
CREATE OR REPLACE STREAM "IMPRESSION_COUNTS" (impression_count INTEGER);
CREATE OR REPLACE PUMP "IMPRESSION_PUMP" AS
  INSERT INTO "IMPRESSION_COUNTS"
  SELECT STREAM COUNT(*)
  FROM "SOURCE_SQL_STREAM_001"
  WHERE "browseraction" = 'Impression'
  GROUP BY STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '10' SECOND);

-- C. Join the two counts of the same window: CTR in percent. An INNER join: a window
--    without any click (or without any impression) has no partner row and vanishes,
--    so a CTR that collapses to 0 % never reaches the model.
CREATE OR REPLACE STREAM "CTR_STREAM" (
  click_count INTEGER, impression_count INTEGER, ctr DOUBLE);
CREATE OR REPLACE PUMP "CTR_PUMP" AS
  INSERT INTO "CTR_STREAM"
  SELECT STREAM c.click_count, i.impression_count,
         CAST(c.click_count AS DOUBLE) / i.impression_count * 100
  FROM "CLICK_COUNTS" OVER (RANGE INTERVAL '1' SECOND PRECEDING) AS c
  JOIN "IMPRESSION_COUNTS" OVER (RANGE INTERVAL '1' SECOND PRECEDING) AS i
    ON c.ROWTIME = i.ROWTIME;

-- D. The built-in model: every numeric column of the cursor's rows is one input of the
--    point; the cursor selects the CTR alone. Arguments: 100 trees, subsample size 12
--    (scores after ~2 minutes), time decay 100000, shingle size 1. One forest for the whole
--    stream: no key, no site.
CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (ctr DOUBLE, anomaly_score DOUBLE);
CREATE OR REPLACE PUMP "SCORE_PUMP" AS
  INSERT INTO "DESTINATION_SQL_STREAM"
  SELECT STREAM ctr, ANOMALY_SCORE
  FROM TABLE(RANDOM_CUT_FOREST(
         CURSOR(SELECT STREAM ctr FROM "CTR_STREAM"), 100, 12, 100000, 1))
  -- E. Keep the rows scoring above 2: each one became an e-mail and an SMS.
  WHERE ANOMALY_SCORE > 2;
