-- Version 6: a heartbeat per replica (issue 19, items 5 and 6). Each replica writes the
-- database's clock_timestamp() (in ms) here every 500 ms; a lease whose owner's heartbeat
-- is older than a few seconds counts as lapsed, so a killed replica's deliveries are taken
-- over without waiting for the whole lease.
CREATE TABLE replicas (
    id           text PRIMARY KEY,
    heartbeat_at bigint NOT NULL,
    started_at   bigint NOT NULL
);
