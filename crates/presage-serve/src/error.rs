use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An error answered to a client as `{"error": "..."}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The job is not configured.
    #[error("unknown job `{0}`")]
    UnknownJob(String),
    /// The key has no prediction and the job has no default.
    #[error("no prediction for key `{key}` in job `{job}`")]
    UnknownKey {
        /// The job.
        job: String,
        /// The key.
        key: String,
    },
    /// The job has no version loaded yet.
    #[error("job `{0}` has no published version yet")]
    NoVersion(String),
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// Too many keys in one batch.
    #[error("too many keys: {found}, at most {max} per request")]
    TooManyKeys {
        /// Keys sent.
        found: usize,
        /// The limit.
        max: usize,
    },
    /// Admin endpoints need the bearer token.
    #[error("missing or wrong bearer token")]
    Unauthorized,
    /// Admin endpoints are off because no token is configured.
    #[error("admin API is disabled; start the server with PRESAGE_ADMIN_TOKEN set")]
    AdminDisabled,
    /// A store operation failed for a reason the client caused (unknown version, corrupt target).
    #[error("{0}")]
    Conflict(String),
    /// The job's version is older than `max_age` and the job says `on_stale = "error"`.
    #[error("{0}")]
    Stale(crate::StaleRefusal),
    /// Something failed on the server; details go to the log, not the client.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::UnknownJob(_) | ApiError::UnknownKey { .. } => StatusCode::NOT_FOUND,
            ApiError::NoVersion(_) | ApiError::Stale(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::TooManyKeys { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::AdminDisabled => StatusCode::FORBIDDEN,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(detail) = &self {
            eprintln!("internal error: {detail}");
        }
        let mut body = serde_json::json!({ "error": self.to_string() });
        if let ApiError::Stale(refusal) = &self {
            body["version"] = refusal.version.into();
            body["age_seconds"] = refusal.age_seconds.into();
            body["max_age_seconds"] = refusal.max_age_seconds.into();
        }
        let body = Json(body);
        (self.status(), body).into_response()
    }
}
