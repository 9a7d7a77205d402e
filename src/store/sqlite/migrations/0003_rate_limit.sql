-- Version 3: an endpoint's rate limit (requests per second; NULL = the deployment's
-- `rate_limit`, or none), and when it was last sent to, so the limit holds across restarts.
ALTER TABLE endpoints ADD COLUMN rate_limit REAL;
ALTER TABLE endpoints ADD COLUMN last_attempt_at INTEGER;
