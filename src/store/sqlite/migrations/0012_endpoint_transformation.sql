-- An endpoint's transformation (issue 21, item 3; README: Transformations): JavaScript run
-- on each delivery before it is signed. NULL: deliveries go as published.
ALTER TABLE endpoints ADD COLUMN transformation TEXT;
