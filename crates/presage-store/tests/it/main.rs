//! Integration tests of presage-store, one binary for the crate.

mod lookup;
mod lookup_fuzz;
mod redis_store;
