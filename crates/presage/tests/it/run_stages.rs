//! A run says where its time went, prints its query plan on request, and a feature
//! query over its memory limit fails in one line naming the operator and the limit.

use serde_json::Value;

use crate::project::{SmallProject, inputs, stderr, stdout};

fn json(path: &std::path::Path) -> Value {
    serde_json::from_slice(&fs_err::read(path).unwrap()).unwrap()
}

const STAGES: [&str; 5] = ["features", "scoring", "writing", "checks", "publish"];

#[test]
fn a_run_reports_its_stages_everywhere_and_explains_its_plan() {
    let p = SmallProject::new();
    let out = p.run(&["run", "score", "--explain"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("  time: features ") && text.contains("(these overlap), checks "),
        "{text}"
    );
    // The plan as run, with DataFusion's metrics per operator.
    assert!(
        text.contains("feature query `f`, as run:") && text.contains("DataSourceExec"),
        "{text}"
    );
    assert!(text.contains("output_rows=2.00 K"), "{text}");
    // Progress names the stage before the first rows arrive.
    assert!(
        stderr(&out).contains("score: computing features"),
        "{}",
        stderr(&out)
    );

    let manifest = json(&p.path().join("store/score/versions/1/manifest.json"));
    let stages = &manifest["stages"];
    for stage in STAGES {
        assert!(stages[stage].as_f64().unwrap() >= 0.0, "{stage}: {stages}");
    }
    assert_eq!(stages["spilled_bytes"], 0);
    let last_run = json(&p.path().join("store/score/last_run.json"));
    assert!(
        last_run["stages"]["publish"].as_f64().unwrap() > 0.0,
        "{last_run}"
    );

    let out = p.run(&["status", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    let stages = &status["jobs"][0]["last_run"]["stages"];
    for stage in STAGES {
        assert!(stages[stage].is_number(), "{stage}: {status}");
    }
}

#[test]
fn a_query_over_its_memory_limit_fails_in_one_line() {
    let p = SmallProject::new();
    let features = inputs()
        .iter()
        .map(|f| format!("a.{f}"))
        .collect::<Vec<_>>()
        .join(", ");
    let columns = inputs()
        .iter()
        .map(|f| format!("r.{f}"))
        .collect::<Vec<_>>()
        .join(", ");
    // Two million rows on the build side of a hash join, which cannot spill.
    let sql = format!(
        "WITH big AS (
            SELECT r.key || '-' || CAST(s.value AS VARCHAR) AS k, {columns}
            FROM rows r CROSS JOIN generate_series(1, 1000) s
         )
         SELECT a.k AS key, {features} FROM big a JOIN big b ON a.k = b.k"
    );
    p.write_config(&sql, "key", &inputs());
    let out = p.run(&["run", "score", "--memory-limit", "16MB"]);
    assert!(!out.status.success());
    let error = stderr(&out);
    let last = error.lines().last().unwrap();
    assert!(
        last.starts_with("error: feature SQL of `f` needs more memory than the run's limit of 15.3 MiB: HashJoinInput"),
        "{error}"
    );
    assert!(last.contains("--memory-limit"), "{last}");
    assert!(p.current().is_none());
    let last_run = json(&p.path().join("store/score/last_run.json"));
    assert_eq!(last_run["outcome"], "failed");

    // A limit that is not a size says what is accepted.
    let out = p.run(&["run", "score", "--memory-limit", "lots"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--memory-limit: invalid memory limit `lots`: expected a size"),
        "{}",
        stderr(&out)
    );
}
