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
//!
//! With `--parquet rows.parquet` instead of `--rows`/`--features`, the bench scores
//! a table the way `presage` does: the model is loaded through `ModelSpec` (named
//! inputs bound by column name), the file is read into Arrow batches of
//! `--batch-rows` rows (8192 by default) once, outside the timing, and each run
//! times `BatchScorer::score` over every batch, so picking the columns, encoding
//! strings to codes and building the matrix are inside the timing. Each thread
//! count runs in a rayon pool of that size (1 scores serially). The JSON line also
//! gives `model_rows_per_s`: the model alone (`score_parallel` on the matrices
//! built beforehand), so the difference is the cost of the columns → matrix step.
//!
//! ```text
//! cargo bench -p presage-model --bench score -- \
//!     --model model.onnx --parquet rows.parquet --runs 5 --threads 1,2
//! ```

use std::path::PathBuf;
use std::time::Instant;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float32Type};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use presage_model::{
    BatchScorer, InputKind, Model, ModelInfo, ModelSpec, OutputKind, Scores, UNKNOWN_CATEGORY,
};

struct Args {
    model: PathBuf,
    rows: PathBuf,
    features: usize,
    runs: usize,
    threads: Vec<usize>,
    predictions: Option<PathBuf>,
    parquet: Option<PathBuf>,
    batch_rows: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        model: PathBuf::new(),
        rows: PathBuf::new(),
        features: 0,
        runs: 5,
        threads: vec![1],
        predictions: None,
        parquet: None,
        batch_rows: 8192,
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
            "--parquet" => args.parquet = Some(value().into()),
            "--batch-rows" => {
                args.batch_rows = value().parse().expect("`--batch-rows` is a number");
            }
            // cargo bench passes `--bench` to harness-less benches.
            "--bench" => {}
            other => panic!("unknown argument `{other}`"),
        }
    }
    assert!(
        args.features > 0 || args.parquet.is_some(),
        "`--features` is required"
    );
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

fn write_predictions(path: &PathBuf, values: &[f32]) {
    let out: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    fs_err::write(path, out).expect("writing predictions");
}

/// The batch columns feeding the model's matrix, in matrix order, as `f32`:
/// numbers cast, strings as the codes of the model's encoders (unknown and null
/// as [`UNKNOWN_CATEGORY`]). What `BatchScorer` does; here to time the model apart.
fn matrix(info: &ModelInfo, batch: &RecordBatch) -> Vec<f32> {
    let width = info.inputs.len();
    assert!(
        info.inputs.iter().all(|i| i.width == 1) && width == info.n_features,
        "one matrix column per named input"
    );
    let rows = batch.num_rows();
    let mut out = vec![f32::NAN; rows * width];
    for (j, input) in info.inputs.iter().enumerate() {
        let source = batch.column_by_name(&input.name).expect("an input column");
        match &input.kind {
            InputKind::Category(categories) => {
                let strings = cast(source, &DataType::Utf8).expect("strings");
                for (i, v) in strings.as_string::<i32>().iter().enumerate() {
                    out[i * width + j] = v
                        .and_then(|v| categories.codes.get(v))
                        .map_or(UNKNOWN_CATEGORY, |&c| c as f32);
                }
            }
            InputKind::Number => {
                let numbers = cast(source, &DataType::Float32).expect("numbers");
                let numbers = numbers.as_primitive::<Float32Type>();
                for (i, v) in numbers.iter().enumerate() {
                    out[i * width + j] = v.unwrap_or(f32::NAN);
                }
            }
        }
    }
    out
}

/// `--parquet`: `BatchScorer::score` over the file's batches, per thread count.
fn score_parquet(args: &Args, parquet: &PathBuf) {
    let load_start = Instant::now();
    let spec = ModelSpec {
        name: "bench".to_owned(),
        path: args.model.clone(),
        inputs: vec![],
        outputs: Default::default(),
    };
    let loaded = spec.load().expect("loading the model");
    let load_seconds = load_start.elapsed().as_secs_f64();
    let engine = loaded.info().engine;
    let info = loaded.info().clone();

    let file = fs_err::File::open(parquet).expect("opening the Parquet file");
    let reader = ParquetRecordBatchReaderBuilder::try_new(file.into_file())
        .expect("reading the Parquet footer")
        .with_batch_size(args.batch_rows)
        .build()
        .expect("a Parquet reader");
    let batches: Vec<RecordBatch> = reader
        .collect::<Result<_, _>>()
        .expect("reading the batches");
    let schema = batches.first().expect("a non-empty file").schema();
    let n: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let string_types: Vec<String> = info
        .inputs
        .iter()
        .filter(|i| matches!(i.kind, InputKind::Category(_)))
        .map(|i| {
            let field = schema.field_with_name(&i.name).expect("an input column");
            format!("{}", field.data_type())
        })
        .collect();
    let mut scorer = BatchScorer::new(loaded, "bench", &schema).expect("binding the columns");
    let field = scorer
        .outputs()
        .iter()
        .position(|o| matches!(o.kind, OutputKind::Probability | OutputKind::Value))
        .expect("a probability or value output");

    // The model alone, on the matrices `BatchScorer` would build.
    let bare = presage_model::load(&args.model)
        .expect("loading the model")
        .model;
    let matrices: Vec<(Vec<f32>, usize)> = batches
        .iter()
        .map(|b| (matrix(&info, b), b.num_rows()))
        .collect();

    for &threads in &args.threads {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("building a thread pool");
        pool.install(|| scorer.score(&batches[0]).expect("scoring"));
        let mut seconds = Vec::with_capacity(args.runs);
        let mut last = Vec::new();
        for _ in 0..args.runs {
            let start = Instant::now();
            let outputs: Vec<_> = pool.install(|| {
                batches
                    .iter()
                    .map(|b| scorer.score(b).expect("scoring"))
                    .collect()
            });
            seconds.push(start.elapsed().as_secs_f64());
            last = outputs;
        }
        let mut model_seconds = Vec::with_capacity(args.runs);
        let mut max_diff = 0f32;
        for _ in 0..args.runs {
            let start = Instant::now();
            let scores: Vec<Scores> = pool.install(|| {
                matrices
                    .iter()
                    .map(|(m, rows)| presage_model::score_parallel(&*bare, m, *rows))
                    .collect::<Result<_, _>>()
                    .expect("scoring")
            });
            model_seconds.push(start.elapsed().as_secs_f64());
            let alone: Vec<f32> = scores.iter().flat_map(headline).collect();
            let batched = last
                .iter()
                .flat_map(|o| o[field].as_primitive::<Float32Type>().values().to_vec());
            for (a, b) in alone.iter().zip(batched) {
                max_diff = max_diff.max((a - b).abs());
            }
        }
        assert!(
            max_diff == 0.0,
            "the model alone and BatchScorer disagree by {max_diff}"
        );
        if threads == 1
            && let Some(path) = &args.predictions
        {
            let values: Vec<f32> = last
                .iter()
                .flat_map(|o| {
                    let column = o[field].as_primitive::<Float32Type>();
                    assert_eq!(column.null_count(), 0);
                    column.values().to_vec()
                })
                .collect();
            write_predictions(path, &values);
        }
        let runs: Vec<String> = seconds.iter().map(|s| format!("{s:.4}")).collect();
        println!(
            "{{\"engine\":\"presage\",\"model\":\"{}\",\"engine_kind\":\"{engine}\",\"threads\":{threads},\"rows\":{n},\"batches\":{},\"batch_rows\":{},\"string_columns\":\"{}\",\"load_seconds\":{load_seconds:.4},\"seconds\":[{}],\"rows_per_s\":{:.1},\"model_rows_per_s\":{:.1}}}",
            args.model.display(),
            batches.len(),
            args.batch_rows,
            string_types.join(","),
            runs.join(","),
            n as f64 / median(seconds),
            n as f64 / median(model_seconds),
        );
    }
}

fn main() {
    let args = parse_args();
    if let Some(parquet) = &args.parquet {
        score_parquet(&args, parquet);
        return;
    }
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
            write_predictions(path, &headline(scores));
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
