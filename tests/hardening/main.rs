//! Hardening tests: each one reproduces a defect found by review and now fixed.

#[path = "../common/mod.rs"]
mod common;

mod delete_inflight;
mod limits;
mod login_next;
mod ssrf_create;
