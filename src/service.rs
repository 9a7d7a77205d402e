//! What the API and the pages share: the application state, and the operations that take
//! more than one store call or something besides the store (a generated secret, a wake-up
//! of the dispatcher). Both front ends call these and map `ServiceError` to their own
//! answer (a JSON envelope, an HTML page), so a button and a route can never disagree.

use std::sync::Arc;

use serde::Serialize;
use serde_json::{json, Value};

use crate::clock::{self, now_ms};
use crate::config::Config;
use crate::domain::EventName;
use crate::engine::EngineHandle;
use crate::secrets::keys;
use crate::store::{
    ApiKey, Delivery, Endpoint, EndpointPatch, EventType, NewEvent, NewEventType, NewKey, Store,
    StoreError,
};
use crate::wire::canonical_json::to_js_string;
use crate::wire::signing::generate_secret;

pub mod replay;
pub mod schemas;
pub mod transformations;

/// What every handler and page can reach.
pub struct AppState {
    pub store: Store,
    pub config: Arc<Config>,
    pub admin_token_hash: String,
    /// Signs page sessions; never stored in the database.
    pub secret_key: crate::secrets::secret_key::SecretKey,
    pub engine: EngineHandle,
    /// Event-type schemas enforced at publish, compiled and cached.
    pub schemas: schemas::SchemaCache,
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The input was refused; `code` is the API's error code.
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ServiceError {
    pub fn invalid(message: impl Into<String>) -> ServiceError {
        ServiceError::Invalid {
            code: "validation_error",
            message: message.into(),
        }
    }
}

pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

/// A new key together with its only showing.
#[derive(Serialize)]
pub struct IssuedKey {
    #[serde(flatten)]
    pub key: ApiKey,
    pub token: String,
}

/// Shows the operator endpoint's new secret once, to the person who started Herald: on a
/// terminal only. Under systemd stdout is the journal, which keeps what it is given and is
/// readable by more people than the admin token; there the line says how to get a secret
/// (a rotation answers it once) instead.
fn announce_operator_secret(created: &Endpoint) {
    use std::io::IsTerminal;
    if std::io::stdout().is_terminal() {
        println!(
            "Operator webhook {} set up; its signing secret (shown only this once):\n\n    {}\n",
            created.settings.url_str(),
            created.secret
        );
    } else {
        println!(
            "Operator webhook {} set up (endpoint {}). Its signing secret is not written to \
             this log; get one, shown once, with \
             POST /api/v1/webhooks/{}/rotate-secret?tenant={} and the admin token.",
            created.settings.url_str(),
            created.id,
            created.id,
            crate::store::OPERATOR_TENANT
        );
    }
}

/// The reserved `_herald` tenant gets no API keys (nor so portal sessions): its endpoint
/// receives every tenant's operational events, and a key would read them all and could
/// re-point it. The admin manages it with the admin token (`?tenant=_herald`).
pub fn refuse_operator_tenant(tenant: &str) -> Result<()> {
    if tenant == crate::store::OPERATOR_TENANT {
        return Err(ServiceError::Invalid {
            code: "reserved_tenant",
            message: format!(
                "`{tenant}` is Herald's reserved operator tenant: it has no API keys; \
                 manage its endpoint with the admin token and ?tenant={tenant}"
            ),
        });
    }
    Ok(())
}

/// Sets up (or points at a new URL) the operator's endpoint in the reserved `_herald`
/// tenant, subscribed to `herald.*`, when `operator_webhook` is set. Its signing secret is
/// shown once, when it is created, on a terminal (`announce_operator_secret`); the admin
/// rotates it through the API (`?tenant=_herald`), which answers the new one once.
pub async fn ensure_operator_endpoint(store: &Store, config: &Config) -> Result<()> {
    use crate::store::OPERATOR_TENANT;
    let Some(url) = &config.operator_webhook else {
        return Ok(());
    };
    let url = crate::domain::EndpointUrl::parse(url, config.allow_private_targets)
        .map_err(ServiceError::invalid)?;
    let now = now_ms();
    // Replicas on one database start at once: each step tolerates another doing it too.
    if !store.tenant_exists(OPERATOR_TENANT).await? {
        match store
            .create_tenant(OPERATOR_TENANT, "Herald operator", now)
            .await
        {
            Ok(_) | Err(crate::store::StoreError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let first = crate::store::Cursor {
        before: None,
        limit: 1,
    };
    let existing = store.list_endpoints(OPERATOR_TENANT, None, first).await?;
    match existing.items.first() {
        Some(e) if e.settings.url.as_ref() == Some(&url) => {}
        Some(e) => {
            let patch = EndpointPatch {
                url: Some(url),
                ..Default::default()
            };
            store
                .update_endpoint(OPERATOR_TENANT, e.id, patch, now)
                .await?;
        }
        None => {
            let filter = crate::domain::EventFilter::parse(&["herald.*".to_owned()])
                .map_err(ServiceError::invalid)?;
            let new = crate::store::NewEndpoint {
                kind: crate::domain::EndpointKind::Push,
                secret: generate_secret(),
                settings: crate::store::EndpointSettings {
                    description: "Herald's operational events".into(),
                    ..crate::store::EndpointSettings::new(Some(url), filter)
                },
            };
            let created = store.create_endpoint(OPERATOR_TENANT, new, now).await?;
            // Two replicas that both found none both created one: the oldest stays.
            let all = crate::store::Cursor {
                before: None,
                limit: 100,
            };
            let mut made = store
                .list_endpoints(OPERATOR_TENANT, None, all)
                .await?
                .items;
            made.sort_by_key(|e| e.id);
            for extra in made.iter().skip(1) {
                match store.delete_endpoint(OPERATOR_TENANT, extra.id).await {
                    Ok(()) | Err(crate::store::StoreError::NotFound(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            if made.first().is_some_and(|e| e.id != created.id) {
                return Ok(());
            }
            announce_operator_secret(&created);
        }
    }
    Ok(())
}

/// A tenant's display name: 1-100 characters.
pub fn check_tenant_name(name: &str) -> Result<()> {
    if name.trim().is_empty() || name.chars().count() > 100 {
        return Err(ServiceError::invalid("name must be 1-100 characters"));
    }
    Ok(())
}

/// An endpoint's description: at most 500 characters.
pub fn check_description(d: String) -> Result<String> {
    if d.chars().count() > 500 {
        return Err(ServiceError::invalid("description: at most 500 characters"));
    }
    Ok(d)
}

impl AppState {
    /// Adds what only the running engine knows (the endpoint's adaptive in-flight limit).
    pub fn live(&self, mut endpoint: Endpoint) -> Endpoint {
        endpoint.concurrency = Some(self.engine.concurrency_of(endpoint.id));
        endpoint
    }

    /// Queues a finished delivery again now, with a fresh retry round. Refused with a
    /// conflict while it is still pending.
    pub async fn retry_delivery(&self, tenant: &str, id: i64) -> Result<Delivery> {
        let delivery = self.store.retry_delivery(tenant, id, now_ms()).await?;
        self.engine.rescan();
        Ok(delivery)
    }

    /// Re-queues an endpoint's failed deliveries created since `since`.
    pub async fn recover(&self, tenant: &str, endpoint: i64, since: i64) -> Result<usize> {
        let n = self
            .store
            .recover(tenant, endpoint, since, now_ms())
            .await?;
        self.engine.rescan();
        Ok(n)
    }

    /// Sends a `webhook.test` event to this endpoint alone, whatever its filter; returns
    /// the event id and the delivery id.
    pub async fn send_test(&self, tenant: &str, endpoint: i64) -> Result<(String, i64)> {
        let now = now_ms();
        let body = to_js_string(&json!({
            "event": "webhook.test",
            "timestamp": clock::rfc3339_seconds(now),
            "data": { "webhook_id": endpoint, "message": "This is a test event sent by Herald." },
        }));
        let event = NewEvent {
            event_type: "webhook.test".into(),
            body,
            idempotency_key: None,
            traceparent: None,
        };
        let ids = self
            .store
            .publish_to_endpoint(tenant, endpoint, event, now)
            .await?;
        self.engine.wake();
        Ok(ids)
    }

    /// Gives an endpoint a new generated secret; the old one keeps signing beside it for
    /// the configured grace period.
    pub async fn rotate_secret(&self, tenant: &str, endpoint: i64) -> Result<Endpoint> {
        let grace = self.config.rotation_grace.as_millis() as i64;
        let now = now_ms();
        Ok(self
            .store
            .rotate_secret(
                tenant,
                endpoint,
                generate_secret(),
                now.saturating_add(grace),
                now,
            )
            .await?)
    }

    /// Applies a patch; a status change may make deliveries due, so the dispatcher looks.
    pub async fn update_endpoint(
        &self,
        tenant: &str,
        id: i64,
        mut patch: EndpointPatch,
    ) -> Result<Endpoint> {
        if let Some(headers) = patch.headers.take_if(|h| h.has_masked()) {
            let current = self.store.get_endpoint(tenant, id).await?;
            let kept = headers
                .keep_masked(current.settings.headers.map())
                .map_err(|e| ServiceError::invalid(format!("headers: {e}")))?;
            patch.headers = Some(kept);
        }
        keep_stored_secrets(&self.store, tenant, id, &mut patch).await?;
        if patch.auth.is_some() || patch.headers.is_some() {
            // Auth is checked against the endpoint as it will be: a patch that adds auth
            // meets the headers it already has, and the other way round.
            let current = self.store.get_endpoint(tenant, id).await?;
            if let Some(Some(auth)) = patch.auth.take_if(|a| a.is_some()) {
                let kept = auth
                    .keep_secret(current.settings.auth.as_ref())
                    .map_err(ServiceError::invalid)?;
                patch.auth = Some(Some(kept));
            }
            patch
                .clone()
                .apply(current.settings)
                .check_auth(current.kind)
                .map_err(ServiceError::invalid)?;
        }
        let endpoint = self
            .store
            .update_endpoint(tenant, id, patch, now_ms())
            .await?;
        self.engine.rescan();
        Ok(endpoint)
    }

    /// Creates a tenant key: random, stored as its hash, returned in clear this once.
    pub async fn issue_key(&self, tenant: &str, name: String) -> Result<IssuedKey> {
        refuse_operator_tenant(tenant)?;
        if name.chars().count() > 100 {
            return Err(ServiceError::invalid("name: at most 100 characters"));
        }
        let token = keys::generate_api_key();
        let new = NewKey {
            tenant_id: tenant.to_owned(),
            name,
            prefix: keys::display_prefix(&token),
            key_hash: keys::hash_token(&token),
        };
        let key = self.store.create_key(new, now_ms()).await?;
        Ok(IssuedKey { key, token })
    }

    /// Validates and stores a catalogue entry.
    pub async fn upsert_event_type(
        &self,
        name: &str,
        description: String,
        example: Option<Value>,
        schema: Option<Value>,
    ) -> Result<EventType> {
        let name = EventName::parse(name).map_err(ServiceError::invalid)?;
        // Compiled now so a schema that could never validate anything is refused when
        // saved, not at the first publish; an example must pass its own schema.
        let schema = match schema {
            None | Some(Value::Null) => None,
            Some(v) => {
                let compiled = schemas::compile(&v).map_err(ServiceError::invalid)?;
                if let Some(why) = example
                    .as_ref()
                    .and_then(|e| schemas::violation(&compiled, e))
                {
                    return Err(ServiceError::invalid(format!("example: {why}")));
                }
                let text = to_js_string(&v);
                if text.len() > schemas::MAX_SCHEMA_BYTES {
                    return Err(ServiceError::invalid("schema: at most 64 KiB"));
                }
                Some(text)
            }
        };
        if description.chars().count() > 500 {
            return Err(ServiceError::invalid("description: at most 500 characters"));
        }
        let example = match example {
            None | Some(Value::Null) => None,
            Some(v @ Value::Object(_)) => Some(to_js_string(&v)),
            Some(_) => return Err(ServiceError::invalid("example must be a JSON object")),
        };
        let new = NewEventType {
            name: name.as_str().to_owned(),
            description,
            example,
            schema,
        };
        let saved = self.store.upsert_event_type(new, now_ms()).await?;
        self.schemas.clear();
        Ok(saved)
    }

    /// Deletes a catalogue entry (and so its schema).
    pub async fn delete_event_type(&self, name: &str) -> Result<()> {
        self.store.delete_event_type(name).await?;
        self.schemas.clear();
        Ok(())
    }

    /// Refuses events whose payload fails their type's schema: nothing of the call is
    /// stored. `batch` names the failing item.
    pub async fn check_schemas(
        &self,
        events: &[crate::store::NewEvent],
        batch: bool,
    ) -> Result<()> {
        for (i, event) in events.iter().enumerate() {
            let Some(validator) = self.schemas.of(&self.store, &event.event_type).await? else {
                continue;
            };
            // The body was produced by the canonical serialiser: valid JSON.
            let payload: Value = serde_json::from_str(&event.body).unwrap_or(Value::Null);
            if let Some(why) = schemas::violation(&validator, &payload) {
                let at = if batch {
                    format!("events[{i}]: ")
                } else {
                    String::new()
                };
                return Err(ServiceError::Invalid {
                    code: "schema_violation",
                    message: format!("{at}`{}` {why}", event.event_type),
                });
            }
        }
        Ok(())
    }
}

/// The endpoint's secrets a patch keeps without restating them (README: Reaching
/// receivers): a client certificate sent without its key keeps the stored key (checked
/// against the new certificate), and a proxy URL whose password is masked keeps the stored
/// password.
async fn keep_stored_secrets(
    store: &crate::store::Store,
    tenant: &str,
    id: i64,
    patch: &mut EndpointPatch,
) -> Result<()> {
    use crate::domain::EndpointProxy;
    let needs_key = matches!(&patch.client_cert, Some(Some(c)) if c.needs_key());
    let masked_proxy = matches!(&patch.proxy, Some(Some(EndpointProxy::Via(p)))
        if p.credentials().is_some_and(|c| c.ends_with(crate::domain::reach::MASKED)));
    if !needs_key && !masked_proxy {
        return Ok(());
    }
    let current = store.get_endpoint(tenant, id).await?.settings;
    if let Some(Some(cert)) = patch.client_cert.take_if(|_| needs_key) {
        let key = current.client_cert.as_ref().map(|c| c.key_pem().to_owned());
        let kept = match key.filter(|k| !k.is_empty()) {
            Some(key) => cert.with_key(&key).map_err(ServiceError::invalid)?,
            None => {
                return Err(ServiceError::invalid(
                    "client_key: required with client_certificate (no key is stored)",
                ))
            }
        };
        patch.client_cert = Some(Some(kept));
    }
    if let Some(Some(EndpointProxy::Via(proxy))) = patch.proxy.take_if(|_| masked_proxy) {
        let stored = match &current.proxy {
            Some(EndpointProxy::Via(p)) => Some(p),
            _ => None,
        };
        let kept = proxy.keep_masked(stored).map_err(ServiceError::invalid)?;
        patch.proxy = Some(Some(EndpointProxy::Via(kept)));
    }
    Ok(())
}
