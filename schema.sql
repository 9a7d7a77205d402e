-- Herald's data model, version 1. Applied by src/store/sqlite/migrate.rs inside one
-- transaction; later versions are numbered files in src/store/sqlite/migrations/ (version 2
-- rebuilds api_keys, endpoints, deliveries and attempts with AUTOINCREMENT). Never edit this
-- file in place.
-- All times are integer milliseconds since the Unix epoch (UTC).

-- Deployment-wide values: the admin token hash, the page-session signing key.
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

-- One customer of the product. `default` always exists.
CREATE TABLE tenants (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
INSERT INTO tenants (id, name, created_at) VALUES ('default', 'Default', 0);

-- Tenant API keys: only the SHA-256 of the key is kept (keys are 256-bit random, so a
-- fast hash is enough); `prefix` lets a person recognise a key in a list.
CREATE TABLE api_keys (
    id         INTEGER PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    prefix     TEXT NOT NULL,
    key_hash   TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT;
CREATE INDEX api_keys_tenant ON api_keys(tenant_id, id);

-- The optional catalogue of event names, deployment-wide (the product defines its events).
CREATE TABLE event_types (
    name        TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    example     TEXT,            -- canonical JSON payload used by "send test"
    created_at  INTEGER NOT NULL
) STRICT;

-- An endpoint (the seeds call it a webhook). `events` is a JSON array of filters.
CREATE TABLE endpoints (
    id              INTEGER PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    url             TEXT NOT NULL,
    events          TEXT NOT NULL,
    description     TEXT NOT NULL,
    headers         TEXT NOT NULL,            -- JSON object of extra request headers
    signature       TEXT,                     -- comma list of schemes; NULL = deployment default
    status          TEXT NOT NULL CHECK (status IN ('active', 'paused', 'disabled')),
    disabled_reason TEXT,
    secret          TEXT NOT NULL,            -- needed in clear to sign; never logged
    previous_secret TEXT,
    previous_secret_until INTEGER,
    failing_since   INTEGER,                  -- first failure after the last success
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) STRICT;
CREATE INDEX endpoints_tenant ON endpoints(tenant_id, id);

-- One published payload, immutable. `body` is the exact byte string every attempt sends.
CREATE TABLE events (
    seq             INTEGER PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,     -- evt_<ULID>
    tenant_id       TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    event_type      TEXT NOT NULL,
    body            TEXT NOT NULL,
    idempotency_key TEXT,
    created_at      INTEGER NOT NULL
) STRICT;
CREATE INDEX events_tenant ON events(tenant_id, seq);
CREATE INDEX events_created ON events(created_at);
CREATE UNIQUE INDEX events_idempotency ON events(tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- The outbox: one event for one endpoint. A row is `pending` until it succeeds, fails
-- after the last retry, or is cancelled. `lease_until` is set while a worker holds it;
-- a crash leaves the lease to expire and the delivery is claimed again (at-least-once).
CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY,
    event_seq       INTEGER NOT NULL REFERENCES events(seq) ON DELETE CASCADE,
    endpoint_id     INTEGER NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
    tenant_id       TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'cancelled')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    round_start     INTEGER NOT NULL DEFAULT 0, -- `attempts` when the current retry round began
    next_attempt_at INTEGER,                  -- NULL once the delivery is final
    lease_until     INTEGER,
    last_status_code INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) STRICT;
CREATE INDEX deliveries_due ON deliveries(next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_endpoint ON deliveries(endpoint_id, id);
-- The dispatcher's per-endpoint probe for due work (store/outbox.rs, due_candidates).
CREATE INDEX deliveries_endpoint_due ON deliveries(endpoint_id, next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_event ON deliveries(event_seq);
CREATE INDEX deliveries_tenant ON deliveries(tenant_id, id);
CREATE INDEX deliveries_created ON deliveries(created_at);

-- One HTTP request of a delivery, with the response kept short.
CREATE TABLE attempts (
    id               INTEGER PRIMARY KEY,
    delivery_id      INTEGER NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
    started_at       INTEGER NOT NULL,
    duration_ms      INTEGER NOT NULL,
    status_code      INTEGER,
    error            TEXT,
    response_headers TEXT,                    -- JSON object
    response_body    TEXT
) STRICT;
CREATE INDEX attempts_delivery ON attempts(delivery_id);
