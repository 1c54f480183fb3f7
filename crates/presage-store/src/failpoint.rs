//! Fault injection for crash tests.
//!
//! With `PRESAGE_TEST_PAUSE=<point>` in the environment, a run that reaches `<point>`
//! prints `paused at <point>` to stderr and sleeps, so a test can kill it there with
//! SIGKILL and check that nothing half-written became visible.

/// The environment variable that names the point to pause at.
pub const ENV: &str = "PRESAGE_TEST_PAUSE";

/// Pauses here when `PRESAGE_TEST_PAUSE` names this point.
pub fn pause(point: &str) {
    if std::env::var(ENV).is_ok_and(|p| p == point) {
        eprintln!("paused at {point}");
        std::thread::sleep(std::time::Duration::from_secs(120));
    }
}

/// The environment variable that names the operation to fail.
pub const FAIL_ENV: &str = "PRESAGE_TEST_FAIL";

/// An error when `PRESAGE_TEST_FAIL` names this point.
pub fn fail(point: &str) -> std::io::Result<()> {
    if std::env::var(FAIL_ENV).is_ok_and(|p| p == point) {
        return Err(std::io::Error::other(format!(
            "failed on purpose at {point} ({FAIL_ENV})"
        )));
    }
    Ok(())
}
