//! Integration tests of presage-store, one binary for the crate.

mod lookup;
mod redis_store;
