//! Prometheus metrics: counted in atomics on the request path, written at scrape time
//! by `prometheus-client` (text format 0.0.4), which writes each family's HELP and
//! TYPE and escapes label values.
//!
//! The counters stay plain atomics in the server's own state rather than
//! `prometheus-client` metrics: its `Family` takes a lock per labelled lookup and its
//! `Histogram` a mutex per observation, and the Redis-protocol endpoint answers
//! millions of lookups a second on several threads. A scrape copies the atomics into a
//! `Scrape` and encodes that through a `prometheus-client` collector.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use presage_store::{Freshness, LastRun, RunOutcomeKind, Staleness};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::answer::Status;
use crate::state::AppState;

/// The `Content-Type` of what [`render`] writes.
pub(crate) const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Upper bounds (seconds) of the lookup latency histogram buckets.
const BUCKETS: [f64; 12] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.1,
];

/// Counters of one job, kept in its slot so that counting an answer is one atomic
/// add, without a map lookup, a lock or an allocation.
#[derive(Default)]
pub(crate) struct JobCounters {
    fresh: AtomicU64,
    stale: AtomicU64,
    default: AtomicU64,
    miss: AtomicU64,
    pub(crate) swaps: AtomicU64,
    pub(crate) load_failures: AtomicU64,
}

impl JobCounters {
    /// Counts one answered key: by its status, or as a miss.
    pub(crate) fn count(&self, status: Option<Status>) {
        let counter = match status {
            Some(Status::Fresh) => &self.fresh,
            Some(Status::Stale) => &self.stale,
            Some(Status::Default) => &self.default,
            None => &self.miss,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// How long lookups take inside the server: one observation per HTTP request and
/// per Redis-protocol command, whatever its number of keys.
pub(crate) struct Latency {
    /// Observations per bucket (not cumulative); those above the last bound are only
    /// in `count`.
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Latency {
    pub(crate) fn new() -> Latency {
        Latency {
            buckets: Default::default(),
            count: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
        }
    }

    pub(crate) fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|&b| secs <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_nanos
            .fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
    }
}

/// Every metric in the Prometheus text format, at `now`; `last_runs` are the jobs'
/// last recorded runs (read from the store by the caller, which may fail).
pub(crate) fn render(
    state: &AppState,
    last_runs: &[(String, LastRun)],
    now: DateTime<Utc>,
) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape::of(state, last_runs, now)));
    let mut out = String::with_capacity(4096);
    prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
        .expect("writing to a String");
    out
}

/// The values of one scrape, copied out of the server's state.
#[derive(Debug)]
struct Scrape {
    jobs: Vec<JobScrape>,
    latency_buckets: Vec<(f64, u64)>,
    latency_count: u64,
    latency_sum_seconds: f64,
}

#[derive(Debug)]
struct JobScrape {
    job: String,
    lookups: [(&'static str, u64); 4],
    swaps: u64,
    load_failures: u64,
    version: Option<VersionScrape>,
    last_run: Option<(RunOutcomeKind, DateTime<Utc>)>,
    /// Whether the last run's export succeeded, for jobs that export.
    export_ok: Option<bool>,
}

/// The version a job serves.
#[derive(Debug)]
struct VersionScrape {
    id: u64,
    rows: u64,
    age_seconds: f64,
    stale: bool,
    run_seconds: f64,
}

impl Scrape {
    fn of(state: &AppState, last_runs: &[(String, LastRun)], now: DateTime<Utc>) -> Scrape {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let jobs = state
            .jobs
            .iter()
            .map(|(job, slot)| {
                let c = &slot.counters;
                let version = slot.current.load().as_ref().map(|version| {
                    let manifest = version.manifest();
                    let staleness = Staleness::at(manifest.aged_from(), slot.spec.max_age, now);
                    VersionScrape {
                        id: manifest.id.0,
                        rows: manifest.rows,
                        age_seconds: staleness.age_seconds,
                        stale: staleness.freshness == Freshness::Stale,
                        run_seconds: manifest.run_seconds,
                    }
                });
                JobScrape {
                    job: job.clone(),
                    lookups: [
                        ("fresh", load(&c.fresh)),
                        ("stale", load(&c.stale)),
                        ("default", load(&c.default)),
                        ("miss", load(&c.miss)),
                    ],
                    swaps: load(&c.swaps),
                    load_failures: load(&c.load_failures),
                    version,
                    last_run: last_runs
                        .iter()
                        .find(|(name, _)| name == job)
                        .map(|(_, run)| (run.outcome, run.finished_at)),
                    export_ok: last_runs
                        .iter()
                        .find(|(name, _)| name == job)
                        .and_then(|(_, run)| run.export.as_ref())
                        .map(|export| export.error.is_none()),
                }
            })
            .collect();
        let latency = &state.latency;
        Scrape {
            jobs,
            latency_buckets: BUCKETS
                .iter()
                .zip(&latency.buckets)
                .map(|(&bound, count)| (bound, load(count)))
                .collect(),
            latency_count: load(&latency.count),
            latency_sum_seconds: load(&latency.sum_nanos) as f64 / 1e9,
        }
    }

    /// One gauge family labelled by job, from the jobs `value` gives a value for.
    fn job_gauge<V: EncodeGaugeValue>(
        &self,
        encoder: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        value: impl Fn(&JobScrape) -> Option<V>,
    ) -> fmt::Result {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for job in &self.jobs {
            if let Some(value) = value(job) {
                family
                    .encode_family(&[("job", job.job.as_str())])?
                    .encode_gauge(&value)?;
            }
        }
        Ok(())
    }

    /// One counter family labelled by job.
    fn job_counter(
        &self,
        encoder: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        value: impl Fn(&JobScrape) -> u64,
    ) -> fmt::Result {
        // The encoder appends `_total` to a counter's name.
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        for job in &self.jobs {
            family
                .encode_family(&[("job", job.job.as_str())])?
                .encode_counter::<NoLabelSet, _, u64>(&value(job), None)?;
        }
        Ok(())
    }
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let mut lookups = encoder.encode_descriptor(
            "presage_lookups",
            "Answered keys by job and status (fresh, stale, default, miss); a batchGet or MGET of n keys counts n.",
            None,
            MetricType::Counter,
        )?;
        for job in &self.jobs {
            for (status, count) in &job.lookups {
                lookups
                    .encode_family(&[("job", job.job.as_str()), ("status", status)])?
                    .encode_counter::<NoLabelSet, _, u64>(count, None)?;
            }
        }
        self.job_counter(
            &mut encoder,
            "presage_version_swaps",
            "Versions swapped in by the server.",
            |j| j.swaps,
        )?;
        self.job_counter(
            &mut encoder,
            "presage_version_load_failures",
            "Versions refused at load (checksums, unreadable).",
            |j| j.load_failures,
        )?;
        self.job_gauge(
            &mut encoder,
            "presage_version_id",
            "Version the server answers from.",
            |j| j.version.as_ref().map(|v| v.id),
        )?;
        self.job_gauge(
            &mut encoder,
            "presage_version_rows",
            "Predictions (keys) in the version served.",
            |j| j.version.as_ref().map(|v| v.rows),
        )?;
        self.job_gauge(
            &mut encoder,
            "presage_version_age_seconds",
            "Seconds since the version served was computed.",
            |j| j.version.as_ref().map(|v| v.age_seconds),
        )?;
        self.job_gauge(
            &mut encoder,
            "presage_version_stale",
            "1 when the version served is older than the job's max_age, else 0.",
            |j| j.version.as_ref().map(|v| u64::from(v.stale)),
        )?;
        self.job_gauge(
            &mut encoder,
            "presage_last_run_seconds",
            "Seconds the run that computed the version served took.",
            |j| j.version.as_ref().map(|v| v.run_seconds),
        )?;
        self.job_gauge(
            &mut encoder,
            "presage_last_run_rows_per_second",
            "Rows per second of the run that computed the version served.",
            |j| {
                let v = j.version.as_ref()?;
                (v.run_seconds > 0.0).then(|| (v.rows as f64 / v.run_seconds).round())
            },
        )?;
        let mut outcome = encoder.encode_descriptor(
            "presage_last_run_outcome",
            "1 for how the job's last recorded run ended (published, blocked, failed).",
            None,
            MetricType::Gauge,
        )?;
        for job in &self.jobs {
            if let Some((kind, _)) = job.last_run {
                outcome
                    .encode_family(&[("job", job.job.as_str()), ("outcome", outcome_label(kind))])?
                    .encode_gauge(&1u64)?;
            }
        }
        self.job_gauge(
            &mut encoder,
            "presage_last_export_ok",
            "1 if the last run copied its version to the job's `export` destination, 0 if that failed (the version stays published); absent for jobs without `export`.",
            |j| j.export_ok.map(|ok| if ok { 1.0 } else { 0.0 }),
        )?;
        self.job_gauge(
            &mut encoder,
            "presage_last_run_finished_seconds",
            "When the job's last recorded run ended, in seconds since the Unix epoch.",
            |j| {
                j.last_run
                    .map(|(_, at)| at.timestamp_millis() as f64 / 1000.0)
            },
        )?;
        let mut latency = encoder.encode_descriptor(
            "presage_lookup_seconds",
            "Time to answer lookups inside the server: one observation per HTTP request (a prediction or a batchGet) and per Redis-protocol command (GET or MGET), whatever its number of keys.",
            None,
            MetricType::Histogram,
        )?;
        latency.encode_histogram::<NoLabelSet>(
            self.latency_sum_seconds,
            self.latency_count,
            &self.latency_buckets,
            None,
        )
    }
}

fn outcome_label(kind: RunOutcomeKind) -> &'static str {
    match kind {
        RunOutcomeKind::Published => "published",
        RunOutcomeKind::Blocked => "blocked",
        RunOutcomeKind::Failed => "failed",
    }
}
