-- Version 11: an endpoint's payload filter (issue 21, item 2; README: Payload filters), an
-- RFC 9535 JSONPath filter expression as written, checked when saved. NULL: no filter,
-- every event its `events` patterns match.
ALTER TABLE endpoints ADD COLUMN payload_filter text;
