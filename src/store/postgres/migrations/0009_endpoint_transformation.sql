-- An endpoint's transformation (issue 21, item 3; README: Transformations), as SQLite's
-- migration 12. NULL: deliveries go as published.
ALTER TABLE endpoints ADD COLUMN transformation TEXT;
