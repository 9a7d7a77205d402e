//! The pages' one-time messages as the store keeps them: a `Flash` (a notice, or a secret
//! shown once), its ticket, and the rules every backend follows — at most `PER_SESSION`
//! waiting per session and `PER_PRINCIPAL` per principal (the admin, or a tenant over all
//! its sessions and keys), `MAX_WAITING` in all, each for `TTL_MS`, and a secret never
//! dropped to make room. They live at the store's level because the store keeps them:
//! SQLite in this process's memory (`Memory`), PostgreSQL in a table every replica sees.
//! How the pages use them (post, redirect, show once) is `pages::flash`, above.

use std::collections::{HashMap, VecDeque};

use rand::RngCore;
use serde::{Deserialize, Serialize};

/// How long a message waits for its page.
pub const TTL_MS: i64 = 10 * 60 * 1000;

/// Messages one session may have waiting (redirects it did not follow).
pub const PER_SESSION: usize = 8;

/// Notices one principal may have waiting over all its sessions, and as many secrets.
/// 10,000 / (2 × 64): it takes 79 principals flooding at once to fill the store.
pub const PER_PRINCIPAL: usize = 64;

/// A bound on the messages waiting over all sessions.
pub const MAX_WAITING: usize = 10_000;

/// The ticket of a message that could not be kept; `take` turns it into a notice saying so.
pub const LOST: &str = "lost";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tone {
    Notice,
    Problem,
}

/// A value shown once, with what it is ("Signing secret", "API key").
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reveal {
    pub label: String,
    pub value: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
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

/// What a store does with a new message, given the session's waiting messages (oldest
/// first; `true` for those that reveal a secret), how many its principal has waiting
/// (`Waiting`) and how many wait over all sessions.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit {
    Keep,
    /// Keep it after dropping the session's waiting message at this index (its oldest notice).
    KeepDropping(usize),
    /// Not kept: the redirect carries `LOST`.
    Lost,
}

pub fn admit(session_reveals: &[bool], principal: Waiting, total: usize, reveal: bool) -> Admit {
    let mut decision = Admit::Keep;
    let mut principal_notices = principal.notices;
    if session_reveals.len() >= PER_SESSION {
        // The session's own oldest notice makes room; a secret is never pushed out.
        match session_reveals.iter().position(|r| !r) {
            Some(i) => {
                decision = Admit::KeepDropping(i);
                principal_notices = principal_notices.saturating_sub(1);
            }
            None if !reveal => return Admit::Lost,
            None => {}
        }
    }
    if !reveal && principal_notices >= PER_PRINCIPAL {
        return Admit::Lost;
    }
    // A reveal passed `room_for_reveal` just before; only a race could take it over the
    // bound, and then it is kept anyway.
    if total >= MAX_WAITING && !reveal {
        return Admit::Lost;
    }
    decision
}

/// Whether a session with `session_reveals` secrets waiting, of a principal with
/// `principal_reveals`, may reveal one more.
pub fn reveal_fits(session_reveals: usize, principal_reveals: usize, total: usize) -> bool {
    session_reveals < PER_SESSION && principal_reveals < PER_PRINCIPAL && total < MAX_WAITING
}

/// What one principal has waiting, over all its sessions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Waiting {
    pub notices: usize,
    pub reveals: usize,
}

/// A fresh random ticket.
pub fn new_ticket() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

struct Kept {
    ticket: String,
    expires_ms: i64,
    flash: Flash,
}

/// One session's waiting messages, oldest first, and whose session it is.
#[derive(Default)]
struct Queue {
    principal: String,
    kept: VecDeque<Kept>,
}

/// The messages of one process, for a store that is not shared (SQLite).
#[derive(Default)]
pub struct Memory {
    /// Session nonce → its waiting messages.
    sessions: HashMap<String, Queue>,
    /// Principal → what it has waiting over its sessions (kept with `sessions`).
    principals: HashMap<String, Waiting>,
    total: usize,
}

impl Memory {
    fn sweep(&mut self, now_ms: i64) {
        let mut total = 0;
        let mut principals: HashMap<String, Waiting> = HashMap::new();
        self.sessions.retain(|_, queue| {
            queue.kept.retain(|w| w.expires_ms > now_ms);
            total += queue.kept.len();
            let counts = principals.entry(queue.principal.clone()).or_default();
            for w in &queue.kept {
                count(counts, &w.flash, 1);
            }
            !queue.kept.is_empty()
        });
        principals.retain(|_, w| *w != Waiting::default());
        self.total = total;
        self.principals = principals;
    }

    fn reveals(&self, owner: &str) -> Vec<bool> {
        self.sessions.get(owner).map_or(Vec::new(), |q| {
            q.kept.iter().map(|w| w.flash.reveal.is_some()).collect()
        })
    }

    fn waiting(&self, principal: &str) -> Waiting {
        self.principals.get(principal).copied().unwrap_or_default()
    }

    pub fn room_for_reveal(&mut self, owner: &str, principal: &str, now_ms: i64) -> bool {
        self.sweep(now_ms);
        let reveals = self.reveals(owner).iter().filter(|r| **r).count();
        reveal_fits(reveals, self.waiting(principal).reveals, self.total)
    }

    pub fn put(&mut self, owner: &str, principal: &str, flash: Flash, now_ms: i64) -> String {
        self.sweep(now_ms);
        let decision = admit(
            &self.reveals(owner),
            self.waiting(principal),
            self.total,
            flash.reveal.is_some(),
        );
        match decision {
            Admit::Lost => return LOST.into(),
            Admit::KeepDropping(i) => {
                let queue = self.sessions.get_mut(owner).expect("has messages");
                if let Some(dropped) = queue.kept.remove(i) {
                    let counts = self.principals.entry(queue.principal.clone()).or_default();
                    count(counts, &dropped.flash, -1);
                    self.total -= 1;
                }
            }
            Admit::Keep => {}
        }
        let ticket = new_ticket();
        count(
            self.principals.entry(principal.into()).or_default(),
            &flash,
            1,
        );
        let entry = Kept {
            ticket: ticket.clone(),
            expires_ms: now_ms + TTL_MS,
            flash,
        };
        let queue = self.sessions.entry(owner.into()).or_default();
        queue.principal = principal.into();
        queue.kept.push_back(entry);
        self.total += 1;
        ticket
    }

    pub fn take(&mut self, owner: &str, ticket: &str, now_ms: i64) -> Option<Flash> {
        let queue = self.sessions.get_mut(owner)?;
        let i = queue.kept.iter().position(|w| w.ticket == ticket)?;
        let waiting = queue.kept.remove(i)?;
        if let Some(counts) = self.principals.get_mut(&queue.principal) {
            count(counts, &waiting.flash, -1);
        }
        if queue.kept.is_empty() {
            self.sessions.remove(owner);
        }
        self.total -= 1;
        (waiting.expires_ms > now_ms).then_some(waiting.flash)
    }
}

/// Adds (`1`) or takes away (`-1`) one message from a principal's counts.
fn count(counts: &mut Waiting, flash: &Flash, by: isize) {
    let slot = if flash.reveal.is_some() {
        &mut counts.reveals
    } else {
        &mut counts.notices
    };
    *slot = slot.saturating_add_signed(by);
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        static LOCAL: std::cell::RefCell<Memory> = Default::default();
    }

    /// Each test session is its own principal unless it says otherwise (`put_as`).
    fn put(owner: &str, flash: Flash, now_ms: i64) -> String {
        put_as(owner, owner, flash, now_ms)
    }

    fn put_as(owner: &str, principal: &str, flash: Flash, now_ms: i64) -> String {
        LOCAL.with(|s| s.borrow_mut().put(owner, principal, flash, now_ms))
    }

    fn take(owner: &str, ticket: &str, now_ms: i64) -> Option<Flash> {
        if ticket == LOST {
            return Some(Flash::problem("lost"));
        }
        LOCAL.with(|s| s.borrow_mut().take(owner, ticket, now_ms))
    }

    fn room_for_reveal(owner: &str, now_ms: i64) -> bool {
        LOCAL.with(|s| s.borrow_mut().room_for_reveal(owner, owner, now_ms))
    }

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

    #[test]
    fn a_flood_costs_only_the_flooding_session_and_never_a_secret() {
        let secret = put("flooder", Flash::notice("k").reveal("Key", "k1".into()), 0);
        for _ in 0..MAX_WAITING + 100 {
            put("flooder", Flash::notice("paused"), 0);
        }
        assert!(
            take("flooder", &secret, 1).is_some(),
            "its own secret survived"
        );
        let other = put("victim", Flash::notice("n").reveal("Key", "k2".into()), 0);
        assert_eq!(
            take("victim", &other, 1).unwrap().reveal.unwrap().value,
            "k2"
        );
    }

    #[test]
    fn reveals_are_refused_before_they_would_be_lost() {
        for _ in 0..PER_SESSION {
            assert!(room_for_reveal("hoarder", 0));
            put("hoarder", Flash::notice("k").reveal("Key", "k".into()), 0);
        }
        assert!(!room_for_reveal("hoarder", 0));
        assert_eq!(put("hoarder", Flash::notice("n"), 0), LOST);
        assert!(take("hoarder", LOST, 0).unwrap().is_problem());
        assert!(
            room_for_reveal("hoarder", TTL_MS + 1),
            "expired ones free room"
        );
    }

    #[test]
    fn one_principal_s_many_sessions_cannot_fill_the_store() {
        // Enough sessions of one tenant, each at its own bound, to fill the whole store.
        for n in 0..MAX_WAITING / PER_SESSION + 10 {
            for _ in 0..PER_SESSION {
                put_as(
                    &format!("flooder-{n}"),
                    "tenant:flooder",
                    Flash::notice("paused"),
                    0,
                );
            }
        }
        let kept = LOCAL.with(|s| s.borrow().waiting("tenant:flooder"));
        assert_eq!(kept.notices, PER_PRINCIPAL);
        assert_eq!(
            put_as("flooder-x", "tenant:flooder", Flash::notice("n"), 0),
            LOST
        );
        // Its own secrets still fit, up to their own bound …
        assert!(LOCAL.with(|s| s
            .borrow_mut()
            .room_for_reveal("flooder-y", "tenant:flooder", 0)));
        // … and another principal's too.
        assert!(LOCAL.with(|s| s.borrow_mut().room_for_reveal("admin-1", "admin", 0)));
        let t = put_as(
            "admin-1",
            "admin",
            Flash::notice("k").reveal("Key", "k".into()),
            0,
        );
        assert_eq!(take("admin-1", &t, 1).unwrap().reveal.unwrap().value, "k");
        // Taking a message gives its principal the room back.
        let t = LOCAL.with(|s| {
            s.borrow()
                .sessions
                .get("flooder-0")
                .and_then(|q| q.kept.front().map(|k| k.ticket.clone()))
        });
        if let Some(t) = t {
            assert!(take("flooder-0", &t, 1).is_some());
            assert_ne!(
                put_as("flooder-x", "tenant:flooder", Flash::notice("n"), 0),
                LOST
            );
        }
    }
}
