//! Zero-downtime swaps: a bounded load against `presage serve` while versions are
//! published and rolled back every 200 ms; every request must succeed and answer from
//! a version that was published.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use presage_test::{ChildProcess, http_json};

use crate::project::{SmallProject, presage, serve_in, stderr, stdout};

/// Requests per client thread; the test stops by itself after these or the deadline.
const REQUESTS_PER_CLIENT: usize = 1500;
const CLIENTS: usize = 2;

#[test]
fn requests_never_fail_while_versions_swap() {
    let project = SmallProject::new();
    let out = project.run(&["run", "score"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (_server, base) = serve_in(project.path(), &[]);

    let published = Arc::new(Mutex::new(BTreeSet::from([1u64])));
    let done = Arc::new(AtomicBool::new(false));
    let swaps_done = Arc::new(AtomicUsize::new(0));
    let publisher = {
        let (published, done, swaps_done) = (published.clone(), done.clone(), swaps_done.clone());
        let dir = project.path().to_path_buf();
        std::thread::spawn(move || {
            let mut swaps = 0;
            let deadline = Instant::now() + Duration::from_secs(60);
            while !done.load(Ordering::Relaxed) && Instant::now() < deadline {
                let rollback = swaps % 3 == 2;
                let args: &[&str] = if rollback {
                    &["rollback", "score"]
                } else {
                    &["run", "score"]
                };
                let out = crate::project::run_in(&dir, args);
                assert!(out.status.success(), "{args:?}: {}", stderr(&out));
                let text = stdout(&out);
                if let Some(id) = text
                    .split("published score version ")
                    .nth(1)
                    .and_then(|rest| rest.split(':').next())
                    .and_then(|id| id.trim().parse().ok())
                {
                    published.lock().unwrap().insert(id);
                }
                swaps += 1;
                swaps_done.store(swaps, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(200));
            }
            swaps
        })
    };

    let url = format!("{base}/v1/jobs/score/predictions/e000000");
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (url, swaps_done) = (url.clone(), swaps_done.clone());
            std::thread::spawn(move || {
                let mut seen = Vec::with_capacity(REQUESTS_PER_CLIENT);
                // At least the fixed count, and on until a few swaps happened; bounded.
                let deadline = Instant::now() + Duration::from_secs(60);
                while (seen.len() < REQUESTS_PER_CLIENT || swaps_done.load(Ordering::Relaxed) < 4)
                    && Instant::now() < deadline
                {
                    let (status, answer) = http_json("GET", &url, None, None);
                    assert_eq!(status, 200, "a request failed during a swap: {answer}");
                    seen.push(answer["version"].as_u64().expect("a version"));
                }
                seen
            })
        })
        .collect();
    let seen: Vec<u64> = clients
        .into_iter()
        .flat_map(|c| c.join().expect("client"))
        .collect();
    done.store(true, Ordering::Relaxed);
    let swaps = publisher.join().expect("publisher");
    let published = published.lock().unwrap().clone();
    let distinct: BTreeSet<u64> = seen.iter().copied().collect();
    assert!(
        distinct.is_subset(&published),
        "answers from versions {distinct:?}, published {published:?}"
    );
    assert!(swaps >= 3, "only {swaps} swaps happened during the load");
    assert!(
        distinct.len() >= 2,
        "the load saw only versions {distinct:?} over {swaps} swaps"
    );
}

#[test]
fn killing_the_publisher_mid_run_does_not_disturb_serving() {
    let project = SmallProject::new();
    let out = project.run(&["run", "score"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (mut server, base) = serve_in(project.path(), &[]);

    let done = Arc::new(AtomicBool::new(false));
    let url = format!("{base}/v1/jobs/score/predictions/e000000");
    let client = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut answered = 0;
            while !done.load(Ordering::Relaxed) && answered < 20_000 {
                let (status, answer) = http_json("GET", &url, None, None);
                assert_eq!(status, 200, "a request failed: {answer}");
                assert_eq!(answer["version"], serde_json::json!(1), "{answer}");
                answered += 1;
            }
            answered
        })
    };
    for point in ["scoring", "publish"] {
        let mut run = presage();
        run.current_dir(project.path())
            .args(["run", "score"])
            .env(presage_store::failpoint::ENV, point);
        let mut run = ChildProcess::spawn(run);
        run.wait_for_stderr(&format!("paused at {point}"), Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(100));
        run.kill9();
    }
    std::thread::sleep(Duration::from_millis(300));
    done.store(true, Ordering::Relaxed);
    let answered = client.join().expect("client");
    assert!(answered > 0);
    assert_eq!(project.current().as_deref(), Some("1"));

    // The next run cleans up and publishes; the server follows.
    let out = project.run(&["run", "score"]);
    assert!(out.status.success(), "{}", stderr(&out));
    server.wait_for_stderr("now serving version", Duration::from_secs(10));
}
