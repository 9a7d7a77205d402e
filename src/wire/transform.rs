//! Transformations: a tenant's JavaScript that reshapes a delivery before it is signed.
//!
//! The shape is Svix's, so a transformation written for Svix runs here unchanged:
//!
//! ```js
//! function handler(webhook) {
//!   webhook.payload = { text: `order ${webhook.payload.id} paid` };
//!   webhook.url = webhook.url + "/slack";
//!   return webhook;
//! }
//! ```
//!
//! `webhook` carries `method` (`"POST"`), `url`, `eventType`, `payload` (the event's JSON)
//! and `headers` (`{}`: what it adds to the request); the handler returns it (changed or
//! not), or sets `webhook.cancel = true` so nothing is sent.
//!
//! The sandbox is QuickJS (`rquickjs`) with hard limits and nothing to reach out with:
//! - **no I/O**: the context has the language's own objects and `JSON`, and nothing of
//!   QuickJS's `std`/`os` modules, no module loader, no `fetch`, no timers, no `Date` (no
//!   clock) and no promise jobs (nothing runs after the handler returns);
//! - **a CPU budget** (`BUDGET_TICKS`): QuickJS calls an interrupt handler every 10,000
//!   operations (calls and backward jumps), which counts them and stops the script once
//!   the budget is spent (an uncatchable exception), so an endless loop costs one worker
//!   about 100 ms and nothing more. Counted in operations, not time, so a busy machine
//!   that preempts the worker does not fail a transformation that fits; `WALL_LIMIT`
//!   stands behind it for the rare single operation that runs long;
//! - **a memory cap** (`MEMORY_LIMIT`) on the runtime's allocator: past it allocation fails
//!   inside QuickJS and the script ends with "out of memory";
//! - **a fresh context per run**: nothing one run leaves in globals reaches the next, of
//!   this endpoint or of another tenant's.
//!
//! Every way a run can go wrong ends as `Err(message)`: the engine fails that one delivery
//! with the message in its attempt, and no retry (the same input fails the same way).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rquickjs::{CatchResultExt, CaughtError, Context, Function, Runtime};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::domain::ExtraHeaders;

/// The largest transformation accepted, in bytes of source.
pub const MAX_SOURCE: usize = 64 * 1024;
/// What one run may spend before it is stopped, in interrupt ticks of 10,000 operations:
/// 10 million operations, about 100 ms of one core.
pub const BUDGET_TICKS: u32 = 1_000;
/// The budget as people read it (the pages, the errors).
pub const BUDGET_TEXT: &str = "10 million operations (about 100 ms)";
/// A run stopped by the clock whatever its count (one long operation, say a huge regex).
pub const WALL_LIMIT: Duration = Duration::from_secs(1);
/// The sandbox's memory: the compiled handler, the payload and all it builds.
pub const MEMORY_LIMIT: usize = 16 << 20;
/// The JavaScript stack (deep recursion ends as a `RangeError` well before it).
const STACK_LIMIT: usize = 512 << 10;
/// The largest body a run may return (the same bound the API puts on a published event is
/// the caller's business; this one keeps a runaway result out of the history).
pub const MAX_OUTPUT: usize = 4 << 20;

/// Methods a transformation may choose.
const METHODS: [&str; 3] = ["POST", "PUT", "PATCH"];

/// A transformation's source, checked when it was saved: it compiles and defines
/// `handler` as a function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transformation(String);

impl Transformation {
    /// Checks a tenant's source: its size, that it compiles, and that it defines
    /// `function handler(webhook)`. The message says what is wrong and where.
    pub fn parse(source: &str) -> Result<Transformation, String> {
        if source.len() > MAX_SOURCE {
            return Err(format!(
                "is {} bytes; at most {MAX_SOURCE} are accepted",
                source.len()
            ));
        }
        if source.trim().is_empty() {
            return Err("is empty; send null to remove the transformation".into());
        }
        with_sandbox(|ctx| {
            eval_source(&ctx, source).catch(&ctx).map_err(caught)?;
            let is_function: bool = ctx
                .eval("typeof handler === 'function'")
                .catch(&ctx)
                .map_err(caught)?;
            if is_function {
                Ok(())
            } else {
                Err("defines no `function handler(webhook) { … return webhook; }`".into())
            }
        })?;
        Ok(Transformation(source.to_owned()))
    }

    /// A stored source, checked when it was saved.
    pub fn from_stored(source: String) -> Transformation {
        Transformation(source)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a transformation receives: the request Herald would send.
#[derive(Debug, Serialize)]
pub struct Input<'a> {
    pub method: &'a str,
    pub url: &'a str,
    #[serde(rename = "eventType")]
    pub event_type: &'a str,
    /// The event's payload as stored (JSON text).
    pub payload: &'a RawValue,
    pub headers: BTreeMap<String, String>,
    pub cancel: bool,
}

/// The request a transformation asks for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Request {
    pub method: String,
    pub url: String,
    /// Headers it adds (or replaces among the endpoint's extra ones); the signature headers
    /// and `content-type` stay Herald's.
    pub headers: BTreeMap<String, String>,
    /// The body to sign and send: the returned payload as JSON text.
    pub body: String,
}

/// What a run came to.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Send(Request),
    /// `webhook.cancel = true`: nothing is sent.
    Cancel,
}

/// What the handler returned, as JSON; every field checked before it is used.
#[derive(Deserialize)]
struct Returned {
    method: Option<String>,
    url: Option<String>,
    headers: Option<BTreeMap<String, serde_json::Value>>,
    cancel: Option<serde_json::Value>,
    payload: Option<Box<RawValue>>,
}

/// The glue that runs after the tenant's source: parses the input, calls the handler, and
/// hands back its result as JSON (fields picked, so a getter elsewhere cannot add more).
const CALL: &str = r#"(function (input) {
  const out = handler(JSON.parse(input));
  if (out === null || typeof out !== "object") {
    throw new TypeError("handler must return the webhook object, not " + (out === null ? "null" : typeof out));
  }
  return JSON.stringify({method: out.method, url: out.url, headers: out.headers,
                         cancel: out.cancel, payload: out.payload});
})"#;

/// Runs `transformation` on `input`. Never panics; every failure is the message a person
/// reads in the attempt (or the "try it" answer).
pub fn run(transformation: &Transformation, input: &Input) -> Result<Outcome, String> {
    let input_json = serde_json::to_string(input).map_err(|e| e.to_string())?;
    let returned: String = with_sandbox(|ctx| {
        eval_source(&ctx, transformation.as_str())
            .catch(&ctx)
            .map_err(caught)?;
        let call: Function = ctx.eval(CALL).catch(&ctx).map_err(caught)?;
        call.call::<_, String>((input_json,))
            .catch(&ctx)
            .map_err(caught)
    })?;
    if returned.len() > MAX_OUTPUT {
        return Err(format!(
            "the handler returned {} bytes; at most {MAX_OUTPUT} are sent",
            returned.len()
        ));
    }
    let returned: Returned = serde_json::from_str(&returned)
        .map_err(|e| format!("the handler returned a webhook of the wrong shape: {e}"))?;
    check(returned, input)
}

/// Runs `transformation` on a delivery of `event_type` to `url` (the worker's run and the
/// "try it" route's alike), and holds a URL it returns to the rules an endpoint URL is held
/// to when it is saved; the SSRF guard in the resolver then vets the address it reaches.
pub fn run_for(
    transformation: &Transformation,
    url: &str,
    event_type: &str,
    payload: &RawValue,
    allow_private_targets: bool,
) -> Result<Outcome, String> {
    let input = Input {
        method: "POST",
        url,
        event_type,
        payload,
        headers: BTreeMap::new(),
        cancel: false,
    };
    let outcome = run(transformation, &input)?;
    if let Outcome::Send(request) = &outcome {
        if request.url != url {
            crate::domain::EndpointUrl::parse(&request.url, allow_private_targets)
                .map_err(|e| format!("the transformation's URL is refused: {e}"))?;
        }
    }
    Ok(outcome)
}

/// Turns what came back into a request, refusing what Herald will not send.
fn check(r: Returned, input: &Input) -> Result<Outcome, String> {
    match r.cancel {
        None | Some(serde_json::Value::Bool(false)) | Some(serde_json::Value::Null) => {}
        Some(serde_json::Value::Bool(true)) => return Ok(Outcome::Cancel),
        Some(other) => return Err(format!("webhook.cancel must be true or false, not {other}")),
    }
    let method = r.method.unwrap_or_else(|| input.method.to_owned());
    let method = method.to_ascii_uppercase();
    if !METHODS.contains(&method.as_str()) {
        return Err(format!(
            "webhook.method must be one of {}, not `{method}`",
            METHODS.join(", ")
        ));
    }
    let url = r.url.unwrap_or_else(|| input.url.to_owned());
    let mut headers = BTreeMap::new();
    for (name, value) in r.headers.unwrap_or_default() {
        let serde_json::Value::String(value) = value else {
            return Err(format!("webhook.headers.{name} must be a string"));
        };
        headers.insert(name, value);
    }
    // The rules of an endpoint's extra headers: valid names and values, at most 20, and
    // none of the ones Herald sets (the signatures, `content-type`, `user-agent`, …).
    let headers = ExtraHeaders::parse(headers)
        .map_err(|e| format!("webhook.headers: {e}"))?
        .map()
        .clone();
    let body = match r.payload {
        Some(p) => p.get().to_owned(),
        None => {
            return Err("webhook.payload is missing (return the webhook you were given)".into())
        }
    };
    Ok(Outcome::Send(Request {
        method,
        url,
        headers,
        body,
    }))
}

thread_local! {
    /// One QuickJS runtime per thread (a worker, an HTTP thread for "try it"), made on first
    /// use; each run gets a fresh context in it.
    static RUNTIME: RefCell<Option<Runtime>> = const { RefCell::new(None) };
}

/// Runs `f` in a fresh, limited context on this thread's runtime, with the budget armed.
fn with_sandbox<T>(
    f: impl for<'js> FnOnce(rquickjs::Ctx<'js>) -> Result<T, String>,
) -> Result<T, String> {
    RUNTIME.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            let rt = Runtime::new().map_err(|e| format!("the sandbox did not start: {e}"))?;
            rt.set_memory_limit(MEMORY_LIMIT);
            rt.set_max_stack_size(STACK_LIMIT);
            *slot = Some(rt);
        }
        let rt = slot.as_ref().expect("made above");
        let deadline = Instant::now() + WALL_LIMIT;
        let stopped = Arc::new(AtomicBool::new(false));
        let flag = stopped.clone();
        let mut ticks = 0u32;
        rt.set_interrupt_handler(Some(Box::new(move || {
            ticks += 1;
            let over = ticks > BUDGET_TICKS || Instant::now() >= deadline;
            if over {
                flag.store(true, Ordering::Relaxed);
            }
            over
        })));
        // The language and JSON only: no Date (the clock), no Promise jobs, no modules.
        let result = Context::builder()
            .with::<rquickjs::context::intrinsic::Eval>()
            .with::<rquickjs::context::intrinsic::RegExpCompiler>()
            .with::<rquickjs::context::intrinsic::RegExp>()
            .with::<rquickjs::context::intrinsic::Json>()
            .with::<rquickjs::context::intrinsic::MapSet>()
            .with::<rquickjs::context::intrinsic::TypedArrays>()
            .build(rt)
            .map_err(|e| format!("the sandbox did not start: {e}"))
            .and_then(|context| context.with(f));
        rt.set_interrupt_handler(None);
        // What the run built is freed with its context; a collection now gives the memory
        // back before the next run rather than when the allocator next asks.
        rt.run_gc();
        let out_of_budget = stopped.load(Ordering::Relaxed);
        result.map_err(|e| {
            if out_of_budget && e.contains("interrupted") {
                format!("the transformation ran past its budget of {BUDGET_TEXT} and was stopped")
            } else {
                e
            }
        })
    })
}

/// The name the tenant's source runs under, so a position in it can be told from one in
/// `CALL`.
const SOURCE_NAME: &str = "transformation.js";

/// Runs the tenant's source at the top level (it defines `handler`).
fn eval_source(ctx: &rquickjs::Ctx<'_>, source: &str) -> rquickjs::Result<()> {
    let mut options = rquickjs::context::EvalOptions::default();
    options.global = true;
    options.strict = false;
    options.filename = Some(SOURCE_NAME.to_owned());
    ctx.eval_with_options::<(), _>(source, options)
}

/// A caught exception as a person reads it: `TypeError: … (line 3, column 12)`, the
/// position being the innermost one in the tenant's source.
fn caught(e: CaughtError<'_>) -> String {
    let CaughtError::Exception(ex) = e else {
        return describe(&e.to_string());
    };
    let name: String = ex.get("name").unwrap_or_else(|_| "Error".to_owned());
    let message = ex.message().unwrap_or_default();
    let at = ex
        .stack()
        .and_then(|stack| {
            stack
                .lines()
                .find_map(|l| l.split(SOURCE_NAME).nth(1).map(str::to_owned))
        })
        .and_then(|pos| {
            let mut parts = pos.trim_start_matches(':').trim_end_matches(')').split(':');
            Some(format!(
                " (line {}, column {})",
                parts.next()?,
                parts.next()?
            ))
        })
        .unwrap_or_default();
    describe(&format!("{name}: {message}{at}"))
}

/// A QuickJS message in one line, prefixed so a person knows whose error it is.
fn describe(raw: &str) -> String {
    let one_line: Vec<&str> = raw
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(3)
        .collect();
    let text = one_line.join(" ");
    if text.contains("out of memory") {
        return format!(
            "the transformation ran out of memory (its cap is {} MiB): {text}",
            MEMORY_LIMIT >> 20
        );
    }
    format!("the transformation failed: {text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(payload: &str) -> (Box<RawValue>, String) {
        (
            RawValue::from_string(payload.to_owned()).unwrap(),
            "https://example.com/hook".to_owned(),
        )
    }

    fn run_on(source: &str, payload: &str) -> Result<Outcome, String> {
        let t = Transformation::parse(source)?;
        let (payload, url) = input(payload);
        run(
            &t,
            &Input {
                method: "POST",
                url: &url,
                event_type: "order.paid",
                payload: &payload,
                headers: BTreeMap::new(),
                cancel: false,
            },
        )
    }

    fn sent(outcome: Outcome) -> Request {
        match outcome {
            Outcome::Send(r) => r,
            Outcome::Cancel => panic!("cancelled"),
        }
    }

    #[test]
    fn the_identity_keeps_the_body_byte_for_byte() {
        let r = sent(
            run_on(
                "function handler(w) { return w; }",
                r#"{"b":1,"a":[true,null,"x"]}"#,
            )
            .unwrap(),
        );
        assert_eq!(r.body, r#"{"b":1,"a":[true,null,"x"]}"#);
        assert_eq!(
            (r.method.as_str(), r.url.as_str()),
            ("POST", "https://example.com/hook")
        );
        assert!(r.headers.is_empty());
    }

    #[test]
    fn reshapes_the_body_url_method_and_headers() {
        let source = r#"
            function handler(webhook) {
              webhook.payload = { text: `${webhook.eventType}: ${webhook.payload.amount}` };
              webhook.url = webhook.url + "/slack";
              webhook.method = "put";
              webhook.headers["X-Shaped"] = "yes";
              return webhook;
            }"#;
        let r = sent(run_on(source, r#"{"amount":1200}"#).unwrap());
        assert_eq!(r.body, r#"{"text":"order.paid: 1200"}"#);
        assert_eq!(r.url, "https://example.com/hook/slack");
        assert_eq!(r.method, "PUT");
        assert_eq!(
            r.headers,
            BTreeMap::from([("X-Shaped".to_owned(), "yes".to_owned())])
        );
    }

    #[test]
    fn cancel_sends_nothing() {
        let source = "function handler(w) { if (w.payload.test) { w.cancel = true; } return w; }";
        assert_eq!(run_on(source, r#"{"test":true}"#).unwrap(), Outcome::Cancel);
        assert!(matches!(
            run_on(source, r#"{"test":false}"#).unwrap(),
            Outcome::Send(_)
        ));
    }

    #[test]
    fn an_endless_loop_is_stopped_within_the_budget() {
        let started = Instant::now();
        let e = run_on("function handler(w) { for (;;) {} }", "{}").unwrap_err();
        assert!(e.contains("budget"), "{e}");
        assert!(
            started.elapsed() <= WALL_LIMIT * 2,
            "{:?}",
            started.elapsed()
        );
        // The thread's sandbox still works afterwards.
        assert!(run_on("function handler(w) { return w; }", "{}").is_ok());
    }

    #[test]
    fn a_memory_bomb_hits_the_cap_and_the_next_run_is_fine() {
        let e = run_on(
            "function handler(w) { const a = []; for (;;) { a.push('x'.repeat(1 << 16) + a.length); } }",
            "{}",
        )
        .unwrap_err();
        assert!(e.contains("out of memory"), "{e}");
        // Doubling a string ends at QuickJS's own string limit (its strings are ropes, so
        // the doubling itself costs little memory) or at the cap: an error either way.
        let e = run_on(
            "function handler(w) { let s = 'x'; for (;;) { s = s + s; } }",
            "{}",
        )
        .unwrap_err();
        assert!(
            e.contains("string too long") || e.contains("out of memory"),
            "{e}"
        );
        assert!(run_on("function handler(w) { return w; }", "{}").is_ok());
    }

    #[test]
    fn exceptions_and_bad_returns_are_errors_that_say_what() {
        let e = run_on("function handler(w) { throw new Error('boom'); }", "{}").unwrap_err();
        assert!(e.contains("boom"), "{e}");
        let e = run_on("function handler(w) { return 42; }", "{}").unwrap_err();
        assert!(e.contains("must return the webhook object"), "{e}");
        let e = run_on(
            "function handler(w) { w.method = 'DELETE'; return w; }",
            "{}",
        )
        .unwrap_err();
        assert!(e.contains("webhook.method"), "{e}");
        let e = run_on("function handler(w) { delete w.payload; return w; }", "{}").unwrap_err();
        assert!(e.contains("payload is missing"), "{e}");
        let e = run_on(
            "function handler(w) { w.headers['X-A'] = 'a\\r\\nB: c'; return w; }",
            "{}",
        )
        .unwrap_err();
        assert!(e.contains("invalid value"), "{e}");
        let e = run_on(
            "function handler(w) { w.headers['Webhook-Signature'] = 'v1,x'; return w; }",
            "{}",
        )
        .unwrap_err();
        assert!(e.contains("set by Herald"), "{e}");
        let e = run_on("function handler(w) { w.cancel = 'yes'; return w; }", "{}").unwrap_err();
        assert!(e.contains("cancel"), "{e}");
    }

    #[test]
    fn nothing_reaches_outside_the_sandbox() {
        for probe in [
            "typeof require",
            "typeof fetch",
            "typeof std",
            "typeof os",
            "typeof Date",
            "typeof setTimeout",
            "typeof XMLHttpRequest",
            "typeof process",
            "typeof import_meta",
        ] {
            let source =
                format!("function handler(w) {{ w.payload = {{ t: {probe} }}; return w; }}");
            let r = sent(run_on(&source, "{}").unwrap());
            assert_eq!(r.body, r#"{"t":"undefined"}"#, "{probe}");
        }
        // A module import cannot even compile in a script (and there is no loader).
        assert!(Transformation::parse(
            "import * as os from 'os'; function handler(w) { return w; }"
        )
        .is_err());
    }

    #[test]
    fn globals_do_not_leak_from_one_run_to_the_next() {
        let source = "var seen; function handler(w) { w.payload = { before: typeof globalThis.mark }; globalThis.mark = 1; return w; }";
        for _ in 0..2 {
            let r = sent(run_on(source, "{}").unwrap());
            assert_eq!(r.body, r#"{"before":"undefined"}"#);
        }
    }

    #[test]
    fn a_bad_source_is_refused_when_saved_with_the_reason() {
        let e = Transformation::parse("function handler(w) { return w; ").unwrap_err();
        assert!(e.contains("SyntaxError") || e.contains("expected"), "{e}");
        let e = Transformation::parse("function other(w) { return w; }").unwrap_err();
        assert!(e.contains("defines no"), "{e}");
        assert!(Transformation::parse(&"x".repeat(MAX_SOURCE + 1)).is_err());
        assert!(Transformation::parse("   ").is_err());
        // Top-level code that never ends is stopped at save time too.
        let e = Transformation::parse("for (;;) {} function handler(w) { return w; }").unwrap_err();
        assert!(e.contains("budget"), "{e}");
    }
}
