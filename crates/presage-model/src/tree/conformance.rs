//! Every tree fixture, through every parser, against the reference runtime's output:
//! ONNX models against onnxruntime (`expected.parquet`), XGBoost and LightGBM files
//! against their own library's predict (`expected_native.parquet`).

use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float32Type, Int64Type};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use prost::Message;

use crate::{Model, Scores, Task};

fn fixture(name: &str) -> PathBuf {
    presage_test::model_fixtures().join(name)
}

fn read_parquet(path: &Path) -> RecordBatch {
    let file = fs_err::File::open(path).expect("opening a fixture parquet file");
    let reader = ParquetRecordBatchReaderBuilder::try_new(file.into_parts().0)
        .expect("reading parquet metadata")
        .build()
        .expect("building the parquet reader");
    let batches: Vec<RecordBatch> = reader.map(|b| b.expect("reading a batch")).collect();
    arrow::compute::concat_batches(&batches[0].schema(), &batches).expect("concatenating batches")
}

/// `input.parquet` as a row-major matrix, and its row count.
fn read_input(dir: &Path) -> (Vec<f32>, usize) {
    let batch = read_parquet(&dir.join("input.parquet"));
    let columns: Vec<&[f32]> = (0..)
        .map_while(|j| batch.column_by_name(&format!("f{j}")))
        .map(|c| c.as_primitive::<Float32Type>().values().as_ref())
        .collect();
    let rows = batch.num_rows();
    let mut matrix = Vec::with_capacity(rows * columns.len());
    for r in 0..rows {
        matrix.extend(columns.iter().map(|c| c[r]));
    }
    (matrix, rows)
}

/// A float column, flattening list columns row-major.
fn floats(batch: &RecordBatch, name: &str) -> Vec<f32> {
    let column = batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("expected output column `{name}`"));
    match column.data_type() {
        DataType::List(_) => {
            let list = column.as_list::<i32>();
            list.values()
                .as_primitive::<Float32Type>()
                .values()
                .to_vec()
        }
        _ => column.as_primitive::<Float32Type>().values().to_vec(),
    }
}

fn labels(batch: &RecordBatch, name: &str) -> Vec<i64> {
    batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("expected label column `{name}`"))
        .as_primitive::<Int64Type>()
        .values()
        .to_vec()
}

/// Tolerance from `meta.json`.
fn tolerance(dir: &Path) -> (f64, f64) {
    let meta: serde_json::Value =
        serde_json::from_slice(&fs_err::read(dir.join("meta.json")).expect("reading meta.json"))
            .expect("parsing meta.json");
    let t = &meta["tolerance"];
    (t["abs"].as_f64().unwrap(), t["rel"].as_f64().unwrap())
}

/// Compares scores with an expected file; returns the largest absolute error.
fn compare(
    what: &str,
    model: &dyn Model,
    scores: &Scores,
    expected: &RecordBatch,
    value_column: &str,
    label_column: &str,
    (abs, rel): (f64, f64),
) -> f64 {
    let (got, want): (&[f32], Vec<f32>) = match &model.info().task {
        Task::Classifier { classes } => {
            let want_labels = labels(expected, label_column);
            let crate::ClassLabels::Int(names) = classes else {
                panic!("{what}: string labels in a tree fixture")
            };
            let got_labels: Vec<i64> = scores
                .label_index
                .iter()
                .map(|&i| names[i as usize])
                .collect();
            let wrong = got_labels
                .iter()
                .zip(&want_labels)
                .filter(|(a, b)| a != b)
                .count();
            assert_eq!(wrong, 0, "{what}: {wrong} labels differ");
            (&scores.probabilities, floats(expected, value_column))
        }
        Task::Regressor { .. } => (&scores.values, floats(expected, value_column)),
    };
    assert_eq!(got.len(), want.len(), "{what}: output length");
    let mut worst = 0.0f64;
    for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
        let err = (f64::from(g) - f64::from(w)).abs();
        assert!(
            err <= abs + rel * f64::from(w).abs(),
            "{what}: value {i} is {g}, expected {w}"
        );
        worst = worst.max(err);
    }
    worst
}

fn load_onnx(dir: &Path) -> Box<dyn Model> {
    let path = dir.join("model.onnx");
    let bytes = fs_err::read(&path).expect("reading model.onnx");
    let proto = tract_onnx::pb::ModelProto::decode(bytes.as_slice()).expect("decoding ONNX");
    super::onnx::try_load(&proto, &path)
        .expect("loading the ensemble")
        .expect("a tree-ensemble graph")
}

fn check_onnx(name: &str) -> f64 {
    let dir = fixture(name);
    let model = load_onnx(&dir);
    let (input, rows) = read_input(&dir);
    let scores = model.score(&input, rows).expect("scoring");
    let expected = read_parquet(&dir.join("expected.parquet"));
    let value_column = match model.info().task {
        Task::Classifier { .. } => "probabilities",
        Task::Regressor { .. } => "variable",
    };
    compare(
        &format!("{name} (onnx)"),
        &*model,
        &scores,
        &expected,
        value_column,
        "label",
        tolerance(&dir),
    )
}

fn check_native(name: &str) -> f64 {
    let dir = fixture(name);
    let (model, file) = if dir.join("model.json").exists() {
        let path = dir.join("model.json");
        (
            super::xgboost::load(&fs_err::read(&path).unwrap(), &path).expect("loading"),
            path,
        )
    } else {
        let path = dir.join("model.txt");
        (
            super::lightgbm::load(&fs_err::read(&path).unwrap(), &path).expect("loading"),
            path,
        )
    };
    let (input, rows) = read_input(&dir);
    let scores = model.score(&input, rows).expect("scoring");
    let expected = read_parquet(&dir.join("expected_native.parquet"));
    let value_column = match model.info().task {
        Task::Classifier { .. } => "probabilities",
        Task::Regressor { .. } => "prediction",
    };
    compare(
        &format!("{name} ({})", file.display()),
        &*model,
        &scores,
        &expected,
        value_column,
        "label",
        tolerance(&dir),
    )
}

macro_rules! onnx_fixtures {
    ($($test:ident => $name:literal),* $(,)?) => {$(
        #[test]
        fn $test() {
            let worst = check_onnx($name);
            eprintln!("{} onnx: largest error {worst:e}", $name);
        }
    )*};
}

macro_rules! native_fixtures {
    ($($test:ident => $name:literal),* $(,)?) => {$(
        #[test]
        fn $test() {
            let worst = check_native($name);
            eprintln!("{} native: largest error {worst:e}", $name);
        }
    )*};
}

onnx_fixtures! {
    onnx_bench_xgb_500x8 => "bench_xgb_500x8",
    onnx_lgbm_binary_nan => "lgbm_binary_nan",
    onnx_lgbm_regressor => "lgbm_regressor",
    onnx_sk_gbr => "sk_gbr",
    onnx_sk_hgb_classifier_nan => "sk_hgb_classifier_nan",
    onnx_sk_rf_classifier => "sk_rf_classifier",
    onnx_sk_rf_regressor => "sk_rf_regressor",
    onnx_xgb_binary_nan => "xgb_binary_nan",
    onnx_xgb_multiclass => "xgb_multiclass",
    onnx_xgb_regressor => "xgb_regressor",
}

native_fixtures! {
    native_bench_xgb_500x8 => "bench_xgb_500x8",
    native_lgbm_binary_nan => "lgbm_binary_nan",
    native_lgbm_regressor => "lgbm_regressor",
    native_xgb_binary_nan => "xgb_binary_nan",
    native_xgb_multiclass => "xgb_multiclass",
    native_xgb_regressor => "xgb_regressor",
}

#[test]
fn non_tree_graphs_are_left_to_tract() {
    for name in [
        "sk_linear_regression",
        "sk_logreg_binary",
        "sk_logreg_multiclass",
        "sk_mlp_classifier",
        "sk_scaler_logreg_pipeline",
    ] {
        let path = fixture(name).join("model.onnx");
        let bytes = fs_err::read(&path).expect("reading model.onnx");
        let proto = tract_onnx::pb::ModelProto::decode(bytes.as_slice()).expect("decoding ONNX");
        assert!(
            super::onnx::try_load(&proto, &path)
                .expect("no error")
                .is_none(),
            "{name}"
        );
    }
}

#[test]
fn rows_score_the_same_alone_and_in_blocks() {
    // Blocks, lanes and the NaN kernel must not change any row's result.
    let dir = fixture("xgb_binary_nan");
    let model = load_onnx(&dir);
    let (input, rows) = read_input(&dir);
    let n = model.info().n_features;
    let all = model.score(&input, rows).unwrap();
    for r in [0, 1, 7, 8, 9, 255, 256, rows - 1] {
        let one = model.score(&input[r * n..(r + 1) * n], 1).unwrap();
        assert_eq!(one.label_index[0], all.label_index[r]);
        assert_eq!(one.probabilities, all.probabilities[r * 2..r * 2 + 2]);
    }
    let parallel = crate::score_parallel(&*model, &input, rows).unwrap();
    assert_eq!(parallel, all);
}
