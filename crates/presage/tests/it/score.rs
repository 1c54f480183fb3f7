//! `presage score` over every model fixture: the batch-transform command scores
//! `input.parquet` to the reference outputs, for every model file a fixture holds
//! (`model.onnx` against `expected.parquet`, `model.json` / `model.txt` against
//! `expected_native.parquet`). New fixture folders are picked up without a code change.

use std::path::Path;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float32Type, Int64Type};
use presage_test::{TestProject, model_fixtures};

use crate::project::{run_in, stderr};

fn read(path: &Path) -> RecordBatch {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
}

/// Row `row` of a float column or of a list-of-float column, as a vector.
fn floats(batch: &RecordBatch, column: &str, row: usize) -> Vec<f32> {
    let array = batch
        .column_by_name(column)
        .unwrap_or_else(|| panic!("no column `{column}` in {:?}", batch.schema()));
    match array.data_type() {
        DataType::Float32 => vec![array.as_primitive::<Float32Type>().value(row)],
        DataType::List(_) => {
            let list = array.as_list::<i32>().value(row);
            list.as_primitive::<Float32Type>().values().to_vec()
        }
        DataType::FixedSizeList(_, _) => {
            let list = array.as_fixed_size_list().value(row);
            list.as_primitive::<Float32Type>().values().to_vec()
        }
        other => panic!("column `{column}` has type {other}"),
    }
}

struct Tolerance {
    abs: f32,
    rel: f32,
}

impl Tolerance {
    fn close(&self, got: f32, expected: f32) -> bool {
        (got.is_nan() && expected.is_nan())
            || (got - expected).abs() <= self.abs + self.rel * expected.abs()
    }
}

/// Labels as text, so integer and string classes compare alike.
fn label_text(batch: &RecordBatch, column: &str, row: usize) -> String {
    let array = batch
        .column_by_name(column)
        .unwrap_or_else(|| panic!("no column `{column}` in {:?}", batch.schema()));
    match array.data_type() {
        DataType::Int64 => array.as_primitive::<Int64Type>().value(row).to_string(),
        DataType::Utf8 => array.as_string::<i32>().value(row).to_owned(),
        DataType::Utf8View => array.as_string_view().value(row).to_owned(),
        other => panic!("label column `{column}` has type {other}"),
    }
}

/// Where a reference file keeps what presage outputs.
enum Reference<'a> {
    Classifier {
        label: &'a str,
        probabilities: &'a str,
    },
    Regressor {
        values: &'a str,
    },
}

/// Compares presage's output with a reference file; returns the mismatches found.
fn compare(
    scored: &RecordBatch,
    expected: &RecordBatch,
    reference: &Reference<'_>,
    tol: &Tolerance,
) -> Vec<String> {
    let mut problems = Vec::new();
    assert_eq!(scored.num_rows(), expected.num_rows(), "row counts");
    let keys = scored
        .column_by_name("key")
        .expect("the key column is copied");
    let expected_keys = expected.column_by_name("key").unwrap();
    assert_eq!(keys.as_string::<i32>(), expected_keys.as_string::<i32>());
    for row in 0..scored.num_rows() {
        if problems.len() > 5 {
            break;
        }
        let check = |problems: &mut Vec<String>, what: &str, got: f32, want: f32| {
            if !tol.close(got, want) {
                problems.push(format!("row {row} {what}: got {got}, expected {want}"));
            }
        };
        match reference {
            Reference::Classifier {
                label,
                probabilities,
            } => {
                let want = floats(expected, probabilities, row);
                if label_text(scored, "label", row) != label_text(expected, label, row) {
                    problems.push(format!("row {row}: label differs"));
                }
                if scored.column_by_name("probability").is_some() {
                    // Binary: presage keeps the positive class's probability.
                    check(
                        &mut problems,
                        "probability",
                        floats(scored, "probability", row)[0],
                        want[1],
                    );
                } else {
                    let got = floats(scored, "probabilities", row);
                    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                        check(&mut problems, &format!("probabilities[{i}]"), *g, *w);
                    }
                }
            }
            Reference::Regressor { values } => check(
                &mut problems,
                "value",
                floats(scored, "value", row)[0],
                floats(expected, values, row)[0],
            ),
        }
    }
    problems
}

#[test]
fn score_command_matches_every_fixture() {
    let tmp = TestProject::new();
    let mut checked = Vec::new();
    let mut failures = Vec::new();
    let mut folders: Vec<_> = std::fs::read_dir(model_fixtures())
        .expect("model fixtures")
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("meta.json").exists())
        .collect();
    folders.sort();
    for folder in folders {
        let name = folder.file_name().unwrap().to_string_lossy().into_owned();
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(folder.join("meta.json")).unwrap()).unwrap();
        let tol = Tolerance {
            abs: meta["tolerance"]["abs"].as_f64().unwrap() as f32,
            rel: meta["tolerance"]["rel"].as_f64().unwrap() as f32,
        };
        let text = |key: &str, default: &'static str| -> String {
            meta[key].as_str().unwrap_or(default).to_owned()
        };
        let classifier = meta["task"] == "classification";
        let onnx_values = meta["onnx_outputs"][0]
            .as_str()
            .unwrap_or("variable")
            .to_owned();
        let (onnx_label, onnx_probabilities) = (
            text("onnx_label", "label"),
            text("onnx_probabilities", "probabilities"),
        );
        let reference_of = |native: bool| -> Reference<'_> {
            match (classifier, native) {
                (true, false) => Reference::Classifier {
                    label: &onnx_label,
                    probabilities: &onnx_probabilities,
                },
                (true, true) => Reference::Classifier {
                    label: "label",
                    probabilities: "probabilities",
                },
                (false, false) => Reference::Regressor {
                    values: &onnx_values,
                },
                (false, true) => Reference::Regressor {
                    values: "prediction",
                },
            }
        };
        let mut files = Vec::new();
        // Some exporters write no ONNX for a model (onnxmltools has no XGBRanker).
        if meta["native_only"] != true {
            files.push(("model.onnx".to_owned(), "expected.parquet", false));
        }
        if let Some(native) = meta["native_model"].as_str() {
            files.push((native.to_owned(), "expected_native.parquet", true));
        }
        for (model, reference, native) in files {
            let output = tmp.path().join(format!("{name}-{model}.parquet"));
            let out = run_in(
                tmp.path(),
                &[
                    "score",
                    "--model",
                    folder.join(&model).to_str().unwrap(),
                    "--input",
                    folder.join("input.parquet").to_str().unwrap(),
                    "--output",
                    output.to_str().unwrap(),
                    "--key",
                    "key",
                ],
            );
            if !out.status.success() {
                failures.push(format!("{name}/{model}: {}", stderr(&out)));
                continue;
            }
            let problems = compare(
                &read(&output),
                &read(&folder.join(reference)),
                &reference_of(native),
                &tol,
            );
            if !problems.is_empty() {
                failures.push(format!("{name}/{model}: {}", problems.join("; ")));
            }
            checked.push(format!("{name}/{model}"));
        }
    }
    assert!(failures.is_empty(), "mismatches:\n{}", failures.join("\n"));
    assert!(
        checked.len() >= 48,
        "only {} model files checked",
        checked.len()
    );
}

#[test]
fn score_names_a_missing_input_column() {
    let tmp = TestProject::new();
    let fixture = model_fixtures().join("sk_logreg_binary");
    let out = run_in(
        tmp.path(),
        &[
            "score",
            "--model",
            fixture.join("model.onnx").to_str().unwrap(),
            "--input",
            fixture.join("input.parquet").to_str().unwrap(),
            "--key",
            "key",
            "--inputs",
            "f0,f1,f2,f3,f4,f5,f6,f7,f8,f9,f10,nope",
        ],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("no column `nope`"), "{err}");
}

/// A job whose model is a scikit-learn `ColumnTransformer` pipeline with string
/// inputs: the config names no `inputs`, the feature SQL's columns of the model's
/// input names feed it (strings included), and lookups answer onnxruntime's scores.
#[test]
fn a_job_scores_a_string_pipeline_binding_columns_by_name() {
    let project = TestProject::new();
    let fixture = model_fixtures().join("sk_column_transformer");
    project.copy(&fixture.join("input.parquet"), "data/accounts.parquet");
    project.copy(&fixture.join("model.onnx"), "models/pipeline.onnx");
    project.write(
        "presage.toml",
        r#"
data_dir = "store"

[sources.accounts]
path = "data/accounts.parquet"

[features.accounts]
key = "key"
sql = "SELECT * FROM accounts"

[models.pipeline]
path = "models/pipeline.onnx"

[jobs.churn]
features = "accounts"
model = "pipeline"
"#,
    );
    let out = run_in(project.path(), &["run", "churn"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(project.path().join("store/churn/versions/1/manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        manifest["model"]["inputs"],
        serde_json::json!(["city", "plan", "device", "age", "income", "tenure"])
    );
    let expected = read(&fixture.join("expected.parquet"));
    let keys = expected.column_by_name("key").unwrap().as_string::<i32>();
    for row in [0, 1, 2, 500, 1999] {
        let key = keys.value(row);
        let out = run_in(project.path(), &["lookup", "churn", key]);
        assert!(out.status.success(), "{}", stderr(&out));
        let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let got = answer["prediction"]["probability"].as_f64().unwrap() as f32;
        let want = floats(&expected, "probabilities", row)[1];
        assert!(
            (got - want).abs() <= 1e-5 + 1e-4 * want.abs(),
            "{key}: {got} vs {want}"
        );
        assert_eq!(
            answer["prediction"]["label"].as_i64(),
            Some(
                expected
                    .column_by_name("label")
                    .unwrap()
                    .as_primitive::<Int64Type>()
                    .value(row)
            ),
            "{key}"
        );
    }
}
