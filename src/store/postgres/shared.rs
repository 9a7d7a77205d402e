//! What replicas share that one process keeps in memory on SQLite: the pages' one-time
//! messages (`pages::flash`) and the authentication throttles (`throttle`).
//!
//! A load balancer may send a POST to one replica and its redirect to another, and a
//! guesser's requests to all of them; so both live in tables every replica reads. Both
//! tables are UNLOGGED: nothing here is worth a WAL flush per login attempt, and a crash of
//! PostgreSQL losing them costs what a restart of a SQLite Herald costs (a message shown on
//! the redirect is gone; counts start again).
//!
//! Exactness comes from PostgreSQL's locks, not from reading then writing:
//! - a throttle slot is checked and taken by one `INSERT … ON CONFLICT DO UPDATE … WHERE`,
//!   which locks the row and re-checks the limit on its latest version, so 200 parallel
//!   guesses at one door get exactly the limit, whichever replicas they reach; a slot turns
//!   into a failure, or is given back, by one `UPDATE`;
//! - a principal's messages (over all its sessions, so each session's too) are counted and
//!   trimmed under a transaction-scoped advisory lock on the principal, so both bounds
//!   hold under parallel POSTs.
//!
//! A message can reveal a secret (a new API key), so what is stored is sealed with the
//! deployment's secret key, like endpoint secrets: a database dump shows no key.

use postgres::types::Type;
use postgres::Client;

use crate::secrets::secret_key::{open_stored, seal_stored};
use crate::store::flash::{self, Admit, Flash};
use crate::store::throttle::{Check, Door, Failures, FORGET_MS, LOG_EVERY_MS, STALE_PENDING_MS};
use crate::store::{Result, StoreError};

/// The first half of the advisory lock key a principal's messages are trimmed under (the
/// second is a hash of the principal); "flsh" as a number.
const FLASH_LOCK: i32 = 0x666c_7368;

/// What a flash message is sealed for: its session (a message copied to another session's
/// row does not open there).
fn flash_owner(session: &str) -> String {
    format!("flash:{session}")
}

pub fn flash_room_for_reveal(
    c: &mut Client,
    session: &str,
    principal: &str,
    now: i64,
) -> Result<bool> {
    let row = c.query_one(
        "SELECT count(*) FILTER (WHERE session = $1 AND reveal),
                count(*) FILTER (WHERE principal = $2 AND reveal), count(*)
           FROM flash_messages WHERE expires_at > $3",
        &[&session, &principal, &now],
    )?;
    let (session_reveals, principal_reveals, total): (i64, i64, i64) =
        (row.get(0), row.get(1), row.get(2));
    Ok(flash::reveal_fits(
        session_reveals as usize,
        principal_reveals as usize,
        total as usize,
    ))
}

pub fn flash_put(
    c: &mut Client,
    session: &str,
    principal: &str,
    message: &Flash,
    now: i64,
) -> Result<String> {
    let reveal = message.reveal.is_some();
    let sealed = seal_stored(
        &serde_json::to_string(message)
            .map_err(|e| StoreError::Backend(format!("a flash message: {e}")))?,
        &flash_owner(session),
    );
    let mut tx = c.transaction()?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext($2))",
        &[&FLASH_LOCK, &principal],
    )?;
    // Expired messages of every session go; the index on expires_at makes this a probe
    // when there are none.
    tx.execute("DELETE FROM flash_messages WHERE expires_at <= $1", &[&now])?;
    let waiting = tx.query(
        "SELECT ticket, reveal FROM flash_messages WHERE session = $1 ORDER BY id",
        &[&session],
    )?;
    let reveals: Vec<bool> = waiting.iter().map(|r| r.get(1)).collect();
    let row = tx.query_one(
        "SELECT count(*) FILTER (WHERE principal = $1 AND NOT reveal),
                count(*) FILTER (WHERE principal = $1 AND reveal), count(*)
           FROM flash_messages",
        &[&principal],
    )?;
    let (notices, reveals_of_principal, total): (i64, i64, i64) =
        (row.get(0), row.get(1), row.get(2));
    let of_principal = flash::Waiting {
        notices: notices as usize,
        reveals: reveals_of_principal as usize,
    };
    match flash::admit(&reveals, of_principal, total as usize, reveal) {
        Admit::Lost => return Ok(flash::LOST.into()),
        Admit::KeepDropping(i) => {
            let ticket: &str = waiting[i].get(0);
            tx.execute("DELETE FROM flash_messages WHERE ticket = $1", &[&ticket])?;
        }
        Admit::Keep => {}
    }
    let ticket = flash::new_ticket();
    tx.execute(
        "INSERT INTO flash_messages (ticket, session, principal, reveal, message, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &ticket,
            &session,
            &principal,
            &reveal,
            &sealed,
            &(now + flash::TTL_MS),
        ],
    )?;
    tx.commit()?;
    Ok(ticket)
}

pub fn flash_take(c: &mut Client, session: &str, ticket: &str, now: i64) -> Result<Option<Flash>> {
    let Some(row) = c.query_opt(
        "DELETE FROM flash_messages WHERE ticket = $1 AND session = $2
         RETURNING message, expires_at",
        &[&ticket, &session],
    )?
    else {
        return Ok(None);
    };
    let (sealed, expires_at): (String, i64) = (row.get(0), row.get(1));
    if expires_at <= now {
        return Ok(None);
    }
    // One that does not open (sealed by a Herald before this one, another key, or copied
    // from another session's row) is not shown; the page goes on without it.
    let text = match open_stored(&sealed, &flash_owner(session)) {
        Ok(text) => text,
        Err(e) => {
            tracing::warn!(error = %e, "a one-time message cannot be opened");
            return Ok(None);
        }
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| StoreError::Backend(format!("a flash message: {e}")))
}

/// One statement takes a slot when failures plus attempts still being checked leave one
/// (aged-out failures and stale attempts count as none); no row back means none was free.
///
/// The API's door is the exception: every authenticated request passes it, so a slot there
/// would cost two writes to one hot row per request. It only reads whether the address is
/// locked out, and counts failures as they happen (`throttle_hold` then `throttle_failed`):
/// a burst of wrong bearer tokens sent in parallel may overshoot the limit by the burst,
/// but every failure is counted and the address is locked out after them. The login doors
/// keep the exact count.
pub fn throttle_begin(c: &mut Client, door: Door, key: &str, now: i64) -> Result<Check> {
    let limit = door.lock_after() as i32;
    if door == Door::Api {
        return Ok(match locked_out(c, key, limit, now)? {
            Some(failures) => Check::Locked(failures),
            None => Check::Open,
        });
    }
    let taken = c.query_opt(
        "INSERT INTO throttles AS t (key, failures, last_ms, pending, pending_ms)
         VALUES ($1, 0, $2, 1, $2)
         ON CONFLICT (key) DO UPDATE SET
             failures = CASE WHEN $2 - t.last_ms >= $3 THEN 0 ELSE t.failures END,
             pending = CASE WHEN $2 - t.pending_ms >= $4 THEN 1 ELSE t.pending + 1 END,
             pending_ms = $2
           WHERE CASE WHEN $2 - t.last_ms >= $3 THEN 0 ELSE t.failures END
               + CASE WHEN $2 - t.pending_ms >= $4 THEN 0 ELSE t.pending END < $5
         RETURNING 1",
        &[&key, &now, &FORGET_MS, &STALE_PENDING_MS, &limit],
    )?;
    if taken.is_some() {
        if rand::random::<u8>() == 0 {
            // Now and then, forget the addresses whose failures aged out.
            c.execute(
                "DELETE FROM throttles WHERE last_ms <= $1 AND pending_ms <= $2",
                &[&(now - FORGET_MS), &(now - STALE_PENDING_MS)],
            )?;
        }
        return Ok(Check::Open);
    }
    // No slot: locked out if failures alone fill them (then log at most once a minute),
    // else attempts being checked hold them and this one waits.
    Ok(locked_out(c, key, limit, now)?.map_or(Check::Busy, Check::Locked))
}

/// The address's failures when they reach `limit` (marked logged when none was for a
/// minute); `None` when it is not locked out. No write when it is not.
fn locked_out(c: &mut Client, key: &str, limit: i32, now: i64) -> Result<Option<Failures>> {
    let locked = c.query_typed_opt(
        "WITH before AS (
             SELECT logged_ms FROM throttles
              WHERE key = $1 AND failures >= $2 AND $3 - last_ms < $4 FOR UPDATE)
         UPDATE throttles t SET logged_ms = CASE
                 WHEN b.logged_ms IS NULL OR $3 - b.logged_ms >= $5 THEN $3 ELSE b.logged_ms END
           FROM before b WHERE t.key = $1
         RETURNING t.failures, b.logged_ms IS NULL OR $3 - b.logged_ms >= $5",
        &[
            (&key, Type::TEXT),
            (&limit, Type::INT4),
            (&now, Type::INT8),
            (&FORGET_MS, Type::INT8),
            (&LOG_EVERY_MS, Type::INT8),
        ],
    )?;
    Ok(locked.map(|r| Failures {
        count: r.get::<_, i32>(0).max(0) as u32,
        log: r.get(1),
    }))
}

/// A slot for a failure at a door that took none (the API's): `throttle_failed` turns it
/// into the failure.
pub fn throttle_hold(c: &mut Client, key: &str, now: i64) -> Result<()> {
    c.execute(
        "INSERT INTO throttles AS t (key, failures, last_ms, pending, pending_ms)
         VALUES ($1, 0, $2, 1, $2)
         ON CONFLICT (key) DO UPDATE SET pending = t.pending + 1, pending_ms = $2",
        &[&key, &now],
    )?;
    Ok(())
}

/// The attempt's slot becomes a failure (one statement), marked logged when no failure of
/// this address was for a minute.
pub fn throttle_failed(c: &mut Client, key: &str, now: i64) -> Result<Option<Failures>> {
    let row = c.query_opt(
        "WITH before AS (SELECT logged_ms FROM throttles WHERE key = $1 FOR UPDATE)
         UPDATE throttles t SET
             pending = greatest(t.pending - 1, 0),
             failures = CASE WHEN $2 - t.last_ms >= $4 THEN 1 ELSE t.failures + 1 END,
             last_ms = $2,
             logged_ms = CASE
                 WHEN b.logged_ms IS NULL OR $2 - b.logged_ms >= $3 THEN $2 ELSE b.logged_ms END
           FROM before b WHERE t.key = $1
         RETURNING t.failures, b.logged_ms IS NULL OR $2 - b.logged_ms >= $3",
        &[&key, &now, &LOG_EVERY_MS, &FORGET_MS],
    )?;
    Ok(row.map(|r| Failures {
        count: r.get::<_, i32>(0).max(0) as u32,
        log: r.get(1),
    }))
}

/// Frees the slot `throttle_begin` took.
pub fn throttle_succeeded(c: &mut Client, key: &str) -> Result<()> {
    c.execute(
        "UPDATE throttles SET pending = pending - 1 WHERE key = $1 AND pending > 0",
        &[&key],
    )?;
    Ok(())
}
