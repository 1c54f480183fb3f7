//! Integration tests of presage-serve, one binary for the crate: the HTTP API through
//! its router in-process (`tower::ServiceExt::oneshot`) over a real embedded store in a
//! temporary folder, `/metrics` checked by a real Prometheus parser, and the limits on
//! slow, idle, many and malicious clients over real loopback sockets.

mod api;
mod harness;
mod hostile;
mod metrics;
mod recovery;
