//! `/metrics` read by a real Prometheus parser: the Python `prometheus_client`
//! package's text-format parser (`pip install prometheus_client`).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::{Command, Stdio};

use axum::body::Body;
use chrono::Utc;
use presage_serve::{RespOptions, spawn_resp};
use serde::Deserialize;
use serde_json::json;

use crate::harness::{Fixture, JOB, call, get, job, serve};

/// A job whose name needs escaping in a label value.
const ODD_JOB: &str = "odd\"job\\name";

#[derive(Debug, Deserialize)]
struct Family {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    samples: Vec<Sample>,
}

#[derive(Debug, Deserialize)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses Prometheus text with `prometheus_client.parser`, failing the test on a parse
/// error; the families as the parser sees them.
fn parse_prometheus(text: &str) -> Vec<Family> {
    const SCRIPT: &str = r#"
import json, sys
try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    sys.exit(3)
families = [
    {"name": f.name, "type": f.type,
     "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in f.samples]}
    for f in text_string_to_metric_families(sys.stdin.read())
]
json.dump(families, sys.stdout)
"#;
    let install = "install python3 and the Prometheus parser: `pip install prometheus_client`";
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running python3: {e}; {install}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("writing to python3");
    let out = child.wait_with_output().expect("python3 runs");
    match out.status.code() {
        Some(0) => {}
        Some(3) => panic!("python3 has no `prometheus_client` package; {install}"),
        _ => panic!(
            "/metrics is not valid Prometheus text: {}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
    serde_json::from_slice(&out.stdout).expect("the parser's JSON")
}

/// The value of the sample `name` with exactly `labels`.
fn value(families: &[Family], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    families
        .iter()
        .flat_map(|f| &f.samples)
        .find(|s| s.name == name && s.labels == labels)
        .map(|s| s.value)
}

#[tokio::test]
async fn metrics_are_valid_prometheus_text() {
    let fixture = Fixture::new();
    fixture.publish(JOB, Utc::now()).await;
    let state = serve(&fixture, vec![job(JOB), job(ODD_JOB)], None).await;

    assert_eq!(
        get(&state, "/v1/jobs/churn/predictions/u1").await.status,
        200
    );
    assert_eq!(
        get(&state, "/v1/jobs/churn/predictions/nobody")
            .await
            .status,
        404
    );
    let batch = json!({"keys": ["u1", "u2", "nobody"]}).to_string();
    let answer = call(
        &state,
        "POST",
        "/v1/jobs/churn/predictions:batchGet",
        None,
        Body::from(batch),
    )
    .await;
    assert_eq!(answer.status, 200);

    let answer = get(&state, "/metrics").await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.content_type,
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let families = parse_prometheus(&answer.text());

    // Each family is typed (a sample without its own TYPE would parse as `unknown`)
    // and appears once.
    let kinds: Vec<(&str, &str)> = families
        .iter()
        .map(|f| (f.name.as_str(), f.kind.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("presage_lookups", "counter"),
            ("presage_version_swaps", "counter"),
            ("presage_version_load_failures", "counter"),
            ("presage_version_id", "gauge"),
            ("presage_version_rows", "gauge"),
            ("presage_version_age_seconds", "gauge"),
            ("presage_version_stale", "gauge"),
            ("presage_last_run_seconds", "gauge"),
            ("presage_last_run_rows_per_second", "gauge"),
            ("presage_last_run_outcome", "gauge"),
            ("presage_last_export_ok", "gauge"),
            ("presage_last_run_finished_seconds", "gauge"),
            ("presage_lookup_seconds", "histogram"),
        ]
    );

    let lookups = |job, status| {
        value(
            &families,
            "presage_lookups_total",
            &[("job", job), ("status", status)],
        )
    };
    assert_eq!(lookups(JOB, "fresh"), Some(3.0));
    assert_eq!(lookups(JOB, "miss"), Some(2.0));
    assert_eq!(lookups(JOB, "stale"), Some(0.0));
    // The quote and the backslash came back as they were: escaped on the way out.
    assert_eq!(lookups(ODD_JOB, "fresh"), Some(0.0));
    let churn = [("job", JOB)];
    assert_eq!(
        value(&families, "presage_version_swaps_total", &churn),
        Some(1.0)
    );
    assert_eq!(value(&families, "presage_version_id", &churn), Some(1.0));
    assert_eq!(value(&families, "presage_version_rows", &churn), Some(3.0));
    assert_eq!(value(&families, "presage_version_stale", &churn), Some(0.0));
    assert_eq!(
        value(
            &families,
            "presage_last_run_outcome",
            &[("job", JOB), ("outcome", "published")]
        ),
        Some(1.0)
    );
    // The job without a version has counters but no version gauges.
    assert_eq!(
        value(&families, "presage_version_id", &[("job", ODD_JOB)]),
        None
    );
    // One observation per request, a batchGet of three keys included.
    assert_eq!(
        value(&families, "presage_lookup_seconds_count", &[]),
        Some(3.0)
    );
    assert_eq!(
        value(
            &families,
            "presage_lookup_seconds_bucket",
            &[("le", "+Inf")]
        ),
        Some(3.0)
    );
}

#[tokio::test]
async fn a_redis_protocol_mget_is_one_latency_observation() {
    let fixture = Fixture::new();
    fixture.publish(JOB, Utc::now()).await;
    let state = serve(&fixture, vec![job(JOB)], None).await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    spawn_resp(listener, state.clone(), RespOptions::default()).unwrap();

    let mut client = std::net::TcpStream::connect(addr).unwrap();
    client
        .write_all(b"MGET churn:u1 churn:u2 churn:nobody\r\nGET churn:u3\r\nPING\r\n")
        .unwrap();
    let mut replies = Vec::new();
    let mut chunk = [0u8; 4096];
    while !replies.ends_with(b"+PONG\r\n") {
        let n = client.read(&mut chunk).unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&replies));
        replies.extend_from_slice(&chunk[..n]);
    }
    let replies = String::from_utf8(replies).unwrap();
    assert!(replies.starts_with("*3\r\n"), "{replies}");
    assert_eq!(
        replies.matches("\"status\":\"fresh\"").count(),
        3,
        "{replies}"
    );

    let families = parse_prometheus(&get(&state, "/metrics").await.text());
    let lookups = |status| {
        value(
            &families,
            "presage_lookups_total",
            &[("job", JOB), ("status", status)],
        )
    };
    assert_eq!(lookups("fresh"), Some(3.0));
    assert_eq!(lookups("miss"), Some(1.0));
    // MGET and GET: one each, as HTTP counts one per request.
    assert_eq!(
        value(&families, "presage_lookup_seconds_count", &[]),
        Some(2.0)
    );
}
