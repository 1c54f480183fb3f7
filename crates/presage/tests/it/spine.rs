//! The whole path: quickstart → run → lookup over HTTP → second run → the server
//! answers from the new version → rollback → answers from the old one.

use std::path::Path;
use std::time::{Duration, Instant};

use arrow::array::AsArray;
use presage_test::{ChildProcess, TestProject, free_port, http_json, wait_http_ok};
use serde_json::json;

use crate::project::{presage, run_in, stderr, stdout};

fn first_key(version_dir: &Path) -> String {
    let file = fs_err::File::open(version_dir.join("predictions.parquet")).unwrap();
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file.into_parts().0)
            .unwrap()
            .build()
            .unwrap();
    let batch = reader.into_iter().next().unwrap().unwrap();
    batch.column(0).as_string::<i32>().value(0).to_owned()
}

fn wait_for_version(url: &str, version: u64) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, answer) = http_json("GET", url, None, None);
        if status == 200 && answer["version"] == json!(version) {
            return answer;
        }
        assert!(
            Instant::now() < deadline,
            "server still answers {answer} instead of version {version}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn quickstart_run_serve_swap_rollback() {
    let tmp = TestProject::new();
    let demo = tmp.path().join("demo");
    let out = run_in(tmp.path(), &["quickstart", "--dir", "demo", "--no-serve"]);
    assert!(out.status.success(), "quickstart failed: {}", stderr(&out));
    assert!(
        stdout(&out).contains("published churn version 1")
            && stdout(&out).contains("published addon_recs version 1"),
        "{}",
        stdout(&out)
    );
    let config = demo.join("presage.toml");
    let config = config.to_str().unwrap();
    let key = first_key(&demo.join("presage-data/churn/versions/1"));

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut command = presage();
    command
        .current_dir(tmp.path())
        .args([
            "serve",
            "--config",
            config,
            "--addr",
            &format!("127.0.0.1:{port}"),
        ])
        .env("PRESAGE_ADMIN_TOKEN", "s3cret");
    let _server = ChildProcess::spawn(command);
    wait_http_ok(&format!("{base}/readyz"), Duration::from_secs(30));

    let (status, jobs) = http_json("GET", &format!("{base}/v1/jobs"), None, None);
    assert_eq!(status, 200);
    let names: Vec<&str> = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["addon_recs", "churn"], "{jobs}");
    let churn = &jobs["jobs"][1];
    assert_eq!(churn["version"], json!(1));
    assert_eq!(churn["status"], json!("fresh"));

    let url = format!("{base}/v1/jobs/churn/predictions/{key}");
    let (status, answer) = http_json("GET", &url, None, None);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["key"], json!(key));
    assert_eq!(answer["version"], json!(1));
    assert_eq!(answer["status"], json!("fresh"));
    let p = answer["prediction"]["probability"]
        .as_f64()
        .expect("a probability");
    assert!((0.0..=1.0).contains(&p), "{answer}");
    assert!(answer["prediction"]["label"].is_i64(), "{answer}");
    assert!(answer["computed_at"].is_string() && answer["features_as_of"].is_string());
    assert!(answer["age_seconds"].as_f64().unwrap() >= 0.0);

    // The quickstart's ranked-list job: the same user's three add-ons, best first.
    let (status, recs) = http_json(
        "GET",
        &format!("{base}/v1/jobs/addon_recs/predictions/{key}"),
        None,
        None,
    );
    assert_eq!(status, 200, "{recs}");
    let items = recs["prediction"]["items"].as_array().expect("items");
    assert_eq!(items.len(), 3, "{recs}");
    let scores: Vec<f64> = items.iter().map(|i| i["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{recs}");
    assert!(items.iter().all(|i| i["item"].is_string()), "{recs}");

    // The CLI answers the same document straight from the store.
    let out = run_in(tmp.path(), &["lookup", "churn", &key, "--config", config]);
    assert!(out.status.success(), "{}", stderr(&out));
    let from_cli: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(from_cli["prediction"], answer["prediction"]);

    let (status, missing) = http_json(
        "GET",
        &format!("{base}/v1/jobs/churn/predictions/nobody"),
        None,
        None,
    );
    assert_eq!(status, 404);
    assert!(
        missing["error"].as_str().unwrap().contains("nobody"),
        "{missing}"
    );
    let (status, _) = http_json(
        "GET",
        &format!("{base}/v1/jobs/nojob/predictions/{key}"),
        None,
        None,
    );
    assert_eq!(status, 404);

    let body = json!({ "keys": [key, "nobody"] });
    let (status, batch) = http_json(
        "POST",
        &format!("{base}/v1/jobs/churn/predictions:batchGet"),
        Some(&body),
        None,
    );
    assert_eq!(status, 200, "{batch}");
    assert_eq!(batch["predictions"].as_array().unwrap().len(), 1);
    assert_eq!(batch["missing"], json!(["nobody"]));
    let (status, _) = http_json(
        "POST",
        &format!("{base}/v1/jobs/churn/predictions:batchGet"),
        Some(&json!({"nope": 1})),
        None,
    );
    assert_eq!(status, 400);

    // A second run: the running server swaps to version 2 by itself.
    let out = run_in(tmp.path(), &["run", "churn", "--config", config]);
    assert!(out.status.success(), "second run failed: {}", stderr(&out));
    assert!(
        stdout(&out).contains("published churn version 2"),
        "{}",
        stdout(&out)
    );
    wait_for_version(&url, 2);

    // Rollback from the CLI: the server follows back to version 1.
    let out = run_in(tmp.path(), &["rollback", "churn", "--config", config]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("now serving version 1 (was 2)"),
        "{}",
        stdout(&out)
    );
    wait_for_version(&url, 1);

    // And over HTTP, with the admin token.
    let (status, _) = http_json(
        "POST",
        &format!("{base}/v1/jobs/churn/rollback"),
        Some(&json!({"to": 2})),
        None,
    );
    assert_eq!(status, 401);
    // Version 2 was rolled back from: serving it again takes `force`.
    let (status, body) = http_json(
        "POST",
        &format!("{base}/v1/jobs/churn/rollback"),
        Some(&json!({"to": 2})),
        Some("s3cret"),
    );
    assert_eq!(status, 409, "{body}");
    let (status, body) = http_json(
        "POST",
        &format!("{base}/v1/jobs/churn/rollback"),
        Some(&json!({"to": 2, "force": true})),
        Some("s3cret"),
    );
    assert_eq!(status, 200, "{body}");
    wait_for_version(&url, 2);
    let (status, body) = http_json(
        "POST",
        &format!("{base}/v1/jobs/churn/rollback"),
        Some(&json!({"to": 99})),
        Some("s3cret"),
    );
    assert_eq!(status, 404, "{body}");

    let (status, versions) =
        http_json("GET", &format!("{base}/v1/jobs/churn/versions"), None, None);
    assert_eq!(status, 200);
    assert_eq!(versions["versions"].as_array().unwrap().len(), 2);
    assert_eq!(versions["versions"][0]["id"], json!(2));
    assert_eq!(
        versions["versions"][1]["rows"],
        versions["versions"][0]["rows"]
    );

    let (status, metrics) = http_json("GET", &format!("{base}/metrics"), None, None);
    assert_eq!(status, 200);
    let metrics = metrics.as_str().unwrap().to_owned();
    assert!(
        metrics.contains("presage_lookups_total{job=\"churn\",status=\"fresh\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("presage_version_swaps_total{job=\"churn\"} 4"),
        "{metrics}"
    );

    let out = run_in(tmp.path(), &["status", "--json", "--config", config]);
    assert!(out.status.success());
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let churn = status["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job"] == json!("churn"))
        .expect("churn in status");
    assert_eq!(churn["version"], json!(2));
    assert_eq!(churn["status"], json!("fresh"));
}
