//! Scoring throughput of one model file over a fixed matrix of rows.
//!
//! Driven by `benches/model_peers.py` at the workspace root, which generates the
//! rows, runs the same rows through the peer library (onnxruntime, XGBoost,
//! LightGBM) and prints the side-by-side table. Run alone:
//!
//! ```text
//! cargo bench -p presage-model --bench score -- \
//!     --model model.onnx --rows rows.f32 --features 50 --runs 5 --threads 1,2
//! ```
//!
//! `rows.f32` is a little-endian `f32` row-major matrix. For each thread count the
//! bench prints one JSON line with every run's seconds and the median rows/s; one
//! thread calls `Model::score` on the whole matrix, more threads call
//! `score_parallel` in a rayon pool of that size.

use std::path::PathBuf;
use std::time::Instant;

use presage_model::{Model, Scores};

struct Args {
    model: PathBuf,
    rows: PathBuf,
    features: usize,
    runs: usize,
    threads: Vec<usize>,
    predictions: Option<PathBuf>,
}

fn parse_args() -> Args {
    let mut args = Args {
        model: PathBuf::new(),
        rows: PathBuf::new(),
        features: 0,
        runs: 5,
        threads: vec![1],
        predictions: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| panic!("`{flag}` needs a value"))
        };
        match flag.as_str() {
            "--model" => args.model = value().into(),
            "--rows" => args.rows = value().into(),
            "--features" => args.features = value().parse().expect("`--features` is a number"),
            "--runs" => args.runs = value().parse().expect("`--runs` is a number"),
            "--threads" => {
                args.threads = value()
                    .split(',')
                    .map(|t| t.parse().expect("`--threads` is a list of numbers"))
                    .collect();
            }
            "--write-predictions" => args.predictions = Some(value().into()),
            // cargo bench passes `--bench` to harness-less benches.
            "--bench" => {}
            other => panic!("unknown argument `{other}`"),
        }
    }
    assert!(args.features > 0, "`--features` is required");
    args
}

/// The number a peer also reports per row: P(class 1) for a binary classifier,
/// the first value for a regressor, the first probability otherwise.
fn headline(scores: &Scores) -> Vec<f32> {
    if !scores.values.is_empty() {
        let width = scores.values.len() / scores.rows.max(1);
        return scores
            .values
            .iter()
            .step_by(width.max(1))
            .copied()
            .collect();
    }
    let width = scores.probabilities.len() / scores.rows.max(1);
    let column = usize::from(width == 2);
    scores
        .probabilities
        .iter()
        .skip(column)
        .step_by(width.max(1))
        .copied()
        .collect()
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

fn score(model: &dyn Model, rows: &[f32], n: usize, threads: usize) -> Scores {
    if threads == 1 {
        model.score(rows, n).expect("scoring")
    } else {
        presage_model::score_parallel(model, rows, n).expect("scoring")
    }
}

fn main() {
    let args = parse_args();
    let load_start = Instant::now();
    let model = presage_model::load(&args.model)
        .expect("loading the model")
        .model;
    let load_seconds = load_start.elapsed().as_secs_f64();
    assert_eq!(
        model.info().n_features,
        args.features,
        "model and rows disagree on features"
    );
    let bytes = fs_err::read(&args.rows).expect("reading the rows file");
    let rows: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let n = rows.len() / args.features;

    for &threads in &args.threads {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("building a thread pool");
        let warm = n.min(20_000);
        pool.install(|| score(&*model, &rows[..warm * args.features], warm, threads));
        let mut seconds = Vec::with_capacity(args.runs);
        let mut last = None;
        for _ in 0..args.runs {
            let start = Instant::now();
            let scores = pool.install(|| score(&*model, &rows, n, threads));
            seconds.push(start.elapsed().as_secs_f64());
            last = Some(scores);
        }
        if threads == 1
            && let (Some(path), Some(scores)) = (&args.predictions, &last)
        {
            let out: Vec<u8> = headline(scores)
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect();
            fs_err::write(path, out).expect("writing predictions");
        }
        let runs: Vec<String> = seconds.iter().map(|s| format!("{s:.4}")).collect();
        println!(
            "{{\"engine\":\"presage\",\"model\":\"{}\",\"engine_kind\":\"{}\",\"threads\":{threads},\"rows\":{n},\"load_seconds\":{load_seconds:.4},\"seconds\":[{}],\"rows_per_s\":{:.1}}}",
            args.model.display(),
            model.info().engine,
            runs.join(","),
            n as f64 / median(seconds),
        );
    }
}
