//! Ranked-list jobs: candidate rows in, each entity's best `top_k` items out, served
//! as `{"items":[{"item","score"},…]}` and checked against onnxruntime's scores.

use std::collections::BTreeMap;

use arrow::array::AsArray;
use arrow::datatypes::Float32Type;
use presage_test::{RedisServer, http_json, model_fixtures};
use serde_json::json;

use crate::project::{SmallProject, inputs, serve_in, stderr, stdout};

const ENTITIES: usize = 50;
const TOP_K: usize = 5;

/// The fixture's 2,000 rows as candidates: row `e000123` is item `e000123` for
/// entity `user23` (123 mod 50), so every entity has 40 candidates.
fn candidate_sql() -> String {
    format!(
        "SELECT 'user' || CAST(CAST(replace(key, 'e', '') AS INT) % {ENTITIES} AS VARCHAR) AS user_id, \
         key AS item, {} FROM rows",
        inputs().join(", ")
    )
}

/// The served answer for `user` of the `score` job, asserting a 200.
fn served(base: &str, user: &str) -> serde_json::Value {
    let (status, answer) = http_json(
        "GET",
        &format!("{base}/v1/jobs/score/predictions/{user}"),
        None,
        None,
    );
    assert_eq!(status, 200, "{answer}");
    answer
}

fn ranked_project(top_k: &str) -> SmallProject {
    ranked_project_with(&candidate_sql(), top_k)
}

fn ranked_project_with(sql: &str, top_k: &str) -> SmallProject {
    let project = SmallProject::new();
    project.write_config(sql, "user_id", &inputs());
    project.edit_config(&[
        ("key = \"user_id\"", "key = \"user_id\"\nitem = \"item\""),
        ("[jobs.score]\n", &format!("[jobs.score]\n{top_k}\n")),
        ("min_rows = 100", "min_rows = 10"),
    ]);
    project
}

/// What the lists must be: onnxruntime's positive-class probability of every
/// candidate, best first, ties by item.
fn expected_lists() -> BTreeMap<String, Vec<(String, f32)>> {
    reference_lists("sk_logreg_binary", "expected.parquet", "probabilities")
}

/// The lists a fixture's reference scores make: `column` of `file` (a probability
/// list, whose positive class counts, or one value) for every candidate, best
/// first, ties by item.
fn reference_lists(
    fixture: &str,
    file: &str,
    column: &str,
) -> BTreeMap<String, Vec<(String, f32)>> {
    let file = fs_err::File::open(model_fixtures().join(fixture).join(file)).unwrap();
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file.into_parts().0)
            .unwrap()
            .build()
            .unwrap();
    let mut lists: BTreeMap<String, Vec<(String, f32)>> = BTreeMap::new();
    for batch in reader {
        let batch = batch.unwrap();
        let keys = batch.column_by_name("key").unwrap().as_string::<i32>();
        let scores = batch.column_by_name(column).unwrap();
        for row in 0..batch.num_rows() {
            let item = keys.value(row);
            let index: usize = item[1..].parse().unwrap();
            let score = match scores.as_list_opt::<i32>() {
                Some(list) => list.value(row).as_primitive::<Float32Type>().value(1),
                None => scores.as_primitive::<Float32Type>().value(row),
            };
            lists
                .entry(format!("user{}", index % ENTITIES))
                .or_default()
                .push((item.to_owned(), score));
        }
    }
    for list in lists.values_mut() {
        list.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        list.truncate(TOP_K);
    }
    lists
}

/// Checks the served lists of every entity against `expected`.
fn assert_served_lists(base: &str, expected: &BTreeMap<String, Vec<(String, f32)>>) {
    assert_eq!(expected.len(), ENTITIES);
    for (user, list) in expected {
        let answer = served(base, user);
        let items = answer["prediction"]["items"].as_array().unwrap();
        assert_eq!(items.len(), TOP_K, "{answer}");
        for ((item, score), got) in list.iter().zip(items) {
            assert_eq!(got["item"], json!(item), "{user}: {answer}");
            let got_score = got["score"].as_f64().unwrap();
            assert!(
                (got_score - f64::from(*score)).abs() < 1e-5 + 1e-4 * f64::from(score.abs()),
                "{user}: {got_score} vs {score}"
            );
        }
        assert_eq!(answer["status"], json!("fresh"));
    }
}

#[test]
fn ranked_job_keeps_the_best_items_per_entity() {
    let project = ranked_project(&format!("top_k = {TOP_K}"));
    let out = project.run(&["run", "score"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("published score version 1"),
        "{}",
        stdout(&out)
    );
    let manifest: serde_json::Value = serde_json::from_slice(
        &fs_err::read(project.version_dir(1).join("manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["rows"], json!(ENTITIES));
    assert_eq!(
        manifest["ranked"],
        json!({"item": "item", "top_k": TOP_K, "score": "probability", "candidates": 2000})
    );
    assert_eq!(manifest["outputs"][0]["name"], json!("items"));

    let (_server, base) = serve_in(project.path(), &[]);
    assert_served_lists(&base, &expected_lists());

    let out = project.run(&["lookup", "score", "user7"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("\"items\":[{\"item\":"),
        "{}",
        stdout(&out)
    );
}

/// Learning-to-rank models (LightGBM `lambdarank`, natively and as ONNX) score as
/// regressors: their raw scores rank each entity's candidates.
#[test]
fn a_ranker_model_ranks_the_lists() {
    let fixture = model_fixtures().join("lgbm_ranker");
    for (file, reference, column) in [
        ("model.txt", "expected_native.parquet", "prediction"),
        ("model.onnx", "expected.parquet", "variable"),
    ] {
        let project = ranked_project(&format!("top_k = {TOP_K}"));
        project
            .project
            .copy(&fixture.join("input.parquet"), "data/rows.parquet");
        project.project.copy(&fixture.join(file), file);
        project.edit_config(&[("models/logreg.onnx", file)]);
        let out = project.run(&["run", "score"]);
        assert!(out.status.success(), "{file}: {}", stderr(&out));
        let manifest: serde_json::Value = serde_json::from_slice(
            &fs_err::read(project.version_dir(1).join("manifest.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(manifest["ranked"]["score"], json!("value"), "{file}");
        let (_server, base) = serve_in(project.path(), &[]);
        assert_served_lists(&base, &reference_lists("lgbm_ranker", reference, column));
    }
}

#[test]
fn ranked_job_config_mistakes_name_the_field() {
    let project = ranked_project("");
    let out = project.run(&["run", "score"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("jobs.score.top_k") && err.contains("item = \"item\""),
        "{err}"
    );

    let project = ranked_project("top_k = 0");
    let err = stderr(&project.run(&["run", "score"]));
    assert!(
        err.contains("jobs.score.top_k: `0` is out of range"),
        "{err}"
    );

    let project = SmallProject::new();
    project.edit_config(&[("[jobs.score]\n", "[jobs.score]\ntop_k = 3\n")]);
    let err = stderr(&project.run(&["run", "score"]));
    assert!(
        err.contains("jobs.score.top_k") && err.contains("no `item` column"),
        "{err}"
    );

    // Backtests evaluate one prediction per key; a ranked job is refused up front.
    let project = ranked_project("top_k = 2");
    let err = stderr(&project.run(&["backtest", "score", "--labels", "rows"]));
    assert!(err.contains("keeps a ranked list"), "{err}");
}

#[test]
fn repeated_or_null_candidates_are_refused_and_publish_nothing() {
    let sql = candidate_sql();
    // Every candidate twice.
    let project = ranked_project_with(&format!("{sql} UNION ALL {sql}"), "top_k = 3");
    let out = project.run(&["run", "score"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("yields item `e0") && err.contains("twice for key `user"),
        "{err}"
    );
    assert_eq!(project.current(), None);

    let nulls = sql.replace(
        "key AS item",
        "CASE WHEN key = 'e001234' THEN NULL ELSE key END AS item",
    );
    let project = ranked_project_with(&nulls, "top_k = 3");
    let err = stderr(&project.run(&["run", "score"]));
    assert!(
        err.contains("item column `item` of `f` is null in row"),
        "{err}"
    );
    assert_eq!(project.current(), None);
}

#[test]
fn ranked_lists_published_into_redis_answer_the_same_documents() {
    let project = ranked_project(&format!("top_k = {TOP_K}"));
    let out = project.run(&["run", "score"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let embedded: Vec<String> = ["user0", "user7", "user49"]
        .iter()
        .map(|user| stdout(&project.run(&["lookup", "score", user])))
        .collect();

    let redis = RedisServer::start();
    let store = format!(
        "data_dir = \"store\"\n[store]\nkind = \"redis\"\nurl = \"{}\"",
        redis.url()
    );
    project.edit_config(&[
        ("min_rows = 10", "min_rows = 10\nmax_psi = 10.0"),
        ("data_dir = \"store\"", &store),
    ]);
    for run in 0..2 {
        let out = project.run(&["run", "score"]);
        assert!(out.status.success(), "run {run}: {}", stderr(&out));
    }
    let (_server, base) = serve_in(project.path(), &[]);
    for (user, from_file) in ["user0", "user7", "user49"].iter().zip(&embedded) {
        let from_file: serde_json::Value = serde_json::from_str(from_file.trim()).unwrap();
        let answer = served(&base, user);
        assert_eq!(answer["prediction"], from_file["prediction"], "{user}");
        assert_eq!(answer["version"], json!(2));
    }
    // The second run also passed `max_psi`: its kept scores against the first run's.
    let out = project.run(&["versions", "score"]);
    assert!(stdout(&out).contains("2/2 passed"), "{}", stdout(&out));
}
