-- An endpoint's authentication to its receiver (issue 20, item 3): basic, bearer or OAuth2
-- client credentials, as JSON with the credentials inside; sealed for the endpoint like its
-- signing secret (store/endpoint_settings.rs, SEALED). NULL: no auth.
ALTER TABLE endpoints ADD COLUMN auth TEXT;
