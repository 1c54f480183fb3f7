use std::time::{Duration, Instant};

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Float32Type};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use presage_data::{Cutoffs, FeatureSession, QueryLimits, error_chain, quoted_list, render_sql};
use presage_model::{BatchScorer, OutputField, OutputKind, ScoreError, column_index};
use presage_store::lookup::{KeyType, ranked_list_type};
use presage_store::{
    Distribution, ExportRecord, LastRun, Manifest, RunOutcomeKind, RunStages, SourceInfo, Store,
    StoreError, StoreWriter, VersionId,
};

use crate::checks::{RunStats, evaluate, expected_keys_check, psi_checks, recorded_distributions};
use crate::export::ExportFile;
use crate::imported::{ImportedColumns, Scoring};
use crate::psi::{ScoreSample, distribution};
use crate::ranked::TopK;
use crate::{JobError, JobSpec, Predictor, Reporter, Stage};

/// The prediction field of a ranked-list job: `{"items":[{"item","score"},…]}`.
pub const RANKED_OUTPUT: &str = "items";

/// Entities per batch when a ranked-list job writes its lists.
const RANKED_BATCH: usize = 8192;

/// What a ranked-list run needs beside the scorer.
struct Ranking {
    /// The item column's name, position and type (`Utf8` or `Int64`).
    item: String,
    item_index: usize,
    item_type: DataType,
    /// The model output ranked by, and its position.
    score: String,
    score_index: usize,
    top_k: usize,
    top: TopK,
}

/// How to run a job once.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The feature cutoff (`{{as_of}}`); now for a normal run.
    pub as_of: DateTime<Utc>,
    /// Publish even when checks fail (recorded in the manifest).
    pub force: bool,
    /// The feature query's memory limit and spill folder.
    pub limits: QueryLimits,
    /// Keep the feature query's physical plan with per-operator metrics
    /// ([`RunOutcome::explain`]).
    pub explain: bool,
    /// Make the new version current. A backfill (`run --as-of` a past time) is
    /// published beside the current version unless promoted.
    pub promote: bool,
}

impl RunOptions {
    /// A normal run at `as_of`: no `--force`, no memory limit, no plan kept.
    pub fn at(as_of: DateTime<Utc>) -> RunOptions {
        RunOptions {
            as_of,
            force: false,
            limits: QueryLimits::default(),
            explain: false,
            promote: true,
        }
    }
}

/// A published run.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The new version's manifest (its `stages` say where the time went).
    pub manifest: Manifest,
    /// Wall-clock seconds, end to end.
    pub seconds: f64,
    /// Where the time went (also in the manifest, without `publish`, and in
    /// `last_run`).
    pub stages: RunStages,
    /// The feature query's physical plan with per-operator metrics, when
    /// [`RunOptions::explain`] asked for it.
    pub explain: Option<String>,
    /// The copy to the job's `export` destination, for jobs that have one; its
    /// failure leaves the version published.
    pub export: Option<ExportRecord>,
}

/// Runs `spec` once and publishes a new version into `store`; the outcome
/// (published, blocked, failed) is recorded for `presage status`.
///
/// Must be called inside a multi-threaded Tokio runtime: DataFusion runs on it, and
/// scoring blocks the current worker while rayon scores a batch on every core.
pub async fn run(
    spec: &JobSpec,
    store: &Store,
    options: RunOptions,
    reporter: &dyn Reporter,
) -> Result<RunOutcome, JobError> {
    let started = Instant::now();
    // Before anything is recorded: a run refused here must not overwrite the record
    // of the run in progress.
    let lock = store.lock_run(&spec.name).await?;
    let mut stages = RunStages::default();
    let result = run_once(spec, store, &options, reporter, &mut stages)
        .await
        .map(|outcome| RunOutcome { stages, ..outcome });
    let record = match &result {
        Ok(outcome) => LastRun {
            outcome: RunOutcomeKind::Published,
            finished_at: Utc::now(),
            seconds: outcome.seconds,
            rows: outcome.manifest.rows,
            version: Some(outcome.manifest.id),
            failed_checks: Vec::new(),
            error: None,
            stages: Some(stages),
            export: outcome.export.clone(),
            backfill: !options.promote,
        },
        Err(e) => LastRun {
            outcome: if matches!(e, JobError::Blocked { .. }) {
                RunOutcomeKind::Blocked
            } else {
                RunOutcomeKind::Failed
            },
            finished_at: Utc::now(),
            seconds: started.elapsed().as_secs_f64(),
            rows: 0,
            version: None,
            failed_checks: match e {
                JobError::Blocked { checks, .. } => {
                    checks.iter().filter(|c| !c.passed).cloned().collect()
                }
                _ => Vec::new(),
            },
            error: Some(error_chain(e)),
            stages: Some(stages),
            export: None,
            backfill: false,
        },
    };
    // A job name that cannot be a folder fails here too; the run's own error matters more.
    let recorded = store.record_run(&spec.name, &record).await;
    lock.release().await;
    if let Err(record_error) = recorded
        && result.is_ok()
    {
        return Err(record_error.into());
    }
    result
}

async fn run_once(
    spec: &JobSpec,
    store: &Store,
    options: &RunOptions,
    reporter: &dyn Reporter,
    stages: &mut RunStages,
) -> Result<RunOutcome, JobError> {
    let started = Instant::now();
    let query = &spec.features.name;

    let model = match &spec.predictor {
        Predictor::Model(model) => {
            reporter.stage(Stage::LoadingModel);
            Some(model.load()?)
        }
        Predictor::Imported(_) => None,
    };

    reporter.stage(Stage::Planning);
    let session = FeatureSession::with_limits(&spec.sources, &options.limits)?;
    let sql = render_sql(query, &spec.features.sql, &Cutoffs::batch(options.as_of))?;
    let plan = session.plan(query, &sql).await?;
    let schema = plan.schema();
    let key_index = column_index(&schema, query, &spec.features.key, "key")?;
    let key_type = key_arrow_type(schema.field(key_index).data_type()).ok_or_else(|| {
        ScoreError::ColumnType {
            query: query.clone(),
            column: spec.features.key.clone(),
            found: schema.field(key_index).data_type().to_string(),
            expected: "a string or an integer",
        }
    })?;
    let mut predictor = match (&spec.predictor, model) {
        (Predictor::Model(_), Some(model)) => {
            Scoring::Model(Box::new(BatchScorer::new(model, query, &schema)?))
        }
        (Predictor::Imported(imported), _) => Scoring::Imported(ImportedColumns::new(
            imported,
            query,
            &schema,
            &spec.features.key,
            spec.ranked.as_ref().map(|r| r.item.as_str()),
        )?),
        (Predictor::Model(_), None) => unreachable!("a model job loads its model first"),
    };
    let outputs = predictor.outputs().to_vec();
    let mut ranking = match &spec.ranked {
        None => None,
        Some(ranked) => {
            let item_index = column_index(&schema, query, &ranked.item, "item")?;
            let item_type =
                key_arrow_type(schema.field(item_index).data_type()).ok_or_else(|| {
                    ScoreError::ColumnType {
                        query: query.clone(),
                        column: ranked.item.clone(),
                        found: schema.field(item_index).data_type().to_string(),
                        expected: "a string or an integer (item)",
                    }
                })?;
            let score_index = outputs
                .iter()
                .position(|o| matches!(o.kind, OutputKind::Probability | OutputKind::Value))
                .ok_or_else(|| JobError::NoRankingScore {
                    model: predictor_name(spec),
                    available: quoted_list(outputs.iter().map(|o| o.name.as_str())),
                })?;
            Some(Ranking {
                top: TopK::new(
                    ranked.top_k,
                    store_key_type(&key_type),
                    store_key_type(&item_type),
                ),
                item: ranked.item.clone(),
                item_index,
                item_type,
                score: outputs[score_index].name.clone(),
                score_index,
                top_k: ranked.top_k,
            })
        }
    };
    // What the version stores per key: the model's outputs, or one ranked list.
    let stored: Vec<Field> = match &ranking {
        None => outputs.iter().map(OutputField::arrow_field).collect(),
        Some(r) => vec![Field::new(
            RANKED_OUTPUT,
            ranked_list_type(store_key_type(&r.item_type)),
            false,
        )],
    };

    // An unreadable pointer or current version does not stop the run: the new
    // version replaces it. Checks that compare with the previous version are skipped.
    let previous = match store.current_manifest(&spec.name).await {
        Ok(previous) => previous,
        Err(e)
            if e.kind() == presage_store::StoreErrorKind::Corrupt
                || e.kind() == presage_store::StoreErrorKind::NotFound =>
        {
            reporter.warning(&format!(
                "job `{}`: the current version cannot be read ({e}); publishing a new one without comparing to it",
                spec.name
            ));
            None
        }
        Err(e) => return Err(e.into()),
    };
    let writer = store
        .begin(
            &spec.name,
            Field::new(&spec.features.key, key_type.clone(), false),
            &stored,
        )
        .await?;
    let export = spec.export.as_ref().map(|_| {
        ExportFile::create(
            &spec.name,
            Field::new(&spec.features.key, key_type.clone(), false),
            &stored,
        )
    });
    let mut writer = BackgroundWriter::start(writer, export)?;
    // Every numeric output's scores (sampled past a million), for the distribution
    // the manifest records and the `max_psi` check.
    let mut samples: Vec<(String, Option<ScoreSample>)> = stored
        .iter()
        .map(|f| (f.name().clone(), ScoreSample::for_type(f.data_type())))
        .collect();
    reporter.stage(Stage::Features);
    let query_started = Instant::now();
    let mut stream = plan.stream().await?;
    let mut stats = RunStats {
        rows: 0,
        nulls: stored.iter().map(|f| (f.name().clone(), 0)).collect(),
    };
    // Feature rows read: entities, or candidates for a ranked-list job.
    let mut rows_read = 0u64;
    let mut tick = tokio::time::interval(FEATURE_PROGRESS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let waiting = Instant::now();
        // Until the first rows arrive (an aggregation emits nothing before it has
        // read all its input), show what the query has read.
        let next = loop {
            tokio::select! {
                next = stream.next() => break next,
                _ = tick.tick(), if rows_read == 0 => {
                    reporter.features(stream.progress(), query_started.elapsed());
                }
            }
        };
        stages.features += waiting.elapsed().as_secs_f64();
        let Some(batch) = next else { break };
        let batch = batch?;
        if batch.num_rows() == 0 {
            continue;
        }
        if rows_read == 0 {
            reporter.stage(Stage::Scoring {
                expected_rows: previous.as_ref().map(|m| m.rows),
            });
        }
        let scoring = Instant::now();
        let keys = key_column(&batch, key_index, &key_type, spec, rows_read)?;
        let arrays = predictor.score(&batch)?;
        stages.scoring += scoring.elapsed().as_secs_f64();
        match &mut ranking {
            None => {
                stats.rows += batch.num_rows() as u64;
                write_scored(&mut writer, spec, keys, arrays, &mut stats, &mut samples).await?;
            }
            Some(r) => {
                let scoring = Instant::now();
                let items = item_column(&batch, r, spec, rows_read)?;
                // Probabilities and regression values are always Float32.
                let scores = arrays[r.score_index].as_primitive::<Float32Type>();
                r.top
                    .add(&keys, &items, scores)
                    .map_err(|d| JobError::DuplicateCandidate {
                        query: query.clone(),
                        key_column: spec.features.key.clone(),
                        item_column: r.item.clone(),
                        key: d.key,
                        item: d.item,
                    })?;
                stages.scoring += scoring.elapsed().as_secs_f64();
            }
        }
        rows_read += batch.num_rows() as u64;
        reporter.rows(rows_read);
        presage_store::failpoint::pause("scoring");
    }
    let ranked_info = ranking.as_ref().map(|r| presage_store::RankedInfo {
        item: r.item.clone(),
        top_k: r.top_k,
        score: r.score.clone(),
        candidates: rows_read,
    });
    if let Some(r) = ranking.take() {
        let ranking = Instant::now();
        let lists = r.top.finish(RANKED_BATCH);
        stages.scoring += ranking.elapsed().as_secs_f64();
        for (keys, lists) in lists {
            stats.rows += keys.len() as u64;
            write_scored(
                &mut writer,
                spec,
                keys,
                vec![lists],
                &mut stats,
                &mut samples,
            )
            .await?;
        }
    }
    let progress = stream.progress();
    stages.spilled_bytes = progress.spilled_bytes;
    let explain = options.explain.then(|| stream.explain());
    drop(stream);

    reporter.stage(Stage::Checking);
    let (writer, writing, export_file) = writer.join(spec)?;
    let closing = Instant::now();
    let staged = writer.finish().await.map_err(|e| store_error(spec, e))?;
    stages.writing = writing.as_secs_f64() + closing.elapsed().as_secs_f64();
    let checking = Instant::now();
    let mut checks = evaluate(&spec.checks, &stats, previous.as_ref().map(|m| m.rows));
    if let (Some(max), Some(prev)) = (spec.checks.max_psi, &previous) {
        let recorded = if prev.distributions.is_empty() {
            recorded_distributions(store, &spec.name, prev.id, &stored).await?
        } else {
            prev.distributions.clone()
        };
        checks.extend(psi_checks(max, &recorded, &samples));
    }
    if let Some(sql) = &spec.checks.expected_keys {
        let sql = render_sql("checks.expected_keys", sql, &Cutoffs::batch(options.as_of))?;
        checks.push(expected_keys_check(&session, &sql, &staged).await?);
    }
    let failed = checks.iter().any(|c| !c.passed);
    stages.checks = checking.elapsed().as_secs_f64();
    if failed && !options.force {
        let kept = staged.block(spec.keep_blocked).await?;
        return Err(JobError::Blocked { checks, kept });
    }
    let distributions = samples
        .into_iter()
        .filter_map(|(output, sample)| {
            let (edges, fractions) = distribution(&sample?.values)?;
            Some(Distribution {
                output,
                edges,
                fractions,
            })
        })
        .collect();

    reporter.stage(Stage::Publishing);
    let (model_info, features_as_of) = match &predictor {
        Scoring::Model(scorer) => {
            let model = scorer.model();
            let spec_model = spec.predictor.model().expect("a model job");
            let info = presage_store::ModelInfo {
                name: spec_model.name.clone(),
                path: spec_model.path.display().to_string(),
                sha256: model.sha256().to_owned(),
                format: model.info().format.to_string(),
                engine: model.info().engine.to_owned(),
                inputs: model.spec().inputs.clone(),
            };
            (info, options.as_of)
        }
        Scoring::Imported(imported) => {
            let source = &spec.features.name;
            let info = presage_store::ModelInfo {
                name: source.clone(),
                path: spec
                    .sources
                    .iter()
                    .find(|s| &s.name == source)
                    .map(|s| s.location())
                    .unwrap_or_default(),
                sha256: String::new(),
                format: IMPORTED_FORMAT.to_owned(),
                engine: "none".to_owned(),
                inputs: Vec::new(),
            };
            (info, imported.features_as_of()?.unwrap_or(options.as_of))
        }
    };
    let manifest = Manifest {
        format: presage_store::MANIFEST_FORMAT,
        id: VersionId(0),
        job: spec.name.clone(),
        created_at: Utc::now(),
        features_as_of,
        model: model_info,
        // The sources the feature SQL and the checks read, as they were opened.
        sources: session
            .fingerprints()
            .into_iter()
            .map(|f| SourceInfo {
                name: f.name,
                path: f.path,
                files: f.files,
                bytes: f.bytes,
                fingerprint: f.fingerprint,
            })
            .collect(),
        rows: 0,
        key: presage_store::KeyInfo {
            column: spec.features.key.clone(),
            key_type: if key_type == DataType::Int64 {
                "int"
            } else {
                "string"
            }
            .to_owned(),
        },
        outputs: stored
            .iter()
            .map(|f| presage_store::OutputColumn {
                name: f.name().clone(),
                data_type: f.data_type().to_string(),
            })
            .collect(),
        ranked: ranked_info,
        checks,
        distributions,
        forced: failed,
        files: Vec::new(),
        parent: None,
        run_seconds: started.elapsed().as_secs_f64(),
        // Publishing's own time is known only after the manifest is written; it is
        // in `last_run`.
        stages: Some(*stages),
    };
    let publishing = Instant::now();
    let manifest = staged
        .publish(manifest, spec.keep_versions, options.promote)
        .await?;
    stages.publish = publishing.elapsed().as_secs_f64();
    let export = match (export_file, &spec.export) {
        (Some(file), Some(export)) => {
            reporter.stage(Stage::Exporting);
            Some(file.publish(export, &manifest).await)
        }
        _ => None,
    };
    Ok(RunOutcome {
        manifest,
        seconds: started.elapsed().as_secs_f64(),
        stages: *stages,
        explain,
        export,
    })
}

/// The manifest's model format for a job whose predictions were read, not scored.
pub const IMPORTED_FORMAT: &str = "imported predictions";

/// The model's name, or the source's for imported predictions, for messages.
fn predictor_name(spec: &JobSpec) -> String {
    match &spec.predictor {
        Predictor::Model(model) => model.name.clone(),
        Predictor::Imported(imported) => imported.source.clone(),
    }
}

/// How often the "computing features" progress is refreshed.
const FEATURE_PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// Scored batches in flight to the writer thread: enough to keep it busy while the
/// next batch is scored, few enough to bound the memory they hold.
const WRITE_QUEUE: usize = 4;

/// Writes scored batches into the store on a thread of its own, so that the store's
/// work (encoding, hashing, file writes or network round trips) overlaps the feature
/// query and scoring instead of waiting for them.
struct BackgroundWriter {
    batches: Option<tokio::sync::mpsc::Sender<(ArrayRef, Vec<ArrayRef>)>>,
    thread: Option<std::thread::JoinHandle<Result<Written, StoreError>>>,
}

/// What the writer thread gives back: the store's writer, the time it spent, and the
/// rows teed for the export.
type Written = (StoreWriter, Duration, Option<ExportFile>);

impl BackgroundWriter {
    fn start(
        mut writer: StoreWriter,
        mut export: Option<ExportFile>,
    ) -> Result<BackgroundWriter, JobError> {
        let (batches, mut queue) =
            tokio::sync::mpsc::channel::<(ArrayRef, Vec<ArrayRef>)>(WRITE_QUEUE);
        let runtime = tokio::runtime::Handle::current();
        let thread = std::thread::Builder::new()
            .name("presage-writer".to_owned())
            .spawn(move || {
                let mut busy = Duration::ZERO;
                while let Some((keys, arrays)) = queue.blocking_recv() {
                    let started = Instant::now();
                    runtime.block_on(writer.write(&keys, &arrays))?;
                    if let Some(export) = &mut export {
                        export.write(&keys, &arrays);
                    }
                    busy += started.elapsed();
                }
                Ok((writer, busy, export))
            })
            .map_err(|e| JobError::Store(StoreError::from(e)))?;
        Ok(BackgroundWriter {
            batches: Some(batches),
            thread: Some(thread),
        })
    }

    /// Queues a batch; waits while the queue is full. A writer that failed makes this
    /// return its error.
    async fn write(
        &mut self,
        spec: &JobSpec,
        keys: ArrayRef,
        arrays: Vec<ArrayRef>,
    ) -> Result<(), JobError> {
        let sender = self.batches.as_ref().expect("open until joined");
        if sender.send((keys, arrays)).await.is_ok() {
            return Ok(());
        }
        // The thread stopped early, which only an error makes it do.
        match self.stop() {
            Err(JobError::Store(e)) => Err(store_error(spec, e)),
            Err(e) => Err(e),
            Ok(_) => unreachable!("the writer thread ends early only on an error"),
        }
    }

    /// Waits for every queued batch to be written; gives back the writer and the time
    /// the thread spent writing.
    fn join(mut self, spec: &JobSpec) -> Result<Written, JobError> {
        self.stop().map_err(|e| match e {
            JobError::Store(e) => store_error(spec, e),
            other => other,
        })
    }

    fn stop(&mut self) -> Result<Written, JobError> {
        self.batches = None;
        let thread = self.thread.take().expect("stopped once");
        match tokio::task::block_in_place(|| thread.join()) {
            Ok(result) => Ok(result?),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

impl Drop for BackgroundWriter {
    /// A run that fails stops the thread, whose writer then removes what it staged,
    /// before the run returns its error.
    fn drop(&mut self) {
        self.batches = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Queues one batch of keys and their stored values for writing, counting nulls and
/// sampling scores for the checks.
async fn write_scored(
    writer: &mut BackgroundWriter,
    spec: &JobSpec,
    keys: ArrayRef,
    arrays: Vec<ArrayRef>,
    stats: &mut RunStats,
    samples: &mut [(String, Option<ScoreSample>)],
) -> Result<(), JobError> {
    for ((_, nulls), array) in stats.nulls.iter_mut().zip(&arrays) {
        *nulls += null_or_nan_count(array);
    }
    for ((_, sample), array) in samples.iter_mut().zip(&arrays) {
        if let Some(sample) = sample {
            sample.extend(array);
        }
    }
    writer.write(spec, keys, arrays).await
}

/// A store error, with a duplicate key named as the feature query's.
fn store_error(spec: &JobSpec, error: StoreError) -> JobError {
    match error.duplicate_key() {
        Some(key) => JobError::DuplicateKey {
            query: spec.features.name.clone(),
            column: spec.features.key.clone(),
            key: key.to_owned(),
        },
        None => JobError::Store(error),
    }
}

/// The lookup-file key type of a key or item column already normalised by
/// [`key_arrow_type`].
fn store_key_type(data_type: &DataType) -> KeyType {
    if data_type == &DataType::Int64 {
        KeyType::Int
    } else {
        KeyType::Str
    }
}

/// A ranked-list job's item column, non-null and as `Utf8` or `Int64`.
fn item_column(
    batch: &RecordBatch,
    ranking: &Ranking,
    spec: &JobSpec,
    rows_before: u64,
) -> Result<ArrayRef, JobError> {
    let column = batch.column(ranking.item_index);
    let item = ranking.item.clone();
    if let Some(nulls) = column.nulls()
        && let Some(row) = (0..column.len()).find(|&i| nulls.is_null(i))
    {
        return Err(JobError::NullItem {
            query: spec.features.name.clone(),
            column: item,
            row: rows_before + row as u64,
        });
    }
    if column.data_type() == &ranking.item_type {
        return Ok(column.clone());
    }
    Ok(
        cast(column, &ranking.item_type).map_err(|e| ScoreError::ColumnType {
            query: spec.features.name.clone(),
            column: item,
            found: e.to_string(),
            expected: "a string or an integer (item)",
        })?,
    )
}

/// Ranked lists holding a NaN score.
fn nan_score_lists(lists: &ArrayRef) -> u64 {
    let lists = lists.as_list::<i32>();
    let scores = lists
        .values()
        .as_struct()
        .column(1)
        .as_primitive::<Float32Type>();
    lists
        .offsets()
        .windows(2)
        .filter(|w| {
            scores.values()[w[0] as usize..w[1] as usize]
                .iter()
                .any(|v| v.is_nan())
        })
        .count() as u64
}

/// Keys are stored as strings or 64-bit integers.
fn key_arrow_type(data_type: &DataType) -> Option<DataType> {
    match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Some(DataType::Utf8),
        t if t.is_integer() => Some(DataType::Int64),
        _ => None,
    }
}

fn key_column(
    batch: &RecordBatch,
    index: usize,
    key_type: &DataType,
    spec: &JobSpec,
    rows_before: u64,
) -> Result<ArrayRef, JobError> {
    let column = batch.column(index);
    if let Some(nulls) = column.nulls()
        && let Some(row) = (0..column.len()).find(|&i| nulls.is_null(i))
    {
        return Err(JobError::NullKey {
            query: spec.features.name.clone(),
            column: spec.features.key.clone(),
            row: rows_before + row as u64,
        });
    }
    if column.data_type() == key_type {
        return Ok(column.clone());
    }
    Ok(cast(column, key_type).map_err(|e| ScoreError::ColumnType {
        query: spec.features.name.clone(),
        column: spec.features.key.clone(),
        found: e.to_string(),
        expected: "a string or an integer",
    })?)
}

fn null_or_nan_count(array: &ArrayRef) -> u64 {
    let nulls = array.null_count() as u64;
    match array.data_type() {
        DataType::Float32 => {
            nulls
                + array
                    .as_primitive::<Float32Type>()
                    .values()
                    .iter()
                    .filter(|v| v.is_nan())
                    .count() as u64
        }
        DataType::FixedSizeList(_, width) => {
            let list = array.as_fixed_size_list();
            let values = list.values().as_primitive::<Float32Type>();
            let width = *width as usize;
            nulls
                + values
                    .values()
                    .chunks_exact(width.max(1))
                    .filter(|row| row.iter().any(|v| v.is_nan()))
                    .count() as u64
        }
        // A ranked list holding a NaN score counts as null.
        DataType::List(_) => nulls + nan_score_lists(array),
        _ => nulls,
    }
}
