//! Ported from the SQLite backend (to be filled).
