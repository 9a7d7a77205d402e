//! How Herald authenticates to an endpoint (issue 20, item 3): HTTP Basic, a static bearer
//! token, or an OAuth2 access token it fetches with the client credentials grant
//! (RFC 6749, section 4.4; the fetching and caching are `engine::oauth`'s).
//!
//! The credentials (password, token, client secret) are write-only: an answer shows each
//! as `ExtraHeaders::MASKED`, and the same string sent back (a GET-modify-PATCH, or a form
//! left blank) keeps the stored value (`keep_secret`). At rest the whole setting is one
//! sealed column (`store::endpoint_settings::SEALED`).

use serde::{Deserialize, Serialize};

use super::{EndpointUrl, ExtraHeaders};

/// What a credential field may hold: visible ASCII (it ends up in a header), bounded.
const MAX_CREDENTIAL: usize = 4096;

/// An endpoint's authentication, validated. Its `Debug` masks the secret, so a settings
/// struct printed into a log or a panic message carries none.
#[derive(Clone, PartialEq, Eq)]
pub enum EndpointAuth {
    Basic { username: String, password: String },
    Bearer { token: String },
    OAuth2(OAuth2),
}

/// The client credentials grant's settings.
#[derive(Clone, PartialEq, Eq)]
pub struct OAuth2 {
    /// Checked like an endpoint URL (the SSRF guard's rules at create, its resolver at
    /// connect time): a token URL is as much a way inside as a target.
    pub token_url: EndpointUrl,
    pub client_id: String,
    pub client_secret: String,
    pub scope: Option<String>,
    pub audience: Option<String>,
}

/// `auth` as written in the API: `{"type": "basic", "username": …, "password": …}`,
/// `{"type": "bearer", "token": …}` or `{"type": "oauth2_client_credentials",
/// "token_url": …, "client_id": …, "client_secret": …, "scope"?: …, "audience"?: …}`.
/// Also the stored form (with the secrets in clear, inside the seal).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthInput {
    Basic {
        username: String,
        /// Write-only: answered as `********`; `********` sent back keeps the stored one.
        password: String,
    },
    Bearer {
        /// Write-only, like `password`.
        token: String,
    },
    #[serde(rename = "oauth2_client_credentials")]
    OAuth2ClientCredentials {
        token_url: String,
        client_id: String,
        /// Write-only, like `password`.
        client_secret: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scope: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        audience: Option<String>,
    },
}

impl std::fmt::Debug for EndpointAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.masked().fmt(f)
    }
}

impl std::fmt::Debug for OAuth2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        EndpointAuth::OAuth2(self.clone()).masked().fmt(f)
    }
}

fn credential(field: &str, v: String, allow_empty: bool) -> Result<String, String> {
    if v.is_empty() && !allow_empty {
        return Err(format!("auth.{field}: required"));
    }
    if v.len() > MAX_CREDENTIAL {
        return Err(format!(
            "auth.{field}: longer than {MAX_CREDENTIAL} characters"
        ));
    }
    // What reaches a header (or the token request's form) must be visible ASCII: a line
    // break would let a value add headers of its own.
    if !v.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(format!("auth.{field}: only visible ASCII characters"));
    }
    Ok(v)
}

fn optional(field: &str, v: Option<String>) -> Result<Option<String>, String> {
    v.filter(|s| !s.trim().is_empty())
        .map(|s| credential(field, s, false))
        .transpose()
}

impl EndpointAuth {
    /// Validates an `auth` as sent. A secret may be `ExtraHeaders::MASKED` (keep the stored
    /// one): `keep_secret` must then fill it in before the setting is stored.
    pub fn parse(input: AuthInput, allow_private_targets: bool) -> Result<EndpointAuth, String> {
        Ok(match input {
            AuthInput::Basic { username, password } => {
                let username = credential("username", username, false)?;
                // RFC 7617: the user-id cannot contain a colon (it separates the password).
                if username.contains(':') {
                    return Err("auth.username: must not contain `:`".into());
                }
                EndpointAuth::Basic {
                    username,
                    password: credential("password", password, true)?,
                }
            }
            AuthInput::Bearer { token } => EndpointAuth::Bearer {
                token: credential("token", token, false)?,
            },
            AuthInput::OAuth2ClientCredentials {
                token_url,
                client_id,
                client_secret,
                scope,
                audience,
            } => EndpointAuth::OAuth2(OAuth2 {
                token_url: EndpointUrl::parse(&token_url, allow_private_targets)
                    .map_err(|e| format!("auth.token_url: {e}"))?,
                client_id: credential("client_id", client_id, false)?,
                client_secret: credential("client_secret", client_secret, false)?,
                scope: optional("scope", scope)?,
                audience: optional("audience", audience)?,
            }),
        })
    }

    /// The type as the API names it.
    pub fn kind(&self) -> &'static str {
        match self {
            EndpointAuth::Basic { .. } => "basic",
            EndpointAuth::Bearer { .. } => "bearer",
            EndpointAuth::OAuth2(_) => "oauth2_client_credentials",
        }
    }

    /// The secret of this setting (password, token or client secret).
    fn secret_mut(&mut self) -> &mut String {
        match self {
            EndpointAuth::Basic { password, .. } => password,
            EndpointAuth::Bearer { token } => token,
            EndpointAuth::OAuth2(o) => &mut o.client_secret,
        }
    }

    pub fn has_masked(&self) -> bool {
        let mut copy = self.clone();
        copy.secret_mut() == ExtraHeaders::MASKED
    }

    /// A masked secret (sent back as it was shown) keeps the stored one, when the stored
    /// setting is of the same type; otherwise there is nothing to keep, and it is an error.
    pub fn keep_secret(mut self, current: Option<&EndpointAuth>) -> Result<EndpointAuth, String> {
        if !self.has_masked() {
            return Ok(self);
        }
        match current {
            Some(stored) if stored.kind() == self.kind() => {
                *self.secret_mut() = stored.clone().secret_mut().clone();
                Ok(self)
            }
            _ => Err(format!(
                "auth: the {} secret is required (`{}`, or a blank form field, keeps a stored \
                 one, and there is none of this type)",
                self.kind(),
                ExtraHeaders::MASKED
            )),
        }
    }

    /// As answered: every secret masked.
    pub fn masked(&self) -> AuthInput {
        let mut shown = self.to_input();
        let secret = match &mut shown {
            AuthInput::Basic { password, .. } => password,
            AuthInput::Bearer { token } => token,
            AuthInput::OAuth2ClientCredentials { client_secret, .. } => client_secret,
        };
        *secret = ExtraHeaders::MASKED.to_owned();
        shown
    }

    /// The setting with its secrets, for the store (which seals it).
    pub fn to_input(&self) -> AuthInput {
        match self.clone() {
            EndpointAuth::Basic { username, password } => AuthInput::Basic { username, password },
            EndpointAuth::Bearer { token } => AuthInput::Bearer { token },
            EndpointAuth::OAuth2(o) => AuthInput::OAuth2ClientCredentials {
                token_url: o.token_url.as_str().to_owned(),
                client_id: o.client_id,
                client_secret: o.client_secret,
                scope: o.scope,
                audience: o.audience,
            },
        }
    }

    /// The stored text (JSON; sealed by the store).
    pub fn to_stored(&self) -> String {
        serde_json::to_string(&self.to_input()).unwrap_or_default()
    }

    /// Rebuilds a stored setting (validated when written); `None` when it does not parse.
    pub fn from_stored(text: &str) -> Option<EndpointAuth> {
        let input: AuthInput = serde_json::from_str(text).ok()?;
        Some(match input {
            AuthInput::Basic { username, password } => EndpointAuth::Basic { username, password },
            AuthInput::Bearer { token } => EndpointAuth::Bearer { token },
            AuthInput::OAuth2ClientCredentials {
                token_url,
                client_id,
                client_secret,
                scope,
                audience,
            } => EndpointAuth::OAuth2(OAuth2 {
                token_url: EndpointUrl::from_stored(token_url),
                client_id,
                client_secret,
                scope,
                audience,
            }),
        })
    }
}

/// An endpoint may have `auth` or an extra `Authorization` header, not both: which one a
/// receiver gets would otherwise be a rule to remember. Refused where both meet (create,
/// PATCH, the form), with this message.
pub fn check_no_authorization_header(
    auth: Option<&EndpointAuth>,
    headers: &ExtraHeaders,
) -> Result<(), String> {
    let clash = auth.is_some()
        && headers
            .map()
            .keys()
            .any(|k| k.eq_ignore_ascii_case("authorization"));
    if clash {
        return Err(
            "auth: the endpoint also has an extra `Authorization` header; remove that header \
             (auth sets Authorization itself) or drop auth"
                .into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(password: &str) -> AuthInput {
        AuthInput::Basic {
            username: "u".into(),
            password: password.into(),
        }
    }

    #[test]
    fn secrets_are_masked_and_a_masked_one_keeps_the_stored() {
        let stored = EndpointAuth::parse(basic("pw"), false).unwrap();
        assert_eq!(stored.masked(), basic("********"));
        let resent = EndpointAuth::parse(basic("********"), false).unwrap();
        assert!(resent.has_masked());
        assert_eq!(resent.clone().keep_secret(Some(&stored)).unwrap(), stored);
        assert!(resent.keep_secret(None).is_err());
        let bearer = EndpointAuth::parse(
            AuthInput::Bearer {
                token: "********".into(),
            },
            false,
        )
        .unwrap();
        assert!(bearer.keep_secret(Some(&stored)).is_err());
    }

    #[test]
    fn debug_output_masks_the_secret() {
        let auth = EndpointAuth::parse(basic("pw-in-debug"), false).unwrap();
        let printed = format!("{auth:?}");
        assert!(
            !printed.contains("pw-in-debug") && printed.contains("********"),
            "{printed}"
        );
    }

    #[test]
    fn stored_text_round_trips() {
        let o = EndpointAuth::parse(
            AuthInput::OAuth2ClientCredentials {
                token_url: "https://auth.example.com/token".into(),
                client_id: "id".into(),
                client_secret: "s".into(),
                scope: Some("a b".into()),
                audience: None,
            },
            false,
        )
        .unwrap();
        assert_eq!(EndpointAuth::from_stored(&o.to_stored()), Some(o));
    }

    #[test]
    fn token_urls_pass_the_ssrf_rules() {
        let at = |url: &str, private| {
            EndpointAuth::parse(
                AuthInput::OAuth2ClientCredentials {
                    token_url: url.into(),
                    client_id: "id".into(),
                    client_secret: "s".into(),
                    scope: None,
                    audience: None,
                },
                private,
            )
        };
        assert!(at("http://127.0.0.1:9/token", false).is_err());
        assert!(at("http://169.254.169.254/token", false).is_err());
        assert!(at("http://127.0.0.1:9/token", true).is_ok());
    }

    #[test]
    fn auth_and_an_authorization_header_do_not_mix() {
        let auth = EndpointAuth::parse(basic("pw"), false).unwrap();
        let headers =
            ExtraHeaders::from_stored([("authorization".to_owned(), "x".to_owned())].into());
        assert!(check_no_authorization_header(Some(&auth), &headers).is_err());
        assert!(check_no_authorization_header(None, &headers).is_ok());
        assert!(check_no_authorization_header(Some(&auth), &ExtraHeaders::default()).is_ok());
    }
}
