//! Hardening and housekeeping: defects found by review (each test reproduces one, now
//! fixed) and retention.

#[path = "../common/mod.rs"]
mod common;

mod body_memory;
mod body_share;
mod connection_cap;
mod copied_db;
mod delete_inflight;
mod disk_full;
mod faults;
mod file_modes;
mod flash_flood;
mod ipv6_clients;
mod keep_alive_slowloris;
mod limits;
mod login_next;
mod logout;
mod masked_headers;
mod methods;
mod pages_http;
mod poll_page;
mod reach_pages;
mod retention;
mod schemathesis;
mod sealed_secrets;
mod slow_body;
mod ssrf_create;
mod throttle;
mod throttle_leak;
