//! Each bad input gets a one-line error naming the place, and publishes nothing.

use crate::project::{SmallProject, inputs, stderr};

/// Runs `score` once successfully, applies `break_it`, runs again, and checks the
/// second run failed with every `needles` in a one-line error and left version 1
/// current with no staging leftovers.
fn fails_cleanly(break_it: impl FnOnce(&SmallProject), needles: &[&str]) {
    let p = SmallProject::new();
    let ok = p.run(&["run", "score"]);
    assert!(ok.status.success(), "first run failed: {}", stderr(&ok));
    assert_eq!(p.current().as_deref(), Some("1"));

    break_it(&p);
    let out = p.run(&["run", "score"]);
    let err = stderr(&out);
    assert!(!out.status.success(), "run should fail; stderr: {err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no error line in: {err}"));
    for needle in needles {
        assert!(
            line.contains(needle),
            "error line `{line}` lacks `{needle}`"
        );
    }
    assert_eq!(
        p.current().as_deref(),
        Some("1"),
        "a failed run must not publish"
    );
    assert!(
        !p.version_dir(2).exists(),
        "a failed run must not leave a version"
    );
    let staging = p.path().join("store/score/staging");
    let leftovers: Vec<_> = fs_err::read_dir(&staging)
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "staging not cleaned: {leftovers:?}");
}

#[test]
fn missing_source_file() {
    fails_cleanly(
        |p| fs_err::remove_file(p.path().join("data/rows.parquet")).unwrap(),
        &["source `rows`", "no file matches", "rows.parquet"],
    );
}

#[test]
fn unreadable_source_file() {
    fails_cleanly(
        |p| {
            p.project.write("data/rows.parquet", b"this is not parquet");
        },
        &["source `rows`", "rows.parquet"],
    );
}

#[test]
fn sql_that_does_not_parse() {
    fails_cleanly(
        |p| p.write_config("SELEC key FROM rows", "key", &inputs()),
        &["feature SQL of `f`", "SELEC"],
    );
}

#[test]
fn sql_with_unknown_column() {
    fails_cleanly(
        |p| p.write_config("SELECT key, nope FROM rows", "key", &inputs()),
        &["feature SQL of `f`", "nope"],
    );
}

#[test]
fn missing_key_column() {
    fails_cleanly(
        |p| p.write_config(&SmallProject::sql("rows"), "user_id", &inputs()),
        &["no column `user_id`", "(key)", "`key`, `f0`"],
    );
}

#[test]
fn null_key() {
    let sql = format!(
        "SELECT CASE WHEN key = (SELECT min(key) FROM rows) THEN NULL ELSE key END AS key, {} FROM rows",
        inputs().join(", ")
    );
    fails_cleanly(
        |p| p.write_config(&sql, "key", &inputs()),
        &["key column `key`", "is null in row"],
    );
}

#[test]
fn duplicate_key() {
    let sql = format!(
        "SELECT key, {cols} FROM rows UNION ALL SELECT key, {cols} FROM rows WHERE key = (SELECT min(key) FROM rows)",
        cols = inputs().join(", ")
    );
    fails_cleanly(
        |p| p.write_config(&sql, "key", &inputs()),
        &["duplicate key", "key column `key`"],
    );
}

#[test]
fn feature_column_missing() {
    let mut wanted = inputs();
    wanted[3] = "f_missing".into();
    fails_cleanly(
        |p| p.write_config(&SmallProject::sql("rows"), "key", &wanted),
        &["no column `f_missing`", "(model input)"],
    );
}

#[test]
fn feature_column_wrong_type() {
    let sql = format!(
        "SELECT key, {}, 'x' AS f11 FROM rows",
        inputs()[..11].join(", ")
    );
    fails_cleanly(
        |p| p.write_config(&sql, "key", &inputs()),
        &["column `f11`", "Utf8", "expected a number"],
    );
}

#[test]
fn wrong_number_of_inputs() {
    fails_cleanly(
        |p| p.write_config(&SmallProject::sql("rows"), "key", &inputs()[..5]),
        &["model `logreg` takes 12 input features", "lists 5"],
    );
}

#[test]
fn model_file_that_is_not_a_model() {
    fails_cleanly(
        |p| {
            p.project
                .write("models/logreg.onnx", b"definitely not protobuf \xff\xfe");
        },
        &["model `logreg`", "logreg.onnx", "not a valid ONNX model"],
    );
}

#[test]
fn model_file_with_an_unknown_extension() {
    fails_cleanly(
        |p| p.edit_config(&[("models/logreg.onnx", "models/logreg.pkl")]),
        &[
            "model `logreg`",
            "logreg.pkl` has unknown extension `.pkl`",
            "accepted: `.onnx` (ONNX), `.json` (XGBoost JSON or CatBoost JSON), `.txt` (LightGBM text)",
        ],
    );
}

#[test]
fn unknown_job() {
    fails_cleanly(
        |p| {
            // Break nothing on disk; ask for a job that does not exist instead.
            let out = p.run(&["run", "nope"]);
            assert!(!out.status.success());
            assert!(
                stderr(&out).contains("unknown job `nope`"),
                "{}",
                stderr(&out)
            );
            assert!(stderr(&out).contains("`score`"), "{}", stderr(&out));
            p.write_config("SELECT 1 AS key", "key", &inputs());
        },
        &["no column `f0`"],
    );
}

#[test]
fn config_typo_names_the_field() {
    let p = SmallProject::new();
    let text = fs_err::read_to_string(p.path().join("presage.toml")).unwrap();
    p.project
        .write("presage.toml", text.replace("max_age", "max_agee"));
    let out = p.run(&["run", "score"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("max_agee"), "{err}");
    assert!(err.contains("presage.toml"), "{err}");
}

/// Regression: every configured source used to be opened on every run, so a source
/// that only another job reads, missing or broken, failed this job too.
#[test]
fn a_missing_source_this_job_does_not_read_is_ignored() {
    let p = SmallProject::new();
    p.edit_config(&[(
        "[features.f]",
        "[sources.elsewhere]\npath = \"data/missing/*.parquet\"\n\n[features.f]",
    )]);
    let out = p.run(&["run", "score"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs_err::read(p.version_dir(1).join("manifest.json")).unwrap())
            .unwrap();
    let sources: Vec<&str> = manifest["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["rows"], "the manifest records the sources read");
}
