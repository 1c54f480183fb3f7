//! Environment variables presage reads, in one place.
//!
//! Precedence, everywhere: `presage.toml` < `PRESAGE_*` environment < command-line flags.

/// The config file, when `--config` is not given (default `presage.toml`).
pub const PRESAGE_CONFIG: &str = "PRESAGE_CONFIG";
/// Bearer token that enables the admin HTTP endpoints (`POST .../rollback`).
pub const PRESAGE_ADMIN_TOKEN: &str = "PRESAGE_ADMIN_TOKEN";
/// The HTTP address `presage serve` binds (default `127.0.0.1:8080`).
pub const PRESAGE_ADDR: &str = "PRESAGE_ADDR";
/// The Redis-protocol address of `presage serve` (off unless set or `--resp-addr`).
pub const PRESAGE_RESP_ADDR: &str = "PRESAGE_RESP_ADDR";
/// Tests only: pause a run at a named point so it can be killed there
/// (`scoring`, `publish`); see `presage_store::failpoint`.
#[allow(dead_code)] // read inside presage-store; listed here so every variable is in one place
pub const PRESAGE_TEST_PAUSE: &str = presage_store::failpoint::ENV;
