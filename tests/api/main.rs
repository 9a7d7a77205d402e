//! The JSON API (issue 3), driven over HTTP against the real binary and a real SQLite file.

#[path = "../common/mod.rs"]
mod common;

mod bad_inputs;
mod disable_after;
mod metrics;
mod operator;
mod poll;
mod publish;
mod seeds;
mod tenants;
