//! Bounded staleness over HTTP: a version older than `max_age` is served, replaced by
//! the default, or refused with 503, as the job's `on_stale` says.

use std::time::Duration;

use arrow::array::AsArray;
use presage_test::http_json;
use serde_json::json;

use crate::project::{SmallProject, inputs, serve_in, stderr};

fn first_key(project: &SmallProject) -> String {
    let file = std::fs::File::open(project.path().join("data/rows.parquet")).unwrap();
    let mut reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let batch = reader.next().unwrap().unwrap();
    batch
        .column_by_name("key")
        .unwrap()
        .as_string::<i32>()
        .value(0)
        .to_owned()
}

/// Sets the job's `max_age` and adds `extra` lines to `[jobs.score]`.
pub(crate) fn configure(project: &SmallProject, max_age: &str, extra: &str) {
    project.write_config(&SmallProject::sql("rows"), "key", &inputs());
    let path = project.path().join("presage.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let start = text.find("max_age = ").unwrap();
    let end = start + text[start..].find('\n').unwrap();
    let text = format!(
        "{}max_age = \"{max_age}\"\n{extra}{}",
        &text[..start],
        &text[end..]
    );
    std::fs::write(&path, text).unwrap();
}

fn serve(project: &SmallProject) -> (presage_test::ChildProcess, String) {
    serve_in(project.path(), &[])
}

#[test]
fn on_stale_serves_defaults_or_refuses() {
    let project = SmallProject::new();
    let out = project.run(&["run", "score"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let key = first_key(&project);
    // The version is at least this old by the time the servers answer.
    std::thread::sleep(Duration::from_millis(1100));

    configure(&project, "1s", "");
    let (server, base) = serve(&project);
    let url = format!("{base}/v1/jobs/score/predictions/{key}");
    let (status, answer) = http_json("GET", &url, None, None);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], json!("stale"), "{answer}");
    assert!(answer["prediction"]["probability"].is_f64(), "{answer}");
    drop(server);

    configure(
        &project,
        "1s",
        "on_stale = \"default\"\ndefault = { label = 0, probability = 0.5 }\n",
    );
    let (server, base) = serve(&project);
    let url = format!("{base}/v1/jobs/score/predictions/{key}");
    let (status, answer) = http_json("GET", &url, None, None);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], json!("default"), "{answer}");
    assert_eq!(
        answer["prediction"],
        json!({"label": 0, "probability": 0.5})
    );
    assert_eq!(answer["version"], json!(1));
    drop(server);

    configure(&project, "1s", "on_stale = \"error\"\n");
    let (server, base) = serve(&project);
    let url = format!("{base}/v1/jobs/score/predictions/{key}");
    let (status, answer) = http_json("GET", &url, None, None);
    assert_eq!(status, 503, "{answer}");
    assert!(answer["age_seconds"].as_f64().unwrap() >= 1.0, "{answer}");
    assert_eq!(answer["max_age_seconds"], json!(1.0));
    assert!(
        answer["error"].as_str().unwrap().contains("max_age"),
        "{answer}"
    );
    let body = json!({ "keys": [key] });
    let (status, _) = http_json(
        "POST",
        &format!("{base}/v1/jobs/score/predictions:batchGet"),
        Some(&body),
        None,
    );
    assert_eq!(status, 503);
    drop(server);

    // The same version within max_age is fresh, whatever on_stale says.
    configure(&project, "1h", "on_stale = \"error\"\n");
    let (_server, base) = serve(&project);
    let url = format!("{base}/v1/jobs/score/predictions/{key}");
    let (status, answer) = http_json("GET", &url, None, None);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], json!("fresh"));
}

#[test]
fn on_stale_default_without_a_default_is_a_config_error() {
    let project = SmallProject::new();
    configure(&project, "1h", "on_stale = \"default\"\n");
    let out = project.run(&["run", "score"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("jobs.score.on_stale"), "{err}");
    assert!(err.contains("jobs.score.default"), "{err}");
}
