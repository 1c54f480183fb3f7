//! Integration tests of presage-serve, one binary for the crate: the HTTP API through
//! its router in-process (`tower::ServiceExt::oneshot`) over a real embedded store in a
//! temporary folder, and `/metrics` checked by a real Prometheus parser.

mod api;
mod harness;
mod hostile;
mod metrics;
