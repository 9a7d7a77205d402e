//! The delivery format: which bytes a receiver gets and what proves they came from Herald.
//!
//! `payload` turns a published body into the stored event, `canonical_json` decides its
//! bytes (JavaScript-compatible, so the seeds' snippets verify them), and `signing` holds
//! the signature schemes. All pure: no I/O, no clock of their own. The store keeps what
//! `payload` makes (`NewEvent` is defined here and re-exported there), so this layer
//! imports nothing of the store's.

pub mod canonical_json;
pub mod payload;
pub mod signing;
pub mod transform;
