//! How the pages show values: times in UTC with their age, payloads pretty-printed, long
//! texts cut. Pure functions, so the templates stay free of logic.

use std::fmt;

use askama::filters::HtmlSafe;

/// A moment as a person reads it: `2026-11-25 08:40:00 UTC` and `3 min ago`.
#[derive(Debug, Clone, Copy)]
pub struct When {
    pub ms: i64,
    pub now: i64,
}

impl When {
    pub fn utc(&self) -> String {
        let s = crate::clock::rfc3339_seconds(self.ms);
        format!("{} {} UTC", &s[..10], &s[11..19])
    }

    pub fn age(&self) -> String {
        age(self.now - self.ms)
    }
}

/// Renders `<time>` markup. Only digits and fixed words go into it, never user data, which
/// is why it may skip escaping.
impl fmt::Display for When {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<time datetime=\"{}\">{}</time> <span class=\"age\">{}</span>",
            crate::clock::rfc3339_seconds(self.ms),
            self.utc(),
            self.age()
        )
    }
}

impl HtmlSafe for When {}

/// `just now`, `42 s ago`, `3 min ago`, `5 h ago`, `2 days ago`; `in 4 min` for the future.
pub fn age(elapsed_ms: i64) -> String {
    let future = elapsed_ms < 0;
    let secs = elapsed_ms.unsigned_abs() / 1000;
    let amount = match secs {
        0..=4 => return "just now".into(),
        5..=59 => format!("{secs} s"),
        60..=3599 => format!("{} min", secs / 60),
        3600..=86_399 => format!("{} h", secs / 3600),
        _ => {
            let days = secs / 86_400;
            format!("{days} day{}", if days == 1 { "" } else { "s" })
        }
    };
    if future {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

/// Indents a JSON text for reading; anything that does not parse is shown as it is.
pub fn pretty_json(raw: &str) -> String {
    serde_json::from_str::<serde_json::Value>(raw)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| raw.to_owned())
}

/// The first `max` characters of `s`, with `…` when something was cut.
pub fn excerpt(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}

/// Splits the events field of the endpoint form: commas, spaces or new lines between names.
pub fn split_list(s: &str) -> Vec<String> {
    s.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Reads the extra-headers field: one `Name: value` per line.
pub fn parse_header_lines(s: &str) -> Result<std::collections::BTreeMap<String, String>, String> {
    let mut map = std::collections::BTreeMap::new();
    for line in s.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("`{line}` is not a `Name: value` line"))?;
        map.insert(name.trim().to_owned(), value.trim().to_owned());
    }
    Ok(map)
}

/// The inverse of `parse_header_lines`, to fill the edit form.
pub fn header_lines(map: &std::collections::BTreeMap<String, String>) -> String {
    map.iter().map(|(k, v)| format!("{k}: {v}\n")).collect()
}

/// Reads a time filter: empty means none; RFC 3339, unix seconds, or what a
/// `datetime-local` field sends (`2026-11-25T08:40`, taken as UTC like every time here).
pub fn time_filter(s: &str) -> Result<Option<i64>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let spelled = match s.len() {
        10 => format!("{s}T00:00:00Z"),
        16 => format!("{}:00Z", s.replacen(' ', "T", 1)),
        19 => format!("{}Z", s.replacen(' ', "T", 1)),
        _ => s.to_owned(),
    };
    crate::clock::parse(&spelled)
        .or_else(|_| crate::clock::parse(s))
        .map(Some)
        .map_err(|_| format!("`{s}` is not a time like 2026-11-25 08:40 (UTC)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        assert_eq!(age(0), "just now");
        assert_eq!(age(42_000), "42 s ago");
        assert_eq!(age(3 * 60_000 + 5_000), "3 min ago");
        assert_eq!(age(5 * 3_600_000), "5 h ago");
        assert_eq!(age(86_400_000), "1 day ago");
        assert_eq!(age(3 * 86_400_000), "3 days ago");
        assert_eq!(age(-4 * 60_000), "in 4 min");
    }

    #[test]
    fn when_shows_utc_and_age() {
        let w = When {
            ms: 1_734_948_000_123,
            now: 1_734_948_000_123 + 180_000,
        };
        assert_eq!(w.utc(), "2024-12-23 10:00:00 UTC");
        assert_eq!(
            w.to_string(),
            "<time datetime=\"2024-12-23T10:00:00Z\">2024-12-23 10:00:00 UTC</time> <span class=\"age\">3 min ago</span>"
        );
    }

    #[test]
    fn json_and_text() {
        assert_eq!(
            pretty_json(r#"{"b":1,"a":[2]}"#),
            "{\n  \"b\": 1,\n  \"a\": [\n    2\n  ]\n}"
        );
        assert_eq!(pretty_json("not json"), "not json");
        assert_eq!(excerpt("héllo", 3), "hél…");
        assert_eq!(excerpt("hé", 3), "hé");
    }

    #[test]
    fn time_filters() {
        assert_eq!(time_filter(" "), Ok(None));
        assert_eq!(time_filter("2024-12-23T10:00"), Ok(Some(1_734_948_000_000)));
        assert_eq!(time_filter("2024-12-23 10:00"), Ok(Some(1_734_948_000_000)));
        assert_eq!(
            time_filter("2024-12-23 10:00:00"),
            Ok(Some(1_734_948_000_000))
        );
        assert_eq!(time_filter("2024-12-23"), Ok(Some(1_734_912_000_000)));
        assert_eq!(
            time_filter("2024-12-23T11:00:00+01:00"),
            Ok(Some(1_734_948_000_000))
        );
        assert_eq!(time_filter("1734948000"), Ok(Some(1_734_948_000_000)));
        assert!(time_filter("yesterday").is_err());
    }

    #[test]
    fn form_lists() {
        assert_eq!(split_list(" a.b, c.*\nd "), vec!["a.b", "c.*", "d"]);
        let h = parse_header_lines("X-Team: core\n\n X-Env : prod:1 \n").unwrap();
        assert_eq!(h["X-Team"], "core");
        assert_eq!(h["X-Env"], "prod:1");
        assert_eq!(header_lines(&h), "X-Env: prod:1\nX-Team: core\n");
        assert!(parse_header_lines("nonsense").is_err());
    }
}
