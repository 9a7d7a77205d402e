//! The HTTP server's guards: what stands between a connection and a handler.
//!
//! Each bounds one resource a client could otherwise take without limit: connections per
//! address (`connection_cap`), the time a request may take to arrive (`request_deadline`),
//! the time a connection may sit idle or in a half-sent head (`idle_deadline`),
//! the memory bodies hold while they are read (`body_budget`, and `body`, the one reader of
//! request bodies that the API and the pages share), and failed authentications
//! (`throttle`); `head` answers HEAD as GET. `client_addr` says who "a client" is, behind a
//! proxy or not. None of them
//! knows a route; `lib.rs` wires them around the API and the pages.
//!
//! In the layers (`tests/layers.rs`) the server sits above the service layer and below the
//! API and the pages, so what both of those need from a request lives here.

pub mod body;
pub mod body_budget;
pub mod client_addr;
pub mod connection_cap;
pub mod head;
pub mod idle_deadline;
pub mod request_deadline;
pub mod throttle;
