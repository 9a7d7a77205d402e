-- Version 9: an event type's JSON Schema (issue 21, item 4), canonical JSON; NULL: none.
-- Publishes of that type must satisfy it.
ALTER TABLE event_types ADD COLUMN schema TEXT;
