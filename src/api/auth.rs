//! Who is calling: the admin (any tenant, `default` unless one is named) or a tenant key
//! (its own tenant only). Tokens are compared by their SHA-256, the only form we store (the
//! admin token's in constant time; a key's hash is looked up by value).
//! Wrong tokens are counted per client address (`crate::server::throttle`; IPv6 per network):
//! answers to them slow down, and an address that keeps guessing is refused with 429 until
//! its failures age out.

use std::future::Future;
use std::pin::Pin;

use actix_web::{dev::Payload, web, FromRequest, HttpMessage, HttpRequest};

use super::AppState;
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::secrets::keys::{hash_token, same_hash};
use crate::server::throttle::{self, Door, Gate};

/// The authenticated caller and the tenant the request acts on.
#[derive(Debug, Clone)]
pub struct Auth {
    pub tenant: String,
    pub admin: bool,
}

impl Auth {
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.admin {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "this route needs the admin token".into(),
            ))
        }
    }
}

fn bearer(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

/// The tenant named by `?tenant=` or `X-Herald-Tenant`, if any.
fn named_tenant(req: &HttpRequest) -> Option<String> {
    let from_query =
        web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
            .ok()
            .and_then(|q| q.get("tenant").cloned());
    from_query.or_else(|| {
        req.headers()
            .get("x-herald-tenant")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    })
}

/// Left in the request while `Auth` checks its token: a body extractor of the same handler
/// waits for it before it takes any of the body budget (`body::RawBody`), so a stranger's
/// declared `Content-Length` reserves nothing.
#[derive(Clone)]
pub struct Authenticating(tokio::sync::watch::Receiver<bool>);

impl Authenticating {
    pub fn of(req: &HttpRequest) -> Option<Authenticating> {
        req.extensions().get::<Authenticating>().cloned()
    }

    /// Whether the caller was authenticated (false: refused, or the check was abandoned).
    pub async fn succeeded(mut self) -> bool {
        self.0.wait_for(|ok| *ok).await.is_ok()
    }
}

impl FromRequest for Auth {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = bearer(req);
        let named = named_tenant(req);
        let (authenticated, authenticating) = tokio::sync::watch::channel(false);
        req.extensions_mut().insert(Authenticating(authenticating));
        let req = req.clone();
        Box::pin(async move {
            // actix polls a handler's extractors in turn and answers the first refusal: by
            // yielding once before the token is looked at, a request that another extractor
            // refuses at once (a bad path id, an unknown query parameter, a body over the
            // limit) is refused before its token takes a throttle slot or counts as a
            // failure; its answer never said whether the token was right.
            tokio::task::yield_now().await;
            let state = state.ok_or_else(|| ApiError::Unavailable("server not ready".into()))?;
            let token = token.ok_or_else(|| {
                ApiError::Unauthorized("send `Authorization: Bearer <api key>`".into())
            })?;
            let ip = crate::server::client_addr::client_key(&req, &state.config);
            // The slot is a guard: should actix drop this future (another extractor of the
            // handler failed), the slot goes back instead of leaking.
            let slot = match throttle::begin(&state.store, Door::Api, ip, now_ms()).await? {
                Gate::Open(slot) => slot,
                Gate::Locked => {
                    return Err(ApiError::TooManyRequests(
                        "too many wrong API keys from your address; wait 15 minutes".into(),
                    ))
                }
            };
            let auth = authenticate(&state, &token, named).await;
            match &auth {
                Err(ApiError::Unauthorized(_)) => {
                    let delay = slot.failed(now_ms()).await;
                    actix_web::rt::time::sleep(delay).await;
                }
                _ => slot.succeeded().await,
            }
            authenticated.send_replace(auth.is_ok());
            auth
        })
    }
}

/// Resolves a bearer token (and an optional tenant name) to an `Auth`.
pub async fn authenticate(
    state: &AppState,
    token: &str,
    named: Option<String>,
) -> Result<Auth, ApiError> {
    let hash = hash_token(token);
    if same_hash(&hash, &state.admin_token_hash) {
        let tenant = named.unwrap_or_else(|| "default".into());
        let check = tenant.clone();
        // `default` cannot be deleted, so the common case needs no lookup.
        if tenant != "default" && !state.store.tenant_exists(&check).await? {
            return Err(ApiError::NotFound(format!("tenant `{tenant}` not found")));
        }
        return Ok(Auth {
            tenant,
            admin: true,
        });
    }
    let tenant = state
        .store
        .active_key(&hash)
        .await?
        // `_herald` has no keys; one minted before that rule opens nothing.
        .filter(|key| key.tenant_id != crate::store::OPERATOR_TENANT)
        .ok_or_else(|| ApiError::Unauthorized("the API key is not valid or was revoked".into()))?
        .tenant_id;
    if named.as_ref().is_some_and(|n| n != &tenant) {
        return Err(ApiError::Forbidden(
            "a tenant key can only act on its own tenant".into(),
        ));
    }
    Ok(Auth {
        tenant,
        admin: false,
    })
}
