-- Version 14: how Herald reaches an endpoint beyond its URL (issue 20, items 1, 2, 4;
-- README: Reaching receivers). A client certificate (PEM) and its private key (sealed for
-- the endpoint, like its signing secret), a CA bundle (PEM) that replaces the web's roots
-- for it, and its own proxy (`none`, or a URL without credentials) with the proxy's
-- credentials (sealed). NULL everywhere: the deployment's settings. The fingerprint of the
-- certificate whose coming expiry was announced (herald.endpoint.certificate_expiring),
-- so each certificate is announced once.
ALTER TABLE endpoints ADD COLUMN client_cert TEXT;
ALTER TABLE endpoints ADD COLUMN client_key TEXT;
ALTER TABLE endpoints ADD COLUMN ca_bundle TEXT;
ALTER TABLE endpoints ADD COLUMN proxy TEXT;
ALTER TABLE endpoints ADD COLUMN proxy_credentials TEXT;
ALTER TABLE endpoints ADD COLUMN client_cert_warned TEXT;
