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

/// A job's served version and what the watcher last failed to load.
pub(crate) struct JobSlot {
    pub(crate) spec: ServeJob,
    pub(crate) current: ArcSwapOption<OpenVersion>,
    /// Answers, swaps and refused loads, for `/metrics`.
    pub(crate) counters: JobCounters,
    /// A version that failed to load (checksums), so it is not retried every poll.
    pub(crate) rejected: Mutex<Option<VersionId>>,
    /// The last error reading the job's pointer (a Redis outage), so it is logged
    /// once, not at every poll.
    pub(crate) last_error: Mutex<Option<String>>,
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
                        rejected: Mutex::new(None),
                        last_error: Mutex::new(None),
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
            let age = (now - version.manifest().created_at).num_milliseconds() as f64 / 1000.0;
            log.record(job, key, version.id().0, status, age);
        }
    }

    /// The version a job serves now, if any.
    pub fn current(&self, job: &str) -> Option<Arc<OpenVersion>> {
        self.jobs.get(job)?.current.load_full()
    }

    /// True when every job that has a published version has it loaded, and at least
    /// one job is loaded.
    pub async fn ready(&self) -> bool {
        let mut any = false;
        for (name, slot) in &self.jobs {
            let published = self.store.current(name).await;
            let loaded = slot.current.load();
            match (published, loaded.as_ref()) {
                (Ok(Some(_)), None) => return false,
                (_, Some(_)) => any = true,
                _ => {}
            }
        }
        any
    }
}
