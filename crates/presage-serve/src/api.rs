use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{SecondsFormat, Utc};
use presage_store::redis::RedisStoreError;
use presage_store::{OpenVersion, StoreError, VersionId};
use serde::Deserialize;
use serde_json::json;

use crate::ApiError;
use crate::answer::{Status, refuse_stale, write_answer};
use crate::limits::{MAX_BATCH_KEYS, MAX_BODY_BYTES};
use crate::metrics;
use crate::state::{AppState, JobSlot};
use crate::watcher::reload_all;

/// The HTTP API (DESIGN.md §5) over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/jobs", get(list_jobs))
        .route("/v1/jobs/{job}/versions", get(list_versions))
        .route("/v1/jobs/{job}/predictions/{*key}", get(get_prediction))
        .route("/v1/jobs/{job}/predictions:batchGet", post(batch_get))
        .route("/v1/jobs/{job}/rollback", post(rollback))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .fallback(|| async { ApiError::BadRequest("no such endpoint; see /v1/jobs".into()) })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

fn slot<'a>(state: &'a AppState, job: &str) -> Result<&'a JobSlot, ApiError> {
    state
        .jobs
        .get(job)
        .ok_or_else(|| ApiError::UnknownJob(job.to_owned()))
}

/// The version `job` answers from at `now`: none loaded yet and a refused stale
/// version (`on_stale = "error"`) are errors.
fn answering_version(
    slot: &JobSlot,
    job: &str,
    now: chrono::DateTime<Utc>,
) -> Result<Arc<OpenVersion>, ApiError> {
    let version = slot
        .current
        .load_full()
        .ok_or_else(|| ApiError::NoVersion(job.to_owned()))?;
    match refuse_stale(&slot.spec, version.manifest(), now) {
        Some(refusal) => Err(ApiError::Stale(refusal)),
        None => Ok(version),
    }
}

fn json_bytes(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn list_jobs(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let now = Utc::now();
    let jobs: Vec<_> = state
        .jobs
        .iter()
        .map(|(name, slot)| match slot.current.load().as_ref() {
            Some(version) => {
                let m = version.manifest();
                let s = presage_store::Staleness::at(m.created_at, slot.spec.max_age, now);
                json!({
                    "job": name,
                    "version": m.id,
                    "rows": m.rows,
                    "computed_at": m.created_at.to_rfc3339_opts(SecondsFormat::Millis, true),
                    "features_as_of": m.features_as_of.to_rfc3339_opts(SecondsFormat::Millis, true),
                    "age_seconds": (s.age_seconds * 1000.0).round() / 1000.0,
                    "max_age_seconds": slot.spec.max_age.map(|d| d.as_secs()),
                    "stale": s.freshness == presage_store::Freshness::Stale,
                })
            }
            None => json!({ "job": name, "version": null }),
        })
        .collect();
    Json(json!({ "jobs": jobs }))
}

async fn list_versions(
    State(state): State<Arc<AppState>>,
    Path(job): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    slot(&state, &job)?;
    let current = state.store.current(&job).await.map_err(store_failed)?;
    let versions = state.store.versions(&job).await.map_err(store_failed)?;
    Ok(Json(json!({ "current": current, "versions": versions })))
}

/// A store that failed to answer (Redis down, an unreadable file): logged in full,
/// answered without internals (see [`ApiError::Internal`]).
pub(crate) fn store_failed(error: StoreError) -> ApiError {
    ApiError::Internal(error.to_string())
}

pub(crate) fn count(state: &AppState, job: &str, status: Option<Status>) {
    let m = state.metrics.job(job);
    let counter = match status {
        Some(Status::Fresh) => &m.fresh,
        Some(Status::Stale) => &m.stale,
        Some(Status::Default) => &m.default,
        None => &m.miss,
    };
    counter.fetch_add(1, Ordering::Relaxed);
}

async fn get_prediction(
    State(state): State<Arc<AppState>>,
    Path((job, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let slot = slot(&state, &job)?;
    let now = Utc::now();
    let version = answering_version(slot, &job, now)?;
    let mut out = Vec::with_capacity(256);
    let mut status = None;
    version
        .predictions(std::slice::from_ref(&key), |_, prediction| {
            status = write_answer(
                &slot.spec,
                version.manifest(),
                &key,
                prediction,
                now,
                &mut out,
            );
        })
        .await
        .map_err(store_failed)?;
    count(&state, &job, status);
    state.log_answer(&job, &key, &version, status, now);
    state.metrics.observe_latency(started.elapsed());
    match status {
        Some(_) => Ok(json_bytes(out)),
        None => Err(ApiError::UnknownKey { job, key }),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchGet {
    keys: Vec<String>,
}

async fn batch_get(
    State(state): State<Arc<AppState>>,
    Path(job): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let slot = slot(&state, &job)?;
    let request: BatchGet = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("body must be {{\"keys\": [\"...\"]}}: {e}")))?;
    if request.keys.len() > MAX_BATCH_KEYS {
        return Err(ApiError::TooManyKeys {
            found: request.keys.len(),
            max: MAX_BATCH_KEYS,
        });
    }
    let now = Utc::now();
    let version = answering_version(slot, &job, now)?;
    let mut out = Vec::with_capacity(64 + request.keys.len() * 200);
    out.extend_from_slice(b"{\"predictions\":[");
    let mut missing = Vec::new();
    let mut first = true;
    version
        .predictions(&request.keys, |i, prediction| {
            let key = &request.keys[i];
            let mark = out.len();
            if !first {
                out.push(b',');
            }
            let status = write_answer(
                &slot.spec,
                version.manifest(),
                key,
                prediction,
                now,
                &mut out,
            );
            count(&state, &job, status);
            state.log_answer(&job, key, &version, status, now);
            match status {
                Some(_) => first = false,
                None => {
                    out.truncate(mark);
                    missing.push(key);
                }
            }
        })
        .await
        .map_err(store_failed)?;
    out.extend_from_slice(b"],\"missing\":");
    serde_json::to_writer(&mut out, &missing).expect("writing to a Vec");
    out.push(b'}');
    state.metrics.observe_latency(started.elapsed());
    Ok(json_bytes(out))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RollbackRequest {
    to: Option<VersionId>,
}

async fn rollback(
    State(state): State<Arc<AppState>>,
    Path(job): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let token = state
        .admin_token
        .as_deref()
        .ok_or(ApiError::AdminDisabled)?;
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if given != Some(token) {
        return Err(ApiError::Unauthorized);
    }
    slot(&state, &job)?;
    let request: RollbackRequest = if body.is_empty() {
        RollbackRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::BadRequest(format!("body must be {{\"to\": VERSION}} or empty: {e}"))
        })?
    };
    let result = state.store.rollback(&job, request.to).await;
    reload_all(&state).await;
    let (from, to) = result.map_err(|e| match e {
        StoreError::Io(_) => store_failed(e),
        StoreError::Redis(ref redis)
            if matches!(
                **redis,
                RedisStoreError::Connect { .. } | RedisStoreError::Command { .. }
            ) =>
        {
            store_failed(e)
        }
        other => ApiError::Conflict(other.to_string()),
    })?;
    Ok(Json(json!({ "from": from, "to": to })).into_response())
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if state.ready().await {
        Json(json!({"status": "ready"})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "loading"})),
        )
            .into_response()
    }
}

async fn metrics_text(State(state): State<Arc<AppState>>) -> Response {
    let mut last_runs = Vec::new();
    for job in state.jobs.keys() {
        if let Ok(Some(run)) = state.store.last_run(job).await {
            last_runs.push((job.clone(), run));
        }
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics::render(&state, &last_runs),
    )
        .into_response()
}
