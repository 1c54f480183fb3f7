use std::sync::Arc;
use std::time::{Duration, Instant};

use presage_store::{OpenVersion, StoreError, StoreErrorKind, VersionId};

use crate::ApiError;

use crate::state::{AppState, JobHealth, JobSlot, Refusal};

/// The first retry of a refused version comes after this, then twice as long each
/// time up to [`MAX_RETRY`]; a change of the version's files retries at once.
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(60);

/// Loads every job's current version where it changed. Returns one line per
/// change or failure (for logs). Opening an embedded version (checksums) runs on
/// the blocking pool; a Redis version is its manifest.
///
/// A version that fails to open is refused and retried with backoff, and at once
/// when its files change. While a job's pointer cannot be read or its version is
/// refused, the job keeps the version it serves; a job serving nothing (a restart)
/// falls back to its newest version that opens. Either way `/readyz` says why.
pub async fn reload_all(state: &AppState) -> Vec<String> {
    let mut events = Vec::new();
    for (name, slot) in &state.jobs {
        let problem = reload_job(state, name, slot).await;
        let mut health = slot.health.lock().expect("health lock");
        // A lasting problem is logged once, when it starts or changes.
        if let Some(event) = problem.log
            && health.last_logged.as_deref() != Some(event.as_str())
        {
            health.last_logged = Some(event.clone());
            events.push(event);
        }
        if problem.not_ready.is_none() {
            health.last_logged = None;
        }
        health.problem = problem.not_ready;
    }
    events
}

/// What one look at a job found.
struct Outcome {
    /// A line for the log (a swap, a refusal, an unreadable pointer).
    log: Option<String>,
    /// Why the job is not ready, `None` when it serves its current version.
    not_ready: Option<String>,
}

impl Outcome {
    fn ready(log: Option<String>) -> Outcome {
        Outcome {
            log,
            not_ready: None,
        }
    }

    fn not_ready(log: Option<String>, why: String) -> Outcome {
        Outcome {
            log,
            not_ready: Some(why),
        }
    }
}

/// A store error for the log (whole) and for clients (without the store's paths,
/// servers or keys, as [`ApiError`] answers it).
fn described(e: StoreError) -> (String, String) {
    let detail = e.to_string();
    (detail, ApiError::from(e).to_string())
}

async fn reload_job(state: &AppState, name: &str, slot: &JobSlot) -> Outcome {
    let loaded = slot.current.load().as_ref().map(|v| v.id());
    let wanted = match state.store.current(name).await {
        Ok(Some(wanted)) => wanted,
        Ok(None) if loaded.is_some() => {
            // The pointer is gone (a deleted `CURRENT`): keep answering.
            let why = format!("job `{name}`: no current version is published any more");
            return Outcome::not_ready(Some(why.clone()), why);
        }
        Ok(None) => {
            return Outcome::not_ready(None, format!("job `{name}` has no published version yet"));
        }
        Err(e) => {
            let unavailable = e.kind() == StoreErrorKind::Unavailable;
            let (detail, public) = described(e);
            let why = |reason: &str| {
                format!("job `{name}`: the current version cannot be read: {reason}")
            };
            return match loaded {
                Some(id) => Outcome::not_ready(
                    Some(format!("{}; still serving version {id}", why(&detail))),
                    format!("{}; still serving version {id}", why(&public)),
                ),
                // Without a pointer, serve the newest version that opens (a garbage
                // `CURRENT` must not take the job out), unless the store is down.
                None if !unavailable => {
                    fall_back(state, name, slot, None, (why(&detail), why(&public))).await
                }
                None => Outcome::not_ready(Some(why(&detail)), why(&public)),
            };
        }
    };
    if loaded == Some(wanted) {
        slot.health.lock().expect("health lock").refused = None;
        return Outcome::ready(None);
    }
    let fingerprint = state.store.fingerprint(name, wanted).await;
    if let Some(refused) = waiting_refusal(&slot.health, wanted, fingerprint) {
        return Outcome::not_ready(None, refused);
    }
    match state.store.open(name, wanted).await {
        Ok(version) => {
            slot.health.lock().expect("health lock").refused = None;
            swap_in(slot, version);
            Outcome::ready(Some(match loaded {
                Some(old) => format!("job `{name}`: now serving version {wanted} (was {old})"),
                None => format!("job `{name}`: serving version {wanted}"),
            }))
        }
        Err(e) => {
            slot.counters
                .load_failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let retry_in = refuse(&slot.health, wanted, fingerprint);
            let (detail, public) = described(e);
            let why = |reason: &str| {
                format!(
                    "job `{name}`: version {wanted} is refused: {reason}; retrying in {}s",
                    retry_in.as_secs()
                )
            };
            match loaded {
                Some(id) => Outcome::not_ready(
                    Some(format!("{}; still serving version {id}", why(&detail))),
                    format!("{}; still serving version {id}", why(&public)),
                ),
                None => {
                    fall_back(
                        state,
                        name,
                        slot,
                        Some(wanted),
                        (why(&detail), why(&public)),
                    )
                    .await
                }
            }
        }
    }
}

/// The refusal of `wanted` while its retry is not due and its files did not change.
fn waiting_refusal(
    health: &std::sync::Mutex<JobHealth>,
    wanted: VersionId,
    fingerprint: Option<u64>,
) -> Option<String> {
    let health = health.lock().expect("health lock");
    let refused = health.refused.as_ref()?;
    let waiting = refused.id == wanted
        && refused.fingerprint == fingerprint
        && Instant::now() < refused.retry_at;
    waiting.then(|| health.problem.clone().unwrap_or_default())
}

/// Records that `id` was refused; returns the wait before the next try.
fn refuse(
    health: &std::sync::Mutex<JobHealth>,
    id: VersionId,
    fingerprint: Option<u64>,
) -> Duration {
    let mut health = health.lock().expect("health lock");
    let attempts = match &health.refused {
        Some(refused) if refused.id == id => refused.attempts + 1,
        _ => 1,
    };
    let wait = FIRST_RETRY
        .saturating_mul(1 << (attempts - 1).min(16))
        .min(MAX_RETRY);
    health.refused = Some(Refusal {
        id,
        fingerprint,
        attempts,
        retry_at: Instant::now() + wait,
    });
    wait
}

/// Serves the newest version other than `refused` that opens, for a job serving
/// nothing whose pointer is unusable; `why` says what was wrong with the pointer, for
/// the log and for clients.
async fn fall_back(
    state: &AppState,
    name: &str,
    slot: &JobSlot,
    refused: Option<VersionId>,
    (detail, public): (String, String),
) -> Outcome {
    let ids = match state.store.version_ids(name).await {
        Ok(ids) => ids,
        Err(e) => {
            let (error, public_error) = described(e);
            return Outcome::not_ready(
                Some(format!(
                    "{detail}; listing its versions failed too: {error}"
                )),
                format!("{public}; listing its versions failed too: {public_error}"),
            );
        }
    };
    for id in ids.into_iter().rev().filter(|&id| Some(id) != refused) {
        if let Ok(version) = state.store.open(name, id).await {
            swap_in(slot, version);
            let instead = format!("; serving version {id} instead, the newest that opens");
            return Outcome::not_ready(
                Some(format!("{detail}{instead}")),
                format!("{public}{instead}"),
            );
        }
    }
    let none = "; no other version opens";
    Outcome::not_ready(Some(format!("{detail}{none}")), format!("{public}{none}"))
}

fn swap_in(slot: &JobSlot, version: OpenVersion) {
    slot.current.store(Some(Arc::new(version)));
    slot.counters
        .swaps
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// Polls every job's pointer (`CURRENT`, or the Redis pointer key) every `interval`
/// and swaps in new versions, rolled-back ones included; each change or refusal is
/// passed to `log`.
pub fn spawn_watcher(
    state: Arc<AppState>,
    interval: Duration,
    log: impl Fn(&str) + Send + Sync + 'static,
) -> tokio::task::JoinHandle<()> {
    let log = Arc::new(log);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            for event in reload_all(&state).await {
                log(&event);
            }
        }
    })
}
