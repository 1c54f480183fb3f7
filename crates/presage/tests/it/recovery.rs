//! An operator's bad day, through the binary: a second run while one is in progress,
//! a garbage `CURRENT`, a failing retention, a full disk, a backfill, unsafe job
//! names. Each leaves the served version alone and says what happened.

use std::time::Duration;

use presage_test::ChildProcess;

use crate::project::{SmallProject, presage, stderr, stdout};

#[test]
fn a_second_run_of_a_job_fails_fast_while_one_is_in_progress() {
    let p = SmallProject::new();
    let mut first = p.run_paused_at("scoring");

    let second = p.run(&["run", "score"]);
    assert!(!second.status.success());
    let message = stderr(&second);
    assert!(
        message.contains("a run of job `score` is in progress (pid ") && message.contains("since"),
        "{message}"
    );

    // The lock goes with its process, however it ends.
    first.kill9();
    let third = p.run(&["run", "score"]);
    assert!(third.status.success(), "{}", stderr(&third));
}

#[test]
fn a_garbage_current_warns_and_the_run_publishes() {
    let p = SmallProject::new();
    assert!(p.run(&["run", "score"]).status.success());
    fs_err::write(p.path().join("store/score/CURRENT"), "not a version\n").unwrap();

    let status = p.run(&["status"]);
    assert!(status.status.success(), "{}", stderr(&status));
    let table = stdout(&status);
    assert!(
        table.contains("FAILING") && table.contains("cannot be read"),
        "{table}"
    );

    let run = p.run(&["run", "score"]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        stderr(&run).contains("warning: job `score`: the current version cannot be read"),
        "{}",
        stderr(&run)
    );
    assert_eq!(p.current().as_deref(), Some("2"));
    assert!(stdout(&p.run(&["status"])).contains("fresh"));
}

#[test]
fn a_failed_retention_after_the_swap_is_a_warning() {
    let p = SmallProject::new();
    for _ in 0..3 {
        assert!(p.run(&["run", "score"]).status.success());
    }
    let run = presage()
        .current_dir(p.path())
        .args(["run", "score"])
        .env("PRESAGE_TEST_FAIL", "retention")
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        stderr(&run).contains("version 4 is published, but deleting old versions failed"),
        "{}",
        stderr(&run)
    );
    assert_eq!(p.current().as_deref(), Some("4"));
    let last_run = fs_err::read_to_string(p.path().join("store/score/last_run.json")).unwrap();
    assert!(last_run.contains("\"published\""), "{last_run}");
}

#[test]
fn a_backfill_is_not_served_unless_promoted() {
    let p = SmallProject::new();
    assert!(p.run(&["run", "score"]).status.success());
    let backfill = p.run(&["run", "score", "--as-of", "2026-01-01"]);
    assert!(backfill.status.success(), "{}", stderr(&backfill));
    assert!(
        stdout(&backfill).contains("a backfill: not served"),
        "{}",
        stdout(&backfill)
    );
    assert_eq!(p.current().as_deref(), Some("1"));
    assert!(stdout(&p.run(&["versions", "score"])).contains("(backfill, never served)"));
    let status = stdout(&p.run(&["status"]));
    assert!(status.contains("published backfill version 2"), "{status}");

    let promoted = p.run(&["run", "score", "--as-of", "2026-01-01", "--promote"]);
    assert!(promoted.status.success(), "{}", stderr(&promoted));
    assert_eq!(p.current().as_deref(), Some("3"));
    // Its features are months old: it is served, and stale.
    assert!(stdout(&p.run(&["status"])).contains("stale"));
}

#[test]
fn rollback_skips_a_version_rolled_back_from() {
    let p = SmallProject::new();
    for _ in 0..2 {
        assert!(p.run(&["run", "score"]).status.success());
    }
    assert!(p.run(&["rollback", "score"]).status.success());
    assert!(p.run(&["run", "score"]).status.success());
    let rollback = p.run(&["rollback", "score"]);
    assert_eq!(
        stdout(&rollback).trim(),
        "score: now serving version 1 (was 3)"
    );
    let refused = p.run(&["rollback", "score", "--to", "2"]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("pass --force"),
        "{}",
        stderr(&refused)
    );
    assert!(
        p.run(&["rollback", "score", "--to", "2", "--force"])
            .status
            .success()
    );
    let versions = stdout(&p.run(&["versions", "score"]));
    assert!(versions.contains("(rolled back from)"), "{versions}");
}

#[test]
fn unsafe_job_names_are_config_errors() {
    let p = SmallProject::new();
    for name in ["../x", "a:b", ".hidden", "two words"] {
        let config = fs_err::read_to_string(p.path().join("presage.toml")).unwrap();
        let bad = config.replace("[jobs.score]", &format!("[jobs.\"{name}\"]"));
        let bad = bad.replace("[jobs.score.checks]", &format!("[jobs.\"{name}\".checks]"));
        fs_err::write(p.path().join("bad.toml"), bad).unwrap();
        let out = p.run(&["status", "--config", "bad.toml"]);
        assert!(!out.status.success(), "{name}");
        let message = stderr(&out);
        assert!(
            message.contains(&format!("[jobs.{name:?}]")) && message.contains("a job name must"),
            "{name}: {message}"
        );
    }
}

/// Mounts a tmpfs of `bytes` at `dir`; false where the machine does not allow it.
fn mount_small_disk(dir: &std::path::Path, bytes: u64) -> bool {
    fs_err::create_dir_all(dir).unwrap();
    std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success())
}

struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_fails_the_run_and_keeps_the_served_version() {
    let p = SmallProject::new();
    assert!(p.run(&["run", "score"]).status.success());
    let store = p.path().join("store");
    let used: u64 = walk_size(&store);
    // Room for what is there and a little more, not for a second version.
    let disk = p.path().join("small-disk");
    if !mount_small_disk(&disk, used + used / 4 + 64 * 1024) {
        eprintln!("skipped: this machine cannot mount a tmpfs (needs root)");
        return;
    }
    let _unmount = Unmount(disk.clone());
    copy_tree(&store, &disk);
    p.edit_config(&[("data_dir = \"store\"", "data_dir = \"small-disk\"")]);

    let run = p.run(&["run", "score"]);
    assert!(!run.status.success(), "a run on a full disk succeeded");
    let message = stderr(&run);
    assert!(message.contains("No space left on device"), "{message}");
    assert_eq!(
        fs_err::read_to_string(disk.join("score/CURRENT"))
            .unwrap()
            .trim(),
        "1"
    );
    let mut leftovers = Vec::new();
    find_leftovers(&disk, &mut leftovers);
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
    // The served version still verifies.
    let lookup = p.run(&["status"]);
    assert!(stdout(&lookup).contains("fresh"), "{}", stdout(&lookup));
}

fn walk_size(dir: &std::path::Path) -> u64 {
    fs_err::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                walk_size(&e.path())
            } else {
                meta.len()
            }
        })
        .sum()
}

fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    for entry in fs_err::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.metadata().unwrap().is_dir() {
            fs_err::create_dir_all(&target).unwrap();
            copy_tree(&entry.path(), &target);
        } else {
            fs_err::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Temporary files and staging folders anywhere under `dir`.
fn find_leftovers(dir: &std::path::Path, found: &mut Vec<std::path::PathBuf>) {
    for entry in fs_err::read_dir(dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.contains(".tmp-") || name.starts_with("run-") {
            found.push(entry.path());
        }
        if entry.metadata().unwrap().is_dir() {
            find_leftovers(&entry.path(), found);
        }
    }
}

#[test]
fn only_the_newest_blocked_runs_are_kept() {
    let p = SmallProject::new();
    p.edit_config(&[
        ("keep_versions = 3", "keep_versions = 3\nkeep_blocked = 2"),
        ("min_rows = 100", "min_rows = 100000000"),
    ]);
    for _ in 0..3 {
        let run = p.run(&["run", "score"]);
        assert!(!run.status.success(), "the check blocks the run");
    }
    let blocked: Vec<String> = fs_err::read_dir(p.path().join("store/score/staging"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(blocked.len(), 2, "{blocked:?}");
    assert!(blocked.iter().all(|name| name.starts_with("blocked-")));
}

#[test]
fn a_server_keeps_serving_through_a_garbage_current_and_falls_back_after_a_restart() {
    use presage_test::{free_port, http_json};
    let p = SmallProject::new();
    for _ in 0..2 {
        assert!(p.run(&["run", "score"]).status.success());
    }
    let start = || {
        let port = free_port();
        let mut command = presage();
        command
            .current_dir(p.path())
            .args(["serve", "--addr", &format!("127.0.0.1:{port}")]);
        let mut server = ChildProcess::spawn(command);
        server.wait_for_stderr("serving on", Duration::from_secs(30));
        (server, format!("http://127.0.0.1:{port}"))
    };
    let readiness = |base: &str| http_json("GET", &format!("{base}/readyz"), None, None);
    let answering = |base: &str| {
        let url = format!("{base}/v1/jobs/score/predictions/e000000");
        http_json("GET", &url, None, None).1["version"].clone()
    };

    let (mut server, base) = start();
    presage_test::wait_http_ok(&format!("{base}/readyz"), Duration::from_secs(30));
    fs_err::write(p.path().join("store/score/CURRENT"), "\u{0}garbage\n").unwrap();
    server.wait_for_stderr("cannot be read", Duration::from_secs(10));
    let (status, body) = readiness(&base);
    assert_eq!(status, 503, "{body}");
    let reason = body["jobs"]["score"].as_str().unwrap();
    assert!(reason.contains("still serving version 2"), "{reason}");
    assert!(!reason.contains(p.path().to_str().unwrap()), "{reason}");
    assert_eq!(answering(&base), serde_json::json!(2));
    drop(server);

    // Restarted with the garbage still there: the newest version that verifies.
    let (mut server, base) = start();
    server.wait_for_stderr("serving version 2 instead", Duration::from_secs(10));
    assert_eq!(answering(&base), serde_json::json!(2));
    assert_eq!(readiness(&base).0, 503);
    let status = stdout(&p.run(&["status"]));
    assert!(status.contains("FAILING"), "{status}");

    // A run repairs the pointer; the server follows and is ready again.
    assert!(p.run(&["run", "score"]).status.success());
    server.wait_for_stderr("now serving version 3", Duration::from_secs(10));
    assert_eq!(readiness(&base).0, 200);
}
