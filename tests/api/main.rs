//! The JSON API (issue 3), driven over HTTP against the real binary and a real SQLite file.

#[path = "../common/mod.rs"]
mod common;

mod bad_inputs;
mod disable_after;
mod endpoint_auth;
mod metrics;
mod openapi_tools;
mod operator;
#[allow(dead_code)]
#[path = "../hardening/pages_http.rs"]
mod pages_http;
mod poll;
mod publish;
mod reserved;
mod routing;
mod schemas;
mod sealed_settings;
mod security;
mod seeds;
mod tenants;
mod transformations;
