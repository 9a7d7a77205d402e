-- Version 5: polling endpoints (issue 9, item 5).
-- kind: 'push' (the engine POSTs to url) or 'poll' (no url, stored as ''; the consumer
-- reads its pending deliveries through the API and acknowledges them with a cursor).
-- The dispatcher's queries skip poll endpoints, so their deliveries stay pending until read.
ALTER TABLE endpoints ADD COLUMN kind TEXT NOT NULL DEFAULT 'push';
