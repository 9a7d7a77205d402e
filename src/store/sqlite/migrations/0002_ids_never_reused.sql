-- Version 2: ids are never reused. Without AUTOINCREMENT, SQLite hands out max(id) + 1, so
-- after deleting the newest endpoint the next one got its id, and an old link such as
-- /deliveries/1 could name a different delivery. The four tables are rebuilt with
-- AUTOINCREMENT (SQLite cannot alter a primary key), keeping every row and id; the copy
-- seeds sqlite_sequence with the highest id in use.
-- Also drops two indexes of deliveries, so each delivery row touches 5 B-trees, not 7:
-- deliveries_created (no query reads deliveries by creation time alone) and deliveries_due
-- (the dispatcher's next-due probe walks deliveries_endpoint_due per endpoint instead).
-- Leases are dropped in the copy: from version 2 on, SQLite claims live in memory.
-- Runs with foreign_keys OFF (migrate.rs), so dropping a parent table cascades nothing;
-- foreign_key_check runs before the commit.

CREATE TABLE api_keys_v2 (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id  TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    prefix     TEXT NOT NULL,
    key_hash   TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT;
INSERT INTO api_keys_v2 SELECT id, tenant_id, name, prefix, key_hash, created_at, revoked_at FROM api_keys;
DROP TABLE api_keys;
ALTER TABLE api_keys_v2 RENAME TO api_keys;
CREATE INDEX api_keys_tenant ON api_keys(tenant_id, id);

CREATE TABLE endpoints_v2 (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id       TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    url             TEXT NOT NULL,
    events          TEXT NOT NULL,
    description     TEXT NOT NULL,
    headers         TEXT NOT NULL,
    signature       TEXT,
    status          TEXT NOT NULL CHECK (status IN ('active', 'paused', 'disabled')),
    disabled_reason TEXT,
    secret          TEXT NOT NULL,
    previous_secret TEXT,
    previous_secret_until INTEGER,
    failing_since   INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) STRICT;
INSERT INTO endpoints_v2 SELECT id, tenant_id, url, events, description, headers, signature, status,
    disabled_reason, secret, previous_secret, previous_secret_until, failing_since, created_at, updated_at
    FROM endpoints;
DROP TABLE endpoints;
ALTER TABLE endpoints_v2 RENAME TO endpoints;
CREATE INDEX endpoints_tenant ON endpoints(tenant_id, id);

CREATE TABLE deliveries_v2 (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    event_seq       INTEGER NOT NULL REFERENCES events(seq) ON DELETE CASCADE,
    endpoint_id     INTEGER NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
    tenant_id       TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'cancelled')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    round_start     INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    lease_until     INTEGER,                  -- only for backends that share the outbox
    last_status_code INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) STRICT;
INSERT INTO deliveries_v2 SELECT id, event_seq, endpoint_id, tenant_id, status, attempts, round_start,
    next_attempt_at, NULL, last_status_code, last_error, created_at, updated_at FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_v2 RENAME TO deliveries;
CREATE INDEX deliveries_endpoint ON deliveries(endpoint_id, id);
CREATE INDEX deliveries_endpoint_due ON deliveries(endpoint_id, next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_event ON deliveries(event_seq);
CREATE INDEX deliveries_tenant ON deliveries(tenant_id, id);

CREATE TABLE attempts_v2 (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id      INTEGER NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
    started_at       INTEGER NOT NULL,
    duration_ms      INTEGER NOT NULL,
    status_code      INTEGER,
    error            TEXT,
    response_headers TEXT,                    -- JSON object; kept for failures only
    response_body    TEXT
) STRICT;
INSERT INTO attempts_v2 SELECT id, delivery_id, started_at, duration_ms, status_code, error,
    response_headers, response_body FROM attempts;
DROP TABLE attempts;
ALTER TABLE attempts_v2 RENAME TO attempts;
CREATE INDEX attempts_delivery ON attempts(delivery_id);
