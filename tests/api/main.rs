//! The JSON API (issue 3), driven over HTTP against the real binary and a real SQLite file.

#[path = "../common/mod.rs"]
mod common;

mod bad_inputs;
mod metrics;
mod openapi_tools;
mod operator;
mod poll;
mod publish;
mod seeds;
mod tenants;
