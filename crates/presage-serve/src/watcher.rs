use std::sync::Arc;
use std::time::Duration;

use crate::state::{AppState, JobSlot};

/// Loads every job's current version where it changed. Returns one line per
/// change or failure (for logs). Opening an embedded version (checksums) runs on
/// the blocking pool; a Redis version is its manifest.
pub async fn reload_all(state: &AppState) -> Vec<String> {
    let mut events = Vec::new();
    for (name, slot) in &state.jobs {
        if let Some(event) = reload_job(state, name, slot).await {
            events.push(event);
        }
    }
    events
}

async fn reload_job(state: &AppState, name: &str, slot: &JobSlot) -> Option<String> {
    let wanted = match state.store.current(name).await {
        Ok(current) => {
            *slot.last_error.lock().expect("last error lock") = None;
            current?
        }
        Err(e) => {
            let event = format!("job `{name}`: {e}");
            let mut last = slot.last_error.lock().expect("last error lock");
            if last.as_deref() == Some(event.as_str()) {
                return None;
            }
            *last = Some(event.clone());
            return Some(event);
        }
    };
    let loaded = slot.current.load().as_ref().map(|v| v.id());
    if loaded == Some(wanted) {
        return None;
    }
    if *slot.rejected.lock().expect("rejected lock") == Some(wanted) {
        return None;
    }
    let opened = state.store.open(name, wanted).await;
    let mut rejected = slot.rejected.lock().expect("rejected lock");
    match opened {
        Ok(version) => {
            slot.current.store(Some(Arc::new(version)));
            *rejected = None;
            slot.counters
                .swaps
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Some(match loaded {
                Some(old) => format!("job `{name}`: now serving version {wanted} (was {old})"),
                None => format!("job `{name}`: serving version {wanted}"),
            })
        }
        Err(e) => {
            *rejected = Some(wanted);
            slot.counters
                .load_failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let keeping = loaded.map_or("nothing".to_owned(), |id| format!("version {id}"));
            Some(format!(
                "job `{name}`: refusing version {wanted}, still serving {keeping}: {e}"
            ))
        }
    }
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
