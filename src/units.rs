//! Units as people write them: durations (`500ms`, `30s`, `5m`, `24h`, `5d`), retry
//! schedules (comma lists of durations), sizes (`1MiB`) and rates (requests per second).
//!
//! The bottom of the tree: it imports nothing of Herald's. The configuration reads its keys
//! with these parsers, and the endpoint settings (`domain`), the API, the pages and the
//! store read and write the same spellings with them, so `1m` means one minute wherever it
//! is written and a value is shown the way it was read (`format_duration`).

use std::time::Duration;

/// Parses `500ms`, `30s`, `5m`, `24h`, `5d` (a bare number means seconds).
pub fn parse_duration(v: &str) -> Result<Duration, String> {
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (digits, unit) = v.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{v}` is not a duration like 500ms, 30s, 5m, 24h or 5d"))?;
    let ms = match unit.trim() {
        "ms" => Some(n),
        "" | "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        "d" => n.checked_mul(86_400_000),
        _ => return Err(format!("`{v}` has an unknown unit; use ms, s, m, h or d")),
    };
    // Ten years is longer than any sensible wait, and keeps `now + duration` far from overflow.
    const MAX_MS: u64 = 10 * 365 * 86_400_000;
    ms.filter(|ms| *ms <= MAX_MS)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("`{v}` is too long (at most 10 years)"))
}

pub fn parse_schedule(v: &str) -> Result<Vec<Duration>, String> {
    if v.is_empty() {
        return Ok(Vec::new()); // no retries: one attempt, then failed
    }
    v.split(',').map(|d| parse_duration(d.trim())).collect()
}

/// Writes a duration the way the configuration reads them: `500ms`, `30s`, `5m`, `24h`, `5d`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if ms >= size && ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// Writes a retry schedule as the configuration reads it: `1m,5m,30m`.
pub fn format_schedule(schedule: &[Duration]) -> String {
    schedule
        .iter()
        .map(|d| format_duration(*d))
        .collect::<Vec<_>>()
        .join(",")
}

/// Parses `1048576`, `512KiB`, `1MiB`, `1MB` (decimal units are accepted as binary ones).
pub fn parse_size(v: &str) -> Result<usize, String> {
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (digits, unit) = v.split_at(split);
    let n: usize = digits
        .parse()
        .map_err(|_| format!("`{v}` is not a size like 1MiB or 512KiB"))?;
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        _ => return Err(format!("`{v}` has an unknown unit; use B, KiB or MiB")),
    };
    match n.checked_mul(factor) {
        Some(size) if size > 0 => Ok(size),
        _ => Err(format!("`{v}` is not a usable size")),
    }
}

/// An endpoint's rate limit in requests per second: positive, at most 10,000, fractions
/// allowed (0.5 = one request every two seconds).
pub fn parse_rate_limit(v: f64) -> Result<f64, String> {
    if v.is_finite() && v > 0.0 && v <= 10_000.0 {
        Ok(v)
    } else {
        Err(format!(
            "must be a number of requests per second above 0 and at most 10000, not {v}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_duration("5d").unwrap(), Duration::from_secs(432_000));
        assert!(parse_duration("5 weeks").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1MiB").unwrap(), 1 << 20);
        assert_eq!(parse_size("512KiB").unwrap(), 512 << 10);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert!(parse_size("0").is_err());
        assert!(parse_size("1GiB").is_err());
    }

    #[test]
    fn durations_are_written_as_they_are_read() {
        for text in ["500ms", "30s", "5m", "12h", "5d", "90s", "1500ms"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
        assert_eq!(
            format_schedule(&parse_schedule("1m,5m,30m").unwrap()),
            "1m,5m,30m"
        );
    }
}
