//! An endpoint's payload filter: an RFC 9535 JSONPath filter expression over the event's
//! payload, such as `$.data.amount > 1000 && $.status == "paid"`, beside its `events`
//! patterns. An event goes to the endpoint only when both match.
//!
//! The expression is what goes inside a filter selector `[?…]`, with `$` the payload.
//! `serde_json_path` (RFC 9535, tested against the compliance suite) parses and evaluates
//! it; it only exposes whole queries, so the filter is evaluated as the query `$[?EXPR']`
//! over the one-element array `[payload]`, and matches when that selects the element:
//! - a filter selector tests the *children* of what it applies to, so the payload is
//!   wrapped to be the only child: the expression runs exactly once per event;
//! - inside the query, `$` is the wrapper, so `EXPR'` is the expression with each `$` (the
//!   root identifier; outside string literals it can be nothing else, since member
//!   shorthand names cannot hold `$`) rewritten to `$[0]`: the payload again, also inside
//!   nested filters (`$.items[?@.qty > $.min]`). `@` at the top level is the payload too.
//!
//! Validation parses the expression as written, `$[?EXPR]`, so the error's position is the
//! user's own text (the rewrite does not change what parses: `$[0]` stands wherever `$`
//! does, and a singular query stays singular). A `]` closing the selector early would
//! splice a second segment into the query; the scan refuses it first.
//!
//! Compiled once when an endpoint is read (its settings hold the compiled form), so the
//! fan-out's subscription caches hold it and a publish only evaluates.

use serde_json::Value;
use serde_json_path::JsonPath;

/// A parsed payload filter: the text as written (stored, shown) and its compiled query.
#[derive(Debug, Clone)]
pub struct PayloadFilter {
    source: String,
    query: JsonPath,
}

impl PartialEq for PayloadFilter {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl PayloadFilter {
    pub const MAX_LEN: usize = 1024;

    /// Parses an expression; the error names the character where it goes wrong (1-based).
    pub fn parse(expr: &str) -> Result<PayloadFilter, String> {
        let expr = expr.trim();
        if expr.is_empty() {
            return Err("is empty; leave it out (or null) to send every event".into());
        }
        if expr.chars().count() > Self::MAX_LEN {
            return Err(format!("at most {} characters", Self::MAX_LEN));
        }
        let rewritten = scan(expr)?;
        if let Err(e) = JsonPath::parse(&format!("$[?{expr}]")) {
            // The position is a byte offset into the wrapped query; `$[?` is 3 bytes.
            let at = e.position().saturating_sub(3);
            return Err(located(expr, at, &explain(e.message())));
        }
        let query = JsonPath::parse(&format!("$[?{rewritten}]")).map_err(|e| {
            // Not expected (see the module comment); said plainly if it ever happens.
            format!("is not supported here: {}", e.message())
        })?;
        Ok(PayloadFilter {
            source: expr.to_owned(),
            query,
        })
    }

    /// Rebuilds a stored filter (it was validated when written). One that no longer parses
    /// (a row edited by hand) keeps its text and matches nothing: sending every event to an
    /// endpoint that asked for a few would be the worse surprise.
    pub fn from_stored(expr: &str) -> PayloadFilter {
        PayloadFilter::parse(expr).unwrap_or_else(|_| PayloadFilter {
            source: expr.to_owned(),
            query: JsonPath::parse("$[?1 == 2]").expect("a valid query"),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the payload passes; `wrapped` is `PayloadFilter::wrap` of the payload.
    pub fn matches(&self, wrapped: &Value) -> bool {
        !self.query.query(wrapped).is_empty()
    }

    /// The payload as the filter reads it: parsed, in a one-element array (see the module
    /// comment). `None` when the body is not JSON, which no stored event is.
    pub fn wrap(body: &str) -> Option<Value> {
        serde_json::from_str::<Value>(body)
            .ok()
            .map(|payload| Value::Array(vec![payload]))
    }
}

/// How deep parentheses and brackets may nest.
const MAX_NESTING: usize = 16;

/// Checks the selector is not closed early and rewrites each root `$` to `$[0]`, skipping
/// string literals (either quote, with backslash escapes).
fn scan(expr: &str) -> Result<String, String> {
    let mut out = String::with_capacity(expr.len() + 16);
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut depth = 0usize;
    // Parentheses and brackets open, outside strings: the parser recurses on them, and a
    // request must not be able to exhaust a server thread's stack.
    let mut nesting = 0usize;
    for (i, c) in expr.chars().enumerate() {
        out.push(c);
        if let Some(q) = quote {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                _ if c == q => quote = None,
                _ => {}
            }
            continue;
        }
        match c {
            '\'' | '"' => quote = Some(c),
            '$' => out.push_str("[0]"),
            '[' => depth += 1,
            ']' if depth == 0 => {
                return Err(format!(
                    "at character {}: `]` closes a bracket that was never opened",
                    i + 1
                ))
            }
            ']' => depth -= 1,
            '(' => nesting += 1,
            ')' => nesting = nesting.saturating_sub(1),
            _ => {}
        }
        if depth + nesting > MAX_NESTING {
            return Err(format!(
                "at character {}: more than {MAX_NESTING} parentheses and brackets open",
                i + 1
            ));
        }
    }
    Ok(out)
}

/// The parser's message in the expression's terms: it speaks of the wrapping query (`in
/// long-hand segment`, the `]` that closes the selector), which the user never wrote.
fn explain(message: &str) -> String {
    let message = message.trim_start_matches("in long-hand segment, ");
    match message {
        "expected closing ']'" => {
            "the expression should end here, or go on with `&&` or `||` (compare with `==`, \
             not `=`; a path compared must name one value, not `[*]` or `..`)"
                .into()
        }
        "parser error" => "not a valid filter expression here (paths start with `$`, \
             strings are quoted, `&&` and `||` join comparisons)"
            .into(),
        other => other.to_owned(),
    }
}

/// The parser's error at byte `offset` of `expr`, as a sentence with a 1-based character
/// position and the text from there (an offset past the end points at the end).
fn located(expr: &str, offset: usize, message: &str) -> String {
    let offset = offset.min(expr.len());
    let offset = (0..=offset)
        .rev()
        .find(|&o| expr.is_char_boundary(o))
        .unwrap_or(0);
    let column = expr[..offset].chars().count() + 1;
    let rest: String = expr[offset..].chars().take(20).collect();
    let near = if rest.is_empty() {
        "at the end".to_owned()
    } else {
        format!("near `{rest}`")
    };
    format!("at character {column} ({near}): {message}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(expr: &str, payload: &Value) -> bool {
        let f = PayloadFilter::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        let body = payload.to_string();
        f.matches(&PayloadFilter::wrap(&body).unwrap())
    }

    #[test]
    fn expressions_against_payloads() {
        let paid = json!({
            "event": "order.paid", "status": "paid", "region": "eu",
            "data": { "amount": 1500, "currency": "EUR", "price": 12.5,
                      "customer": { "tier": "gold", "tags": ["vip", "beta"] },
                      "items": [ { "sku": "a", "qty": 1 }, { "sku": "b", "qty": 5 } ] },
            "note": null, "test": false
        });
        let small = json!({ "event": "order.paid", "status": "pending", "data": { "amount": 20 } });
        let table: &[(&str, &Value, bool)] = &[
            // numbers
            ("$.data.amount > 1000", &paid, true),
            ("$.data.amount > 1000", &small, false),
            ("$.data.amount >= 1500", &paid, true),
            ("$.data.amount == 1500.0", &paid, true),
            ("$.data.amount < 1e3", &small, true),
            ("$.data.price != 12.5", &paid, false),
            ("$.data.amount > -1", &small, true),
            // strings
            ("$.status == \"paid\"", &paid, true),
            ("$.status == 'paid'", &small, false),
            ("$.status != 'paid'", &small, true),
            ("$.region < 'fr'", &paid, true),
            ("$.status == '$.data'", &paid, false),
            // nested paths, arrays, bracket notation
            ("$.data.customer.tier == 'gold'", &paid, true),
            ("$['data']['customer']['tier'] == 'gold'", &paid, true),
            ("$.data.customer.tags[0] == 'vip'", &paid, true),
            ("$.data.customer.tags[1] == 'beta'", &paid, true),
            ("$.data.items[?@.qty > 3]", &paid, true),
            ("$.data.items[?@.qty > 10]", &paid, false),
            ("$.data.items[?@.qty > $.data.amount]", &paid, false),
            ("@.status == 'paid'", &paid, true),
            // missing fields: a comparison with nothing is false, `!=` true; existence tests
            ("$.data.missing > 0", &paid, false),
            ("$.data.missing == 0", &paid, false),
            ("$.data.missing != 0", &paid, true),
            ("$.nope.deeper == 'x'", &paid, false),
            ("$.data.amount", &small, true),
            ("$.data.customer", &small, false),
            ("!$.data.customer", &small, true),
            ("$.note == null", &paid, true),
            ("$.note", &paid, true),
            ("$.test == false", &paid, true),
            // type mismatches never compare
            ("$.data.amount > '1000'", &paid, false),
            ("$.status == 1", &paid, false),
            // && || ! and grouping
            ("$.data.amount > 1000 && $.status == \"paid\"", &paid, true),
            (
                "$.data.amount > 1000 && $.status == \"paid\"",
                &small,
                false,
            ),
            (
                "$.status == 'pending' || $.data.amount > 1000",
                &small,
                true,
            ),
            (
                "$.status == 'refunded' || $.data.amount > 1000",
                &small,
                false,
            ),
            ("!($.status == 'paid')", &small, true),
            ("!($.status == 'paid')", &paid, false),
            (
                "($.region == 'us' || $.region == 'eu') && !$.test",
                &paid,
                false,
            ),
            (
                "($.region == 'us' || $.region == 'eu') && $.test == false",
                &paid,
                true,
            ),
            // functions of RFC 9535
            ("length($.data.customer.tags) == 2", &paid, true),
            ("count($.data.items[*]) >= 2", &paid, true),
            ("match($.data.currency, 'E[A-Z]+')", &paid, true),
            ("search($.status, 'ai')", &paid, true),
        ];
        for (expr, payload, expected) in table {
            assert_eq!(check(expr, payload), *expected, "{expr} on {payload}");
        }
    }

    #[test]
    fn numbers_compare_by_value_with_arbitrary_precision() {
        // Herald parses with serde_json's arbitrary_precision: the payload's spelling of a
        // number must not matter.
        let p = json!({"n": 1000});
        assert!(check("$.n == 1e3", &p));
        assert!(check("$.n == 1000.0", &p));
        assert!(check("$.n > 999.99", &p));
        let body = r#"{"n":1.50}"#;
        let f = PayloadFilter::parse("$.n == 1.5").unwrap();
        assert!(f.matches(&PayloadFilter::wrap(body).unwrap()));
    }

    #[test]
    fn invalid_expressions_name_their_position() {
        let cases: &[(&str, &str)] = &[
            ("$.data.amount >", "at character 15 (near `>`)"),
            ("$.data.amount === 5", "at character 15 (near `=== 5`)"),
            ("$.a > 1 &&", "at character 11 (at the end)"),
            ("$.status = 'paid'", "at character 10 (near `= 'paid'`)"),
            ("amount > 5", "paths start with `$`"),
            ("$.a > 1] [?$.b", "at character 8: `]` closes"),
            ("$.items[*] == 1", "at character 12 (near `== 1`)"),
            (
                "length($.a) == 1 || foo($.b)",
                "function name 'foo' is not defined",
            ),
        ];
        for (expr, at) in cases {
            let err = PayloadFilter::parse(expr).unwrap_err();
            assert!(err.contains(at), "{expr}: {err}");
        }
        assert!(PayloadFilter::parse("  ").is_err());
        let deep = format!("{}$.a{}", "(".repeat(17), ")".repeat(17));
        assert!(PayloadFilter::parse(&deep)
            .unwrap_err()
            .contains("at character 17"));
        assert!(PayloadFilter::parse(&format!("{}$.a{}", "(".repeat(16), ")".repeat(16))).is_ok());
        assert!(PayloadFilter::parse(&"$.a == 1 || ".repeat(200)).is_err());
    }

    /// Whatever a client sends, parsing neither panics nor runs out of a small stack.
    #[test]
    fn hostile_expressions_are_refused_on_a_small_stack() {
        let cases: Vec<String> = vec![
            "(".repeat(1000),
            "!".repeat(1000) + "$.a",
            "!(".repeat(500) + "$.a",
            "$.a[?".repeat(300),
            "$.a[?@.b[?@.c[?@.d[?@.e[?@.f[?@.g[?@.h[?@.i == 1]]]]]]]]".into(),
            "'".repeat(1000),
            "\\".repeat(500),
            "$".repeat(1000),
            "$.a == 1 && ".repeat(90) + "$.b",
            "length(length(length(length(length(length($.a))))))".into(),
            "\u{0}\u{ffff}é中😀".into(),
            "$['\\uD800'] == 1".into(),
            "$.a == 1e999999999 || $.b == -0".into(),
        ];
        let worker = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                for c in &cases {
                    if let Ok(f) = PayloadFilter::parse(c) {
                        f.matches(&PayloadFilter::wrap(r#"{"a":1}"#).unwrap());
                    }
                }
            })
            .unwrap();
        worker.join().expect("no panic, no stack overflow");
    }

    #[test]
    fn the_source_is_kept_as_written_and_compared_by_text() {
        let f = PayloadFilter::parse(" $.a == '$' ").unwrap();
        assert_eq!(f.as_str(), "$.a == '$'");
        assert!(check("$.a == '$'", &json!({"a": "$"})));
        assert_eq!(f, PayloadFilter::from_stored("$.a == '$'"));
        let broken = PayloadFilter::from_stored("$.a ==");
        assert_eq!(broken.as_str(), "$.a ==");
        assert!(!broken.matches(&PayloadFilter::wrap(r#"{"a":1}"#).unwrap()));
    }
}
