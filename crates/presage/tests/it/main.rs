//! Integration tests: the real `presage` binary on real files and real servers.

mod bad_input;
mod crash;
mod eval;
mod lake;
mod lifecycle;
mod lookup_log;
mod memory;
mod project;
mod ranked;
mod recovery;
mod redis_store;
mod refresh;
mod resp;
mod run_stages;
mod score;
mod snapshots;
mod spine;
mod staleness;
mod swap;
