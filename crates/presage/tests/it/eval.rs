//! `presage backtest` and `presage staleness`: point-in-time correctness, the
//! quickstart's staleness ladder, the HTML report in a real browser, bad input.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use presage_test::{TestProject, workspace_root};
use serde_json::Value;

use crate::project::{run_in, stderr, stdout};

/// 2026-03-01T00:00:00Z in µs.
const T0: i64 = 1_772_323_200_000_000;
const SECOND: i64 = 1_000_000;
const USERS: usize = 200;

/// A project whose one feature leaks the label when computed one second late: a
/// positive user's `outcome` event happens exactly at the request time.
struct LeakProject {
    project: TestProject,
}

impl LeakProject {
    fn new(entity_columns: bool) -> LeakProject {
        let project = TestProject::new();
        let dir = project.path();
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let ids: Vec<String> = (0..USERS).map(|i| format!("u{i:03}")).collect();
        project.write("data/users.csv", format!("user_id\n{}\n", ids.join("\n")));

        // Each user asks once, at a distinct second over ten days; every other user's
        // outcome is positive, and its `outcome` event is at exactly that instant.
        let request = |i: usize| T0 + 86_400 * SECOND + (i as i64) * 4_321 * SECOND;
        let mut users = Vec::new();
        let mut times = Vec::new();
        let mut kinds = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            for day in 0..12 {
                users.push(id.clone());
                times.push(T0 + day * 86_400 * SECOND + (i as i64) * 60 * SECOND);
                kinds.push("session");
            }
            if i % 2 == 0 {
                users.push(id.clone());
                times.push(request(i));
                kinds.push("outcome");
            }
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new("user_id", DataType::Utf8, false),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                false,
            ),
            Field::new("kind", DataType::Utf8, false),
        ]));
        write_parquet(
            &dir.join("data/events.parquet"),
            RecordBatch::try_new(
                schema,
                vec![
                    Arc::new(StringArray::from(users)),
                    Arc::new(TimestampMicrosecondArray::from(times)),
                    Arc::new(StringArray::from(kinds)),
                ],
            )
            .unwrap(),
        );
        let labels = |shift: i64| {
            labels_batch(
                &ids,
                &(0..USERS).map(|i| request(i) + shift).collect::<Vec<_>>(),
                &(0..USERS)
                    .map(|i| i64::from(i % 2 == 0))
                    .collect::<Vec<_>>(),
            )
        };
        write_parquet(&dir.join("data/labels.parquet"), labels(0));
        write_parquet(&dir.join("data/labels_late.parquet"), labels(SECOND));

        let fixture = workspace_root().join("crates/presage/tests/fixtures/leak/model.onnx");
        project.copy(&fixture, "model.onnx");
        let entity = if entity_columns {
            "entity_columns = { users = \"user_id\", events = \"user_id\" }"
        } else {
            ""
        };
        project.write(
            "presage.toml",
            format!(
                r#"
[sources.users]
path = "data/users.csv"
[sources.events]
path = "data/events.parquet"
[sources.labels]
path = "data/labels.parquet"

[features.outcomes]
key = "user_id"
{entity}
sql = """
SELECT u.user_id, CAST(count(e.ts) AS DOUBLE) AS outcome_events
FROM users u
LEFT JOIN events e
  ON e.user_id = u.user_id AND e.kind = 'outcome' AND e.ts < {{{{as_of}}}}
GROUP BY u.user_id
"""

[models.leak]
path = "model.onnx"
inputs = ["outcome_events"]

# A challenger whose rename names no output of the model.
[models.misnamed]
path = "model.onnx"
inputs = ["outcome_events"]
outputs = {{ score = "p" }}

[jobs.leak]
features = "outcomes"
model = "leak"
"#
            ),
        );
        LeakProject { project }
    }

    fn path(&self) -> &Path {
        self.project.path()
    }

    /// Runs `presage backtest leak` with `args`; returns the JSON report.
    fn backtest(&self, args: &[&str]) -> Value {
        let mut all = vec!["backtest", "leak", "--json", "backtest.json"];
        all.extend_from_slice(args);
        let output = run_in(self.path(), &all);
        assert!(output.status.success(), "{}", stderr(&output));
        serde_json::from_slice(&std::fs::read(self.path().join("backtest.json")).unwrap()).unwrap()
    }
}

fn labels_batch(ids: &[String], times: &[i64], labels: &[i64]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Utf8, false),
        Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        ),
        Field::new("label", DataType::Int64, false),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(ids.to_vec())),
            Arc::new(TimestampMicrosecondArray::from(times.to_vec())),
            Arc::new(Int64Array::from(labels.to_vec())),
        ],
    )
    .unwrap()
}

fn write_parquet(path: &Path, batch: RecordBatch) {
    let file = std::fs::File::create(path).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

fn auc(report: &Value) -> f64 {
    report["metrics"]["roc_auc"].as_f64().unwrap()
}

#[test]
fn backtest_features_use_only_data_strictly_before_each_request() {
    for entity_columns in [true, false] {
        let project = LeakProject::new(entity_columns);
        // At the request time the outcome event is not yet data: the feature is 0 for
        // everyone and the model cannot tell positives from negatives.
        let on_time = project.backtest(&["--labels", "labels"]);
        assert_eq!(on_time["rows"], 200);
        assert_eq!(auc(&on_time), 0.5, "{on_time}");
        // One second late, it leaks: the same backtest sees the outcome. This is what
        // the first assertion would show if cutoffs were off by a second.
        let late = project.backtest(&["--labels", "data/labels_late.parquet"]);
        assert_eq!(auc(&late), 1.0, "{late}");
    }
}

#[test]
fn backtest_window_keeps_requests_from_inclusive_to_exclusive() {
    let project = LeakProject::new(true);
    // User i asks at day 1 + i × 4,321 s: users 100..150 fall in this window.
    let at = |i: i64| {
        chrono::DateTime::from_timestamp_micros(T0 + 86_400 * SECOND + i * 4_321 * SECOND)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    };
    let report = project.backtest(&["--labels", "labels", "--from", &at(100), "--to", &at(150)]);
    assert_eq!(report["rows"], 50, "{report}");
}

#[test]
fn backtest_compares_a_challenger_on_the_same_rows() {
    let project = LeakProject::new(true);
    let report = project.backtest(&[
        "--labels",
        "data/labels_late.parquet",
        "--challenger",
        "model.onnx",
        "--report",
        "backtest.html",
    ]);
    let challenger = &report["challenger"];
    assert_eq!(
        challenger["metrics"]["roc_auc"],
        report["metrics"]["roc_auc"]
    );
    assert_eq!(challenger["difference"]["log_loss"].as_f64(), Some(0.0));
    let html = std::fs::read_to_string(project.path().join("backtest.html")).unwrap();
    assert!(
        html.contains("<svg class=\"figure\""),
        "no figure in the report"
    );
}

#[test]
fn bad_eval_input_is_named_before_any_work() {
    let project = LeakProject::new(true);
    let dir = project.path();
    let fails = |args: &[&str], needle: &str| {
        let output = run_in(dir, args);
        let err = stderr(&output);
        assert!(!output.status.success(), "{args:?} succeeded");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(
            !err.contains("computing features"),
            "{args:?} started work: {err}"
        );
    };
    fails(
        &[
            "backtest",
            "leak",
            "--labels",
            "labels",
            "--label-column",
            "churned",
        ],
        "labels `labels` have no column `churned` (label); columns: `user_id`, `time`, `label`",
    );
    fails(
        &["backtest", "leak", "--labels", "nope.parquet"],
        "--labels `nope.parquet`: neither a source in",
    );
    // Requests after the data ends would be scored on features that cannot exist.
    let ids: Vec<String> = vec!["u000".into()];
    write_parquet(
        &dir.join("data/labels_future.parquet"),
        labels_batch(&ids, &[T0 + 400 * 86_400 * SECOND], &[1]),
    );
    fails(
        &["backtest", "leak", "--labels", "data/labels_future.parquet"],
        "1 rows have `time` outside the data's range",
    );
    fails(
        &[
            "staleness",
            "leak",
            "--labels",
            "labels",
            "--cadence",
            "0,1h,soon",
        ],
        "cadence `soon`",
    );
    fails(
        &[
            "staleness",
            "leak",
            "--labels",
            "labels",
            "--lag",
            "half an hour",
        ],
        "lag `half an hour`",
    );
    // A challenger taking twelve inputs cannot score this job's one feature.
    let other = presage_test::model_fixtures().join("sk_logreg_binary/model.onnx");
    fails(
        &[
            "backtest",
            "leak",
            "--labels",
            "labels",
            "--challenger",
            other.to_str().unwrap(),
        ],
        "takes 12 input features but `inputs` lists 1",
    );
    // A rename is checked as `presage run` checks it, not ignored.
    fails(
        &[
            "backtest",
            "leak",
            "--labels",
            "labels",
            "--challenger",
            "misnamed",
        ],
        "challenger `misnamed`: model `misnamed` has no output `score` to rename; it has: `label`, `probability`",
    );
}

/// The quickstart project, written once for the tests that read it.
fn quickstart_project() -> &'static Path {
    static DIR: std::sync::OnceLock<(TestProject, PathBuf)> = std::sync::OnceLock::new();
    &DIR.get_or_init(|| {
        let project = TestProject::new();
        let dir = project.path().join("demo");
        let output = run_in(project.path(), &["quickstart", "--dir", "demo", "--no-run"]);
        assert!(output.status.success(), "{}", stderr(&output));
        (project, dir)
    })
    .1
}

fn cell<'a>(report: &'a Value, stage: &str, cadence: &str) -> &'a Value {
    report["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["stage"] == stage && c["cadence"] == cadence)
        .unwrap_or_else(|| panic!("no {stage} {cadence} cell"))
}

#[test]
fn quickstart_staleness_shows_fresher_is_better() {
    let dir = quickstart_project();
    let output = run_in(
        dir,
        &[
            "staleness",
            "churn",
            "--labels",
            "labels",
            "--cadence",
            "0,1h,1d,7d",
            "--lag",
            "30m",
            "--json",
            "staleness.json",
            "--report",
            "staleness.html",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("online features"), "{text}");
    let report: Value =
        serde_json::from_slice(&std::fs::read(dir.join("staleness.json")).unwrap()).unwrap();
    let loss = |c: &Value| c["metrics"]["log_loss"].as_f64().unwrap();
    let auc = |c: &Value| c["metrics"]["roc_auc"].as_f64().unwrap();
    let online = cell(&report, "online_features", "0");
    let hourly = cell(&report, "batch", "1h");
    let daily = cell(&report, "batch", "1d");
    let weekly = cell(&report, "batch", "7d");
    // The generator's churn follows engagement drops of the last days: every step
    // towards fresher features must rank and calibrate better.
    assert!(
        auc(online) > auc(daily) && auc(daily) > auc(weekly),
        "{report}"
    );
    assert!(
        loss(online) < loss(daily) && loss(daily) < loss(weekly),
        "{report}"
    );
    assert!(loss(hourly) < loss(daily), "{report}");
    assert!(
        hourly["improvement_vs_daily_batch"]["log_loss"]
            .as_f64()
            .unwrap()
            > 0.0,
        "{report}"
    );
    // The feature SQL uses {{now}}: online prediction on batch features differs.
    assert_eq!(report["uses_now"], true);
    let verdict = report["verdict"].as_str().unwrap();
    assert!(
        verdict.contains("hourly") && verdict.contains("daily"),
        "{verdict}"
    );
    assert!(report["rows"].as_u64().unwrap() > 10_000, "{report}");
}

/// Chromium, headless, loads the report inside a page of ours that measures each
/// figure's drawn marks with the browser's own layout (`getBBox`, `getTotalLength`).
#[test]
fn staleness_report_figures_are_drawn_in_chromium() {
    let project = LeakProject::new(true);
    let dir = project.path();
    let output = run_in(
        dir,
        &[
            "staleness",
            "leak",
            // The late labels give the scores a spread, so every figure has lines.
            "--labels",
            "data/labels_late.parquet",
            "--cadence",
            "0,1h,1d",
            "--report",
            "report.html",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let figures = drawn_figures(&dir.join("report.html"));
    assert!(figures.len() >= 3, "{figures:?}");
    for figure in &figures {
        assert!(
            figure["width"].as_f64().unwrap() > 100.0 && figure["height"].as_f64().unwrap() > 100.0,
            "figure not laid out: {figure}"
        );
        assert!(
            figure["marks"].as_u64().unwrap() >= 3,
            "nothing drawn: {figure}"
        );
        assert!(
            figure["lines"].as_u64().unwrap() >= 1,
            "no line drawn: {figure}"
        );
    }
}

/// For each `svg.figure` in `report`: its rendered size, the number of drawn marks
/// (shapes with a non-empty box) and of data lines (polylines; axes are paths) longer
/// than 10 px.
fn drawn_figures(report: &Path) -> Vec<Value> {
    let dir = report.parent().unwrap();
    let probe = dir.join("probe.html");
    std::fs::write(
        &probe,
        format!(
            r#"<!doctype html><html><body><pre id="result">pending</pre>
<iframe id="report" src="{}" width="1280" height="6000"></iframe>
<script>
document.getElementById('report').addEventListener('load', () => {{
  const doc = document.getElementById('report').contentDocument;
  const figures = [...doc.querySelectorAll('svg.figure')].map(svg => {{
    const box = svg.getBoundingClientRect();
    const shapes = [...svg.querySelectorAll('path, polyline, line, rect, circle')];
    const marks = shapes.filter(el => {{ const b = el.getBBox(); return b.width > 0 || b.height > 0; }}).length;
    const lines = shapes.filter(el => el.tagName === 'polyline' && el.getTotalLength() > 10).length;
    return {{width: box.width, height: box.height, marks, lines}};
  }});
  document.getElementById('result').textContent = JSON.stringify(figures);
}});
</script></body></html>"#,
            report.file_name().unwrap().to_str().unwrap()
        ),
    )
    .unwrap();
    let profile = tempfile::tempdir().unwrap();
    let output = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--allow-file-access-from-files",
            "--virtual-time-budget=10000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", probe.display()))
        .output()
        .expect("running chromium (`apt-get install chromium`; .ci/run installs it)");
    let dom = String::from_utf8_lossy(&output.stdout);
    let start = dom
        .find("<pre id=\"result\">")
        .unwrap_or_else(|| panic!("no result in the DOM: {}", stderr(&output)))
        + "<pre id=\"result\">".len();
    let end = start + dom[start..].find("</pre>").unwrap();
    let json = dom[start..end].replace("&quot;", "\"");
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"))
}

/// With a lookup log in the config, online setups are costed by the answers it logged
/// in the window (this job's only), not by the label rows.
#[test]
fn online_cost_counts_the_lookup_log_where_present() {
    let project = LeakProject::new(true);
    let dir = project.path();
    std::fs::create_dir_all(dir.join("lookups")).unwrap();
    let in_window = T0 + 2 * 86_400 * SECOND;
    let rows: Vec<(&str, i64)> = (0..7)
        .map(|i| ("leak", in_window + i * SECOND))
        .chain([("other", in_window), ("other", in_window)])
        .chain([
            ("leak", T0 - 86_400 * SECOND),
            ("leak", T0 + 90 * 86_400 * SECOND),
        ])
        .collect();
    let schema = presage_serve::lookup_log_schema();
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(
                TimestampMicrosecondArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())
                    .with_timezone("UTC"),
            ),
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(vec!["u000"; rows.len()])),
            Arc::new(arrow::array::UInt64Array::from(vec![1u64; rows.len()])),
            Arc::new(StringArray::from(vec!["fresh"; rows.len()])),
            Arc::new(arrow::array::Float64Array::from(vec![1.0; rows.len()])),
        ],
    )
    .unwrap();
    write_parquet(&dir.join("lookups/part-0.parquet"), batch);
    let config = std::fs::read_to_string(dir.join("presage.toml")).unwrap();
    std::fs::write(
        dir.join("presage.toml"),
        format!("lookup_log = \"lookups\"\n{config}"),
    )
    .unwrap();
    let output = run_in(
        dir,
        &[
            "staleness",
            "leak",
            "--labels",
            "labels",
            "--cadence",
            "0,1d",
            "--json",
            "s.json",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let report: Value =
        serde_json::from_slice(&std::fs::read(dir.join("s.json")).unwrap()).unwrap();
    assert_eq!(report["online_requests_from"], "lookup log");
    assert_eq!(
        cell(&report, "online_features", "0")["model_evaluations"],
        7
    );
    // A daily batch run scores all 200 users once per day the window spans.
    let daily = cell(&report, "batch", "1d")["model_evaluations"]
        .as_u64()
        .unwrap();
    assert_eq!(daily % 200, 0, "{report}");
}
