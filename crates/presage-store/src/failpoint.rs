//! Fault injection for crash tests.
//!
//! With `PRESAGE_TEST_PAUSE=<point>` in the environment, a run that reaches `<point>`
//! prints `paused at <point>` to stderr and sleeps, so a test can kill it there with
//! SIGKILL and check that nothing half-written became visible.

/// Pauses here when `PRESAGE_TEST_PAUSE` names this point.
pub fn pause(point: &str) {
    if std::env::var("PRESAGE_TEST_PAUSE").is_ok_and(|p| p == point) {
        eprintln!("paused at {point}");
        std::thread::sleep(std::time::Duration::from_secs(120));
    }
}
