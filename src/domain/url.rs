//! Endpoint URLs: absolute http(s), no credentials, and a host that is not this machine's,
//! a private network's or the cloud metadata service's. The address rules themselves are
//! `address.rs`'s; the engine applies the same rules again at connect time (`engine::http`),
//! to every address a name resolves to.

use super::address;

/// An endpoint URL: absolute http(s), no credentials, and (unless private targets are
/// allowed) not a loopback, private or metadata host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointUrl(String);

impl EndpointUrl {
    pub const MAX_LEN: usize = 2048;

    pub fn parse(s: &str, allow_private_targets: bool) -> Result<EndpointUrl, String> {
        if s.len() > Self::MAX_LEN {
            return Err(format!("url is longer than {} characters", Self::MAX_LEN));
        }
        let uri: http::Uri = s
            .parse()
            .map_err(|_| format!("`{s}` is not a valid absolute URL"))?;
        match uri.scheme_str() {
            Some("http") | Some("https") => {}
            _ => return Err("url must start with http:// or https://".into()),
        }
        let authority = uri
            .authority()
            .ok_or_else(|| format!("`{s}` has no host"))?;
        if authority.as_str().contains('@') {
            return Err("url must not contain credentials; use `headers` instead".into());
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("`{s}` has no host"));
        }
        if !allow_private_targets {
            address::check_host(host).map_err(|e| {
                format!(
                    "url is not allowed: {e}; to deliver to private addresses (local development), \
                     set `allow_private_targets = true` or HERALD_ALLOW_PRIVATE_TARGETS=true"
                )
            })?;
        }
        Ok(EndpointUrl(s.to_owned()))
    }

    /// Rebuilds a URL read back from the database (it was validated when stored).
    pub fn from_stored(url: String) -> EndpointUrl {
        EndpointUrl(url)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert!(EndpointUrl::parse("https://example.com/hook", false).is_ok());
        assert!(EndpointUrl::parse("http://127.0.0.1:9000/hook", false).is_err());
        assert!(EndpointUrl::parse("http://127.0.0.1:9000/hook", true).is_ok());
        assert!(EndpointUrl::parse("http://[::1]:9000/", false).is_err());
        assert!(EndpointUrl::parse("http://169.254.169.254/latest", false).is_err());
        assert!(EndpointUrl::parse("http://localhost/", false).is_err());
        assert!(EndpointUrl::parse("ftp://example.com/", false).is_err());
        assert!(EndpointUrl::parse("example.com/hook", false).is_err());
        assert!(EndpointUrl::parse("https://user:pw@example.com/", false).is_err());
    }
}
