-- Version 3: delivery controls on endpoints.
-- rate_limit: requests per second (NULL = the deployment's `rate_limit`, or none), and
-- last_attempt_at, so the limit holds across restarts.
-- The circuit breaker: consecutive failures since the last success; while the circuit is
-- open (circuit_opened_at set) deliveries wait and one probe goes at circuit_next_probe,
-- after a back-off (circuit_backoff_ms) that doubles with each failed probe.
-- ordering: 'parallel' or 'fifo'; a FIFO endpoint's head is its oldest pending delivery,
-- found through deliveries_fifo (history rows are not in it).
ALTER TABLE endpoints ADD COLUMN rate_limit REAL;
ALTER TABLE endpoints ADD COLUMN last_attempt_at INTEGER;
ALTER TABLE endpoints ADD COLUMN consecutive_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE endpoints ADD COLUMN circuit_opened_at INTEGER;
ALTER TABLE endpoints ADD COLUMN circuit_next_probe INTEGER;
ALTER TABLE endpoints ADD COLUMN circuit_backoff_ms INTEGER;
ALTER TABLE endpoints ADD COLUMN ordering TEXT NOT NULL DEFAULT 'parallel';
CREATE INDEX deliveries_fifo ON deliveries(endpoint_id, id) WHERE status = 'pending';
