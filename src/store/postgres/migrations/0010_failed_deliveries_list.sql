-- The failed deliveries of a tenant, newest first, as SQLite's migration 13: partial, so
-- the deliveries that succeed never touch it.
CREATE INDEX deliveries_failed_list ON deliveries(tenant_id, id) WHERE status = 'failed';
