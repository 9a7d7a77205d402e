-- Version 13 (issue 22, item 1 and the overview's rollups); the same as SQLite's version 16.
--
-- A delivery's first attempt that succeeds is kept in the delivery row (`sent_*`) instead of
-- an attempts row; attempts rows are for failures and retries, and the history reads both.
ALTER TABLE deliveries ADD COLUMN sent_at bigint;
ALTER TABLE deliveries ADD COLUMN sent_duration_ms bigint;
ALTER TABLE deliveries ADD COLUMN sent_status_code integer;
ALTER TABLE deliveries ADD COLUMN sent_response_headers text;
ALTER TABLE deliveries ADD COLUMN sent_response_body text;

-- The overview's charts read these instead of scanning attempts (see SQLite's version 16).
-- The recorder adds to them in the transaction that records the attempts. One row per
-- replica (its id; '' for what was there before): replicas' recorders never wait on each
-- other's row locks, and the reads sum over them.
CREATE TABLE activity_hours (
    hour      bigint NOT NULL,
    replica   text NOT NULL DEFAULT '',
    succeeded bigint NOT NULL DEFAULT 0,
    failed    bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, replica)
);
CREATE TABLE latency_hours (
    hour    bigint NOT NULL,
    bucket  integer NOT NULL,
    replica text NOT NULL DEFAULT '',
    count   bigint NOT NULL,
    PRIMARY KEY (hour, bucket, replica)
);

INSERT INTO activity_hours (hour, succeeded, failed)
SELECT started_at / 3600000 * 3600000,
       count(*) FILTER (WHERE status_code BETWEEN 200 AND 299),
       count(*) FILTER (WHERE status_code IS NULL OR status_code NOT BETWEEN 200 AND 299)
FROM attempts GROUP BY 1;

-- Exact below 16 ms, then 8 buckets per power of two (`store::activity::latency_bucket`).
INSERT INTO latency_hours (hour, bucket, count)
SELECT hour, bucket, count(*) FROM (
    SELECT started_at / 3600000 * 3600000 AS hour,
           CASE WHEN l < 16 THEN l::integer
                ELSE (16 + (e - 4) * 8 + ((l >> (e - 3)) & 7))::integer END AS bucket
    FROM (
        SELECT started_at, l, floor(log(2, greatest(l, 1)::numeric))::integer AS e
        FROM (
            SELECT a.started_at, greatest(a.started_at - d.created_at, 0) AS l
            FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
            WHERE a.started_at >= (extract(epoch FROM now())::bigint - 48 * 3600) * 1000
              AND NOT EXISTS (SELECT 1 FROM attempts f WHERE f.delivery_id = a.delivery_id AND f.id < a.id)
        ) firsts
    ) measured
) bucketed GROUP BY hour, bucket;

DROP INDEX attempts_started;
