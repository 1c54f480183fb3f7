use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use presage_serve::{AppState, reload_all, router, spawn_watcher};

use crate::config::Config;
use crate::env_vars;

/// How often servers look at `CURRENT` for a new version.
const WATCH_INTERVAL: Duration = Duration::from_millis(200);

/// `presage serve`: the HTTP API until Ctrl-C.
pub fn serve(config: &Config, addr: SocketAddr, resp_addr: Option<SocketAddr>) -> Result<()> {
    let jobs = config.jobs.values().map(|j| j.serve.clone()).collect();
    let token = std::env::var(env_vars::PRESAGE_ADMIN_TOKEN)
        .ok()
        .filter(|t| !t.is_empty());
    let state = AppState::new(config.store(), jobs, token);
    super::runtime()?.block_on(serve_state(state, addr, resp_addr, None))
}

/// Serves `state` on `addr` until Ctrl-C; prints where, and the `curl` lines to try
/// when `example_key` is given.
pub async fn serve_state(
    state: std::sync::Arc<AppState>,
    addr: SocketAddr,
    resp_addr: Option<SocketAddr>,
    example: Option<(String, String)>,
) -> Result<()> {
    let s = state.clone();
    for event in tokio::task::spawn_blocking(move || reload_all(&s)).await? {
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
    if let Some((job, key)) = example {
        println!("try:");
        println!("  curl http://{local}/v1/jobs/{job}/predictions/{key}");
        println!("  curl http://{local}/v1/jobs");
    }
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("serving HTTP")
}
