use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::Utc;
use presage_data::QueryLimits;
use presage_job::{JobSpec, RunOptions};
use presage_serve::{
    AppState, LookupLog, RespOptions, reload_all, router, serve_http, spawn_watcher,
};
use presage_store::Store;

use crate::config::{Config, ServeLimits};
use crate::env_vars;

/// How often servers look at `CURRENT` for a new version.
const WATCH_INTERVAL: Duration = Duration::from_millis(200);

/// Where and how to answer the Redis protocol.
#[derive(Debug, Clone, Copy)]
pub struct RespEndpoint {
    /// The address to listen on.
    pub addr: SocketAddr,
    /// `--busy-poll`: how long each event loop polls after its last command.
    pub busy_poll: Option<Duration>,
}

/// `presage serve`: the HTTP API until Ctrl-C or SIGTERM; with `refresh`, also the
/// scheduler.
pub fn serve(
    config: &Config,
    addr: SocketAddr,
    resp: Option<RespEndpoint>,
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
            runtime.spawn(refresh_loop(
                store.clone(),
                spec,
                config.limits.clone(),
                every,
            ));
        }
    }
    runtime.block_on(serve_state(state, addr, resp, config.serve, Vec::new()))
}

/// Runs `spec` whenever its current version is older than `every`; one run at a time.
///
/// A run that fails or is blocked is retried after `every`, not at once, so a broken
/// source does not turn into a busy loop. Every outcome is recorded by the run itself
/// for `presage status` and `/metrics`; the serving side picks new versions up through
/// its `CURRENT` watcher like any other publish.
async fn refresh_loop(store: Store, spec: JobSpec, limits: QueryLimits, every: Duration) {
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
            limits: limits.clone(),
            ..RunOptions::at(Utc::now())
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

/// Serves `state` on `addr` within `limits` until Ctrl-C or SIGTERM, then lets
/// requests in flight finish and writes the lookup log; prints where, and a `curl`
/// line to try for each `(job, key)` of `examples`.
pub async fn serve_state(
    state: std::sync::Arc<AppState>,
    addr: SocketAddr,
    resp: Option<RespEndpoint>,
    limits: ServeLimits,
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
    let mut resp_server = None;
    if let Some(resp) = resp {
        let listener = std::net::TcpListener::bind(resp.addr).with_context(|| {
            format!(
                "binding `{}` for the Redis protocol; pass another `--resp-addr`",
                resp.addr
            )
        })?;
        let local = listener.local_addr()?;
        // One event loop per CPU this process may use (the affinity mask counts).
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        resp_server = Some(
            presage_serve::spawn_resp(
                listener,
                state.clone(),
                RespOptions {
                    threads,
                    busy_poll: resp.busy_poll,
                    max_connections: limits.resp_max_connections,
                    idle_timeout: limits.resp_idle_timeout,
                },
            )
            .context("starting the Redis protocol endpoint")?,
        );
        let loops = match threads {
            1 => "1 event loop".to_owned(),
            n => format!("{n} event loops"),
        };
        match resp.busy_poll {
            Some(window) => eprintln!(
                "answering the Redis protocol on {local} ({loops}, busy polling for {window:?})"
            ),
            None => eprintln!("answering the Redis protocol on {local} ({loops})"),
        }
    }
    eprintln!("serving on http://{local} (Ctrl-C to stop)");
    if !examples.is_empty() {
        println!("try:");
        for (job, key) in &examples {
            println!("  curl http://{local}/v1/jobs/{job}/predictions/{key}");
        }
        println!("  curl http://{local}/v1/jobs");
    }
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("listening for SIGTERM")?;
    let (signalled, mut on_signal) = tokio::sync::watch::channel(false);
    let stop = async move {
        // SIGTERM is how service managers and `kill` stop a server: the same as Ctrl-C.
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        eprintln!("stopping: finishing requests in flight");
        let _ = signalled.send(true);
    };
    // The Redis protocol stops beside HTTP, within the same grace.
    let grace = limits.http.shutdown_grace;
    let resp_stopped = tokio::spawn(async move {
        let Some(server) = resp_server else {
            return true;
        };
        let _ = on_signal.wait_for(|stop| *stop).await;
        tokio::task::spawn_blocking(move || server.stop(grace))
            .await
            .unwrap_or(false)
    });
    serve_http(listener, router(state.clone()), limits.http, stop).await;
    if !resp_stopped.await.unwrap_or(false) {
        eprintln!("Redis protocol: connections were still busy after {grace:?}; closing them");
    }
    state.flush_lookup_log();
    eprintln!("stopped");
    Ok(())
}
