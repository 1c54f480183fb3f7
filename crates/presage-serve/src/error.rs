use axum::Json;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use presage_store::{StoreError, StoreErrorKind};

use crate::http::BodyTimedOut;
use crate::limits::MAX_BODY_BYTES;

/// An error answered to a client as `{"error": "..."}` with its HTTP status.
///
/// Store errors become one of these in one place, [`From<StoreError>`], by their
/// kind: the client reads the store's message only where it is about what the client
/// asked for (a version that does not exist, nothing to roll back to); any other
/// store failure names no file, server or key, and its detail goes to the server log.
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
    /// No such endpoint.
    #[error("no such endpoint; see /v1/jobs")]
    NoSuchEndpoint,
    /// The endpoint exists but not with this method.
    #[error("method not allowed on this endpoint")]
    MethodNotAllowed,
    /// Too many keys in one batch.
    #[error("too many keys: {found}, at most {max} per request")]
    TooManyKeys {
        /// Keys sent.
        found: usize,
        /// The limit.
        max: usize,
    },
    /// The request body is larger than [`MAX_BODY_BYTES`].
    #[error("request body too large: at most {max} bytes")]
    BodyTooLarge {
        /// The limit.
        max: usize,
    },
    /// The client sent the request body too slowly.
    #[error("the request body took too long to arrive: at most {seconds}s")]
    BodyTimeout {
        /// The limit, in seconds.
        seconds: f64,
    },
    /// Admin endpoints need the bearer token.
    #[error("missing or wrong bearer token")]
    Unauthorized,
    /// Admin endpoints are off because no token is configured.
    #[error("admin API is disabled; start the server with PRESAGE_ADMIN_TOKEN set")]
    AdminDisabled,
    /// The store has no such version, or the job none at all.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the store's state (nothing to roll back to).
    #[error("{0}")]
    Conflict(String),
    /// The store refused what it was given; `detail` is logged, not answered.
    #[error("the store refused the request; see the server log")]
    StoreInvalid {
        /// The store's message.
        detail: String,
    },
    /// Stored data failed a check (a checksum, a manifest, a pointer); `detail` is
    /// logged, not answered.
    #[error("stored data failed a check; see the server log")]
    StoreCorrupt {
        /// The store's message.
        detail: String,
    },
    /// The store could not be reached or read; `detail` is logged, not answered.
    #[error("the store is unavailable; see the server log")]
    StoreUnavailable {
        /// The store's message.
        detail: String,
    },
    /// The job's version is older than `max_age` and the job says `on_stale = "error"`.
    #[error("{0}")]
    Stale(crate::StaleRefusal),
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match error.kind() {
            StoreErrorKind::NotFound => ApiError::NotFound(error.to_string()),
            StoreErrorKind::Conflict => ApiError::Conflict(error.to_string()),
            StoreErrorKind::Invalid => ApiError::StoreInvalid {
                detail: error.to_string(),
            },
            StoreErrorKind::Corrupt => ApiError::StoreCorrupt {
                detail: error.to_string(),
            },
            StoreErrorKind::Unavailable => ApiError::StoreUnavailable {
                detail: error.to_string(),
            },
        }
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> ApiError {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&rejection);
        while let Some(error) = cause {
            if let Some(timed_out) = error.downcast_ref::<BodyTimedOut>() {
                return ApiError::BodyTimeout {
                    seconds: timed_out.limit.as_secs_f64(),
                };
            }
            cause = error.source();
        }
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::BodyTooLarge {
                max: MAX_BODY_BYTES,
            }
        } else {
            ApiError::BadRequest(rejection.body_text())
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> ApiError {
        ApiError::BadRequest(rejection.body_text())
    }
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::UnknownJob(_)
            | ApiError::UnknownKey { .. }
            | ApiError::NotFound(_)
            | ApiError::NoSuchEndpoint => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) | ApiError::StoreInvalid { .. } => StatusCode::BAD_REQUEST,
            ApiError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::TooManyKeys { .. } | ApiError::BodyTooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::AdminDisabled => StatusCode::FORBIDDEN,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            // Broken stored data does not mend by retrying; an outage may.
            ApiError::StoreCorrupt { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::NoVersion(_) | ApiError::Stale(_) | ApiError::StoreUnavailable { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// What only the server log may see.
    fn detail(&self) -> Option<&str> {
        match self {
            ApiError::StoreInvalid { detail }
            | ApiError::StoreCorrupt { detail }
            | ApiError::StoreUnavailable { detail } => Some(detail),
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Some(detail) = self.detail() {
            eprintln!("store error: {detail}");
        }
        let mut body = serde_json::json!({ "error": self.to_string() });
        if let ApiError::Stale(refusal) = &self {
            body["version"] = refusal.version.into();
            body["age_seconds"] = refusal.age_seconds.into();
            body["max_age_seconds"] = refusal.max_age_seconds.into();
        }
        (self.status(), Json(body)).into_response()
    }
}
