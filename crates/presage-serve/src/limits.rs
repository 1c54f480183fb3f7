//! Limits on what one client may ask of the server: request sizes, how long a
//! request may take to arrive, how many connections may be open. The defaults here
//! are what `presage serve` uses unless its config says otherwise.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Largest request body accepted (bytes).
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// Most keys in one `batchGet`.
pub const MAX_BATCH_KEYS: usize = 1000;
/// Longest inline Redis-protocol command line (bytes), as in Redis.
pub const MAX_INLINE_BYTES: usize = 64 * 1024;
/// Time a client has to send a request's headers; an idle keep-alive connection is
/// closed after it too.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a client has to send a request's body, once the handler starts reading it.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// HTTP connections open at once, at most.
pub const MAX_HTTP_CONNECTIONS: usize = 1024;
/// Redis-protocol connections open at once, at most (Redis' `maxclients`).
pub const MAX_RESP_CONNECTIONS: usize = 10_000;
/// Time requests in flight have to finish once the server is told to stop.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// A full listener says so in the log at most this often.
const FULL_LOG_EVERY: Duration = Duration::from_secs(10);

/// A cap on the connections open on one listener, shared by whatever accepts on it.
pub(crate) struct ConnectionCap {
    open: AtomicUsize,
    max: usize,
    /// `HTTP` or `Redis protocol`, for the log.
    listener: &'static str,
    /// When the log last said the listener is full.
    logged: Mutex<Option<Instant>>,
}

/// One connection counted by its [`ConnectionCap`] until dropped.
pub(crate) struct OpenConnection(Arc<ConnectionCap>);

impl ConnectionCap {
    pub(crate) fn new(listener: &'static str, max: usize) -> Arc<ConnectionCap> {
        Arc::new(ConnectionCap {
            open: AtomicUsize::new(0),
            max,
            listener,
            logged: Mutex::new(None),
        })
    }

    /// Counts a new connection, or says (at most every [`FULL_LOG_EVERY`]) that the
    /// listener is full and answers `None`.
    pub(crate) fn open(self: &Arc<Self>) -> Option<OpenConnection> {
        if self.open.fetch_add(1, Ordering::AcqRel) < self.max {
            return Some(OpenConnection(self.clone()));
        }
        self.open.fetch_sub(1, Ordering::AcqRel);
        let mut logged = self.logged.lock().unwrap_or_else(|e| e.into_inner());
        if logged.is_none_or(|at| at.elapsed() >= FULL_LOG_EVERY) {
            *logged = Some(Instant::now());
            eprintln!(
                "{}: {} connections open (the limit); refusing new ones until some close",
                self.listener, self.max
            );
        }
        None
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}
