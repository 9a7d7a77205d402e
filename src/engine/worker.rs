//! Workers send deliveries; the recorder (`recorder.rs`) writes their outcomes in batches.
//!
//! A worker takes a ready delivery from the board, signs the stored body, posts it, and
//! turns the response into an `AttemptRecord` with its verdict (`retry::decide`). The
//! record goes to the recorder; then the worker tells the board it is done and, if the
//! endpoint has more waiting, goes straight on with the next one. The delivery stays
//! claimed in the store until its record is committed, so it cannot be claimed twice in
//! between; if the process dies first, it is sent again after the restart.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::board::Board;
use super::due::Due;
use super::oauth::Tokens;
use super::{http, retry, EngineStats, Signal};
use crate::clock::Clock;
use crate::config::Config;
use crate::domain::{EndpointAuth, ExtraHeaders};
use crate::lifecycle::Tally;
use crate::store::{AttemptRecord, Claimed, Outbox, Verdict};
use crate::telemetry::{AttemptSpan, TRACEPARENT};
use crate::wire::signing::{self, HeaderNames, SignInput};
use crate::wire::transform::{self, Outcome, Transformation};
use serde_json::value::RawValue;

/// How much of a successful response's body is kept: a success needs no diagnosis, and
/// most of the attempt rows a busy deployment writes are successes.
const SUCCESS_EXCERPT: usize = 256;

#[derive(Clone)]
pub struct WorkerContext {
    pub outbox: Arc<dyn Outbox>,
    pub board: Arc<Board>,
    /// The shared agent, and the endpoints' own (client certificates, CAs, proxies).
    pub agents: Arc<super::agents::Agents>,
    pub config: Arc<Config>,
    pub names: HeaderNames,
    pub clock: Arc<dyn Clock>,
    pub results: mpsc::Sender<AttemptRecord>,
    pub signals: mpsc::Sender<Signal>,
    /// Workers in a request (shutdown waits for them, within its bound).
    pub busy: Arc<Tally>,
    pub stats: Arc<EngineStats>,
    /// OAuth2 tokens of the endpoints that use them, shared by the workers.
    pub tokens: Arc<Tokens>,
    /// The dispatcher's due-time index: claims given back put their endpoint in it.
    pub due: Arc<Due>,
}

impl WorkerContext {
    pub fn header_names(config: &Config) -> HeaderNames {
        HeaderNames {
            prefix: config.signature_prefix.clone(),
            body_header: config.body_signature_header.clone(),
        }
    }
}

/// Workers started when the engine starts; the rest (up to `workers`) as deliveries need
/// them. An idle Herald thus runs a few worker threads, not 64: each thread's stack, its
/// thread-local allocator cache and the arena it may pin are resident memory (README:
/// Performance, idle RSS), and a worker that has never sent anything holds them for nothing.
/// A started worker stays (a burst that needed it is likely to come again).
pub const FIRST_WORKERS: usize = 4;

/// The worker threads of one engine: how many there are and how many wait for work.
pub struct Crew {
    ctx: WorkerContext,
    max: usize,
    started: AtomicUsize,
    /// Workers waiting in `Board::next`.
    idle: AtomicUsize,
}

impl Crew {
    /// Starts the first workers (all of them when `max` is that small).
    pub fn start(ctx: WorkerContext, max: usize) -> Arc<Crew> {
        let crew = Arc::new(Crew {
            ctx,
            max: max.max(1),
            started: AtomicUsize::new(0),
            idle: AtomicUsize::new(0),
        });
        for _ in 0..FIRST_WORKERS.min(crew.max) {
            crew.clone().spawn_one();
        }
        crew
    }

    /// One more worker, unless all `max` run.
    fn spawn_one(self: Arc<Crew>) {
        let Ok(n) = self
            .started
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
        else {
            return;
        };
        let spawned = std::thread::Builder::new()
            .name(format!("herald-worker-{n}"))
            .spawn(move || run(self));
        if let Err(e) = spawned {
            // The running workers carry on; the next busy moment tries again.
            tracing::warn!(error = %e, "a worker thread could not be started");
        }
    }
}

/// A worker's life: waits on the board for a ready delivery until the board stops (at
/// shutdown), and sends its endpoint's deliveries one after another. The worker that takes
/// the last idle place starts another (up to `workers`), so a burst finds one waiting.
fn run(crew: Arc<Crew>) {
    let ctx = &crew.ctx;
    loop {
        crew.idle.fetch_add(1, Ordering::AcqRel);
        let next = ctx.board.next();
        let idle_left = crew.idle.fetch_sub(1, Ordering::AcqRel) - 1;
        let Some(mut delivery) = next else { break };
        if idle_left == 0 {
            crew.clone().spawn_one();
        }
        // Counted while the worker owns a delivery, so shutdown can wait for requests
        // already on the wire instead of cutting them off mid-send.
        let _at_work = ctx.busy.enter();
        loop {
            ctx.stats.metrics.attempt_started();
            let record = attempt(ctx, &delivery);
            count(&ctx.stats, &record);
            ctx.stats.metrics.attempt(&delivery, &record);
            let (gone, record_backoff) = (record.gone, record.backoff_until);
            let answer = answer(&record);
            let _ = ctx.results.send(record);
            // One visit to the board: the answer's news for the adaptive limit, and the
            // endpoint's next delivery.
            let now = ctx.clock.now_ms();
            let finished = ctx
                .board
                .done(delivery.endpoint_id, answer, gone, record_backoff, now);
            // Deliveries the board dropped behind a 410 were claimed but never sent: give
            // the claims back (the recorder's disable then cancels them; if it cannot yet,
            // they are due again). Only PostgreSQL's release can fail, and its leases lapse
            // on their own.
            if !finished.dropped.is_empty() {
                let _ = ctx.outbox.release(&finished.dropped);
                ctx.due.touch(delivery.endpoint_id, now);
                let _ = ctx.signals.send(Signal::Round);
            }
            if finished.ask {
                // Its queue ran dry (top it up), or its next delivery waits for the rate
                // limit (the dispatcher lets it go when its time comes); once per round.
                let _ = ctx.signals.send(Signal::Round);
            }
            match finished.next {
                Some(next) => delivery = next,
                None => break,
            }
        }
    }
}

/// Tells the board what one answer says about its endpoint's capacity (the adaptive
/// in-flight limit). No status means timeout or connection failure: as much a sign of a
/// struggling receiver as a 5xx, so both shrink its limit.
pub fn observe(board: &Board, record: &AttemptRecord) {
    if let Some((ok, overloaded, ms)) = answer(record) {
        board.observe(record.endpoint_id, ok, overloaded, ms);
    }
}

/// What one answer says about its endpoint's capacity, as `Board::observe` takes it (ok,
/// overloaded, ms); `None` when nothing was sent.
fn answer(record: &AttemptRecord) -> Option<(bool, bool, u64)> {
    if matches!(record.verdict, Verdict::Cancelled | Verdict::Unsent) {
        // Nothing was sent: the receiver's capacity is as it was.
        return None;
    }
    let overloaded = match record.status_code {
        None => true,
        Some(code) => code == 429 || code >= 500,
    };
    Some((
        record.verdict == Verdict::Succeeded,
        overloaded,
        record.duration_ms.max(0) as u64,
    ))
}

/// Cuts at a char boundary at or below `max`: the body came through `from_utf8_lossy`,
/// and `String::truncate` panics mid-character.
fn excerpt(mut body: String, max: usize) -> String {
    if body.len() > max {
        let mut end = max;
        while !body.is_char_boundary(end) {
            end -= 1;
        }
        body.truncate(end);
    }
    body
}

fn count(stats: &EngineStats, record: &AttemptRecord) {
    stats.attempts.fetch_add(1, Ordering::Relaxed);
    match record.verdict {
        Verdict::Succeeded => stats.succeeded.fetch_add(1, Ordering::Relaxed),
        // Sent nothing: neither a success nor a failure of the receiver.
        Verdict::Cancelled => 0,
        Verdict::RetryAt(_) | Verdict::Failed | Verdict::Unsent => {
            stats.failed_attempts.fetch_add(1, Ordering::Relaxed)
        }
    };
}

/// The headers a delivery carries: the signature headers, then the endpoint's extra headers.
/// Poll endpoints answer the same ones (`api/poll.rs`), so a consumer verifies either alike.
pub fn delivery_headers(
    schemes: &[signing::Scheme],
    names: &HeaderNames,
    input: &SignInput,
    extra: &ExtraHeaders,
) -> Vec<(String, String)> {
    let mut headers = signing::sign(schemes, names, input);
    // An extra header never replaces or doubles one Herald sets: a receiver that reads
    // the first `X-Webhook-Signature` must get ours.
    let ours: Vec<String> = headers
        .iter()
        .map(|(k, _)| k.to_ascii_lowercase())
        .collect();
    headers.extend(
        extra
            .map()
            .iter()
            .filter(|(k, _)| !ours.contains(&k.to_ascii_lowercase()))
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    headers
}

/// Sends one delivery and describes what happened; with tracing on, as a span that is a
/// child of the publish's, whose `traceparent` the receiver gets (`telemetry`).
pub fn attempt(ctx: &WorkerContext, d: &Claimed) -> AttemptRecord {
    let span = tracing::info_span!("attempt", tenant = %d.tenant_id, endpoint = d.endpoint_id,
        event = %d.event_id, delivery = d.delivery_id);
    let _enter = span.enter();
    let trace = AttemptSpan::start(d);
    let record = send(ctx, d, trace.traceparent());
    trace.end(&record);
    record
}

/// The attempt itself: signs, posts (with `traceparent` when tracing), decides.
fn send(ctx: &WorkerContext, d: &Claimed, traceparent: Option<&str>) -> AttemptRecord {
    let names = &ctx.names;
    let started_at = ctx.clock.now_ms();
    if d.secret.is_empty() {
        return refused(ctx, d, started_at);
    }
    // A transformation decides what is sent: the request it returns is the one signed.
    let shaped;
    let (method, url, body, added): (&str, &str, &str, Option<&BTreeMap<String, String>>) =
        match &d.transformation {
            None => ("POST", &d.url, &d.body, None),
            Some(t) => match shape(ctx, d, t) {
                Ok(Outcome::Send(request)) => {
                    shaped = request;
                    (
                        &shaped.method,
                        &shaped.url,
                        &shaped.body,
                        Some(&shaped.headers),
                    )
                }
                Ok(Outcome::Cancel) => {
                    return not_sent(ctx, d, started_at, Verdict::Cancelled, CANCELLED.into())
                }
                // The same input fails the same way: the delivery fails now, with the
                // reason, instead of running the schedule (a retry by hand runs it again).
                Err(e) => return not_sent(ctx, d, started_at, Verdict::Unsent, e),
            },
        };
    let schemes = d
        .schemes
        .as_deref()
        .unwrap_or(&ctx.config.signature_schemes);
    let mut headers = delivery_headers(
        schemes,
        names,
        &SignInput {
            event_id: &d.event_id,
            // Seconds, as the signature schemes define their timestamp; taken when the
            // attempt starts so a retry is signed afresh and passes replay windows.
            timestamp: started_at / 1000,
            body: body.as_bytes(),
            secret: &d.secret,
            previous_secret: d.previous_secret.as_deref(),
        },
        &with_shaped(&d.headers, added),
    );
    if let Some(value) = traceparent {
        // Ours, not an extra header of the same name: the receiver continues this trace.
        headers.retain(|(k, _)| !k.eq_ignore_ascii_case(TRACEPARENT));
        headers.push((TRACEPARENT.to_owned(), value.to_owned()));
    }
    let response = match ctx.agents.choose(d) {
        Err(why) => http::Response::failed(why, std::time::Duration::ZERO),
        // Through a proxy the resolver sees only the proxy: the guard checks the target (the
        // URL as sent, after any transformation) here.
        Ok(chosen) if chosen.proxied && !ctx.config.allow_private_targets => {
            match http::check_proxied_target(url) {
                Ok(()) => post_with_auth(ctx, &chosen.agent, d, method, url, body, headers),
                Err(refused) => http::Response::failed(refused, std::time::Duration::ZERO),
            }
        }
        Ok(chosen) => post_with_auth(ctx, &chosen.agent, d, method, url, body, headers),
    };
    let status = response.status;
    let success = status.is_some_and(|s| (200..300).contains(&s));
    let gone = status == Some(410);
    // Retry-After is honoured only where it means "come back later" (429, 503); on other
    // statuses a stray header must not stretch the schedule.
    let retry_after = match status {
        Some(429) | Some(503) => response.retry_after,
        _ => None,
    };
    let verdict = retry::decide(
        success,
        gone,
        retry_after,
        d.round_attempts + 1,
        d.retry_schedule
            .as_deref()
            .unwrap_or(&ctx.config.retry_schedule),
        ctx.clock.now_ms(),
    );
    let error = response.error.or_else(|| match status {
        Some(s) if (300..400).contains(&s) => Some(format!("HTTP {s}: redirects are not followed")),
        Some(s) if !success => Some(format!("HTTP {s}")),
        _ => None,
    });
    tracing::debug!(status = ?status, ms = response.duration.as_millis() as u64, ?verdict, "attempt done");
    AttemptRecord {
        delivery_id: d.delivery_id,
        endpoint_id: d.endpoint_id,
        started_at,
        // Rounded up: an answer over loopback comes in well under a millisecond now, and
        // an attempt that was made took some time (the duration histogram and the attempt
        // page would show 0 otherwise); one never sent stays at 0.
        duration_ms: response.duration.as_micros().div_ceil(1000) as i64,
        status_code: status,
        error,
        // A success keeps a short excerpt of the answer; a failure keeps what a person needs
        // to see why (every header, a few KiB of body).
        response_headers: status.filter(|_| !success).map(|_| response.headers),
        response_body: if success {
            response.body.map(|b| excerpt(b, SUCCESS_EXCERPT))
        } else {
            response.body
        },
        verdict,
        gone,
        // The back-off applies to the whole endpoint on the board, not just this delivery:
        // a receiver asking for quiet should not get the next delivery's request meanwhile.
        backoff_until: retry_after
            .map(|d| started_at + d.min(retry::RETRY_AFTER_CAP).as_millis() as i64),
        operational: d.operational,
    }
}

/// Posts the delivery with the endpoint's auth, if it has one. Basic and bearer are one
/// header; OAuth2 takes a token from the cache (fetching one when it has none fresh) and,
/// when the endpoint answers 401, a new token and one more request within this attempt: a
/// token revoked early should not cost the delivery a retry round.
/// `method`, `url` and `body` are the delivery's own, or what its transformation returned.
fn post_with_auth(
    ctx: &WorkerContext,
    agent: &ureq::Agent,
    d: &Claimed,
    method: &str,
    url: &str,
    body: &str,
    mut headers: Vec<(String, String)>,
) -> http::Response {
    let Some(auth) = &d.auth else {
        return http::send(agent, method, url, &headers, body, d.request_timeout);
    };
    // The API refuses an extra Authorization header beside auth; one stored before that
    // rule still must not travel with (or instead of) ours.
    headers.retain(|(k, _)| !k.eq_ignore_ascii_case(AUTHORIZATION));
    let post = |value: String| {
        let mut headers = headers.clone();
        headers.push((AUTHORIZATION.to_owned(), value));
        http::send(agent, method, url, &headers, body, d.request_timeout)
    };
    match auth {
        EndpointAuth::Basic { username, password } => post(format!(
            "Basic {}",
            STANDARD.encode(format!("{username}:{password}"))
        )),
        EndpointAuth::Bearer { token } => post(format!("Bearer {token}")),
        EndpointAuth::OAuth2(o) => {
            let started = std::time::Instant::now();
            let tokens = &ctx.tokens;
            // The token endpoint is reached like a target without settings of its own: the
            // deployment's proxy (unless no_proxy names it), the guard checking it first.
            let via = ctx.agents.for_url(o.token_url.as_str());
            if via.proxied && !ctx.config.allow_private_targets {
                if let Err(refused) = http::check_proxied_target(o.token_url.as_str()) {
                    return http::Response::failed(
                        format!("token endpoint: {refused}"),
                        started.elapsed(),
                    );
                }
            }
            let token_agent = &via.agent;
            let token = match tokens.token(token_agent, d.endpoint_id, o, d.request_timeout) {
                Ok(t) => t,
                Err(e) => return http::Response::failed(e, started.elapsed()),
            };
            let first = post(format!("Bearer {token}"));
            if first.status != Some(401) {
                return first;
            }
            tracing::info!("the endpoint refused its OAuth2 token (401): fetching a new one");
            let mut second =
                match tokens.refresh(token_agent, d.endpoint_id, o, &token, d.request_timeout) {
                    Ok(t) => post(format!("Bearer {t}")),
                    Err(e) => http::Response::failed(
                        format!("the endpoint answered 401, and a new token failed: {e}"),
                        started.elapsed(),
                    ),
                };
            second.duration = started.elapsed();
            second
        }
    }
}

const AUTHORIZATION: &str = "authorization";
/// Runs the endpoint's transformation on this delivery (`wire::transform::run_for`).
fn shape(ctx: &WorkerContext, d: &Claimed, t: &Transformation) -> Result<Outcome, String> {
    let payload = RawValue::from_string(d.body.clone())
        .map_err(|e| format!("the stored payload is not JSON: {e}"))?;
    transform::run_for(
        t,
        &d.url,
        &d.event_type,
        &payload,
        ctx.config.allow_private_targets,
    )
}

/// The endpoint's extra headers with a transformation's added to them (each replacing an
/// extra header of the same name; `delivery_headers` keeps Herald's own above both).
fn with_shaped(extra: &ExtraHeaders, added: Option<&BTreeMap<String, String>>) -> ExtraHeaders {
    let Some(added) = added.filter(|a| !a.is_empty()) else {
        return extra.clone();
    };
    let mut merged = extra.map().clone();
    for (name, value) in added {
        merged.retain(|k, _| !k.eq_ignore_ascii_case(name));
        merged.insert(name.clone(), value.clone());
    }
    ExtraHeaders::from_stored(merged)
}

/// A delivery's attempt that sent nothing: cancelled by its transformation, or failed in
/// it. The verdict is final either way (no schedule), and the reason is kept.
fn not_sent(
    ctx: &WorkerContext,
    d: &Claimed,
    started_at: i64,
    verdict: Verdict,
    error: String,
) -> AttemptRecord {
    tracing::info!(error = %error, "not sent");
    AttemptRecord {
        delivery_id: d.delivery_id,
        endpoint_id: d.endpoint_id,
        started_at,
        duration_ms: (ctx.clock.now_ms() - started_at).max(0),
        status_code: None,
        error: Some(error),
        response_headers: None,
        response_body: None,
        verdict,
        gone: false,
        backoff_until: None,
        operational: d.operational,
    }
}

/// What a delivery its transformation cancelled says.
pub const CANCELLED: &str = "cancelled by the endpoint's transformation: nothing was sent";

/// An endpoint whose stored secret does not open for it (sealed for another endpoint, or
/// with another key: `secrets::secret_key`) is sent nothing: signing with no secret, or the
/// wrong one, would only teach its receiver to accept what it should not. The attempt says
/// why, and the retries wait for the secret to be rotated.
fn refused(ctx: &WorkerContext, d: &Claimed, started_at: i64) -> AttemptRecord {
    tracing::warn!("not sent: the endpoint's signing secret cannot be opened; rotate it");
    let verdict = retry::decide(
        false,
        false,
        None,
        d.round_attempts + 1,
        d.retry_schedule
            .as_deref()
            .unwrap_or(&ctx.config.retry_schedule),
        ctx.clock.now_ms(),
    );
    not_sent(ctx, d, started_at, verdict, SECRET_REFUSED.into())
}

/// What a delivery refused for its secret says.
pub const SECRET_REFUSED: &str = "not sent: the endpoint's stored signing secret does not \
    open for this endpoint (copied from another endpoint, or sealed with another secret key); \
    rotate the endpoint's secret";
