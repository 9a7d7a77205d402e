-- The failed deliveries of a tenant, newest first (issue 22: `GET /deliveries?status=failed`
-- took 252 ms over a million deliveries). Partial: only failed rows are in it, so the
-- deliveries that succeed, nearly all of them, never touch it.
CREATE INDEX deliveries_failed_list ON deliveries(tenant_id, id) WHERE status = 'failed';
