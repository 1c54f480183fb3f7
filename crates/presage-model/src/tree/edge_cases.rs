//! The small models of `testdata/` (made by `testdata/make_testdata.py` with the real
//! libraries): split rules and output rules the shared fixtures do not reach, on
//! inputs chosen at the edges (thresholds ± one ulp, NaN, zero band, odd categories),
//! and CatBoost's JSON models, which have no shared fixture.

use std::path::{Path, PathBuf};

use prost::Message;
use serde_json::Value as Json;

use crate::{Model, ModelFormat, Task};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/tree/testdata")
}

fn load(path: &Path) -> Box<dyn Model> {
    let bytes = fs_err::read(path).expect("reading a test model");
    match path.extension().and_then(|e| e.to_str()) {
        // XGBoost or CatBoost, told apart by the content.
        Some("json") => crate::load_bytes(&bytes, ModelFormat::XgboostJson, path).expect("loading"),
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

/// Allowed error `abs + rel * |expected|` for the libraries' own arithmetic.
const LOOSE: (f64, f64) = (1e-5, 1e-4);
/// CatBoost sums in `f64` as presage does: within one `f32` rounding of its output.
const F32_ROUNDING: (f64, f64) = (1e-12, 1.0 / 8_388_608.0);

fn check(case: &str) {
    check_within(case, LOOSE);
}

fn check_within(case: &str, (abs, rel): (f64, f64)) {
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
        .map(|v| match v {
            Json::Null => f32::NAN,
            // Infinities are written as strings.
            Json::String(s) => s.parse().expect("`inf` or `-inf`"),
            _ => v.as_f64().expect("a number") as f32,
        })
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
                || (f64::from(g) - w).abs() <= abs + rel * w.abs(),
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

macro_rules! catboost_cases {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            check_within(stringify!($name), F32_ROUNDING);
        }
    )*};
}

catboost_cases! {
    cb_binary_min,
    cb_binary_max,
    cb_strings,
    cb_multiclass,
    cb_ova,
    cb_depthwise,
    cb_regressor,
    cb_poisson,
    cb_multirmse,
    cb_yetirank,
}

fn load_error(bytes: &[u8], path: &Path) -> String {
    match crate::load_bytes(bytes, ModelFormat::XgboostJson, path) {
        Ok(_) => panic!("`{}` loaded, expected an error", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn json_models_are_told_apart_by_their_keys() {
    for (file, format) in [
        ("cb_binary_min.json", ModelFormat::CatboostJson),
        ("cb_depthwise.json", ModelFormat::CatboostJson),
        ("xgb_poisson.json", ModelFormat::XgboostJson),
    ] {
        let model = crate::load(&testdata().join(file)).expect("loading");
        assert_eq!(model.model.info().format, format, "{file}");
        assert_eq!(model.model.info().engine, "tree", "{file}");
    }
    let cb = crate::load(&testdata().join("cb_strings.json")).unwrap();
    assert_eq!(
        cb.model.info().task,
        Task::Classifier {
            classes: crate::ClassLabels::Str(vec!["no".into(), "yes".into()])
        }
    );
    assert_eq!(ModelFormat::CatboostJson.to_string(), "CatBoost JSON");

    let path = Path::new("models/other.json");
    assert_eq!(
        load_error(br#"{"weights": [1, 2], "bias": 0}"#, path),
        "`models/other.json` is not an XGBoost JSON or CatBoost JSON model: expected \
         top-level `learner` (XGBoost) or `oblivious_trees` / `trees` with `features_info` \
         (CatBoost), found top-level keys `bias`, `weights`"
    );
    let err = load_error(b"[1, 2]", path);
    assert!(err.ends_with("found no object"), "{err}");
    let err = load_error(b"{\"learner\": ", path);
    assert!(
        err.starts_with(
            "`models/other.json` is not an XGBoost JSON or CatBoost JSON model: invalid JSON"
        ),
        "{err}"
    );
}

#[test]
fn catboost_categorical_features_are_refused_by_name() {
    let path = testdata().join("cb_categorical.json");
    let err = load_error(&fs_err::read(&path).unwrap(), &path);
    assert_eq!(
        err,
        format!(
            "`{}` is not a valid CatBoost JSON model: categorical feature `city` (column 1) \
             is not supported: presage scores CatBoost models over float features only",
            path.display()
        )
    );
}

#[test]
fn catboost_load_errors_name_the_problem() {
    let path = Path::new("models/cb.json");
    let json = fs_err::read_to_string(testdata().join("cb_regressor.json")).unwrap();
    let err = load_error(
        json.replace("\"RMSE\"", "\"RMSEWithUncertainty\"")
            .as_bytes(),
        path,
    );
    assert!(
        err.starts_with("`models/cb.json` is not a valid CatBoost JSON model: loss `RMSEWithUncertainty` is not supported"),
        "{err}"
    );
    let err = load_error(
        json.replacen("\"FloatFeature\"", "\"OnlineCtr\"", 1)
            .as_bytes(),
        path,
    );
    assert!(
        err.ends_with("tree 0: split type `OnlineCtr` is not supported: presage scores CatBoost models over float features only"),
        "{err}"
    );
    let err = load_error(
        json.replacen("\"AsFalse\"", "\"Sometimes\"", 1).as_bytes(),
        path,
    );
    assert!(
        err.contains("`features_info.float_features[0].nan_value_treatment` is `\"Sometimes\"`"),
        "{err}"
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
