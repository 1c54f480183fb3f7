//! Serving published predictions by key, with their age.
//!
//! The server holds, per job, the currently published version behind an atomic
//! pointer ([`arc_swap::ArcSwapOption`]). A watcher polls each job's pointer (`CURRENT`
//! of the embedded store, the pointer key of the Redis store); when it changes, the
//! new version is opened (and, embedded, verified) off the request path and swapped
//! in whole. Both stores answer through one [`write_answer`], so their documents
//! are the same. Requests in flight keep the version they started with, so a swap or a
//! rollback never fails a request. This crate depends on the store only: no
//! DataFusion, no models.

mod answer;
mod api;
pub mod busy_poll;
mod error;
mod http;
pub mod limits;
mod lookup_log;
mod metrics;
mod resp;
mod state;
mod watcher;

pub use answer::{OnStale, StaleRefusal, Status, refuse_stale, write_answer};
pub use api::router;
pub use error::ApiError;
pub use http::{HttpLimits, serve_http};
pub use lookup_log::{LookupLog, ROLL_EVERY, ROLL_ROWS, lookup_log_schema};
pub use resp::{RespOptions, RespServer, spawn_resp};
pub use state::{AppState, ServeJob};
pub use watcher::{reload_all, spawn_watcher};
