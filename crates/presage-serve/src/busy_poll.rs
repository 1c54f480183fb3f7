//! Busy polling: an event loop that keeps checking its sockets for a short while after
//! the last command instead of going to sleep at once.
//!
//! A thread that sleeps has to be woken for the next command, and on loopback (and in
//! a virtual machine, for any interrupt) the waking is paid by the sender: the kernel
//! runs the receiving socket's path, and the wake-up of the server, on the CPU that
//! sent the bytes. A server that needs little CPU per command goes idle, and so has to
//! be woken, more often than a slower one. With busy polling the loop stays awake as
//! long as commands keep coming, at the price of a CPU that is fully busy while they
//! do and for `window` after the last one. An idle server does not spin.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// The longest busy-poll window accepted; beyond it, spinning only burns CPU.
pub const MAX_BUSY_POLL: Duration = Duration::from_millis(10);

/// One event loop's busy poller: connections [`touch`](BusyPoll::touch) it on every
/// read, and [`run`](BusyPoll::run) keeps the loop polling while touches keep coming.
///
/// It must run on a single-threaded runtime, the one its connections run on: there
/// the thread owns its I/O driver, so each yield polls the sockets without sleeping.
pub struct BusyPoll {
    window: Duration,
    reads: AtomicU64,
    spinning: AtomicBool,
    wake: Notify,
}

impl BusyPoll {
    /// A poller that spins for `window` after the last read.
    pub fn new(window: Duration) -> Arc<BusyPoll> {
        Arc::new(BusyPoll {
            window,
            reads: AtomicU64::new(0),
            spinning: AtomicBool::new(false),
            wake: Notify::new(),
        })
    }

    /// Records a read; starts the spinning if it had stopped.
    pub fn touch(&self) {
        self.reads.fetch_add(1, Ordering::Relaxed);
        if !self.spinning.load(Ordering::Relaxed) {
            self.wake.notify_one();
        }
    }

    /// Spins while reads keep coming, sleeps when none came for the window; forever.
    pub async fn run(self: Arc<Self>) {
        loop {
            self.wake.notified().await;
            self.spinning.store(true, Ordering::Relaxed);
            let mut seen = self.reads.load(Ordering::Relaxed);
            let mut last_read = Instant::now();
            loop {
                // A yielded task is polled again only after the runtime has polled its
                // sockets without blocking, so this loop is the event loop's spin.
                tokio::task::yield_now().await;
                let reads = self.reads.load(Ordering::Relaxed);
                if reads != seen {
                    seen = reads;
                    last_read = Instant::now();
                } else if last_read.elapsed() >= self.window {
                    break;
                }
            }
            // A read between the last check and this store finds `spinning` still set
            // and does not restart the spin; the next read does.
            self.spinning.store(false, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn spins_after_a_read_keeps_the_runtime_going_and_stops_after_the_window() {
        let poller = BusyPoll::new(Duration::from_millis(2));
        tokio::spawn(poller.clone().run());
        tokio::task::yield_now().await;
        assert!(
            !poller.spinning.load(Ordering::Relaxed),
            "idle before any read"
        );

        poller.touch();
        tokio::task::yield_now().await;
        assert!(
            poller.spinning.load(Ordering::Relaxed),
            "a read starts the spin"
        );

        // The timer fires although the poller never sleeps: each of its yields lets
        // the runtime poll its drivers.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !poller.spinning.load(Ordering::Relaxed),
            "no read for longer than the window: the spin stops"
        );

        // The next read starts it again.
        poller.touch();
        tokio::task::yield_now().await;
        assert!(poller.spinning.load(Ordering::Relaxed));
    }
}
