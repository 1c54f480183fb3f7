//! Publishing safely: a failing check blocks the publish and keeps the staged files,
//! `--force` publishes anyway and says so, and a rollback to a missing or corrupt
//! version is refused without changing what is served.

use crate::project::{SmallProject, stderr, stdout};

fn set_min_rows(project: &SmallProject, min_rows: u64) {
    let path = project.path().join("presage.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replace("min_rows = 100\n", &format!("min_rows = {min_rows}\n"));
    std::fs::write(&path, text).unwrap();
}

fn manifest(project: &SmallProject, id: u64) -> serde_json::Value {
    let bytes = std::fs::read(project.version_dir(id).join("manifest.json")).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[test]
fn a_failing_check_blocks_and_force_publishes() {
    let project = SmallProject::new();
    assert!(project.run(&["run", "score"]).status.success());
    set_min_rows(&project, 100_000);

    let out = project.run(&["run", "score"]);
    assert!(!out.status.success(), "a failing check must fail the run");
    let err = stderr(&out);
    // The table lists the check with its value and threshold, then the reason.
    assert!(err.contains("min_rows"), "{err}");
    assert!(err.contains("2000") && err.contains("100000"), "{err}");
    assert!(err.contains("publish blocked by `min_rows`"), "{err}");
    assert_eq!(project.current().as_deref(), Some("1"));
    let kept: Vec<_> = std::fs::read_dir(project.path().join("store/score/staging"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        kept.iter().any(|name| name.starts_with("blocked-")),
        "staged files kept for inspection: {kept:?}"
    );
    let status = project.run(&["status"]);
    assert!(
        stdout(&status).contains("blocked"),
        "status shows the blocked run: {}",
        stdout(&status)
    );

    let out = project.run(&["run", "score", "--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(project.current().as_deref(), Some("2"));
    let m = manifest(&project, 2);
    assert_eq!(m["forced"], serde_json::json!(true));
    let min_rows = m["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "min_rows")
        .unwrap();
    assert_eq!(min_rows["passed"], serde_json::json!(false));
    assert_eq!(min_rows["value"], serde_json::json!(2000.0));
    let versions = stdout(&project.run(&["versions", "score"]));
    assert!(versions.contains("forced"), "{versions}");
}

#[test]
fn rollback_to_a_missing_or_corrupt_version_changes_nothing() {
    let project = SmallProject::new();
    assert!(project.run(&["run", "score"]).status.success());
    assert!(project.run(&["run", "score"]).status.success());
    assert_eq!(project.current().as_deref(), Some("2"));

    let out = project.run(&["rollback", "score", "--to", "99"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("99"), "{}", stderr(&out));
    assert_eq!(project.current().as_deref(), Some("2"));

    // Flip one byte in the middle of version 1's lookup file.
    let lookup = project.version_dir(1).join("predictions.lookup");
    let mut bytes = std::fs::read(&lookup).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&lookup, bytes).unwrap();
    let out = project.run(&["rollback", "score", "--to", "1"]);
    assert!(!out.status.success(), "a corrupt version must be refused");
    let err = stderr(&out);
    assert!(err.contains("predictions.lookup"), "{err}");
    assert_eq!(project.current().as_deref(), Some("2"));
    // Plain rollback goes to version 1 too, and is refused the same way.
    assert!(!project.run(&["rollback", "score"]).status.success());
    assert_eq!(project.current().as_deref(), Some("2"));
}
