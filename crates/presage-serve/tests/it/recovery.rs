//! A store whose pointer, manifest or files go bad, and rollbacks and backfills read
//! from the job's history: what the server serves, what `/readyz` says, what the
//! store lists.

use std::time::Duration;

use chrono::Utc;
use presage_serve::{AppState, reload_all};
use presage_store::{StoreErrorKind, VersionId, VersionState};
use serde_json::json;

use crate::harness::{Fixture, JOB, get, job, serve};

/// The version `/v1/jobs/JOB/predictions/u1` answers from.
async fn answering(state: &std::sync::Arc<AppState>) -> Option<u64> {
    let answer = get(state, &format!("/v1/jobs/{JOB}/predictions/u1")).await;
    (answer.status == 200).then(|| answer.json()["version"].as_u64().expect("a version"))
}

/// `/readyz`: its status code and the reason it gives for `JOB`, if any.
async fn readiness(state: &std::sync::Arc<AppState>) -> (u16, Option<String>) {
    let answer = get(state, "/readyz").await;
    let reason = answer.json()["jobs"][JOB].as_str().map(str::to_owned);
    (answer.status, reason)
}

fn write(fixture: &Fixture, relative: &str, content: &str) {
    fs_err::write(fixture.data_dir().join(JOB).join(relative), content).unwrap();
}

#[tokio::test]
async fn garbage_current_keeps_the_served_version_and_falls_back_after_a_restart() {
    let fixture = Fixture::new();
    fixture.publish(JOB, Utc::now()).await;
    fixture.publish(JOB, Utc::now()).await;
    let state = serve(&fixture, vec![job(JOB)], None).await;
    assert_eq!(readiness(&state).await, (200, None));

    write(&fixture, "CURRENT", "\u{0}garbage\n");
    let events = reload_all(&state).await;
    assert!(
        events.iter().any(|e| e.contains("cannot be read")),
        "{events:?}"
    );
    assert_eq!(answering(&state).await, Some(2), "the served version stays");
    let (status, reason) = readiness(&state).await;
    assert_eq!(status, 503);
    assert!(reason.unwrap().contains("still serving version 2"));

    // A restart with the bad pointer serves the newest version that verifies.
    let restarted = serve(&fixture, vec![job(JOB)], None).await;
    assert_eq!(answering(&restarted).await, Some(2));
    let (status, reason) = readiness(&restarted).await;
    assert_eq!(status, 503);
    let reason = reason.unwrap();
    assert!(reason.contains("serving version 2 instead"), "{reason}");
    let jobs = get(&restarted, "/v1/jobs").await.json();
    assert_eq!(jobs["jobs"][0]["status"], json!("failing"), "{jobs}");

    // Repaired, the job is ready again.
    write(&fixture, "CURRENT", "2\n");
    reload_all(&restarted).await;
    assert_eq!(readiness(&restarted).await, (200, None));
    assert_eq!(
        get(&restarted, "/v1/jobs").await.json()["jobs"][0]["status"],
        json!("fresh")
    );
}

#[tokio::test]
async fn current_naming_a_missing_or_corrupt_version_falls_back_to_one_that_verifies() {
    let fixture = Fixture::new();
    fixture.publish(JOB, Utc::now()).await;
    fixture.publish(JOB, Utc::now()).await;

    write(&fixture, "CURRENT", "7\n");
    let state = serve(&fixture, vec![job(JOB)], None).await;
    assert_eq!(answering(&state).await, Some(2));
    let (status, reason) = readiness(&state).await;
    assert_eq!(status, 503);
    assert!(reason.unwrap().contains("version 7 is refused"));

    // Version 2's lookup file is corrupt: a fresh server serves version 1.
    write(&fixture, "CURRENT", "2\n");
    let lookup = fixture
        .data_dir()
        .join(JOB)
        .join("versions/2/predictions.lookup");
    let mut bytes = fs_err::read(&lookup).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    fs_err::write(&lookup, &bytes).unwrap();
    let state = serve(&fixture, vec![job(JOB)], None).await;
    assert_eq!(answering(&state).await, Some(1));
    let (status, reason) = readiness(&state).await;
    assert_eq!(status, 503);
    let reason = reason.unwrap();
    assert!(
        reason.contains("version 2 is refused") && reason.contains("serving version 1 instead"),
        "{reason}"
    );
    // Clients read the reason without the store's paths; the log has them.
    assert!(
        !reason.contains(fixture.data_dir().to_str().unwrap()),
        "{reason}"
    );
}

#[tokio::test]
async fn a_refused_version_is_retried_when_its_files_are_restored() {
    let fixture = Fixture::new();
    fixture.publish(JOB, Utc::now()).await;
    let state = serve(&fixture, vec![job(JOB)], None).await;
    fixture.publish(JOB, Utc::now()).await;

    // Version 2's lookup file is not there yet (a copy still arriving).
    let lookup = fixture
        .data_dir()
        .join(JOB)
        .join("versions/2/predictions.lookup");
    let aside = lookup.with_extension("aside");
    fs_err::rename(&lookup, &aside).unwrap();
    reload_all(&state).await;
    assert_eq!(answering(&state).await, Some(1));
    assert_eq!(readiness(&state).await.0, 503);

    fs_err::rename(&aside, &lookup).unwrap();
    reload_all(&state).await;
    assert_eq!(answering(&state).await, Some(2), "retried once restored");
    assert_eq!(readiness(&state).await, (200, None));
}

#[tokio::test]
async fn an_edited_manifest_is_refused_and_retried_after_its_backoff() {
    let fixture = Fixture::new();
    fixture.publish(JOB, Utc::now()).await;
    let path = fixture
        .data_dir()
        .join(JOB)
        .join("versions/1/manifest.json");
    let original = fs_err::read_to_string(&path).unwrap();
    let modified = fs_err::metadata(&path).unwrap().modified().unwrap();
    // Rewritten in place with the same length and time: only a checksum sees it.
    let rewrite = |text: &str| {
        let mut file = fs_err::OpenOptions::new().write(true).open(&path).unwrap();
        std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
        file.file().set_modified(modified).unwrap();
    };
    rewrite(&original.replace("\"rows\": 3", "\"rows\": 4"));

    let error = fixture
        .store()
        .manifest(JOB, VersionId(1))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Corrupt, "{error}");
    let state = serve(&fixture, vec![job(JOB)], None).await;
    assert_eq!(answering(&state).await, None);
    let (status, reason) = readiness(&state).await;
    assert_eq!(status, 503);
    assert!(reason.unwrap().contains("version 1 is refused"));

    // Restored unseen by the fingerprint: the backoff (1 s at first) retries it.
    rewrite(&original);
    reload_all(&state).await;
    assert_eq!(answering(&state).await, None, "not before its backoff");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    reload_all(&state).await;
    assert_eq!(answering(&state).await, Some(1));
    assert_eq!(readiness(&state).await, (200, None));
}

#[tokio::test]
async fn readyz_names_jobs_without_a_version() {
    let fixture = Fixture::new();
    fixture.publish(JOB, Utc::now()).await;
    let state = serve(&fixture, vec![job(JOB), job("other")], None).await;
    let answer = get(&state, "/readyz").await;
    assert_eq!(answer.status, 503);
    assert_eq!(
        answer.json(),
        json!({"status": "not ready", "jobs": {"other": "job `other` has no published version yet"}})
    );
}

#[tokio::test]
async fn rollback_goes_back_to_what_was_served_before() {
    let fixture = Fixture::new();
    let store = fixture.store();
    fixture.publish(JOB, Utc::now()).await;
    fixture.publish(JOB, Utc::now()).await;
    assert_eq!(
        store.rollback(JOB, None, false).await.unwrap(),
        (VersionId(2), VersionId(1))
    );
    fixture.publish(JOB, Utc::now()).await;
    // Not to 2, the version just rolled away from.
    assert_eq!(
        store.rollback(JOB, None, false).await.unwrap(),
        (VersionId(3), VersionId(1))
    );

    let list = store.version_list(JOB).await.unwrap();
    let states: Vec<(u64, VersionState)> = list
        .versions
        .iter()
        .map(|v| (v.manifest.id.0, v.state))
        .collect();
    assert_eq!(
        states,
        vec![
            (3, VersionState::RolledBack),
            (2, VersionState::RolledBack),
            (1, VersionState::Current),
        ]
    );
    let error = store
        .rollback(JOB, Some(VersionId(2)), false)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("--force"), "{error}");
    let error = store
        .rollback(JOB, Some(VersionId(1)), false)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Conflict, "{error}");
    assert_eq!(error.to_string(), "job `churn` already serves version 1");
    assert_eq!(
        store.rollback(JOB, Some(VersionId(2)), true).await.unwrap(),
        (VersionId(1), VersionId(2))
    );
    let listed = get(
        &serve(&fixture, vec![job(JOB)], None).await,
        &format!("/v1/jobs/{JOB}/versions"),
    )
    .await
    .json();
    assert_eq!(listed["current"], json!(2));
    assert_eq!(listed["versions"][1]["state"], json!("current"));
    assert_eq!(listed["versions"][0]["state"], json!("rolled_back"));
}

#[tokio::test]
async fn a_backfill_is_published_beside_the_current_version() {
    let fixture = Fixture::new();
    let store = fixture.store();
    fixture.publish(JOB, Utc::now()).await;
    let backfill = fixture
        .publish_version(
            JOB,
            Utc::now(),
            Utc::now() - chrono::Duration::days(30),
            false,
        )
        .await;
    assert_eq!(backfill, VersionId(2));
    assert_eq!(store.current(JOB).await.unwrap(), Some(VersionId(1)));
    let list = store.version_list(JOB).await.unwrap();
    assert_eq!(list.versions[0].state, VersionState::Backfill);
    // A backfill is no rollback target, but can be served on purpose.
    assert!(store.rollback(JOB, None, false).await.is_err());
    assert_eq!(
        store.rollback(JOB, Some(backfill), false).await.unwrap(),
        (VersionId(1), VersionId(2))
    );
}

#[tokio::test]
async fn a_version_moved_into_place_but_never_published_is_not_listed_and_is_removed() {
    let fixture = Fixture::new();
    let store = fixture.store();
    fixture.publish(JOB, Utc::now()).await;
    fixture.publish(JOB, Utc::now()).await;
    // As a run killed between the move and the swap leaves it.
    let versions = fixture.data_dir().join(JOB).join("versions");
    copy_dir(&versions.join("2"), &versions.join("3"));
    let temp = fixture.data_dir().join(JOB).join(".CURRENT.tmp-4000000");
    fs_err::write(&temp, "3\n").unwrap();

    assert_eq!(listed_ids(&store).await, vec![2, 1]);
    assert!(matches!(
        store.rollback(JOB, Some(VersionId(3)), true).await,
        Err(presage_store::StoreError::UnknownVersion { .. })
    ));

    // The next run removes it and the dead process's temporary file.
    fixture.publish(JOB, Utc::now()).await;
    assert!(!temp.exists());
    assert_eq!(listed_ids(&store).await, vec![3, 2, 1]);
    assert_eq!(
        store.history(JOB).await.unwrap().entries().len(),
        3,
        "one entry per publish"
    );
}

#[tokio::test]
async fn one_run_of_a_job_at_a_time() {
    let fixture = Fixture::new();
    let store = fixture.store();
    let held = store.lock_run(JOB).await.unwrap();
    let error = store
        .lock_run(JOB)
        .await
        .err()
        .expect("a second lock fails");
    let message = error.to_string();
    assert!(
        message.contains("in progress") && message.contains(&format!("pid {}", std::process::id())),
        "{message}"
    );
    // Other jobs run beside it; the lock is free once dropped.
    drop(store.lock_run("other").await.unwrap());
    drop(held);
    drop(store.lock_run(JOB).await.unwrap());
}

#[tokio::test]
async fn age_counts_from_features_older_than_the_run() {
    let fixture = Fixture::new();
    // Computed now from features a month old.
    let month_ago = Utc::now() - chrono::Duration::days(30);
    fixture
        .publish_version(JOB, Utc::now(), month_ago, true)
        .await;
    let state = serve(
        &fixture,
        vec![crate::harness::strict_job(JOB, Duration::from_secs(3600))],
        None,
    )
    .await;
    let answer = get(&state, &format!("/v1/jobs/{JOB}/predictions/u1")).await;
    assert_eq!(answer.status, 503, "{}", answer.text());
    let jobs = get(&state, "/v1/jobs").await.json();
    assert_eq!(jobs["jobs"][0]["status"], json!("stale"), "{jobs}");
    assert!(jobs["jobs"][0]["age_seconds"].as_f64().unwrap() > 29.0 * 86400.0);
}

/// The ids `versions` lists, newest first.
async fn listed_ids(store: &presage_store::Store) -> Vec<u64> {
    let versions = store.versions(JOB).await.unwrap();
    versions.iter().map(|m| m.id.0).collect()
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    fs_err::create_dir_all(to).unwrap();
    for entry in fs_err::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        fs_err::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}
