-- Version 6: the page-session key used to live here (`settings.session_key`); it now derives
-- from the secret key kept outside the database (issue 10). The old value signs nothing any
-- more, but a copied file should not carry it either.
DELETE FROM settings WHERE key = 'session_key';
