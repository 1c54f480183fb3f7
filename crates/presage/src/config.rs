//! `presage.toml`: parsed once at the edge into the typed specs the crates use.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use presage_data::{
    FeatureSpec, FileSource, ObjectSource, PartitionColumn, PostgresConnection, PostgresRelation,
    PostgresSource, QueryLimits, SourceFormat, SourceSpec, StorageOptions, is_remote_url,
};
use presage_job::{Checks, ExportSpec, ImportedPredictions, JobSpec, Predictor, RankedSpec};
use presage_model::ModelSpec;
use presage_serve::{HttpLimits, OnStale, ServeJob};
use presage_store::{EmbeddedStore, RedisOptions, RedisStore, Store};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default = "default_data_dir")]
    data_dir: PathBuf,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    run: RawRun,
    #[serde(default)]
    serve: RawServe,
    #[serde(default)]
    sources: BTreeMap<String, RawSource>,
    #[serde(default)]
    storage: BTreeMap<String, RawStorage>,
    #[serde(default)]
    features: BTreeMap<String, RawFeatures>,
    #[serde(default)]
    models: BTreeMap<String, RawModel>,
    #[serde(default)]
    jobs: BTreeMap<String, RawJob>,
    lookup_log: Option<PathBuf>,
    #[serde(default = "default_lookup_log_sample")]
    lookup_log_sample: f64,
}

fn default_lookup_log_sample() -> f64 {
    1.0
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("presage-data")
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    #[serde(default)]
    kind: StoreKind,
    /// One URL, or a list of node URLs (Redis Cluster); checked by hand so the error
    /// can say which shapes are accepted.
    url: Option<toml::Value>,
    namespace: Option<String>,
    lease: Option<String>,
}

/// Where versions are published.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// Files under `data_dir`.
    #[default]
    Embedded,
    /// A Redis server or cluster.
    Redis,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRun {
    memory_limit: Option<String>,
    spill_dir: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServe {
    header_read_timeout: Option<String>,
    body_read_timeout: Option<String>,
    shutdown_grace: Option<String>,
    max_connections: Option<usize>,
    resp_max_connections: Option<usize>,
    /// `0s` (the default) keeps idle connections, as Redis' `timeout 0`.
    resp_idle_timeout: Option<String>,
}

/// The memory limit of a run when neither `[run] memory_limit` nor `--memory-limit`
/// sets one: half the machine's memory leaves the rest to scoring, the writers and
/// the page cache the store's files go through.
pub const DEFAULT_MEMORY_LIMIT: &str = "50%";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    path: Option<String>,
    format: Option<SourceFormat>,
    #[serde(default)]
    partition_columns: BTreeMap<String, String>,
    postgres: Option<String>,
    postgres_env: Option<String>,
    table: Option<String>,
    query: Option<String>,
}

/// `[storage."s3://bucket"]`: settings of the stores under a URL prefix.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    endpoint: Option<String>,
    region: Option<String>,
    allow_http: Option<bool>,
    #[serde(default)]
    options: BTreeMap<String, String>,
    /// Setting name → the environment variable holding its value (secrets).
    #[serde(default)]
    env: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFeatures {
    key: String,
    /// Candidate rows for ranked-list jobs: the item column.
    item: Option<String>,
    sql: String,
    #[serde(default)]
    entity_columns: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    path: PathBuf,
    /// Feature columns in the model's input order; a model with named inputs
    /// (several, or strings) binds the columns of those names without it.
    #[serde(default)]
    inputs: Vec<String>,
    #[serde(default)]
    outputs: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJob {
    features: Option<String>,
    model: Option<String>,
    /// A source that already holds predictions, instead of `features` + `model`.
    predictions: Option<String>,
    /// With `predictions`: the key column, and optionally the item and score columns
    /// of a ranked list, the prediction columns, and the column saying when the
    /// predictions' features were computed.
    key: Option<String>,
    item: Option<String>,
    score: Option<String>,
    columns: Option<Vec<String>>,
    features_as_of: Option<String>,
    /// A folder or object-storage prefix each published version is copied to.
    export: Option<String>,
    max_age: Option<String>,
    #[serde(default = "default_keep_versions")]
    keep_versions: usize,
    #[serde(default = "default_keep_blocked")]
    keep_blocked: usize,
    default: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    on_stale: OnStale,
    refresh_every: Option<String>,
    top_k: Option<usize>,
    #[serde(default)]
    checks: RawChecks,
}

/// More items per entity than any list a lookup should return.
const MAX_TOP_K: usize = 1000;

fn default_keep_versions() -> usize {
    5
}

fn default_keep_blocked() -> usize {
    3
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChecks {
    min_rows: Option<u64>,
    max_row_change: Option<f64>,
    max_null_fraction: Option<f64>,
    max_psi: Option<f64>,
    expected_keys: Option<String>,
}

/// A validated config with paths resolved against its folder.
#[derive(Debug, Clone)]
pub struct Config {
    /// The config file.
    pub path: PathBuf,
    /// The embedded store's root.
    pub data_dir: PathBuf,
    /// Where versions are published and served from.
    pub store: StoreConfig,
    /// Every job, by name.
    pub jobs: BTreeMap<String, JobConfig>,
    /// Every model, by name (backtest challengers may name one).
    pub models: BTreeMap<String, ModelSpec>,
    /// Where `presage serve` logs answers and `presage status` reads them.
    pub lookup_log: Option<PathBuf>,
    /// The fraction of answers logged.
    pub lookup_log_sample: f64,
    /// `[run]`: what a run's feature query may use.
    pub limits: QueryLimits,
    /// `[serve]`: how long clients of `presage serve` may take, how many may connect.
    pub serve: ServeLimits,
}

/// The `[serve]` section, validated; unset fields are `presage_serve::limits`' defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServeLimits {
    /// Timeouts and connections of the HTTP API, and the grace at shutdown.
    pub http: HttpLimits,
    /// Redis-protocol connections open at once.
    pub resp_max_connections: usize,
    /// Redis-protocol connections idle this long are closed; `None` keeps them.
    pub resp_idle_timeout: Option<Duration>,
}

/// The `[store]` section, validated.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreConfig {
    /// Files under `data_dir`.
    Embedded,
    /// A Redis server (one URL) or cluster (node URLs).
    Redis {
        /// The server, or seed nodes of a cluster.
        urls: Vec<String>,
        /// Prefix of every key (`presage`).
        namespace: String,
        /// How long a crashed run's half-written version is protected before the
        /// next run deletes it (`60s`).
        lease: Duration,
    },
}

/// A job as the run and serve commands need it.
#[derive(Debug, Clone)]
pub struct JobConfig {
    /// What `presage run` needs.
    pub spec: JobSpec,
    /// What `presage serve` needs.
    pub serve: ServeJob,
    /// `presage serve --refresh` re-runs the job when its version is older than this.
    pub refresh_every: Option<Duration>,
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config> {
        let text = fs_err::read_to_string(path).with_context(|| {
            "reading config; run `presage quickstart` for an example project, or pass `--config FILE`".to_string()
        })?;
        Config::parse(path, &text)
    }

    /// Parses config text; `path` resolves relative paths and names the file in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Config> {
        let raw: RawConfig =
            toml::from_str(text).with_context(|| format!("parsing `{}`", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("")).to_path_buf();
        let base = if base.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base
        };
        // Absolute, so manifests and source fingerprints do not depend on the working
        // directory a run was started from.
        let base = std::path::absolute(&base).unwrap_or(base);
        let resolve = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        let in_file = || format!("in `{}`", path.display());

        let store =
            store_config(&raw.store).map_err(|e| anyhow::anyhow!("{e:#} ({})", in_file()))?;
        let serve =
            serve_limits(&raw.serve).map_err(|e| anyhow::anyhow!("{e:#} ({})", in_file()))?;

        for prefix in raw.storage.keys() {
            if !is_remote_url(prefix) {
                bail!(
                    "storage.\"{prefix}\": not an object-storage URL; expected `s3://bucket`, `gs://bucket`, `az://container` or `https://host` ({})",
                    in_file()
                );
            }
        }
        let sources: Vec<SourceSpec> = raw
            .sources
            .iter()
            .map(|(name, s)| {
                source_spec(name, s, &raw.storage, &resolve)
                    .with_context(|| format!("sources.{name} ({})", in_file()))
            })
            .collect::<Result<_>>()?;

        for (name, features) in &raw.features {
            for source in features.entity_columns.keys() {
                if !raw.sources.contains_key(source) {
                    bail!(
                        "features.{name}.entity_columns: no source `{source}`; defined: {} ({})",
                        names(raw.sources.keys()),
                        in_file()
                    );
                }
            }
        }
        let models: BTreeMap<String, ModelSpec> = raw
            .models
            .iter()
            .map(|(name, m)| {
                (
                    name.clone(),
                    ModelSpec {
                        name: name.clone(),
                        path: resolve(&m.path),
                        inputs: m.inputs.clone(),
                        outputs: m.outputs.clone(),
                    },
                )
            })
            .collect();
        let mut jobs = BTreeMap::new();
        for (name, job) in &raw.jobs {
            if let Some(problem) = presage_store::job_name_problem(name) {
                bail!(
                    "[jobs.{name:?}]: a job name must be non-empty, at most 128 bytes, not start with `.`, and hold no `:`, `/`, `\\`, `{{`, `}}`, whitespace or control character; {problem} ({})",
                    in_file()
                );
            }
            let field = |f: &str| format!("jobs.{name}.{f}");
            let (features, predictor, item) = job_predictor(name, job, &raw, &models)
                .map_err(|e| anyhow::anyhow!("{e:#} ({})", in_file()))?;
            let max_age = job
                .max_age
                .as_deref()
                .map(|text| {
                    parse_duration(text)
                        .with_context(|| format!("{} ({})", field("max_age"), in_file()))
                })
                .transpose()?;
            if job.on_stale == OnStale::Default && job.default.is_none() {
                bail!(
                    "{}: `default` answers stale keys with the job's default, but `{}` is not set ({})",
                    field("on_stale"),
                    field("default"),
                    in_file()
                );
            }
            if job.on_stale != OnStale::Serve && max_age.is_none() {
                bail!(
                    "{}: needs `{}`: without it no answer is ever stale ({})",
                    field("on_stale"),
                    field("max_age"),
                    in_file()
                );
            }
            if job.keep_versions == 0 {
                bail!(
                    "{}: must be at least 1 ({})",
                    field("keep_versions"),
                    in_file()
                );
            }
            for (check, value) in [
                ("max_row_change", job.checks.max_row_change),
                ("max_null_fraction", job.checks.max_null_fraction),
                ("max_psi", job.checks.max_psi),
            ] {
                if let Some(v) = value
                    && ((v.is_nan() || v < 0.0) || (check == "max_null_fraction" && v > 1.0))
                {
                    bail!(
                        "{}: `{v}` is out of range; expected {} ({})",
                        field(&format!("checks.{check}")),
                        if check == "max_null_fraction" {
                            "0.0 to 1.0"
                        } else {
                            "0.0 or more"
                        },
                        in_file()
                    );
                }
            }
            let ranked = ranked_spec(name, job, &features, item)
                .map_err(|e| anyhow::anyhow!("{e:#} ({})", in_file()))?;
            let spec = JobSpec {
                name: name.clone(),
                features,
                predictor,
                sources: sources.clone(),
                keep_versions: job.keep_versions,
                keep_blocked: job.keep_blocked,
                checks: Checks {
                    min_rows: job.checks.min_rows,
                    max_row_change: job.checks.max_row_change,
                    max_null_fraction: job.checks.max_null_fraction,
                    max_psi: job.checks.max_psi,
                    expected_keys: job.checks.expected_keys.clone(),
                },
                ranked,
                export: job.export.as_ref().map(|destination| ExportSpec {
                    destination: if is_remote_url(destination) {
                        destination.clone()
                    } else {
                        resolve(Path::new(destination)).display().to_string()
                    },
                    storage: storage_options(destination, &raw.storage),
                }),
            };
            let serve = ServeJob {
                name: name.clone(),
                max_age,
                default: job.default.clone(),
                on_stale: job.on_stale,
            };
            let refresh_every = job
                .refresh_every
                .as_deref()
                .map(|text| {
                    parse_duration(text)
                        .with_context(|| format!("{} ({})", field("refresh_every"), in_file()))
                })
                .transpose()?;
            if refresh_every.is_some_and(|d| d.is_zero()) {
                bail!(
                    "{}: must be longer than 0 ({})",
                    field("refresh_every"),
                    in_file()
                );
            }
            jobs.insert(
                name.clone(),
                JobConfig {
                    spec,
                    serve,
                    refresh_every,
                },
            );
        }
        if !(raw.lookup_log_sample > 0.0 && raw.lookup_log_sample <= 1.0) {
            bail!(
                "lookup_log_sample: {} is not a fraction in (0, 1] ({})",
                raw.lookup_log_sample,
                in_file()
            );
        }
        let memory_limit = raw
            .run
            .memory_limit
            .as_deref()
            .unwrap_or(DEFAULT_MEMORY_LIMIT);
        let limits = QueryLimits {
            memory_limit: parse_memory_limit(memory_limit)
                .with_context(|| format!("run.memory_limit ({})", in_file()))?,
            spill_dir: raw.run.spill_dir.as_deref().map(resolve),
        };
        Ok(Config {
            limits,
            serve,
            path: path.to_path_buf(),
            models,
            data_dir: resolve(&raw.data_dir),
            store,
            lookup_log: raw.lookup_log.as_deref().map(resolve),
            lookup_log_sample: raw.lookup_log_sample,
            jobs,
        })
    }

    /// The store the config publishes to; connects to Redis (an unreachable server
    /// is an error naming its URL).
    pub async fn store(&self) -> Result<Store> {
        Ok(match &self.store {
            StoreConfig::Embedded => Store::embedded(&self.data_dir),
            StoreConfig::Redis {
                urls,
                namespace,
                lease,
            } => {
                let options = RedisOptions {
                    namespace: namespace.clone(),
                    lease: *lease,
                    ..RedisOptions::default()
                };
                Store::redis(urls, options).await?
            }
        })
    }

    /// The embedded store under `data_dir` (the quickstart's).
    pub fn embedded_store(&self) -> EmbeddedStore {
        EmbeddedStore::new(&self.data_dir)
    }

    /// A job by name, or an error listing the jobs there are.
    pub fn job(&self, name: &str) -> Result<&JobConfig> {
        self.jobs.get(name).with_context(|| {
            format!(
                "unknown job `{name}`; `{}` defines: {}",
                self.path.display(),
                names(self.jobs.keys())
            )
        })
    }
}

/// A job's feature query and what makes its predictions: `features` + `model`, or a
/// `predictions` source read as it is.
fn job_predictor(
    name: &str,
    job: &RawJob,
    raw: &RawConfig,
    models: &BTreeMap<String, ModelSpec>,
) -> Result<(FeatureSpec, Predictor, Option<String>)> {
    let field = |f: &str| format!("jobs.{name}.{f}");
    if let Some(source) = &job.predictions {
        if job.features.is_some() || job.model.is_some() {
            bail!(
                "{}: a job either scores (`features` + `model`) or imports predictions (`predictions`), not both",
                field("predictions")
            );
        }
        if !raw.sources.contains_key(source) {
            bail!(
                "{}: no source `{source}`; defined: {}",
                field("predictions"),
                names(raw.sources.keys())
            );
        }
        let key = job.key.clone().with_context(|| {
            format!(
                "{}: needs `{}`, the column of `{source}` naming the entity",
                field("predictions"),
                field("key")
            )
        })?;
        if job.item.is_some() != job.score.is_some() {
            bail!(
                "{}: a ranked list of imported predictions needs both `item` and `score` columns",
                field("item")
            );
        }
        let predictor = Predictor::Imported(ImportedPredictions {
            source: source.clone(),
            columns: job.columns.clone().unwrap_or_default(),
            as_of_column: job.features_as_of.clone(),
            score: job.score.clone(),
        });
        let features = FeatureSpec {
            name: source.clone(),
            key,
            sql: format!("SELECT * FROM \"{}\"", source.replace('"', "\"\"")),
            entity_columns: BTreeMap::new(),
        };
        return Ok((features, predictor, job.item.clone()));
    }
    for (f, set) in [
        ("key", job.key.is_some()),
        ("item", job.item.is_some()),
        ("score", job.score.is_some()),
        ("columns", job.columns.is_some()),
        ("features_as_of", job.features_as_of.is_some()),
    ] {
        if set {
            bail!(
                "{}: belongs to jobs that import predictions (`predictions = \"SOURCE\"`)",
                field(f)
            );
        }
    }
    let (Some(features_name), Some(model_name)) = (&job.features, &job.model) else {
        bail!(
            "jobs.{name}: needs `features` and `model` (score with a model), or `predictions` (a source holding predictions computed elsewhere)"
        );
    };
    let features = raw.features.get(features_name).with_context(|| {
        format!(
            "{}: no feature set `{features_name}`; defined: {}",
            field("features"),
            names(raw.features.keys()),
        )
    })?;
    let model = models.get(model_name).with_context(|| {
        format!(
            "{}: no model `{model_name}`; defined: {}",
            field("model"),
            names(raw.models.keys()),
        )
    })?;
    let spec = FeatureSpec {
        name: features_name.clone(),
        key: features.key.clone(),
        sql: features.sql.clone(),
        entity_columns: features.entity_columns.clone(),
    };
    Ok((spec, Predictor::Model(model.clone()), features.item.clone()))
}

/// The ranked-list settings of a job whose rows are candidates (an `item` column in
/// its feature set, or in its imported predictions).
fn ranked_spec(
    name: &str,
    job: &RawJob,
    features: &FeatureSpec,
    item: Option<String>,
) -> Result<Option<RankedSpec>> {
    let field = |f: &str| format!("jobs.{name}.{f}");
    let item_from = if job.predictions.is_some() {
        format!("source `{}`", features.name)
    } else {
        format!("feature set `{}`", features.name)
    };
    Ok(match (item, job.top_k) {
        (None, None) => None,
        (Some(item), Some(top_k)) if (1..=MAX_TOP_K).contains(&top_k) => {
            Some(RankedSpec { item, top_k })
        }
        (Some(_), Some(top_k)) => bail!(
            "{}: `{top_k}` is out of range; expected 1 to {MAX_TOP_K}",
            field("top_k"),
        ),
        (None, Some(_)) => bail!(
            "{}: a ranked-list job needs candidate rows, but {item_from} has no `item` column; set `features.{}.item` (or `item` and `score` beside `predictions`)",
            field("top_k"),
            features.name,
        ),
        (Some(item), None) => bail!(
            "{}: {item_from} yields candidate rows (`item = \"{item}\"`), so the job ranks them: set `{}` to the number of items to keep per `{}`",
            field("top_k"),
            field("top_k"),
            features.key,
        ),
    })
}

/// One `[sources.NAME]` table as the source it describes.
fn source_spec(
    name: &str,
    raw: &RawSource,
    storage: &BTreeMap<String, RawStorage>,
    resolve: &dyn Fn(&Path) -> PathBuf,
) -> Result<SourceSpec> {
    let partitions = raw
        .partition_columns
        .iter()
        .map(|(column, type_name)| {
            PartitionColumn::parse(column, type_name).map_err(|e| anyhow::anyhow!("{e}"))
        })
        .collect::<Result<Vec<_>>>()?;
    let connection = match (&raw.postgres, &raw.postgres_env) {
        (Some(_), Some(_)) => bail!("set `postgres` or `postgres_env`, not both"),
        (Some(url), None) => Some(PostgresConnection::Url(url.clone())),
        (None, Some(var)) => Some(PostgresConnection::Env(var.clone())),
        (None, None) => None,
    };
    if let Some(connection) = connection {
        if raw.path.is_some() || raw.format.is_some() || !partitions.is_empty() {
            bail!(
                "a Postgres source takes `table` or `query`, not `path`, `format` or `partition_columns`"
            );
        }
        let relation = match (&raw.table, &raw.query) {
            (Some(table), None) => PostgresRelation::Table(table.clone()),
            (None, Some(query)) => PostgresRelation::Query(query.clone()),
            _ => bail!(
                "a Postgres source needs one of `table = \"schema.table\"` or `query = \"SELECT …\"`"
            ),
        };
        return Ok(SourceSpec::new(
            name,
            PostgresSource::new(connection, relation),
        ));
    }
    if raw.table.is_some() || raw.query.is_some() {
        bail!(
            "`table` and `query` belong to Postgres sources; set `postgres` or `postgres_env` too"
        );
    }
    let Some(path) = &raw.path else {
        bail!("needs `path` (a file, folder, glob or object-storage URL) or `postgres`");
    };
    if is_remote_url(path) {
        let storage = storage_options(path, storage);
        return Ok(SourceSpec::new(
            name,
            ObjectSource::new(path, raw.format)
                .with_partitions(partitions)
                .with_storage(storage),
        ));
    }
    Ok(SourceSpec::new(
        name,
        FileSource::new(resolve(Path::new(path)), raw.format).with_partitions(partitions),
    ))
}

/// The settings of the longest `[storage."…"]` prefix of `url`, if any.
fn storage_options(url: &str, storage: &BTreeMap<String, RawStorage>) -> StorageOptions {
    let covers = |prefix: &str| {
        let prefix = prefix.trim_end_matches('/');
        url == prefix || url.starts_with(&format!("{prefix}/"))
    };
    let Some((_, raw)) = storage
        .iter()
        .filter(|(prefix, _)| covers(prefix))
        .max_by_key(|(prefix, _)| prefix.len())
    else {
        return StorageOptions::default();
    };
    StorageOptions {
        endpoint: raw.endpoint.clone(),
        region: raw.region.clone(),
        allow_http: raw.allow_http,
        options: raw.options.clone(),
        options_env: raw.env.clone(),
    }
}

/// A memory limit: `6GB`, `512MB`, `1.5GiB`, a share of the machine's memory
/// (`50%`), or `none`. Decimal units are powers of 1000 (`GB`), binary ones of 1024
/// (`GiB`), as in DuckDB's `memory_limit`.
pub fn parse_memory_limit(text: &str) -> Result<Option<u64>> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let expected = "expected a size such as `6GB`, `512MB` or `1.5GiB`, a share of the machine's memory such as `50%`, or `none`";
    if let Some(percent) = text.strip_suffix('%') {
        let share: f64 = percent
            .trim()
            .parse()
            .ok()
            .filter(|p: &f64| *p > 0.0 && *p <= 100.0)
            .with_context(|| format!("invalid memory limit `{text}`: {expected}"))?;
        let total = physical_memory().with_context(|| {
            format!("memory limit `{text}`: the machine's memory is unknown (no /proc/meminfo); give a size instead")
        })?;
        return Ok(Some((total as f64 * share / 100.0) as u64));
    }
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .with_context(|| format!("invalid memory limit `{text}`: {expected}"))?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => bail!("invalid memory limit `{text}`: unknown unit `{unit}`; {expected}"),
    };
    let bytes = number * scale;
    // Below this DataFusion cannot hold one batch of a join or aggregation.
    if bytes < 16e6 {
        bail!("memory limit `{text}` is too small: at least 16MB");
    }
    Ok(Some(bytes as u64))
}

/// The machine's memory in bytes (Linux: `MemTotal` of /proc/meminfo).
fn physical_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line
        .trim_start_matches("MemTotal:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

fn names<'a>(keys: impl Iterator<Item = &'a String>) -> String {
    let list: Vec<String> = keys.map(|k| format!("`{k}`")).collect();
    if list.is_empty() {
        "none".to_owned()
    } else {
        list.join(", ")
    }
}

/// Validates `[store]`.
fn store_config(raw: &RawStore) -> Result<StoreConfig> {
    let redis_only = [
        ("url", raw.url.is_some()),
        ("namespace", raw.namespace.is_some()),
        ("lease", raw.lease.is_some()),
    ];
    if raw.kind == StoreKind::Embedded {
        if let Some((name, _)) = redis_only.iter().find(|(_, set)| *set) {
            bail!("store.{name}: only used with `kind = \"redis\"`; the store is embedded");
        }
        return Ok(StoreConfig::Embedded);
    }
    let urls = match &raw.url {
        None => bail!(
            "store.url: required with `kind = \"redis\"`, e.g. `url = \"redis://127.0.0.1:6379\"` or a list of cluster nodes"
        ),
        Some(toml::Value::String(url)) => vec![url.clone()],
        Some(toml::Value::Array(nodes)) if !nodes.is_empty() => nodes
            .iter()
            .map(|node| match node {
                toml::Value::String(url) => Ok(url.clone()),
                other => bail!("store.url: a list of node URLs must hold strings, found `{other}`"),
            })
            .collect::<Result<_>>()?,
        Some(other) => bail!(
            "store.url: expected a URL (`\"redis://host:6379\"`) or a list of cluster node URLs, found `{other}`"
        ),
    };
    // The store's own check: `rediss://` (TLS, not supported yet) fails here, at load.
    for url in &urls {
        RedisStore::check_url(url).map_err(|e| anyhow::anyhow!("store.url: {e}"))?;
    }
    let namespace = raw
        .namespace
        .clone()
        .unwrap_or_else(|| "presage".to_owned());
    if namespace.is_empty()
        || namespace
            .chars()
            .any(|c| matches!(c, '{' | '}') || c.is_whitespace() || c.is_control())
    {
        bail!("store.namespace: `{namespace}` must be non-empty, without `{{`, `}}` or whitespace");
    }
    let lease = match &raw.lease {
        Some(text) => parse_duration(text).context("store.lease")?,
        None => RedisOptions::default().lease,
    };
    if lease < Duration::from_secs(1) {
        bail!(
            "store.lease: `{}` is too short; at least `1s`",
            raw.lease.as_deref().unwrap_or("")
        );
    }
    Ok(StoreConfig::Redis {
        urls,
        namespace,
        lease,
    })
}

fn serve_limits(raw: &RawServe) -> Result<ServeLimits> {
    let defaults = HttpLimits::default();
    let timeout = |name: &str, text: &Option<String>, default: Duration| -> Result<Duration> {
        let Some(text) = text else {
            return Ok(default);
        };
        let timeout = parse_duration(text).with_context(|| format!("serve.{name}"))?;
        anyhow::ensure!(!timeout.is_zero(), "serve.{name}: must be longer than 0s");
        Ok(timeout)
    };
    let connections = |name: &str, max: Option<usize>, default: usize| -> Result<usize> {
        let max = max.unwrap_or(default);
        anyhow::ensure!(max > 0, "serve.{name}: must be at least 1");
        Ok(max)
    };
    let resp_idle_timeout = match &raw.resp_idle_timeout {
        Some(text) => Some(parse_duration(text).context("serve.resp_idle_timeout")?)
            .filter(|idle| !idle.is_zero()),
        None => None,
    };
    Ok(ServeLimits {
        http: HttpLimits {
            header_read_timeout: timeout(
                "header_read_timeout",
                &raw.header_read_timeout,
                defaults.header_read_timeout,
            )?,
            body_read_timeout: timeout(
                "body_read_timeout",
                &raw.body_read_timeout,
                defaults.body_read_timeout,
            )?,
            max_connections: connections(
                "max_connections",
                raw.max_connections,
                defaults.max_connections,
            )?,
            shutdown_grace: timeout(
                "shutdown_grace",
                &raw.shutdown_grace,
                defaults.shutdown_grace,
            )?,
        },
        resp_max_connections: connections(
            "resp_max_connections",
            raw.resp_max_connections,
            presage_serve::limits::MAX_RESP_CONNECTIONS,
        )?,
        resp_idle_timeout,
    })
}

/// Parses `26h`, `30m`, `7d`, `1h 30m`.
pub fn parse_duration(text: &str) -> Result<Duration> {
    humantime::parse_duration(text.trim())
        .with_context(|| format!("invalid duration `{text}`; examples: `30m`, `26h`, `7d`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_limits_read_decimal_and_binary_units_shares_and_none() {
        assert_eq!(parse_memory_limit("6GB").unwrap(), Some(6_000_000_000));
        assert_eq!(parse_memory_limit("1.5 GiB").unwrap(), Some(1_610_612_736));
        assert_eq!(parse_memory_limit("512MB").unwrap(), Some(512_000_000));
        assert_eq!(parse_memory_limit("100000000").unwrap(), Some(100_000_000));
        assert_eq!(parse_memory_limit("none").unwrap(), None);
        let half = parse_memory_limit("50%").unwrap().unwrap();
        let all = parse_memory_limit("100%").unwrap().unwrap();
        assert!(half > 0 && half.abs_diff(all / 2) <= 1, "{half} of {all}");
    }

    #[test]
    fn bad_memory_limits_say_what_is_accepted() {
        for bad in ["6 gallons", "lots", "0%", "150%", "1MB", ""] {
            let message = format!("{:#}", parse_memory_limit(bad).unwrap_err());
            assert!(
                message.contains("expected a size") || message.contains("too small"),
                "{bad}: {message}"
            );
        }
    }

    #[test]
    fn the_run_table_sets_the_limit_and_the_spill_folder() {
        let config = Config::parse(
            Path::new("/p/presage.toml"),
            "[run]\nmemory_limit = \"2GB\"\nspill_dir = \"spill\"\n",
        )
        .unwrap();
        assert_eq!(config.limits.memory_limit, Some(2_000_000_000));
        assert_eq!(config.limits.spill_dir, Some(PathBuf::from("/p/spill")));
        let error = Config::parse(Path::new("p.toml"), "[run]\nmemory_limit = \"2 parsecs\"\n")
            .unwrap_err();
        assert!(
            format!("{error:#}")
                .starts_with("run.memory_limit (in `p.toml`): invalid memory limit `2 parsecs`"),
            "{error:#}"
        );
    }

    #[test]
    fn the_serve_table_sets_the_limits_on_clients() {
        let config = Config::parse(Path::new("/p/presage.toml"), "").unwrap();
        assert_eq!(config.serve.http, HttpLimits::default());
        assert_eq!(
            config.serve.resp_max_connections,
            presage_serve::limits::MAX_RESP_CONNECTIONS
        );
        assert_eq!(config.serve.resp_idle_timeout, None);

        let config = Config::parse(
            Path::new("/p/presage.toml"),
            "[serve]\nheader_read_timeout = \"2s\"\nbody_read_timeout = \"5s\"\n\
             shutdown_grace = \"1s\"\nmax_connections = 10\nresp_max_connections = 20\n\
             resp_idle_timeout = \"5m\"\n",
        )
        .unwrap();
        let expected = ServeLimits {
            http: HttpLimits {
                header_read_timeout: Duration::from_secs(2),
                body_read_timeout: Duration::from_secs(5),
                max_connections: 10,
                shutdown_grace: Duration::from_secs(1),
            },
            resp_max_connections: 20,
            resp_idle_timeout: Some(Duration::from_secs(300)),
        };
        assert_eq!(config.serve, expected);
        let config =
            Config::parse(Path::new("p.toml"), "[serve]\nresp_idle_timeout = \"0s\"\n").unwrap();
        assert_eq!(config.serve.resp_idle_timeout, None);

        for (bad, message) in [
            (
                "max_connections = 0",
                "serve.max_connections: must be at least 1",
            ),
            (
                "header_read_timeout = \"0s\"",
                "serve.header_read_timeout: must be longer than 0s",
            ),
            (
                "body_read_timeout = \"soon\"",
                "serve.body_read_timeout: invalid duration `soon`",
            ),
        ] {
            let error =
                Config::parse(Path::new("p.toml"), &format!("[serve]\n{bad}\n")).unwrap_err();
            assert!(format!("{error:#}").starts_with(message), "{error:#}");
        }
    }
}

/// Property tests of config parsing: whatever text a user (or a broken editor) puts in
/// `presage.toml`, parsing answers a config or an error naming the file, never a
/// panic. A longer run, not in CI (1,000,000 cases of each took 103 s, 2026-12-07, and
/// found nothing):
///
/// ```sh
/// PROPTEST_CASES=1000000 cargo test --workspace --bins config::fuzz
/// ```
#[cfg(test)]
mod fuzz {
    use std::path::Path;

    use proptest::prelude::*;

    use super::Config;

    /// Keys of every table presage reads, so generated configs reach past the TOML
    /// parser into validation.
    const KEYS: &[&str] = &[
        "data_dir",
        "lookup_log",
        "lookup_log_sample",
        "path",
        "format",
        "partition_columns",
        "postgres",
        "postgres_env",
        "table",
        "query",
        "key",
        "sql",
        "inputs",
        "outputs",
        "features",
        "model",
        "predictions",
        "item",
        "score",
        "columns",
        "features_as_of",
        "export",
        "max_age",
        "keep_versions",
        "keep_blocked",
        "default",
        "on_stale",
        "refresh_every",
        "top_k",
        "min_rows",
        "max_row_change",
        "max_null_fraction",
        "max_psi",
        "expected_keys",
        "url",
        "namespace",
        "memory_limit",
        "spill_dir",
        "endpoint",
        "region",
        "allow_http",
        "max_connections",
        "header_read_timeout",
        "body_read_timeout",
        "resp_max_connections",
        "resp_idle_timeout",
        "shutdown_grace",
    ];

    const TABLES: &[&str] = &[
        "store",
        "run",
        "serve",
        "sources.s",
        "features.f",
        "models.m",
        "jobs.j",
        "jobs.j.checks",
        "jobs.\"../x\"",
        "jobs.\"a:b\"",
        "storage.\"s3://b\"",
    ];

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            any::<f64>()
                .prop_filter("TOML floats", |f| f.is_finite())
                .prop_map(|f| format!("{f:?}")),
            any::<bool>().prop_map(|b| b.to_string()),
            "[ -~]{0,24}".prop_map(|s| format!("{s:?}")),
            prop::sample::select(vec![
                "\"1h\"",
                "\"0s\"",
                "\"-1s\"",
                "\"50%\"",
                "\"none\"",
                "\"redis://127.0.0.1:1\"",
                "\"rediss://h:1\"",
                "\"s3://b/p/*.parquet\"",
                "\"f\"",
                "\"m\"",
                "\"s\"",
                "\"\"",
                "[]",
                "[\"a\", \"b\"]",
                "{}",
                "{ date = \"date\" }",
                "\"SELECT 1\"",
            ])
            .prop_map(str::to_owned),
        ]
    }

    fn line() -> impl Strategy<Value = String> {
        (prop::sample::select(KEYS), value()).prop_map(|(k, v)| format!("{k} = {v}\n"))
    }

    fn config_text() -> impl Strategy<Value = String> {
        let table = (
            prop::sample::select(TABLES),
            prop::collection::vec(line(), 0..6),
        )
            .prop_map(|(name, lines)| format!("[{name}]\n{}", lines.concat()));
        (
            prop::collection::vec(line(), 0..3),
            prop::collection::vec(table, 0..8),
        )
            .prop_map(|(top, tables)| format!("{}{}", top.concat(), tables.concat()))
    }

    proptest! {
        #[test]
        fn arbitrary_text_is_a_config_or_an_error(text in "\\PC{0,400}") {
            let _ = Config::parse(Path::new("/nowhere/presage.toml"), &text);
        }

        #[test]
        fn configs_of_known_keys_are_a_config_or_an_error_naming_the_file(text in config_text()) {
            if let Err(error) = Config::parse(Path::new("/nowhere/presage.toml"), &text) {
                let message = format!("{error:#}");
                prop_assert!(message.contains("/nowhere/presage.toml"), "{}", message);
            }
        }
    }
}
