//! Every endpoint and every error status of the HTTP API, through the router.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, header};
use chrono::Utc;
use presage_serve::ServeJob;
use presage_serve::limits::{MAX_BATCH_KEYS, MAX_BODY_BYTES};
use presage_store::{JobStatuses, RunOutcomeKind, VersionId, VersionStatus};
use serde_json::json;

use crate::harness::{Fixture, JOB, TOKEN, call, get, job, send, serve, strict_job};

#[tokio::test]
async fn a_known_key_answers_its_document() {
    let fixture = Fixture::new();
    fixture.publish(JOB, Utc::now()).await;
    let state = serve(&fixture, vec![job(JOB)], None).await;

    let answer = get(&state, "/v1/jobs/churn/predictions/u2").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.content_type, "application/json");
    let doc = answer.json();
    assert_eq!(doc["key"], json!("u2"));
    assert_eq!(doc["prediction"], json!({"probability": 0.5}));
    assert_eq!(doc["version"], json!(1));
    assert_eq!(doc["status"], json!("fresh"));
    for field in ["computed_at", "features_as_of"] {
        let time = doc[field].as_str().expect("a timestamp");
        assert!(
            chrono::DateTime::parse_from_rfc3339(time).is_ok() && time.ends_with('Z'),
            "{field}: {time}"
        );
    }
    assert!(doc["age_seconds"].as_f64().unwrap() >= 0.0, "{doc}");
}

#[tokio::test]
async fn unknown_keys_jobs_and_endpoints_are_json_errors() {
    let fixture = Fixture::new();
    fixture.publish(JOB, Utc::now()).await;
    let dir = fixture.data_dir();
    let state = serve(&fixture, vec![job(JOB)], Some(TOKEN)).await;

    let message = get(&state, "/v1/jobs/churn/predictions/nobody")
        .await
        .assert_error(404, &dir);
    assert_eq!(message, "no prediction for key `nobody` in job `churn`");

    for (method, uri) in [
        ("GET", "/v1/jobs/nojob/predictions/u1"),
        ("GET", "/v1/jobs/nojob/versions"),
        ("POST", "/v1/jobs/nojob/predictions:batchGet"),
        ("POST", "/v1/jobs/nojob/rollback"),
    ] {
        let body = Body::from(r#"{"keys":["u1"]}"#);
        let message = call(&state, method, uri, Some(TOKEN), body)
            .await
            .assert_error(404, &dir);
        assert_eq!(message, "unknown job `nojob`", "{method} {uri}");
    }

    for uri in [
        "/v2/nothing",
        "/v1/nothing",
        "/v1/jobs/churn/predictions/",
        "/",
    ] {
        let message = get(&state, uri).await.assert_error(404, &dir);
        assert_eq!(message, "no such endpoint; see /v1/jobs", "{uri}");
    }
    for (method, uri) in [
        ("DELETE", "/v1/jobs"),
        ("PUT", "/v1/jobs/churn/predictions/u1"),
        ("GET", "/v1/jobs/churn/predictions:batchGet"),
        ("GET", "/v1/jobs/churn/rollback"),
    ] {
        call(&state, method, uri, None, Body::empty())
            .await
            .assert_error(405, &dir);
    }
    // A path that does not decode to text.
    get(&state, "/v1/jobs/%FF/versions")
        .await
        .assert_error(400, &dir);
}

#[tokio::test]
async fn batch_get_answers_found_and_missing_keys_within_its_limits() {
    let fixture = Fixture::new();
    fixture.publish(JOB, Utc::now()).await;
    let dir = fixture.data_dir();
    let state = serve(&fixture, vec![job(JOB)], None).await;
    let uri = "/v1/jobs/churn/predictions:batchGet";

    let answer = call(
        &state,
        "POST",
        uri,
        None,
        json!({"keys": ["u1", "nobody", "u3"]}).to_string(),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let body = answer.json();
    let keys: Vec<&str> = body["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["u1", "u3"]);
    assert_eq!(body["predictions"][1]["prediction"]["probability"], 0.75);
    assert_eq!(body["missing"], json!(["nobody"]));

    let keys: Vec<String> = (0..=MAX_BATCH_KEYS).map(|i| format!("u{i}")).collect();
    let message = call(
        &state,
        "POST",
        uri,
        None,
        json!({ "keys": keys }).to_string(),
    )
    .await
    .assert_error(413, &dir);
    assert!(message.contains("at most 1000"), "{message}");

    // Valid JSON, one byte over the limit.
    let padding = " ".repeat(MAX_BODY_BYTES + 1 - r#"{"keys":[]}"#.len());
    let body = format!(r#"{{"keys":[]}}{padding}"#);
    assert_eq!(body.len(), MAX_BODY_BYTES + 1);
    let message = call(&state, "POST", uri, None, body)
        .await
        .assert_error(413, &dir);
    assert!(message.contains(&MAX_BODY_BYTES.to_string()), "{message}");

    // A `Content-Length` over the limit is refused before any body is read: here
    // there is none, which would otherwise be a 400.
    let request = Request::post(uri)
        .header(header::CONTENT_LENGTH, "1000000000")
        .body(Body::empty())
        .unwrap();
    let message = send(&state, request).await.assert_error(413, &dir);
    assert!(message.contains(&MAX_BODY_BYTES.to_string()), "{message}");

    // The body is read whatever its declared type.
    for content_type in ["text/plain", "application/x-www-form-urlencoded", "%%%"] {
        let request = Request::post(uri)
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(r#"{"keys":["u1"]}"#))
            .unwrap();
        let answer = send(&state, request).await;
        assert_eq!(answer.status, 200, "{content_type}: {}", answer.text());
    }

    for bad in [
        r#"{"keys": ["u1""#,
        r#"{"nope": 1}"#,
        "",
        r#"{"keys": "u1"}"#,
    ] {
        let message = call(&state, "POST", uri, None, bad)
            .await
            .assert_error(400, &dir);
        assert!(message.starts_with("body must be"), "{bad}: {message}");
    }
}

#[tokio::test]
async fn rollback_needs_the_admin_token() {
    let fixture = Fixture::new();
    fixture.publish(JOB, Utc::now()).await;
    let dir = fixture.data_dir();
    let uri = "/v1/jobs/churn/rollback";

    let disabled = serve(&fixture, vec![job(JOB)], None).await;
    let message = call(&disabled, "POST", uri, Some(TOKEN), Body::empty())
        .await
        .assert_error(403, &dir);
    assert!(message.contains("PRESAGE_ADMIN_TOKEN"), "{message}");

    let state = serve(&fixture, vec![job(JOB)], Some(TOKEN)).await;
    for token in [
        None,
        Some("wrong"),
        Some("s3cre"),
        Some("s3cret2"),
        Some(""),
    ] {
        call(&state, "POST", uri, token, Body::empty())
            .await
            .assert_error(401, &dir);
    }
    for authorization in [
        format!("Basic {TOKEN}"),
        format!("Bearer  {TOKEN}"),
        format!("Bearer{TOKEN}"),
        TOKEN.to_owned(),
    ] {
        let request = Request::post(uri)
            .header(header::AUTHORIZATION, authorization)
            .body(Body::empty())
            .unwrap();
        send(&state, request).await.assert_error(401, &dir);
    }
    // The scheme's name is case-insensitive (RFC 9110): these get past the token
    // check, to the store's answer that there is nothing to roll back to.
    for scheme in ["bearer", "BEARER", "BeArEr"] {
        let request = Request::post(uri)
            .header(header::AUTHORIZATION, format!("{scheme} {TOKEN}"))
            .body(Body::empty())
            .unwrap();
        send(&state, request).await.assert_error(409, &dir);
    }

    // Only version 1: nothing before it.
    let message = call(&state, "POST", uri, Some(TOKEN), Body::empty())
        .await
        .assert_error(409, &dir);
    assert_eq!(
        message,
        "job `churn` has no version before `1` to roll back to"
    );

    fixture.publish(JOB, Utc::now()).await;
    let message = call(&state, "POST", uri, Some(TOKEN), r#"{"to": 99}"#)
        .await
        .assert_error(404, &dir);
    assert!(message.contains("no version `99`"), "{message}");
    call(&state, "POST", uri, Some(TOKEN), r#"{"to": "one"}"#)
        .await
        .assert_error(400, &dir);

    let answer = call(&state, "POST", uri, Some(TOKEN), Body::empty()).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json(), json!({"from": 2, "to": 1}));
    // The server answers from the version rolled back to at once.
    let doc = get(&state, "/v1/jobs/churn/predictions/u1").await.json();
    assert_eq!(doc["version"], json!(1));

    // Version 2 was rolled back from: serving it again takes `force`.
    call(&state, "POST", uri, Some(TOKEN), r#"{"to": 2}"#)
        .await
        .assert_error(409, &dir);
    let answer = call(
        &state,
        "POST",
        uri,
        Some(TOKEN),
        r#"{"to": 2, "force": true}"#,
    )
    .await;
    assert_eq!(answer.json(), json!({"from": 1, "to": 2}));
}

#[tokio::test]
async fn health_and_readiness() {
    let fixture = Fixture::new();
    fixture.publish(JOB, Utc::now()).await;

    // A state whose watcher has not loaded the published version yet.
    let loading = presage_serve::AppState::new(fixture.store(), vec![job(JOB)], None);
    let answer = get(&loading, "/readyz").await;
    assert_eq!(
        (answer.status, answer.json()),
        (
            503,
            json!({"status": "not ready", "jobs": {JOB: "not loaded yet"}})
        )
    );
    let answer = get(&loading, "/healthz").await;
    assert_eq!(
        (answer.status, answer.json()),
        (200, json!({"status": "ok"}))
    );

    let state = serve(&fixture, vec![job(JOB)], None).await;
    let answer = get(&state, "/readyz").await;
    assert_eq!(
        (answer.status, answer.json()),
        (200, json!({"status": "ready"}))
    );
}

#[tokio::test]
async fn jobs_list_what_the_server_answers_from() {
    let fixture = Fixture::new();
    let computed_at = Utc::now() - chrono::Duration::hours(2);
    fixture.publish(JOB, computed_at).await;
    let stale = ServeJob {
        max_age: Some(Duration::from_secs(3600)),
        ..job(JOB)
    };
    let state = serve(&fixture, vec![stale, job("empty")], None).await;
    // A publish the server has not swapped in yet: the list shows the loaded version.
    fixture.publish(JOB, Utc::now()).await;

    let answer = get(&state, "/v1/jobs").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let body = answer.json();
    let statuses: JobStatuses = serde_json::from_value(body.clone()).expect("job statuses");
    let [churn, empty] = &statuses.jobs[..] else {
        panic!("{body}")
    };
    assert_eq!(churn.job, "churn");
    assert_eq!(churn.version, Some(VersionId(1)));
    assert_eq!(churn.rows, Some(3));
    assert_eq!(churn.status, VersionStatus::Stale);
    assert_eq!(churn.max_age_seconds, Some(3600));
    assert!(churn.age_seconds.unwrap() >= 7200.0, "{body}");
    // Milliseconds, as in answers.
    assert_eq!(
        body["jobs"][0]["computed_at"],
        json!(computed_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    );
    // The last run is the store's: version 2 was published after the server loaded 1.
    let run = churn.last_run.as_ref().expect("a last run");
    assert_eq!(run.outcome, RunOutcomeKind::Published);
    assert_eq!(run.version, Some(VersionId(2)));

    assert_eq!(empty.job, "empty");
    assert_eq!(empty.version, None);
    assert_eq!(empty.status, VersionStatus::NoVersion);
    assert_eq!(body["jobs"][1]["status"], json!("none"));
    assert!(empty.last_run.is_none());
}

#[tokio::test]
async fn versions_newest_first_with_the_current_one() {
    let fixture = Fixture::new();
    fixture.publish(JOB, Utc::now()).await;
    fixture.publish(JOB, Utc::now()).await;
    let state = serve(&fixture, vec![job(JOB)], None).await;

    let answer = get(&state, "/v1/jobs/churn/versions").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let body = answer.json();
    assert_eq!(body["current"], json!(2));
    let ids: Vec<u64> = body["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [2, 1]);
    assert_eq!(body["versions"][1]["rows"], json!(3));
    // The model's and sources' paths were absolute: only their file names are shown.
    assert_eq!(body["versions"][0]["model"]["path"], json!("churn.onnx"));
    assert_eq!(
        body["versions"][0]["sources"][0]["path"],
        json!("events.parquet")
    );
    let root = fixture.data_dir().parent().unwrap().to_owned();
    assert!(
        !answer.text().contains(root.to_str().unwrap()),
        "{}",
        answer.text()
    );
}

#[tokio::test]
async fn nothing_loaded_and_stale_versions_are_503() {
    let fixture = Fixture::new();
    fixture
        .publish(JOB, Utc::now() - chrono::Duration::hours(2))
        .await;
    let dir = fixture.data_dir();
    let state = serve(
        &fixture,
        vec![strict_job(JOB, Duration::from_secs(3600)), job("empty")],
        None,
    )
    .await;

    let message = get(&state, "/v1/jobs/empty/predictions/u1")
        .await
        .assert_error(503, &dir);
    assert_eq!(message, "job `empty` has no published version yet");

    let answer = get(&state, "/v1/jobs/churn/predictions/u1").await;
    answer.assert_error(503, &dir);
    let body = answer.json();
    assert_eq!(body["version"], json!(1));
    assert_eq!(body["max_age_seconds"], json!(3600.0));
}

#[tokio::test]
async fn a_corrupt_store_is_500_and_names_no_file() {
    let fixture = Fixture::new();
    fixture.publish(JOB, Utc::now()).await;
    let dir = fixture.data_dir();
    let state = serve(&fixture, vec![job(JOB)], None).await;
    fs_err::write(dir.join(JOB).join("CURRENT"), "garbage\n").unwrap();

    let message = get(&state, "/v1/jobs/churn/versions")
        .await
        .assert_error(500, &dir);
    assert_eq!(message, "stored data failed a check; see the server log");
    // The loaded version keeps answering.
    assert_eq!(
        get(&state, "/v1/jobs/churn/predictions/u1").await.status,
        200
    );
}

#[tokio::test]
async fn an_unreadable_store_is_503_and_names_no_file() {
    let fixture = Fixture::new();
    fixture.publish(JOB, Utc::now()).await;
    let dir = fixture.data_dir();
    let state = serve(&fixture, vec![job(JOB)], None).await;
    // The last-run record cannot be read: a folder where its file should be.
    let record = dir.join(JOB).join("last_run.json");
    fs_err::remove_file(&record).unwrap();
    fs_err::create_dir(&record).unwrap();

    let message = get(&state, "/v1/jobs").await.assert_error(503, &dir);
    assert_eq!(message, "the store is unavailable; see the server log");
}
