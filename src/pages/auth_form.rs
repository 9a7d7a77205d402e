//! The endpoint form's auth fields (admin pages and portal alike): a type and its values.
//! The secrets are write-only: the form shows them empty, and an empty secret keeps the one
//! stored (it reaches the service as `ExtraHeaders::MASKED`, which keeps it the way a
//! masked value sent back to the API does).

use serde::Deserialize;

use crate::domain::auth::AuthInput;
use crate::domain::{EndpointAuth, ExtraHeaders};

#[derive(Deserialize, Default)]
pub struct AuthForm {
    /// ``, `basic`, `bearer` or `oauth2_client_credentials`; absent (an older form) leaves
    /// the endpoint's auth as it is.
    pub auth_type: Option<String>,
    #[serde(default)]
    pub auth_username: String,
    #[serde(default)]
    pub auth_password: String,
    #[serde(default)]
    pub auth_token: String,
    #[serde(default)]
    pub auth_token_url: String,
    #[serde(default)]
    pub auth_client_id: String,
    #[serde(default)]
    pub auth_client_secret: String,
    #[serde(default)]
    pub auth_scope: String,
    #[serde(default)]
    pub auth_audience: String,
}

/// The choices of the auth select.
const AUTH_CHOICES: [(&str, &str); 4] = [
    ("", "none"),
    ("basic", "basic — user and password"),
    ("bearer", "bearer — a static token"),
    (
        "oauth2_client_credentials",
        "OAuth2 client credentials — Herald fetches a token",
    ),
];

impl AuthForm {
    /// The stored setting as the form shows it: every secret empty.
    pub fn from_auth(auth: Option<&EndpointAuth>) -> AuthForm {
        let mut form = AuthForm {
            auth_type: Some(auth.map_or("", |a| a.kind()).to_owned()),
            ..AuthForm::default()
        };
        match auth {
            None | Some(EndpointAuth::Bearer { .. }) => {}
            Some(EndpointAuth::Basic { username, .. }) => form.auth_username = username.clone(),
            Some(EndpointAuth::OAuth2(o)) => {
                form.auth_token_url = o.token_url.as_str().to_owned();
                form.auth_client_id = o.client_id.clone();
                form.auth_scope = o.scope.clone().unwrap_or_default();
                form.auth_audience = o.audience.clone().unwrap_or_default();
            }
        }
        form
    }

    /// `None`: leave as is (an older form); `Some(None)`: no auth; `Some(Some(..))`: this.
    pub fn parse(&self, allow_private: bool) -> Result<Option<Option<EndpointAuth>>, String> {
        let secret = |v: &str| match v {
            "" => ExtraHeaders::MASKED.to_owned(),
            v => v.to_owned(),
        };
        let input = match self.auth_type.as_deref().map(str::trim) {
            None => return Ok(None),
            Some("") => return Ok(Some(None)),
            Some("basic") => AuthInput::Basic {
                username: self.auth_username.trim().to_owned(),
                password: secret(&self.auth_password),
            },
            Some("bearer") => AuthInput::Bearer {
                token: secret(self.auth_token.trim()),
            },
            Some("oauth2_client_credentials") => AuthInput::OAuth2ClientCredentials {
                token_url: self.auth_token_url.trim().to_owned(),
                client_id: self.auth_client_id.trim().to_owned(),
                client_secret: secret(self.auth_client_secret.trim()),
                scope: Some(self.auth_scope.trim().to_owned()),
                audience: Some(self.auth_audience.trim().to_owned()),
            },
            Some(other) => return Err(format!("auth: unknown type `{other}`")),
        };
        EndpointAuth::parse(input, allow_private).map(|a| Some(Some(a)))
    }

    pub fn auth_choices(&self) -> &'static [(&'static str, &'static str)] {
        &AUTH_CHOICES
    }

    pub fn is_auth(&self, choice: &str) -> bool {
        self.auth_type.as_deref().unwrap_or("") == choice
    }
}

/// An endpoint's auth as its page shows it: the type and who it authenticates as, never a
/// secret.
pub fn describe(auth: Option<&EndpointAuth>) -> String {
    match auth {
        None => "none".into(),
        Some(EndpointAuth::Basic { username, .. }) => format!("basic, as `{username}`"),
        Some(EndpointAuth::Bearer { .. }) => "bearer token".into(),
        Some(EndpointAuth::OAuth2(o)) => format!(
            "OAuth2 client credentials: client `{}`, tokens from {}",
            o.client_id,
            o.token_url.as_str()
        ),
    }
}
