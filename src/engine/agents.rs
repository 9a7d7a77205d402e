//! Which agent sends a delivery (README: Reaching receivers).
//!
//! Most endpoints share one agent and its keep-alive pool (`http::agent`); with a
//! deployment `proxy`, a second shared agent goes through it, and endpoints whose host
//! matches `no_proxy` (or whose own proxy is `none`) keep the direct one. An endpoint with
//! its own TLS settings (client certificate, CA bundle) or its own proxy gets its own
//! agent: a client certificate must be presented to that endpoint only, and a pool is
//! per agent, so a shared one could hand its connection to another endpoint.
//!
//! Own agents are built on first use and cached by endpoint id with a fingerprint of the
//! settings they were built from; a changed setting (a renewed certificate, another proxy)
//! shows in the fingerprint of the next claim and builds a new agent, and the old one's
//! connections close when its last clone goes.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use ureq::Agent;

use super::http;
use super::tls::{client_config, TlsSetup};
use crate::config::Config;
use crate::domain::{CaBundle, ClientCert, EndpointProxy, ProxyUrl};
use crate::store::{Claimed, Reach};

/// Own agents kept at most; past it the cache starts over (endpoints deleted since leave
/// theirs behind otherwise).
const MAX_OWN: usize = 10_000;

/// The agent for a delivery, and whether it goes through a proxy (the SSRF guard then
/// checks the target before sending: `http::check_proxied_target`).
pub struct Chosen {
    pub agent: Agent,
    pub proxied: bool,
}

pub struct Agents {
    config: Arc<Config>,
    direct: Agent,
    /// Through the deployment's `proxy`, when it has one.
    via_default: Option<Agent>,
    own: Mutex<HashMap<i64, (u64, Agent, bool)>>,
}

impl Agents {
    pub fn new(config: Arc<Config>) -> Agents {
        let direct = http::agent(&config);
        let via_default = config.proxy.as_ref().map(|p| {
            let tls = shared_tls(&config);
            http::build(&config, tls, Some(p), true, true)
        });
        Agents {
            config,
            direct,
            via_default,
            own: Mutex::new(HashMap::new()),
        }
    }

    /// A shared agent for `url` with the deployment's settings alone: through its proxy
    /// unless `no_proxy` names the host (OAuth2 token requests, `oauth.rs`).
    pub fn for_url(&self, url: &str) -> Chosen {
        let host = url
            .parse::<ureq::http::Uri>()
            .ok()
            .and_then(|u| u.host().map(str::to_owned))
            .unwrap_or_default();
        match &self.via_default {
            Some(via) if !self.config.no_proxy.matches(&host) => Chosen {
                agent: via.clone(),
                proxied: true,
            },
            _ => Chosen {
                agent: self.direct.clone(),
                proxied: false,
            },
        }
    }

    /// The agent for `d`; an error (a stored pair that no longer loads) fails the attempt
    /// with that sentence.
    pub fn choose(&self, d: &Claimed) -> Result<Chosen, String> {
        let reach = &d.reach;
        let own_tls = reach.client_cert.is_some() || reach.ca_bundle.is_some();
        let own_proxy = reach.proxy.as_deref().map(|stored| {
            EndpointProxy::from_stored(stored.to_owned(), reach.proxy_credentials.clone())
        });
        // The deployment's proxy, unless `no_proxy` names the endpoint's host.
        let default_proxy = || {
            let host = d
                .url
                .parse::<ureq::http::Uri>()
                .ok()
                .and_then(|u| u.host().map(str::to_owned))
                .unwrap_or_default();
            self.config
                .proxy
                .as_ref()
                .filter(|_| !self.config.no_proxy.matches(&host))
        };
        if !own_tls {
            match &own_proxy {
                None => {
                    return Ok(match (default_proxy(), &self.via_default) {
                        (Some(_), Some(via)) => Chosen {
                            agent: via.clone(),
                            proxied: true,
                        },
                        _ => Chosen {
                            agent: self.direct.clone(),
                            proxied: false,
                        },
                    })
                }
                Some(EndpointProxy::Direct) => {
                    return Ok(Chosen {
                        agent: self.direct.clone(),
                        proxied: false,
                    })
                }
                Some(EndpointProxy::Via(_)) => {}
            }
        }
        // (The proxy, and whether it is the deployment's: only that one's address is exempt
        // from the guard.)
        let (proxy, deployment_proxy): (Option<ProxyUrl>, bool) = match own_proxy {
            Some(EndpointProxy::Direct) => (None, false),
            Some(EndpointProxy::Via(p)) => (Some(p), false),
            None => (default_proxy().cloned(), true),
        };
        let print = fingerprint(reach, proxy.as_ref());
        let mut own = self.own.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, agent, proxied)) = own.get(&d.endpoint_id) {
            if *at == print {
                return Ok(Chosen {
                    agent: agent.clone(),
                    proxied: *proxied,
                });
            }
        }
        let agent = self.build(reach, proxy.as_ref(), deployment_proxy)?;
        if own.len() >= MAX_OWN {
            own.clear();
        }
        let proxied = proxy.is_some();
        own.insert(d.endpoint_id, (print, agent.clone(), proxied));
        Ok(Chosen { agent, proxied })
    }

    fn build(
        &self,
        reach: &Reach,
        proxy: Option<&ProxyUrl>,
        deployment_proxy: bool,
    ) -> Result<Agent, String> {
        let client_cert = match (&reach.client_cert, &reach.client_key) {
            (Some(cert), Some(key)) => {
                let pair = ClientCert::from_stored(cert.clone(), key.clone())
                    .ok_or("the endpoint's client certificate no longer parses")?;
                Some(pair.rustls_parts()?)
            }
            (Some(_), None) => {
                return Err("the endpoint's client key cannot be opened (sealed with \
                            another secret key?); set the certificate and key again"
                    .into())
            }
            _ => None,
        };
        let only_roots = match &reach.ca_bundle {
            Some(pem) => Some(
                CaBundle::from_stored(pem.clone())
                    .ok_or("the endpoint's ca_bundle no longer parses")?
                    .ders(),
            ),
            None => None,
        };
        let tls = client_config(TlsSetup {
            extra_roots: &self.config.extra_roots,
            only_roots,
            client_cert,
        })?;
        Ok(http::build(
            &self.config,
            tls,
            proxy,
            false,
            deployment_proxy,
        ))
    }
}

fn shared_tls(config: &Config) -> Arc<rustls::ClientConfig> {
    client_config(TlsSetup {
        extra_roots: &config.extra_roots,
        only_roots: None,
        client_cert: None,
    })
    .expect("a TLS client configuration")
}

/// What an own agent was built from (the settings and the proxy it goes through).
fn fingerprint(reach: &Reach, proxy: Option<&ProxyUrl>) -> u64 {
    let mut h = DefaultHasher::new();
    reach.hash(&mut h);
    proxy
        .map(|p| (p.url().to_owned(), p.credentials().map(str::to_owned)))
        .hash(&mut h);
    h.finish()
}
