use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::Utc;
use presage_job::{JobSpec, RunOptions};
use presage_serve::{AppState, LookupLog, reload_all, router, spawn_watcher};
use presage_store::Store;

use crate::config::Config;
use crate::env_vars;

/// How often servers look at `CURRENT` for a new version.
const WATCH_INTERVAL: Duration = Duration::from_millis(200);

/// `presage serve`: the HTTP API until Ctrl-C; with `refresh`, also the scheduler.
pub fn serve(
    config: &Config,
    addr: SocketAddr,
    resp_addr: Option<SocketAddr>,
    refresh: bool,
    lookup_log: Option<&Path>,
) -> Result<()> {
    let jobs = config.jobs.values().map(|j| j.serve.clone()).collect();
    let token = std::env::var(env_vars::PRESAGE_ADMIN_TOKEN)
        .ok()
        .filter(|t| !t.is_empty());
    let runtime = super::runtime()?;
    let store = runtime.block_on(config.store())?;
    let state = AppState::new(store.clone(), jobs, token);
    if let Some(dir) = lookup_log {
        let log = LookupLog::start(dir, config.lookup_log_sample)
            .with_context(|| format!("starting the lookup log in `{}`", dir.display()))?;
        state.set_lookup_log(log);
        eprintln!(
            "logging {:.0}% of answers into `{}`",
            config.lookup_log_sample * 100.0,
            dir.display()
        );
    }
    if refresh {
        let scheduled: Vec<_> = config
            .jobs
            .values()
            .filter_map(|j| Some((j.spec.clone(), j.refresh_every?)))
            .collect();
        anyhow::ensure!(
            !scheduled.is_empty(),
            "--refresh: no job in `{}` sets `refresh_every`",
            config.path.display()
        );
        for (spec, every) in scheduled {
            eprintln!(
                "refresh: job `{}` every {}",
                spec.name,
                super::human_age(every.as_secs_f64())
            );
            runtime.spawn(refresh_loop(store.clone(), spec, every));
        }
    }
    runtime.block_on(serve_state(state, addr, resp_addr, Vec::new()))
}

/// Runs `spec` whenever its current version is older than `every`; one run at a time.
///
/// A run that fails or is blocked is retried after `every`, not at once, so a broken
/// source does not turn into a busy loop. Every outcome is recorded by the run itself
/// for `presage status` and `/metrics`; the serving side picks new versions up through
/// its `CURRENT` watcher like any other publish.
async fn refresh_loop(store: Store, spec: JobSpec, every: Duration) {
    loop {
        let age = store
            .current_manifest(&spec.name)
            .await
            .ok()
            .flatten()
            .map(|m| (Utc::now() - m.created_at).to_std().unwrap_or_default());
        if let Some(age) = age.filter(|age| *age < every) {
            tokio::time::sleep(every - age).await;
            continue;
        }
        let options = RunOptions {
            as_of: Utc::now(),
            force: false,
        };
        match presage_job::run(&spec, &store, options, &()).await {
            Ok(outcome) => eprintln!(
                "refresh: job `{}`: published version {} ({} rows in {:.2}s)",
                spec.name, outcome.manifest.id, outcome.manifest.rows, outcome.seconds
            ),
            Err(e) => {
                eprintln!("refresh: job `{}`: {e}; next try in {every:?}", spec.name);
                tokio::time::sleep(every).await;
            }
        }
    }
}

/// Serves `state` on `addr` until Ctrl-C; prints where, and a `curl` line to try
/// for each `(job, key)` of `examples`.
pub async fn serve_state(
    state: std::sync::Arc<AppState>,
    addr: SocketAddr,
    resp_addr: Option<SocketAddr>,
    examples: Vec<(String, String)>,
) -> Result<()> {
    for event in reload_all(&state).await {
        eprintln!("{event}");
    }
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!("binding `{addr}`; is another server running there? pass `--addr`")
    })?;
    let local = listener.local_addr()?;
    spawn_watcher(state.clone(), WATCH_INTERVAL, |event| eprintln!("{event}"));
    if let Some(resp_addr) = resp_addr {
        let resp = tokio::net::TcpListener::bind(resp_addr)
            .await
            .with_context(|| {
                format!("binding `{resp_addr}` for the Redis protocol; pass another `--resp-addr`")
            })?;
        eprintln!("answering the Redis protocol on {}", resp.local_addr()?);
        tokio::spawn(presage_serve::serve_resp(resp, state.clone()));
    }
    eprintln!("serving on http://{local} (Ctrl-C to stop)");
    if !examples.is_empty() {
        println!("try:");
        for (job, key) in &examples {
            println!("  curl http://{local}/v1/jobs/{job}/predictions/{key}");
        }
        println!("  curl http://{local}/v1/jobs");
    }
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("serving HTTP")
}
