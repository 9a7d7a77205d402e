-- Version 8: an endpoint's recent attempts for the circuit breaker's failure-rate rule
-- (issue 19, item 3): counts in the current bucket of `circuit_window` (it began at
-- window_start, ms; NULL: an empty window) and in the one before it. The recorder reads
-- and writes them with the rest of the endpoint's health (engine/health.rs).
ALTER TABLE endpoints ADD COLUMN window_start INTEGER;
ALTER TABLE endpoints ADD COLUMN window_succeeded INTEGER NOT NULL DEFAULT 0;
ALTER TABLE endpoints ADD COLUMN window_failed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE endpoints ADD COLUMN window_prev_succeeded INTEGER NOT NULL DEFAULT 0;
ALTER TABLE endpoints ADD COLUMN window_prev_failed INTEGER NOT NULL DEFAULT 0;
