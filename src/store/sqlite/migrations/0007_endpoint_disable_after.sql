-- Version 7: an endpoint's own disable_after (issue 17, item 4), in ms; NULL: the
-- deployment's `disable_after`. The recorder's health read takes it.
ALTER TABLE endpoints ADD COLUMN disable_after_ms INTEGER;
