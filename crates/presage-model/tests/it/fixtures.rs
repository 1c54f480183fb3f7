//! Conformance against the shared model fixtures: every folder under
//! `presage_test::model_fixtures()` (`$PRESAGE_FIXTURES` or the workspace's
//! `fixtures/models`) is loaded, scored with `score_parallel` and
//! compared with the reference outputs, so a fixture added later is tested with
//! no code change.
//!
//! A folder holds `meta.json`, `model.onnx`, `input.parquet` and `expected.parquet`
//! (onnxruntime's outputs), and where the library has its own format also
//! `model.json` / `model.txt` with `expected_native.parquet` (the library's own
//! predict). A value matches when `|got - expected| <= abs + rel * |expected|`
//! with the tolerance in `meta.json`; a label must match exactly.
//!
//! `all_fixtures` walks every folder and prints one line per model file, then
//! fails listing every mismatch; the `fixture_*` tests check one folder each, for
//! running one by name.

use std::fmt;
use std::path::{Path, PathBuf};

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float32Type, Float64Type, Int64Type};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use presage_model::{ClassLabels, InputKind, ModelInfo, Scores, Task, UNKNOWN_CATEGORY};
use serde_json::Value;

/// Mismatches listed per model file and output before the rest are only counted.
const SHOWN_PER_OUTPUT: usize = 3;

/// One row where an output differs from the reference.
struct Mismatch {
    output: String,
    row: usize,
    key: String,
    got: String,
    expected: String,
}

/// The outcome of checking one model file of a fixture.
struct Report {
    fixture: String,
    /// `model.onnx`, `model.json` or `model.txt`.
    file: String,
    /// The engine that scored it, once loaded.
    engine: Option<&'static str>,
    /// Why it could not be checked at all (load or scoring error, bad fixture).
    error: Option<String>,
    mismatches: Vec<Mismatch>,
    /// Mismatching values, including those not kept in `mismatches`.
    mismatch_count: usize,
    rows: usize,
}

impl Report {
    fn passed(&self) -> bool {
        self.error.is_none() && self.mismatch_count == 0
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = if self.passed() { "ok  " } else { "FAIL" };
        let engine = self.engine.unwrap_or("-");
        write!(f, "{status} {}/{} [{engine}]", self.fixture, self.file)?;
        if let Some(error) = &self.error {
            return write!(f, ": {error}");
        }
        if self.mismatch_count == 0 {
            return write!(f, ": {} rows match", self.rows);
        }
        write!(
            f,
            ": {} mismatching values in {} rows",
            self.mismatch_count, self.rows
        )?;
        for m in &self.mismatches {
            write!(
                f,
                "\n       output `{}` row {} (key `{}`): got {}, expected {}",
                m.output, m.row, m.key, m.got, m.expected
            )?;
        }
        Ok(())
    }
}

/// `|got - expected| <= abs + rel * |expected|`, NaN only matching NaN.
#[derive(Clone, Copy)]
struct Tolerance {
    abs: f64,
    rel: f64,
}

impl Tolerance {
    fn accepts(self, got: f64, expected: f64) -> bool {
        if expected.is_nan() || got.is_nan() {
            return expected.is_nan() && got.is_nan();
        }
        if expected.is_infinite() {
            return got == expected;
        }
        (got - expected).abs() <= self.abs + self.rel * expected.abs()
    }
}

/// Reads every batch of a Parquet file into one.
fn read_parquet(path: &Path) -> Result<RecordBatch, String> {
    let file = fs_err::File::open(path)
        .map_err(|e| e.to_string())?
        .into_file();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|e| format!("reading `{}`: {e}", path.display()))?;
    let batches: Vec<RecordBatch> = reader
        .collect::<Result<_, _>>()
        .map_err(|e| format!("reading `{}`: {e}", path.display()))?;
    let schema = batches
        .first()
        .map(|b| b.schema())
        .ok_or_else(|| format!("`{}` has no row groups", path.display()))?;
    arrow::compute::concat_batches(&schema, &batches).map_err(|e| e.to_string())
}

fn column<'a>(batch: &'a RecordBatch, name: &str, file: &str) -> Result<&'a ArrayRef, String> {
    batch
        .column_by_name(name)
        .ok_or_else(|| format!("`{file}` has no column `{name}`"))
}

/// A float column as one list of values per row: a scalar column gives lists of
/// one, a `list<float>` column its lists.
fn float_rows(array: &ArrayRef) -> Result<Vec<Vec<f64>>, String> {
    match array.data_type() {
        DataType::Float32 => Ok(array
            .as_primitive::<Float32Type>()
            .values()
            .iter()
            .map(|&v| vec![f64::from(v)])
            .collect()),
        DataType::Float64 => Ok(array
            .as_primitive::<Float64Type>()
            .values()
            .iter()
            .map(|&v| vec![v])
            .collect()),
        DataType::List(_) => {
            let list = array.as_list::<i32>();
            (0..list.len())
                .map(|i| float_rows(&list.value(i)).map(|r| r.concat()))
                .collect()
        }
        DataType::FixedSizeList(_, _) => {
            let list = array.as_fixed_size_list();
            (0..list.len())
                .map(|i| float_rows(&list.value(i)).map(|r| r.concat()))
                .collect()
        }
        other => Err(format!("expected float values, found {other}")),
    }
}

/// A label column rendered as text, so integer and string labels compare alike.
fn label_rows(array: &ArrayRef) -> Result<Vec<String>, String> {
    match array.data_type() {
        DataType::Int64 => Ok(array
            .as_primitive::<Int64Type>()
            .values()
            .iter()
            .map(i64::to_string)
            .collect()),
        DataType::Utf8 => Ok(array
            .as_string::<i32>()
            .iter()
            .map(|s| s.unwrap_or("").to_owned())
            .collect()),
        DataType::LargeUtf8 => Ok(array
            .as_string::<i64>()
            .iter()
            .map(|s| s.unwrap_or("").to_owned())
            .collect()),
        other => Err(format!("expected int64 or string labels, found {other}")),
    }
}

/// The input matrix, row-major, and the keys: float32 columns `f0..f{n-1}`, or for
/// a model with named inputs the columns of those names, strings written as the
/// model's codes for them (as the batch scorer writes them).
fn read_input(dir: &Path, info: &ModelInfo) -> Result<(Vec<f32>, Vec<String>), String> {
    let batch = read_parquet(&dir.join("input.parquet"))?;
    let keys = label_rows(column(&batch, "key", "input.parquet")?)?;
    let rows = batch.num_rows();
    let float_column = |name: &str| -> Result<Vec<f32>, String> {
        let col = column(&batch, name, "input.parquet")?;
        col.as_primitive_opt::<Float32Type>()
            .map(|c| c.values().to_vec())
            .ok_or_else(|| format!("column `{name}` of `input.parquet` is not float32"))
    };
    let columns: Vec<Vec<f32>> = if info.inputs.is_empty() {
        (0..info.n_features)
            .map(|j| float_column(&format!("f{j}")))
            .collect::<Result<_, String>>()?
    } else {
        let mut columns = Vec::new();
        for input in &info.inputs {
            columns.push(match &input.kind {
                InputKind::Number => float_column(&input.name)?,
                InputKind::Category(categories) => {
                    let strings = label_rows(column(&batch, &input.name, "input.parquet")?)?;
                    strings
                        .iter()
                        .map(|s| {
                            categories
                                .codes
                                .get(s)
                                .map_or(UNKNOWN_CATEGORY, |&c| c as f32)
                        })
                        .collect()
                }
            });
        }
        columns
    };
    let mut matrix = Vec::with_capacity(rows * columns.len());
    for i in 0..rows {
        matrix.extend(columns.iter().map(|c| c[i]));
    }
    Ok((matrix, keys))
}

/// The fixture's `meta.json`, the parts these tests use.
struct Meta {
    n_features: usize,
    classification: bool,
    onnx_outputs: Vec<String>,
    native_model: Option<String>,
    native_outputs: Vec<String>,
    /// The ONNX outputs holding the label and the probabilities, where not
    /// `label` / `probabilities` (ZipMap exports).
    onnx_label: Option<String>,
    onnx_probabilities: Option<String>,
    /// No `model.onnx`: the library's exporter cannot write the model.
    native_only: bool,
    tolerance: Tolerance,
}

fn read_meta(dir: &Path) -> Result<Meta, String> {
    let text = fs_err::read_to_string(dir.join("meta.json")).map_err(|e| e.to_string())?;
    let meta: Value = serde_json::from_str(&text).map_err(|e| format!("`meta.json`: {e}"))?;
    let strings = |key: &str| -> Vec<String> {
        meta[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let number = |v: &Value, what: &str| {
        v.as_f64()
            .ok_or_else(|| format!("`meta.json` has no `{what}`"))
    };
    Ok(Meta {
        n_features: number(&meta["features"], "features")? as usize,
        classification: match meta["task"].as_str() {
            Some("classification") => true,
            Some("regression") => false,
            other => return Err(format!("`meta.json` has task {other:?}")),
        },
        onnx_outputs: strings("onnx_outputs"),
        native_model: meta["native_model"].as_str().map(str::to_owned),
        native_outputs: strings("native_outputs"),
        onnx_label: meta["onnx_label"].as_str().map(str::to_owned),
        onnx_probabilities: meta["onnx_probabilities"].as_str().map(str::to_owned),
        native_only: meta["native_only"].as_bool().unwrap_or(false),
        tolerance: Tolerance {
            abs: number(&meta["tolerance"]["abs"], "tolerance.abs")?,
            rel: number(&meta["tolerance"]["rel"], "tolerance.rel")?,
        },
    })
}

/// Where each kind of reference output lives in an expected file.
struct ExpectedColumns<'a> {
    label: Option<&'a str>,
    probabilities: Option<&'a str>,
    values: Option<&'a str>,
}

/// Compares one kind of output row by row, recording mismatches in `report`.
fn compare_floats(
    report: &mut Report,
    output: &str,
    keys: &[String],
    got: &[f32],
    expected: &[Vec<f64>],
    tolerance: Tolerance,
) {
    let width = if expected.is_empty() {
        0
    } else {
        got.len() / expected.len()
    };
    for (row, want) in expected.iter().enumerate() {
        let have = &got[row * width..(row + 1) * width];
        // A reference may give only P(class 1) of a binary classifier.
        let have: Vec<f64> = if want.len() == 1 && width == 2 {
            vec![f64::from(have[1])]
        } else {
            have.iter().map(|&v| f64::from(v)).collect()
        };
        let matches = have.len() == want.len()
            && have
                .iter()
                .zip(want)
                .all(|(&g, &e)| tolerance.accepts(g, e));
        if !matches {
            report.mismatch_count += 1;
            if report
                .mismatches
                .iter()
                .filter(|m| m.output == output)
                .count()
                < SHOWN_PER_OUTPUT
            {
                report.mismatches.push(Mismatch {
                    output: output.to_owned(),
                    row,
                    key: keys.get(row).cloned().unwrap_or_default(),
                    got: format!("{have:?}"),
                    expected: format!("{want:?}"),
                });
            }
        }
    }
}

fn label_text(classes: &ClassLabels, index: u32) -> String {
    match classes {
        ClassLabels::Int(c) => c
            .get(index as usize)
            .map_or_else(|| format!("<index {index}>"), i64::to_string),
        ClassLabels::Str(c) => c
            .get(index as usize)
            .cloned()
            .unwrap_or_else(|| format!("<index {index}>")),
    }
}

/// Loads `file`, scores the input and compares with the columns of `expected_file`.
fn check_model(
    dir: &Path,
    fixture: &str,
    file: &str,
    expected_file: &str,
    columns: &ExpectedColumns<'_>,
    meta: &Meta,
) -> Report {
    let mut report = Report {
        fixture: fixture.to_owned(),
        file: file.to_owned(),
        engine: None,
        error: None,
        mismatches: Vec::new(),
        mismatch_count: 0,
        rows: 0,
    };
    if let Err(error) = check_model_into(&mut report, dir, file, expected_file, columns, meta) {
        report.error = Some(error);
    }
    report
}

fn check_model_into(
    report: &mut Report,
    dir: &Path,
    file: &str,
    expected_file: &str,
    columns: &ExpectedColumns<'_>,
    meta: &Meta,
) -> Result<(), String> {
    let model = presage_model::load(&dir.join(file))
        .map_err(|e| format!("load: {e}"))?
        .model;
    let info = model.info().clone();
    report.engine = Some(info.engine);
    let n_features = if info.inputs.is_empty() {
        info.n_features
    } else {
        info.inputs.len()
    };
    if n_features != meta.n_features {
        return Err(format!(
            "{n_features} features, `meta.json` says {}",
            meta.n_features
        ));
    }
    let (matrix, keys) = read_input(dir, &info)?;
    let rows = keys.len();
    report.rows = rows;
    let scores: Scores = presage_model::score_parallel(model.as_ref(), &matrix, rows)
        .map_err(|e| format!("score: {e}"))?;
    if scores.rows != rows {
        return Err(format!("scored {} rows of {rows}", scores.rows));
    }
    let expected = read_parquet(&dir.join(expected_file))?;
    if expected.num_rows() != rows {
        return Err(format!(
            "`{expected_file}` has {} rows, the input {rows}",
            expected.num_rows()
        ));
    }
    if let Some(expected_keys) = expected.column_by_name("key")
        && label_rows(expected_keys)? != keys
    {
        return Err(format!("`{expected_file}` keys are not in input order"));
    }
    match &info.task {
        Task::Classifier { classes } => {
            let (Some(label), Some(probabilities)) = (columns.label, columns.probabilities) else {
                return Err("the model is a classifier, `meta.json` says regression".into());
            };
            let want = label_rows(column(&expected, label, expected_file)?)?;
            for (row, (&index, want)) in scores.label_index.iter().zip(&want).enumerate() {
                let got = label_text(classes, index);
                if got != *want {
                    report.mismatch_count += 1;
                    if report
                        .mismatches
                        .iter()
                        .filter(|m| m.output == label)
                        .count()
                        < SHOWN_PER_OUTPUT
                    {
                        report.mismatches.push(Mismatch {
                            output: label.to_owned(),
                            row,
                            key: keys[row].clone(),
                            got,
                            expected: want.clone(),
                        });
                    }
                }
            }
            if scores.label_index.len() != rows {
                return Err(format!(
                    "{} labels for {rows} rows",
                    scores.label_index.len()
                ));
            }
            if scores.probabilities.len() != rows * classes.len() {
                return Err(format!(
                    "{} probabilities for {rows} rows × {} classes",
                    scores.probabilities.len(),
                    classes.len()
                ));
            }
            let want = float_rows(column(&expected, probabilities, expected_file)?)?;
            compare_floats(
                report,
                probabilities,
                &keys,
                &scores.probabilities,
                &want,
                meta.tolerance,
            );
        }
        Task::Regressor { targets } => {
            let Some(values) = columns.values else {
                return Err("the model is a regressor, `meta.json` says classification".into());
            };
            if scores.values.len() != rows * targets {
                return Err(format!(
                    "{} values for {rows} rows × {targets} targets",
                    scores.values.len()
                ));
            }
            let want = float_rows(column(&expected, values, expected_file)?)?;
            compare_floats(report, values, &keys, &scores.values, &want, meta.tolerance);
        }
    }
    Ok(())
}

/// Checks every model file of one fixture folder.
fn check_fixture(dir: &Path) -> Vec<Report> {
    let fixture = dir.file_name().map_or_else(
        || dir.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let meta = match read_meta(dir) {
        Ok(meta) => meta,
        Err(error) => {
            return vec![Report {
                fixture,
                file: "meta.json".into(),
                engine: None,
                error: Some(error),
                mismatches: Vec::new(),
                mismatch_count: 0,
                rows: 0,
            }];
        }
    };
    fn named<'a>(wanted: &str, list: &'a [String]) -> Option<&'a str> {
        list.iter()
            .find(|o| o.as_str() == wanted)
            .map(String::as_str)
    }
    let onnx = if meta.classification {
        ExpectedColumns {
            label: meta
                .onnx_label
                .as_deref()
                .or(named("label", &meta.onnx_outputs))
                .or(Some("label")),
            probabilities: meta
                .onnx_probabilities
                .as_deref()
                .or(named("probabilities", &meta.onnx_outputs))
                .or(Some("probabilities")),
            values: None,
        }
    } else {
        ExpectedColumns {
            label: None,
            probabilities: None,
            values: meta
                .onnx_outputs
                .first()
                .map(String::as_str)
                .or(Some("variable")),
        }
    };
    // Some exporters write no ONNX for a model (onnxmltools has no XGBRanker).
    let mut reports = Vec::new();
    if !meta.native_only {
        reports.push(check_model(
            dir,
            &fixture,
            "model.onnx",
            "expected.parquet",
            &onnx,
            &meta,
        ));
    }
    let native_file = meta.native_model.clone().or_else(|| {
        ["model.json", "model.txt"]
            .into_iter()
            .find(|f| dir.join(f).exists())
            .map(str::to_owned)
    });
    if let Some(native_file) = native_file {
        let native = if meta.classification {
            ExpectedColumns {
                label: named("label", &meta.native_outputs).or(Some("label")),
                probabilities: named("probabilities", &meta.native_outputs)
                    .or(Some("probabilities")),
                values: None,
            }
        } else {
            ExpectedColumns {
                label: None,
                probabilities: None,
                values: named("prediction", &meta.native_outputs).or(Some("prediction")),
            }
        };
        reports.push(check_model(
            dir,
            &fixture,
            &native_file,
            "expected_native.parquet",
            &native,
            &meta,
        ));
    }
    reports
}

/// Every fixture folder (a folder with a `meta.json`), sorted by name.
fn fixture_dirs() -> Vec<PathBuf> {
    let root = presage_test::model_fixtures();
    let mut dirs: Vec<PathBuf> = fs_err::read_dir(&root)
        .unwrap_or_else(|e| panic!("listing the model fixtures: {e}"))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.join("meta.json").is_file())
        .collect();
    dirs.sort();
    dirs
}

/// Prints every report and panics listing the failures.
fn assert_all_pass(reports: &[Report]) {
    for report in reports {
        eprintln!("{report}");
    }
    let failed: Vec<String> = reports
        .iter()
        .filter(|r| !r.passed())
        .map(ToString::to_string)
        .collect();
    let passed = reports.len() - failed.len();
    assert!(
        failed.is_empty(),
        "{} of {} model files do not match their reference ({passed} pass):\n{}",
        failed.len(),
        reports.len(),
        failed.join("\n")
    );
}

#[test]
fn all_fixtures() {
    let dirs = fixture_dirs();
    assert!(
        !dirs.is_empty(),
        "no fixtures under `{}`",
        presage_test::model_fixtures().display()
    );
    let reports: Vec<Report> = dirs.iter().flat_map(|dir| check_fixture(dir)).collect();
    assert_all_pass(&reports);
}

/// One test per fixture known when this was written, to run one by name
/// (`cargo test -p presage-model fixture_sk_mlp`); `all_fixtures` covers any other.
macro_rules! fixture_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let name = stringify!($name).trim_start_matches("fixture_");
                let dir = presage_test::model_fixtures().join(name);
                assert_all_pass(&check_fixture(&dir));
            }
        )*
    };
}

fixture_tests!(
    fixture_bench_xgb_500x8,
    fixture_lgbm_binary_nan,
    fixture_lgbm_regressor,
    fixture_sk_gbr,
    fixture_sk_hgb_classifier_nan,
    fixture_sk_linear_regression,
    fixture_sk_logreg_binary,
    fixture_sk_logreg_multiclass,
    fixture_sk_mlp_classifier,
    fixture_sk_rf_classifier,
    fixture_sk_rf_regressor,
    fixture_sk_scaler_logreg_pipeline,
    fixture_xgb_binary_nan,
    fixture_xgb_multiclass,
    fixture_xgb_regressor,
    fixture_xgb_poisson_onnx,
    fixture_xgb_gamma_onnx,
    fixture_xgb_tweedie_onnx,
    fixture_sk_scaler_trees,
    fixture_lgbm_categorical_onnx,
    fixture_xgb_categorical_onnx,
    fixture_catboost_classifier,
    fixture_catboost_regressor,
    fixture_catboost_multiclass,
    fixture_lgbm_ranker,
    fixture_xgb_ranker,
    fixture_xgb_ranker_pairwise,
    fixture_sk_rf_classifier_zipmap,
    fixture_sk_logreg_zipmap_strings,
    fixture_sk_column_transformer,
    fixture_sk_column_transformer_trees,
);
