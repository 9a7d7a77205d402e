//! One-time messages across a POST-redirect-GET: "Endpoint created", and the secret or key
//! that is shown only once.
//!
//! A POST stores its message under a random ticket and redirects to `…?flash=<ticket>`;
//! the next page takes it out. The secret therefore never travels in a URL or a cookie, and
//! reloading the page does not show it again. A ticket only opens for the session that made
//! it. Where messages wait is the store's business (`Backend::flash_*`): on SQLite, one
//! process serves the pages and keeps them in memory here (`Memory`; a message lost to a
//! restart is harmless, the secret can be rotated); on PostgreSQL they wait in a table, so
//! a POST answered by one replica and its redirect answered by another still meet.
//!
//! Messages are kept per session, a few each (`PER_SESSION`), so one session's flood of
//! actions cannot push out another's message; and per principal (the admin, or one tenant
//! whatever key its portal sessions logged in with), at most `PER_PRINCIPAL` notices and as
//! many secrets, so one tenant's thousand sessions cannot fill the store that every other
//! tenant's new secrets need. Nothing is dropped silently (`admit`, the rule both stores
//! follow):
//! - a session over its bound loses its *own* oldest notice, never a revealed secret;
//! - a principal over its bound keeps no more notices (the redirect says `LOST`);
//! - an action that would reveal a secret asks `room_for_reveal` first and creates nothing
//!   when its message could not be kept;
//! - when the whole store is full a notice is not kept, and the page it redirects to says
//!   so (`LOST`) instead of quietly showing nothing.

pub use crate::store::flash::*;
use crate::store::{Backend, Result};

/// Whether a message revealing a secret could be kept for this session (nonce `owner`, of
/// `principal`) now. Actions that create a secret ask first, so a secret is never created
/// only to be lost.
pub async fn room_for_reveal(
    store: &dyn Backend,
    owner: &str,
    principal: &str,
    now_ms: i64,
) -> Result<bool> {
    store.flash_room_for_reveal(owner, principal, now_ms).await
}

/// Stores a message for the session with nonce `owner`, of `principal`; returns its ticket
/// (`LOST` when a notice could not be kept).
pub async fn put(
    store: &dyn Backend,
    owner: &str,
    principal: &str,
    flash: Flash,
    now_ms: i64,
) -> Result<String> {
    store.flash_put(owner, principal, flash, now_ms).await
}

/// Takes the message of a ticket, if it belongs to this session and is still fresh.
pub async fn take(
    store: &dyn Backend,
    owner: &str,
    ticket: &str,
    now_ms: i64,
) -> Result<Option<Flash>> {
    if ticket == LOST {
        return Ok(Some(Flash::problem(
            "Done, but its confirmation could not be kept (too many messages waiting). \
             Check the result on this page.",
        )));
    }
    store.flash_take(owner, ticket, now_ms).await
}
