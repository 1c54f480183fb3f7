use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use presage_store::{OpenVersion, Store, VersionId};

use crate::answer::OnStale;
use crate::lookup_log::LookupLog;
use crate::metrics::{JobCounters, Latency};

/// How a job is served: from the config.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeJob {
    /// The job's name.
    pub name: String,
    /// Answers from a version older than this are `stale`.
    pub max_age: Option<Duration>,
    /// The prediction for unknown keys (answered with `status: "default"`); 404 when `None`.
    pub default: Option<serde_json::Map<String, serde_json::Value>>,
    /// What to answer from a version older than `max_age`.
    pub on_stale: OnStale,
}

/// A job's served version and what the watcher found.
pub(crate) struct JobSlot {
    pub(crate) spec: ServeJob,
    pub(crate) current: ArcSwapOption<OpenVersion>,
    /// Answers, swaps and refused loads, for `/metrics`.
    pub(crate) counters: JobCounters,
    /// Whether the job serves its current version, and why not.
    pub(crate) health: Mutex<JobHealth>,
}

/// What the watcher last found for a job.
#[derive(Debug, Default)]
pub(crate) struct JobHealth {
    /// Why the job is not ready (`/readyz`); `None` when it serves its current
    /// version. Empty until the watcher first looks.
    pub(crate) problem: Option<String>,
    /// The version that last failed to open, and when to try it again.
    pub(crate) refused: Option<Refusal>,
    /// The last line logged, so a lasting problem is logged once.
    pub(crate) last_logged: Option<String>,
}

/// A version that failed to open (a checksum, a file still arriving).
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) id: VersionId,
    /// The store's fingerprint of it when it failed: a change retries at once.
    pub(crate) fingerprint: Option<u64>,
    pub(crate) attempts: u32,
    pub(crate) retry_at: std::time::Instant,
}

/// Everything handlers share.
pub struct AppState {
    pub(crate) store: Store,
    pub(crate) jobs: BTreeMap<String, JobSlot>,
    pub(crate) admin_token: Option<String>,
    /// Lookup latency, for `/metrics`.
    pub(crate) latency: Latency,
    pub(crate) lookup_log: std::sync::OnceLock<LookupLog>,
}

impl AppState {
    /// The store versions are served from.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// State for serving `jobs` from `store`. Rollback over HTTP needs `admin_token`.
    pub fn new(store: Store, jobs: Vec<ServeJob>, admin_token: Option<String>) -> Arc<AppState> {
        let jobs = jobs
            .into_iter()
            .map(|spec| {
                (
                    spec.name.clone(),
                    JobSlot {
                        spec,
                        current: ArcSwapOption::empty(),
                        counters: JobCounters::default(),
                        health: Mutex::new(JobHealth {
                            problem: Some("not loaded yet".to_owned()),
                            ..JobHealth::default()
                        }),
                    },
                )
            })
            .collect();
        Arc::new(AppState {
            store,
            jobs,
            admin_token,
            latency: Latency::new(),
            lookup_log: std::sync::OnceLock::new(),
        })
    }

    /// Logs a sample of answers from now on (`presage serve --lookup-log`); only the
    /// first log set is kept.
    pub fn set_lookup_log(&self, log: LookupLog) {
        let _ = self.lookup_log.set(log);
    }

    /// Writes what the lookup log holds, if there is one; see [`LookupLog::flush`].
    pub fn flush_lookup_log(&self) {
        if let Some(log) = self.lookup_log.get() {
            log.flush();
        }
    }

    /// Records an answer in the lookup log, if there is one.
    pub(crate) fn log_answer(
        &self,
        job: &str,
        key: &str,
        version: &OpenVersion,
        status: Option<crate::Status>,
        now: chrono::DateTime<chrono::Utc>,
    ) {
        if let (Some(log), Some(status)) = (self.lookup_log.get(), status) {
            let age = (now - version.manifest().aged_from()).num_milliseconds() as f64 / 1000.0;
            log.record(job, key, version.id().0, status, age);
        }
    }

    /// The version a job serves now, if any.
    pub fn current(&self, job: &str) -> Option<Arc<OpenVersion>> {
        self.jobs.get(job)?.current.load_full()
    }

    /// Why each job that is not ready is not: it serves no version, its pointer
    /// cannot be read, or its current version was refused. Empty when every job
    /// serves its current version.
    pub fn not_ready(&self) -> BTreeMap<String, String> {
        self.jobs
            .iter()
            .filter_map(|(name, slot)| {
                let health = slot.health.lock().expect("health lock");
                Some((name.clone(), health.problem.clone()?))
            })
            .collect()
    }
}
