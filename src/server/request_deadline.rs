//! A whole request must arrive in bounded time, so a client that trickles bytes cannot hold
//! a connection (a file descriptor, a buffer) for as long as it likes.
//!
//! Headers are bounded by actix (`client_request_timeout`, `HEADERS_TIMEOUT` here). A body
//! is bounded by wrapping every request's payload stream in `Deadline`: once `BODY_TIMEOUT`
//! has passed since the headers arrived, the next read fails, whichever extractor reads it
//! (the API's `RawBody`, the pages' forms). The handler answers the error and actix closes
//! the connection, since the body was not read to its end. Stalled clients are logged, at
//! most once every `LOG_EVERY_MS`, with how many were cut off in between.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::dev::{Payload, ServiceRequest};
use actix_web::error::PayloadError;
use actix_web::web::Bytes;
use actix_web::HttpMessage;
use futures_core::Stream;
use tokio::time::{sleep, Sleep};

use crate::clock::now_ms;

/// From the first byte to the end of the headers.
pub const HEADERS_TIMEOUT: Duration = Duration::from_secs(5);
/// From the end of the headers to the end of the body: a 1 MiB body at 100 KiB/s.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
const LOG_EVERY_MS: i64 = 10_000;

/// Puts the body deadline on a request's payload (requests without a body are left alone).
pub fn wrap(req: &mut ServiceRequest) {
    match req.take_payload() {
        Payload::None => {}
        payload => req.set_payload(Payload::Stream {
            payload: Box::pin(Deadline {
                inner: payload,
                timer: Box::pin(sleep(BODY_TIMEOUT)),
                peer: req.peer_addr().map(|a| a.ip().to_string()),
            }),
        }),
    }
}

struct Deadline {
    inner: Payload,
    timer: Pin<Box<Sleep>>,
    peer: Option<String>,
}

impl Stream for Deadline {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.timer.as_mut().poll(cx).is_ready() {
            stalled(self.peer.as_deref());
            let error = std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "the body did not arrive within {} s",
                    BODY_TIMEOUT.as_secs()
                ),
            );
            return Poll::Ready(Some(Err(PayloadError::Io(error))));
        }
        Pin::new(&mut self.inner).poll_next(cx)
    }
}

static LAST_LOG_MS: AtomicI64 = AtomicI64::new(0);
static UNLOGGED: AtomicU64 = AtomicU64::new(0);

fn stalled(peer: Option<&str>) {
    let count = UNLOGGED.fetch_add(1, Ordering::Relaxed) + 1;
    let now = now_ms();
    let last = LAST_LOG_MS.load(Ordering::Relaxed);
    if now - last >= LOG_EVERY_MS
        && LAST_LOG_MS
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        UNLOGGED.fetch_sub(count, Ordering::Relaxed);
        tracing::warn!(
            peer,
            cut_off = count,
            "request bodies too slow: cut off (logged at most every 10 s)"
        );
    }
}
