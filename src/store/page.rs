//! Cursor pagination shared by every list: newest first, keyed by the row's integer id.

use serde::Serialize;

/// Where a list starts: rows with an id below `before` (or from the newest when `None`).
#[derive(Debug, Clone, Copy)]
pub struct Cursor {
    pub before: Option<i64>,
    pub limit: usize,
}

/// One page of a list plus the cursor of the next page, if any.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows fetched newest first; the extra row only
    /// tells that there is more.
    pub fn from_rows(mut rows: Vec<T>, limit: usize, key: impl Fn(&T) -> i64) -> Page<T> {
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|r| key(r).to_string())
        } else {
            None
        };
        Page {
            items: rows,
            next_cursor,
        }
    }
}
