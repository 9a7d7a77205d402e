-- Migration 3: indexes for the operator's view (issue 11).
-- The overview's charts and cards read attempts by time; with (started_at, status_code)
-- the hourly and daily counts are an index-only range scan of the window asked for,
-- never a scan of the whole history.
CREATE INDEX attempts_started ON attempts(started_at, status_code);
-- Deliveries that failed for good, by when they did: a partial index, so the common case
-- (a delivery that succeeds) pays nothing for it on write.
CREATE INDEX deliveries_failed ON deliveries(updated_at) WHERE status = 'failed';
