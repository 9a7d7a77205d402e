-- Version 16 (issue 22, items 1 and the overview's rollups).
--
-- A delivery's first attempt that succeeds is kept in the delivery row (`sent_*`) instead of
-- an attempts row: one row write per successful delivery instead of a row plus three B-tree
-- entries. Attempts rows are for failures and retries; the history reads both and shows the
-- same log either way (store/sqlite/deliveries.rs, `attempts`).
ALTER TABLE deliveries ADD COLUMN sent_at INTEGER;
ALTER TABLE deliveries ADD COLUMN sent_duration_ms INTEGER;
ALTER TABLE deliveries ADD COLUMN sent_status_code INTEGER;
ALTER TABLE deliveries ADD COLUMN sent_response_headers TEXT;
ALTER TABLE deliveries ADD COLUMN sent_response_body TEXT;

-- The overview's charts read these instead of scanning attempts: attempts per UTC hour
-- (every tenant), and publish → first attempt latency per hour as a histogram
-- (`store::activity::latency_bucket`). The recorder adds to them in the transaction that
-- records the attempts, so they agree with the history after any crash.
CREATE TABLE activity_hours (
    hour      INTEGER PRIMARY KEY,           -- start of the UTC hour, ms
    succeeded INTEGER NOT NULL DEFAULT 0,     -- attempts answered 2xx
    failed    INTEGER NOT NULL DEFAULT 0      -- any other answer, or none
) STRICT;
CREATE TABLE latency_hours (
    hour   INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    count  INTEGER NOT NULL,
    PRIMARY KEY (hour, bucket)
) STRICT, WITHOUT ROWID;

-- The history so far, counted once (the charts show 7 days; older hours are pruned anyway).
INSERT INTO activity_hours (hour, succeeded, failed)
SELECT started_at / 3600000 * 3600000,
       coalesce(sum(status_code BETWEEN 200 AND 299), 0),
       sum(status_code IS NULL OR status_code NOT BETWEEN 200 AND 299)
FROM attempts GROUP BY 1;

-- Latency of first attempts: the migration cannot call Rust's bucket function, so the
-- past is bucketed the same way in SQL (exact below 16 ms, then 8 buckets per power of
-- two; see `latency_bucket`). Only the last 48 hours: the chart shows 24.
INSERT INTO latency_hours (hour, bucket, count)
SELECT hour, bucket, count(*) FROM (
    SELECT a.started_at / 3600000 * 3600000 AS hour,
           CASE WHEN l < 16 THEN l
                ELSE 16 + (e - 4) * 8 + ((l >> (e - 3)) & 7) END AS bucket
    FROM (
        SELECT a.started_at, max(a.started_at - d.created_at, 0) AS l,
               -- floor(log2(l)) for l >= 16, by counting bits
               (SELECT max(b) FROM (SELECT 4 AS b UNION ALL SELECT 5 UNION ALL SELECT 6
                  UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9 UNION ALL SELECT 10
                  UNION ALL SELECT 11 UNION ALL SELECT 12 UNION ALL SELECT 13 UNION ALL SELECT 14
                  UNION ALL SELECT 15 UNION ALL SELECT 16 UNION ALL SELECT 17 UNION ALL SELECT 18
                  UNION ALL SELECT 19 UNION ALL SELECT 20 UNION ALL SELECT 21 UNION ALL SELECT 22
                  UNION ALL SELECT 23 UNION ALL SELECT 24 UNION ALL SELECT 25 UNION ALL SELECT 26
                  UNION ALL SELECT 27 UNION ALL SELECT 28 UNION ALL SELECT 29 UNION ALL SELECT 30)
                WHERE (1 << b) <= max(a.started_at - d.created_at, 0)) AS e
        FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
        WHERE a.started_at >= (CAST(strftime('%s', 'now') AS INTEGER) - 48 * 3600) * 1000
          AND a.id = (SELECT min(f.id) FROM attempts f WHERE f.delivery_id = a.delivery_id)
    ) a
) GROUP BY hour, bucket;

-- No query needs it any more: the charts read the rollups.
DROP INDEX attempts_started;
