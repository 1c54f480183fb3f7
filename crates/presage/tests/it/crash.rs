//! A run killed at any moment leaves the previous version served; corrupt versions
//! are refused.

use std::time::Duration;

use presage_test::{ChildProcess, free_port, http_json, wait_http_ok};
use serde_json::json;

use crate::project::{SmallProject, presage, stderr};

fn kill_at(point: &str) {
    let p = SmallProject::new();
    assert!(p.run(&["run", "score"]).status.success());

    p.run_paused_at(point).kill9();

    assert_eq!(
        p.current().as_deref(),
        Some("1"),
        "killed run changed CURRENT"
    );
    let versions = p.run(&["versions", "score", "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&versions.stdout).unwrap();
    assert_eq!(listed["current"], json!(1));
    // A version moved into place but never made current is not offered.
    assert_eq!(
        listed["versions"].as_array().unwrap().len(),
        1,
        "{listed:#}"
    );

    let again = p.run(&["run", "score"]);
    assert!(
        again.status.success(),
        "run after a crash failed: {}",
        stderr(&again)
    );
    let current: u64 = p.current().unwrap().parse().unwrap();
    assert!(current >= 2, "a later run publishes a new version");
    let staging = p.path().join("store/score/staging");
    let leftovers: Vec<_> = fs_err::read_dir(&staging).unwrap().flatten().collect();
    assert!(
        leftovers.is_empty(),
        "dead run's staging folder not cleaned: {leftovers:?}"
    );
}

#[test]
fn kill9_during_scoring_keeps_previous_version() {
    kill_at("scoring");
}

#[test]
fn kill9_during_publish_keeps_previous_version() {
    kill_at("publish");
}

/// The first key of the project's rows.
fn first_key(p: &SmallProject) -> String {
    let fixture = p.path().join("data/rows.parquet");
    let file = fs_err::File::open(fixture).unwrap();
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file.into_parts().0)
            .unwrap()
            .build()
            .unwrap();
    let batch = reader.into_iter().next().unwrap().unwrap();
    let keys = batch.column_by_name("key").unwrap();
    let keys = arrow::array::AsArray::as_string::<i32>(keys);
    keys.value(0).to_owned()
}

#[test]
fn serve_refuses_a_corrupt_version_and_keeps_the_previous() {
    let p = SmallProject::new();
    assert!(p.run(&["run", "score"]).status.success());
    let key = first_key(&p);
    let port = free_port();
    let mut command = presage();
    command
        .current_dir(p.path())
        .args(["serve", "--addr", &format!("127.0.0.1:{port}")]);
    let mut server = ChildProcess::spawn(command);
    let base = format!("http://127.0.0.1:{port}");
    wait_http_ok(&format!("{base}/readyz"), Duration::from_secs(30));

    // A second version, stopped before it is published, then corrupted and pointed at
    // by hand: what a torn copy or a bad disk would look like to the server.
    p.run_paused_at("publish").kill9();
    let lookup_file = p.version_dir(2).join("predictions.lookup");
    let mut bytes = fs_err::read(&lookup_file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs_err::write(&lookup_file, bytes).unwrap();
    fs_err::write(p.path().join("store/score/CURRENT"), "2\n").unwrap();

    server.wait_for_stderr("version 2 is refused", Duration::from_secs(10));
    let (status, answer) = http_json(
        "GET",
        &format!("{base}/v1/jobs/score/predictions/{key}"),
        None,
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(answer["version"], json!(1), "{answer}");

    // Version 2 was never published (its run was killed before the swap): rollback
    // does not offer it, and nothing changes.
    fs_err::write(p.path().join("store/score/CURRENT"), "1\n").unwrap();
    let out = p.run(&["rollback", "score", "--to", "2"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("has no version `2`"),
        "{}",
        stderr(&out)
    );
    assert_eq!(p.current().as_deref(), Some("1"));
}
