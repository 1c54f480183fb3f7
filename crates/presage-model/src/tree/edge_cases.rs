//! The small models of `testdata/` (made by `testdata/make_testdata.py` with the real
//! libraries): split rules and output rules the shared fixtures do not reach, on
//! inputs chosen at the edges (thresholds ± one ulp, NaN, zero band, odd categories).

use std::path::{Path, PathBuf};

use prost::Message;
use serde_json::Value as Json;

use crate::{Model, Task};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/tree/testdata")
}

fn load(path: &Path) -> Box<dyn Model> {
    let bytes = fs_err::read(path).expect("reading a test model");
    match path.extension().and_then(|e| e.to_str()) {
        Some("json") => super::xgboost::load(&bytes, path).expect("loading"),
        Some("txt") => super::lightgbm::load(&bytes, path).expect("loading"),
        Some("onnx") => {
            let proto = tract_onnx::pb::ModelProto::decode(bytes.as_slice()).expect("decoding");
            super::onnx::try_load(&proto, path)
                .expect("loading")
                .expect("a tree-ensemble graph")
        }
        _ => panic!("unknown test model `{}`", path.display()),
    }
}

fn check(case: &str) {
    let dir = testdata();
    let doc: Json = serde_json::from_slice(
        &fs_err::read(dir.join(format!("{case}.expected.json"))).expect("reading expectations"),
    )
    .expect("parsing expectations");
    let model = load(&dir.join(doc["model"].as_str().unwrap()));
    let inputs: Vec<f32> = doc["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter())
        .map(|v| v.as_f64().map_or(f32::NAN, |v| v as f32))
        .collect();
    let rows = doc["inputs"].as_array().unwrap().len();
    let scores = model.score(&inputs, rows).expect("scoring");
    let expected: Vec<f64> = doc["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter())
        .map(|v| match v {
            // Non-finite values are written as strings.
            Json::String(s) => s.parse().expect("`nan`, `inf` or `-inf`"),
            _ => v.as_f64().expect("a number"),
        })
        .collect();
    let got = match model.info().task {
        Task::Classifier { .. } => &scores.probabilities,
        Task::Regressor { .. } => &scores.values,
    };
    assert_eq!(got.len(), expected.len(), "{case}: output width");
    let width = expected.len() / rows;
    for (i, (&g, &w)) in got.iter().zip(&expected).enumerate() {
        assert!(
            (w.is_nan() && g.is_nan())
                || f64::from(g) == w
                || (f64::from(g) - w).abs() <= 1e-5 + 1e-4 * w.abs(),
            "{case}: row {} output {} is {g}, expected {w}",
            i / width,
            i % width
        );
    }
    if let Some(labels) = doc["labels"].as_array() {
        for (r, label) in labels.iter().enumerate() {
            assert_eq!(
                i64::from(scores.label_index[r]),
                label.as_i64().unwrap(),
                "{case}: label of row {r}"
            );
        }
    }
}

macro_rules! cases {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            check(stringify!($name));
        }
    )*};
}

cases! {
    xgb_categorical,
    xgb_categorical_onehot,
    xgb_dart,
    xgb_poisson,
    xgb_reg_logistic,
    xgb_hinge,
    xgb_softmax,
    lgbm_categorical,
    lgbm_categorical_onehot,
    lgbm_zero_missing,
    lgbm_no_missing,
    lgbm_multiclass,
    lgbm_ova,
    lgbm_poisson,
    lgbm_rf,
    lgbm_sqrt,
    onnx_regressor_sum_none,
    onnx_regressor_sum_logistic,
    onnx_regressor_sum_softmax,
    onnx_regressor_sum_softmax_zero,
    onnx_regressor_average_none,
    onnx_regressor_average_probit,
    onnx_regressor_min_none,
    onnx_regressor_min_probit,
    onnx_regressor_max_none,
    onnx_regressor_max_probit,
    onnx_regressor_single,
    onnx_classifier_3,
    onnx_classifier_two_columns,
    onnx_classifier_rf,
    onnx_classifier_strings,
    onnx_tree_ensemble_v5,
    onnx_shared_subtrees,
}

#[test]
fn a_cycle_is_refused_where_a_shared_subtree_is_not() {
    let path = testdata().join("onnx_shared_subtrees.onnx");
    let bytes = fs_err::read(&path).expect("reading");
    let mut proto = tract_onnx::pb::ModelProto::decode(bytes.as_slice()).expect("decoding");
    let node = &mut proto.graph.as_mut().expect("a graph").node[0];
    let trues = node
        .attribute
        .iter_mut()
        .find(|a| a.name == "nodes_truenodeids")
        .expect("true children");
    // Tree 1, node 3 (`x1 <= 1`): its true child becomes tree 1's root.
    trues.ints[7 + 3] = 0;
    let Err(error) = super::onnx::try_load(&proto, &path) else {
        panic!("a cyclic tree loaded");
    };
    let message = error.to_string();
    assert!(
        message.contains("tree `1`: a cycle: the node at attribute index 7 leads back to itself"),
        "{message}"
    );
}

#[test]
fn load_errors_name_the_problem() {
    let path = Path::new("models/broken.txt");
    let text = fs_err::read_to_string(testdata().join("lgbm_poisson.txt")).unwrap();
    let broken = text.replacen("left_child=", "left_child=99 ", 1);
    let err = super::lightgbm::load(broken.as_bytes(), path)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("models/broken.txt") && err.contains("tree 0"),
        "{err}"
    );

    let json = fs_err::read_to_string(testdata().join("xgb_poisson.json")).unwrap();
    let unknown = json.replace("count:poisson", "count:mystery");
    let err = super::xgboost::load(unknown.as_bytes(), path)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown objective `count:mystery`"), "{err}");

    let cut = &json.as_bytes()[..json.len() / 2];
    let err = super::xgboost::load(cut, path)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(err.contains("invalid JSON"), "{err}");
}
