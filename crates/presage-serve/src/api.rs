use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use presage_store::{JobStatus, JobStatuses, Manifest, OpenVersion, VersionId, VersionList};
use serde::Deserialize;
use serde_json::json;

use crate::ApiError;
use crate::answer::{refuse_stale, write_answer};
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
        .fallback(|| async { ApiError::NoSuchEndpoint })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
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

/// Every job with the version this server answers from (not necessarily the store's
/// current one, while a swap is pending) and its last run.
async fn list_jobs(State(state): State<Arc<AppState>>) -> Result<Json<JobStatuses>, ApiError> {
    let now = Utc::now();
    let mut jobs = Vec::with_capacity(state.jobs.len());
    for (name, slot) in &state.jobs {
        let last_run = state.store.last_run(name).await?;
        let version = slot.current.load_full();
        let status = JobStatus::new(
            name,
            version.as_deref().map(OpenVersion::manifest),
            slot.spec.max_age,
            last_run.as_ref(),
            now,
        );
        // A job serving an older version than `CURRENT` (a refused one) is failing;
        // one that has simply loaded nothing yet says `none`.
        let problem = slot.health.lock().expect("health lock").problem.clone();
        jobs.push(match problem {
            Some(problem) if version.is_some() => status.failing(problem),
            _ => status,
        });
    }
    Ok(Json(JobStatuses { jobs }))
}

async fn list_versions(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<VersionList>, ApiError> {
    let Path(job) = path?;
    slot(&state, &job)?;
    let mut list = state.store.version_list(&job).await?;
    for listed in &mut list.versions {
        cut_server_paths(&mut listed.manifest);
    }
    Ok(Json(list))
}

/// `manifest` with the model's and sources' paths cut to their last part where they
/// are absolute: where the server's files lie is no client's business.
fn cut_server_paths(manifest: &mut Manifest) {
    let cut = |path: &mut String| {
        let file = std::path::Path::new(path.as_str());
        if file.is_absolute()
            && let Some(name) = file.file_name()
        {
            *path = name.to_string_lossy().into_owned();
        }
    };
    cut(&mut manifest.model.path);
    for source in &mut manifest.sources {
        cut(&mut source.path);
    }
}

async fn get_prediction(
    State(state): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let Path((job, key)) = path?;
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
        .await?;
    slot.counters.count(status);
    state.log_answer(&job, &key, &version, status, now);
    state.latency.observe(started.elapsed());
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

/// A request body of at most [`MAX_BODY_BYTES`]; one whose `Content-Length` says it is
/// larger is refused before any of it is read.
struct Body(Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Body, ApiError> {
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|length| length.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
            return Err(ApiError::BodyTooLarge {
                max: MAX_BODY_BYTES,
            });
        }
        Ok(Body(Bytes::from_request(request, state).await?))
    }
}

async fn batch_get(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Body, ApiError>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let Path(job) = path?;
    let slot = slot(&state, &job)?;
    let Body(body) = body?;
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
            slot.counters.count(status);
            state.log_answer(&job, key, &version, status, now);
            match status {
                Some(_) => first = false,
                None => {
                    out.truncate(mark);
                    missing.push(key);
                }
            }
        })
        .await?;
    out.extend_from_slice(b"],\"missing\":");
    serde_json::to_writer(&mut out, &missing).expect("writing to a Vec");
    out.push(b'}');
    state.latency.observe(started.elapsed());
    Ok(json_bytes(out))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RollbackRequest {
    to: Option<VersionId>,
    /// Serve `to` even though it was rolled back from before.
    #[serde(default)]
    force: bool,
}

async fn rollback(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Body, ApiError>,
) -> Result<Response, ApiError> {
    let token = state
        .admin_token
        .as_deref()
        .ok_or(ApiError::AdminDisabled)?;
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| bearer_token(v.as_bytes()));
    if !given.is_some_and(|given| same_secret(given, token.as_bytes())) {
        return Err(ApiError::Unauthorized);
    }
    let Path(job) = path?;
    slot(&state, &job)?;
    let Body(body) = body?;
    let request: RollbackRequest = if body.is_empty() {
        RollbackRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::BadRequest(format!("body must be {{\"to\": VERSION}} or empty: {e}"))
        })?
    };
    let result = state.store.rollback(&job, request.to, request.force).await;
    // Serve what the store now points at before answering, whatever the outcome.
    reload_all(&state).await;
    let (from, to) = result?;
    Ok(Json(json!({ "from": from, "to": to })).into_response())
}

/// The token of an `Authorization: Bearer TOKEN` header; the scheme's name is
/// case-insensitive (RFC 9110 §11.1).
fn bearer_token(authorization: &[u8]) -> Option<&[u8]> {
    let (scheme, token) = authorization.split_at_checked(7)?;
    scheme.eq_ignore_ascii_case(b"Bearer ").then_some(token)
}

/// `given == secret` in a time that depends on their lengths only, so that timing
/// answers does not reveal how much of a guess was right.
fn same_secret(given: &[u8], secret: &[u8]) -> bool {
    let differences = given
        .iter()
        .zip(secret)
        .fold(0u8, |differences, (a, b)| differences | (a ^ b));
    // `black_box` keeps the compiler from stopping at the first difference.
    std::hint::black_box(differences) == 0 && given.len() == secret.len()
}

/// 200 when every job serves its current version; 503 with each other job's reason.
async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let not_ready = state.not_ready();
    if not_ready.is_empty() {
        Json(json!({"status": "ready"})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not ready", "jobs": not_ready})),
        )
            .into_response()
    }
}

async fn metrics_text(State(state): State<Arc<AppState>>) -> Response {
    let mut last_runs = Vec::new();
    for job in state.jobs.keys() {
        // A store that cannot be read leaves the job's last-run gauges out of this
        // scrape instead of failing it: the serving metrics matter most during an
        // outage, and the watcher logs the outage.
        if let Ok(Some(run)) = state.store.last_run(job).await {
            last_runs.push((job.clone(), run));
        }
    }
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        metrics::render(&state, &last_runs, Utc::now()),
    )
        .into_response()
}
