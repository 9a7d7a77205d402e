-- Version 2 (issue 23, item 6): one-time messages are bounded per principal (the admin, or
-- one tenant over all its portal sessions) as well as per session, so one tenant's many
-- sessions cannot fill the table every other tenant's new secrets need. The table holds
-- messages for ten minutes at most: the ones waiting now are of no principal and expire.
ALTER TABLE flash_messages ADD COLUMN principal text NOT NULL DEFAULT '';
CREATE INDEX flash_messages_principal ON flash_messages(principal, reveal);
