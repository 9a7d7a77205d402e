//! Who is calling: the admin (any tenant, `default` unless one is named) or a tenant key
//! (its own tenant only). Tokens are compared by their SHA-256, the only form we store (the
//! admin token's in constant time; a key's hash is looked up by value).
//! Wrong tokens are counted per client address (`crate::server::throttle`): answers to them slow
//! down, and an address that keeps guessing is refused with 429 until its failures age out.

use std::future::Future;
use std::pin::Pin;

use actix_web::{dev::Payload, web, FromRequest, HttpRequest};

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

impl FromRequest for Auth {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = bearer(req);
        let named = named_tenant(req);
        let req = req.clone();
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::Unavailable("server not ready".into()))?;
            let token = token.ok_or_else(|| {
                ApiError::Unauthorized("send `Authorization: Bearer <api key>`".into())
            })?;
            let ip = crate::server::client_addr::of_request(&req, &state.config.trusted_proxies);
            if throttle::begin(&*state.store, Door::Api, ip, now_ms()).await? == Gate::Locked {
                return Err(ApiError::TooManyRequests(
                    "too many wrong API keys from your address; wait 15 minutes".into(),
                ));
            }
            let auth = authenticate(&state, &token, named).await;
            match &auth {
                Err(ApiError::Unauthorized(_)) => {
                    let delay = throttle::failed(&*state.store, Door::Api, ip, now_ms()).await;
                    actix_web::rt::time::sleep(delay).await;
                }
                _ => throttle::succeeded(&*state.store, Door::Api, ip).await,
            }
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
