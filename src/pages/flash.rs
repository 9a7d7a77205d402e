//! One-time messages across a POST-redirect-GET: "Endpoint created", and the secret or key
//! that is shown only once.
//!
//! A POST stores its message here under a random ticket and redirects to `…?flash=<ticket>`;
//! the next page takes it out. The secret therefore never travels in a URL or a cookie, and
//! reloading the page does not show it again. A ticket only opens for the session that made
//! it. Kept in memory: one Herald process serves the pages, and a message lost to a restart
//! is harmless (the secret can be rotated).

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use rand::RngCore;

/// How long a message waits for its page.
const TTL_MS: i64 = 10 * 60 * 1000;
/// A bound on memory if redirects are never followed.
const MAX_WAITING: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tone {
    Notice,
    Problem,
}

/// A value shown once, with what it is ("Signing secret", "API key").
#[derive(Debug, Clone)]
pub struct Reveal {
    pub label: String,
    pub value: String,
}

#[derive(Debug, Clone)]
pub struct Flash {
    pub tone: Tone,
    pub message: String,
    pub reveal: Option<Reveal>,
}

impl Flash {
    pub fn notice(message: impl Into<String>) -> Flash {
        Flash {
            tone: Tone::Notice,
            message: message.into(),
            reveal: None,
        }
    }

    pub fn problem(message: impl Into<String>) -> Flash {
        Flash {
            tone: Tone::Problem,
            message: message.into(),
            reveal: None,
        }
    }

    pub fn reveal(mut self, label: &str, value: String) -> Flash {
        self.reveal = Some(Reveal {
            label: label.into(),
            value,
        });
        self
    }

    pub fn is_problem(&self) -> bool {
        self.tone == Tone::Problem
    }
}

struct Waiting {
    owner: String,
    expires_ms: i64,
    flash: Flash,
}

static WAITING: LazyLock<Mutex<HashMap<String, Waiting>>> = LazyLock::new(Default::default);

/// Stores a message for the session with nonce `owner`; returns its ticket.
pub fn put(owner: &str, flash: Flash, now_ms: i64) -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    let ticket = hex::encode(bytes);
    let mut waiting = WAITING.lock().unwrap_or_else(|p| p.into_inner());
    waiting.retain(|_, w| w.expires_ms > now_ms);
    if waiting.len() < MAX_WAITING {
        let entry = Waiting {
            owner: owner.into(),
            expires_ms: now_ms + TTL_MS,
            flash,
        };
        waiting.insert(ticket.clone(), entry);
    }
    ticket
}

/// Takes the message of a ticket, if it belongs to this session and is still fresh.
pub fn take(owner: &str, ticket: &str, now_ms: i64) -> Option<Flash> {
    let mut waiting = WAITING.lock().unwrap_or_else(|p| p.into_inner());
    match waiting.get(ticket) {
        Some(w) if w.owner == owner && w.expires_ms > now_ms => {
            waiting.remove(ticket).map(|w| w.flash)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_once_and_only_to_its_session() {
        let t = put("me", Flash::notice("hi").reveal("Secret", "s3".into()), 0);
        assert!(take("someone else", &t, 1).is_none());
        let f = take("me", &t, 1).expect("the owner gets it");
        assert_eq!(f.reveal.unwrap().value, "s3");
        assert!(take("me", &t, 2).is_none(), "only once");
        let t = put("me", Flash::problem("late"), 0);
        assert!(take("me", &t, TTL_MS + 1).is_none(), "expired");
    }
}
