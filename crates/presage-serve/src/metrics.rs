//! Prometheus text metrics, kept in atomics on the request path.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use presage_store::{LastRun, Staleness};

use crate::state::AppState;

/// Upper bounds (seconds) of the lookup latency histogram buckets.
const BUCKETS: [f64; 12] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.1,
];

/// Counters of one job.
#[derive(Default)]
pub(crate) struct JobMetrics {
    pub(crate) fresh: AtomicU64,
    pub(crate) stale: AtomicU64,
    pub(crate) default: AtomicU64,
    pub(crate) miss: AtomicU64,
    pub(crate) swaps: AtomicU64,
    pub(crate) swap_failures: AtomicU64,
}

pub(crate) struct Metrics {
    jobs: BTreeMap<String, JobMetrics>,
    buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_nanos: AtomicU64,
}

impl Metrics {
    pub(crate) fn new(jobs: impl Iterator<Item = String>) -> Metrics {
        Metrics {
            jobs: jobs.map(|j| (j, JobMetrics::default())).collect(),
            buckets: Default::default(),
            latency_count: AtomicU64::new(0),
            latency_sum_nanos: AtomicU64::new(0),
        }
    }

    pub(crate) fn job(&self, job: &str) -> &JobMetrics {
        &self.jobs[job]
    }

    pub(crate) fn observe_latency(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|&b| secs <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_nanos
            .fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
    }
}

/// Renders every metric in the Prometheus text format.
pub(crate) fn render(state: &AppState, last_runs: &[(String, LastRun)]) -> String {
    let m = &state.metrics;
    let mut out = String::with_capacity(4096);
    let now = Utc::now();
    out.push_str("# HELP presage_lookups_total Answered lookups by job and status.\n# TYPE presage_lookups_total counter\n");
    for (job, j) in &m.jobs {
        for (status, counter) in [
            ("fresh", &j.fresh),
            ("stale", &j.stale),
            ("default", &j.default),
            ("miss", &j.miss),
        ] {
            let _ = writeln!(
                out,
                "presage_lookups_total{{job=\"{job}\",status=\"{status}\"}} {}",
                counter.load(Ordering::Relaxed)
            );
        }
    }
    out.push_str("# HELP presage_version_swaps_total Versions swapped in by the server.\n# TYPE presage_version_swaps_total counter\n");
    for (job, j) in &m.jobs {
        let _ = writeln!(
            out,
            "presage_version_swaps_total{{job=\"{job}\"}} {}",
            j.swaps.load(Ordering::Relaxed)
        );
    }
    out.push_str("# HELP presage_version_load_failures_total Versions refused at load (checksums, unreadable).\n# TYPE presage_version_load_failures_total counter\n");
    for (job, j) in &m.jobs {
        let _ = writeln!(
            out,
            "presage_version_load_failures_total{{job=\"{job}\"}} {}",
            j.swap_failures.load(Ordering::Relaxed)
        );
    }
    let mut gauges = String::new();
    for (job, slot) in &state.jobs {
        if let Some(version) = slot.current.load().as_ref() {
            let manifest = version.manifest();
            let staleness = Staleness::at(manifest.created_at, slot.spec.max_age, now);
            let _ = writeln!(
                gauges,
                "presage_version_id{{job=\"{job}\"}} {}",
                manifest.id
            );
            let _ = writeln!(
                gauges,
                "presage_version_rows{{job=\"{job}\"}} {}",
                manifest.rows
            );
            let _ = writeln!(
                gauges,
                "presage_version_age_seconds{{job=\"{job}\"}} {:.3}",
                staleness.age_seconds
            );
            let _ = writeln!(
                gauges,
                "presage_version_stale{{job=\"{job}\"}} {}",
                u8::from(staleness.freshness == presage_store::Freshness::Stale)
            );
            let _ = writeln!(
                gauges,
                "presage_last_run_seconds{{job=\"{job}\"}} {:.3}",
                manifest.run_seconds
            );
            if manifest.run_seconds > 0.0 {
                let _ = writeln!(
                    gauges,
                    "presage_last_run_rows_per_second{{job=\"{job}\"}} {:.0}",
                    manifest.rows as f64 / manifest.run_seconds
                );
            }
        }
    }
    for (job, run) in last_runs {
        {
            let outcome = serde_json::to_value(run.outcome)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let _ = writeln!(
                gauges,
                "presage_last_run_outcome{{job=\"{job}\",outcome=\"{outcome}\"}} 1"
            );
            let _ = writeln!(
                gauges,
                "presage_last_run_finished_seconds{{job=\"{job}\"}} {:.3}",
                run.finished_at.timestamp_millis() as f64 / 1000.0
            );
        }
    }
    out.push_str("# HELP presage_version_id Version served per job; also rows, age, stale, last run.\n# TYPE presage_version_id gauge\n");
    out.push_str(&gauges);
    out.push_str("# HELP presage_lookup_seconds Time to answer a lookup, inside the server.\n# TYPE presage_lookup_seconds histogram\n");
    let mut cumulative = 0;
    for (bound, bucket) in BUCKETS.iter().zip(&m.buckets) {
        cumulative += bucket.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "presage_lookup_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
        );
    }
    let count = m.latency_count.load(Ordering::Relaxed);
    let _ = writeln!(out, "presage_lookup_seconds_bucket{{le=\"+Inf\"}} {count}");
    let _ = writeln!(
        out,
        "presage_lookup_seconds_sum {:.9}",
        m.latency_sum_nanos.load(Ordering::Relaxed) as f64 / 1e9
    );
    let _ = writeln!(out, "presage_lookup_seconds_count {count}");
    out
}
