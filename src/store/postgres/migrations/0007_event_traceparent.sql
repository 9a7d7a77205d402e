-- Version 7: the W3C traceparent of an event's publish span (issue 18, item 6; README:
-- Tracing). NULL while tracing is off. Claims read it, so each attempt's span is a child
-- of the publish's, in the producer's trace.
ALTER TABLE events ADD COLUMN traceparent text;
