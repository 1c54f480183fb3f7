//! `presage serve --refresh`: the built-in scheduler re-runs a job whose version is
//! older than `refresh_every`, and the server swaps to each new version.

use std::time::{Duration, Instant};

use presage_test::http_json;

use crate::project::{SmallProject, run_in, serve_in, stderr, stdout};
use crate::staleness::configure;

#[test]
fn serve_refresh_republishes_stale_versions() {
    let project = SmallProject::new();
    configure(&project, "1h", "refresh_every = \"1s\"\n");
    // No version yet: the first run starts at once; then one about every second.
    let (mut server, base) = serve_in(project.path(), &["--refresh"]);
    server.wait_for_stderr("published version 1", Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, jobs) = http_json("GET", &format!("{base}/v1/jobs"), None, None);
        assert_eq!(status, 200, "{jobs}");
        if jobs["jobs"][0]["version"].as_u64().is_some_and(|v| v >= 3) {
            break;
        }
        assert!(Instant::now() < deadline, "no refresh seen: {jobs}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let metrics = ureq::get(&format!("{base}/metrics"))
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    assert!(
        metrics.contains("presage_last_run_outcome{job=\"score\",outcome=\"published\"} 1"),
        "{metrics}"
    );
    drop(server);
    let status = run_in(project.path(), &["status"]);
    assert!(status.status.success(), "{}", stderr(&status));
    assert!(
        stdout(&status).contains("published version"),
        "{}",
        stdout(&status)
    );
}

#[test]
fn refresh_without_refresh_every_is_an_error() {
    let project = SmallProject::new();
    let out = run_in(
        project.path(),
        &["serve", "--refresh", "--addr", "127.0.0.1:0"],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("refresh_every"), "{}", stderr(&out));
}
