//! The tract engine on small graphs from `tests/data/make_test_models.py`: what it
//! refuses at load and how, and the cases the shared fixtures do not reach (string
//! classes, labels that are not `0..C-1`, a broadcast `Scaler`, several targets,
//! `Imputer` on NaN),
//! checked against onnxruntime's outputs. Also batch sizes: one plan must give the
//! same answers whatever the chunk size.

use std::path::{Path, PathBuf};

use presage_model::{ClassLabels, Model, ModelError, ModelFormat, Task};
use serde_json::Value;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn load_error(name: &str) -> ModelError {
    match presage_model::load(&data(name)) {
        Ok(_) => panic!("`{name}` loaded, expected an error"),
        Err(e) => e,
    }
}

fn assert_unsupported(name: &str, want_op: &str, want_node: &str) {
    match load_error(name) {
        ModelError::UnsupportedOperator(unsupported) => {
            assert_eq!(
                (unsupported.op.as_str(), unsupported.node.as_str()),
                (want_op, want_node)
            );
            assert_eq!(unsupported.path, data(name));
        }
        other => panic!("`{name}`: expected an unsupported operator, got: {other}"),
    }
}

#[test]
fn an_unknown_operator_is_refused_at_load_with_its_node() {
    assert_unsupported("svm_classifier.onnx", "SVMClassifier", "svm");
    let message = load_error("svm_classifier.onnx").to_string();
    assert!(
        message.ends_with(
            "uses operator `SVMClassifier` (domain `ai.onnx.ml`, opset 1) in node `svm`, \
             which the general ONNX engine (tract) does not implement"
        ),
        "{message}"
    );
}

#[test]
fn an_unknown_operator_inside_a_subgraph_is_refused() {
    assert_unsupported("unsupported_in_subgraph.onnx", "SVMRegressor", "inner_svr");
}

#[test]
fn an_operator_from_an_unknown_domain_is_refused() {
    assert_unsupported("custom_domain.onnx", "com.example.Frobnicate", "frob");
}

#[test]
fn a_zipmap_export_scores_the_probabilities_it_maps() {
    let model = presage_model::load(&data("logreg_zipmap.onnx"))
        .expect("loading")
        .model;
    assert_eq!(
        model.info().task,
        Task::Classifier {
            classes: ClassLabels::Int(vec![0, 1])
        }
    );
    let scores = model
        .score(&[0.5, 0.5, 0.0, 0.0, -3.0, -3.0, 0.0, 0.0], 2)
        .expect("scoring");
    assert_eq!(scores.label_index, [1, 0]);
    for row in scores.probabilities.chunks(2) {
        assert!((row[0] + row[1] - 1.0).abs() < 1e-6, "{row:?}");
    }
}

#[test]
fn bytes_that_are_not_onnx_name_the_file() {
    let origin = Path::new("models/broken.onnx");
    let Err(error) =
        presage_model::load_bytes(b"\xff\xfe not a protobuf", ModelFormat::Onnx, origin)
    else {
        panic!("garbage loaded as a model");
    };
    assert!(
        matches!(&error, ModelError::NotAModel { path, .. } if path == origin),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("`models/broken.onnx`"),
        "{error}"
    );
}

#[test]
fn several_inputs_become_slices_of_one_matrix() {
    let model = presage_model::load(&data("two_inputs.onnx"))
        .expect("loading")
        .model;
    let inputs: Vec<(&str, usize)> = model
        .info()
        .inputs
        .iter()
        .map(|i| (i.name.as_str(), i.width))
        .collect();
    assert_eq!(inputs, [("a", 2), ("b", 2)]);
    assert_eq!(model.info().n_features, 4);
    let scores = model.score(&[1.0, 2.0, 10.0, 20.0], 1).expect("scoring");
    assert_eq!(scores.values, [11.0, 22.0]);
}

#[test]
fn an_integer_input_is_fed_as_integers() {
    let model = presage_model::load(&data("int64_input.onnx"))
        .expect("loading")
        .model;
    assert_eq!(model.info().inputs[0].name, "ids");
    let scores = model.score(&[1.0, 2.5, -3.0], 1).expect("scoring");
    // The matrix holds floats; the graph's int64 input truncates them, as a cast does.
    assert_eq!(scores.values, [1.0, 2.0, -3.0]);
}

/// A case's inputs and onnxruntime's outputs (`make_test_models.py`'s `dump`).
struct Expected {
    inputs: Vec<f32>,
    rows: usize,
    labels: Option<Vec<String>>,
    outputs: Vec<Vec<f64>>,
}

fn read_expected(case: &str) -> Expected {
    let text = fs_err::read_to_string(data(&format!("{case}.expected.json")))
        .expect("reading expected outputs");
    let doc: Value = serde_json::from_str(&text).expect("expected outputs are JSON");
    let rows_of = |v: &Value| -> Vec<Vec<f64>> {
        v.as_array()
            .expect("a list of rows")
            .iter()
            .map(|row| {
                row.as_array()
                    .expect("a row")
                    .iter()
                    .map(|x| x.as_f64().unwrap_or(f64::NAN))
                    .collect()
            })
            .collect()
    };
    let inputs = rows_of(&doc["inputs"]);
    let labels = doc["labels"].as_array().map(|labels| {
        labels
            .iter()
            .map(|l| l.as_str().map_or_else(|| l.to_string(), str::to_owned))
            .collect()
    });
    Expected {
        rows: inputs.len(),
        inputs: inputs.concat().into_iter().map(|x| x as f32).collect(),
        labels,
        outputs: rows_of(&doc["outputs"]),
    }
}

fn label_text(classes: &ClassLabels, index: u32) -> String {
    match classes {
        ClassLabels::Int(c) => c[index as usize].to_string(),
        ClassLabels::Str(c) => c[index as usize].clone(),
    }
}

/// Scores a case and compares with onnxruntime within the fixtures' tolerance.
fn check_case(case: &str) -> Box<dyn Model> {
    let model = presage_model::load(&data(&format!("{case}.onnx")))
        .expect("loading the model")
        .model;
    assert_eq!(model.info().engine, "tract");
    let expected = read_expected(case);
    let scores = model
        .score(&expected.inputs, expected.rows)
        .expect("scoring");
    let (got, width): (&[f32], usize) = match &model.info().task {
        Task::Classifier { classes } => {
            let labels: Vec<String> = scores
                .label_index
                .iter()
                .map(|&i| label_text(classes, i))
                .collect();
            assert_eq!(Some(labels), expected.labels, "labels of `{case}`");
            (&scores.probabilities, classes.len())
        }
        Task::Regressor { targets } => (&scores.values, *targets),
    };
    for (row, want) in expected.outputs.iter().enumerate() {
        let have = &got[row * width..(row + 1) * width];
        assert_eq!(have.len(), want.len(), "width of `{case}` row {row}");
        for (&g, &e) in have.iter().zip(want) {
            let g = f64::from(g);
            assert!(
                (g - e).abs() <= 1e-5 + 1e-4 * e.abs(),
                "`{case}` row {row}: got {have:?}, expected {want:?}"
            );
        }
    }
    model
}

#[test]
fn string_classes_through_scaler_and_linear_classifier() {
    let model = check_case("scaler_logreg_strings");
    let want = ClassLabels::Str(vec!["cat".into(), "dog".into(), "eel".into()]);
    assert_eq!(model.info().task, Task::Classifier { classes: want });
    assert_eq!(model.info().n_features, 5);
}

#[test]
fn mlp_labels_come_from_the_graph_constant() {
    let model = check_case("mlp_labels_3_7");
    assert_eq!(
        model.info().task,
        Task::Classifier {
            classes: ClassLabels::Int(vec![3, 7])
        }
    );
}

#[test]
fn scaler_with_one_offset_and_a_two_target_regressor() {
    let model = check_case("scaler_broadcast");
    assert_eq!(model.info().task, Task::Regressor { targets: 2 });
}

#[test]
fn imputer_fills_nan_before_a_linear_classifier() {
    check_case("imputer_logreg");
}

fn mlp_fixture() -> Box<dyn Model> {
    let path = presage_test::model_fixtures().join("sk_mlp_classifier/model.onnx");
    presage_model::load(&path)
        .expect("loading the MLP fixture")
        .model
}

#[test]
fn mlp_fixture_runs_on_the_dense_engine_with_default_classes() {
    let model = mlp_fixture();
    let info = model.info();
    assert_eq!(
        (info.engine, info.format, info.n_features),
        ("dense", ModelFormat::Onnx, 12)
    );
    assert_eq!(
        info.task,
        Task::Classifier {
            classes: ClassLabels::Int(vec![0, 1])
        }
    );
}

#[test]
fn every_batch_size_gives_the_same_scores() {
    let model = mlp_fixture();
    let n = model.info().n_features;
    // Rows from a fixed pseudo-random walk: no input file needed to vary the values.
    let base_rows = 97;
    let mut state = 0x2545_f491_u32;
    let base: Vec<f32> = (0..base_rows * n)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 8) as f32 / (1 << 24) as f32 * 6.0 - 3.0
        })
        .collect();
    let one_call = model.score(&base, base_rows).expect("scoring");
    // 4096-row chunks plus a remainder, as `score_parallel` cuts them.
    let copies = 4096 * 2 / base_rows + 3;
    let tiled: Vec<f32> = base
        .iter()
        .copied()
        .cycle()
        .take(copies * base_rows * n)
        .collect();
    let parallel =
        presage_model::score_parallel(model.as_ref(), &tiled, copies * base_rows).expect("scoring");
    assert_eq!(parallel.rows, copies * base_rows);
    for copy in 0..copies {
        let labels = &parallel.label_index[copy * base_rows..(copy + 1) * base_rows];
        assert_eq!(
            labels,
            one_call.label_index.as_slice(),
            "labels of copy {copy}"
        );
        let probabilities =
            &parallel.probabilities[copy * base_rows * 2..(copy + 1) * base_rows * 2];
        for (g, e) in probabilities.iter().zip(&one_call.probabilities) {
            assert!((g - e).abs() <= 1e-6, "copy {copy}: {g} vs {e}");
        }
    }
    // Single rows too.
    let first = model.score(&base[..n], 1).expect("scoring one row");
    assert_eq!(first.label_index[0], one_call.label_index[0]);
}

#[test]
fn zero_rows_give_empty_scores() {
    let scores = mlp_fixture().score(&[], 0).expect("scoring nothing");
    assert_eq!(
        (
            scores.rows,
            scores.label_index.len(),
            scores.probabilities.len()
        ),
        (0, 0, 0)
    );
}

#[test]
fn a_matrix_of_the_wrong_size_is_refused() {
    let error = mlp_fixture()
        .score(&[0.0; 13], 1)
        .expect_err("13 values for 1 row of 12");
    assert!(
        matches!(
            error,
            ModelError::WrongShape {
                expected: 12,
                rows: 1,
                found: 13
            }
        ),
        "{error:?}"
    );
}
