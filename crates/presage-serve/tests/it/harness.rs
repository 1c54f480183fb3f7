//! A store with published versions, a serving state over it, and requests through the
//! router.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, Float64Array, StringArray};
use arrow::datatypes::{DataType, Field};
use axum::body::Body;
use axum::http::{Request, header};
use chrono::{DateTime, Utc};
use presage_serve::{AppState, OnStale, ServeJob, reload_all, router};
use presage_store::{
    KeyInfo, LastRun, MANIFEST_FORMAT, Manifest, ModelInfo, OutputColumn, RunOutcomeKind, Store,
    VersionId,
};
use presage_test::TestProject;
use tower::ServiceExt;

/// The admin token of [`Served::new`]'s server.
pub const TOKEN: &str = "s3cret";

/// The job every test publishes.
pub const JOB: &str = "churn";

/// A temporary embedded store.
pub struct Fixture {
    project: TestProject,
}

impl Fixture {
    pub fn new() -> Fixture {
        Fixture {
            project: TestProject::new(),
        }
    }

    /// The store's folder (absolute: answers must never show it).
    pub fn data_dir(&self) -> std::path::PathBuf {
        self.project.path().join("store")
    }

    pub fn store(&self) -> Store {
        Store::embedded(self.data_dir())
    }

    /// Publishes a version of `job` with keys `u1`, `u2`, `u3` computed at
    /// `computed_at`, and records the run; returns its id.
    pub async fn publish(&self, job: &str, computed_at: DateTime<Utc>) -> VersionId {
        let features_as_of = computed_at - chrono::Duration::seconds(1);
        self.publish_version(job, computed_at, features_as_of, true)
            .await
    }

    /// [`Fixture::publish`] with its features cut off at `features_as_of`, made
    /// current only when `promote` (else a backfill).
    pub async fn publish_version(
        &self,
        job: &str,
        computed_at: DateTime<Utc>,
        features_as_of: DateTime<Utc>,
        promote: bool,
    ) -> VersionId {
        let store = self.store();
        let mut writer = store
            .begin(
                job,
                Field::new("user_id", DataType::Utf8, false),
                &[Field::new("probability", DataType::Float64, false)],
            )
            .await
            .expect("begin");
        let keys: ArrayRef = Arc::new(StringArray::from(vec!["u1", "u2", "u3"]));
        let probabilities: ArrayRef = Arc::new(Float64Array::from(vec![0.25, 0.5, 0.75]));
        writer.write(&keys, &[probabilities]).await.expect("write");
        let staged = writer.finish().await.expect("finish");
        let published = staged
            .publish(manifest(computed_at, features_as_of), 5, promote)
            .await
            .expect("publish");
        let run = LastRun {
            outcome: RunOutcomeKind::Published,
            finished_at: computed_at,
            seconds: 0.5,
            rows: published.rows,
            version: Some(published.id),
            failed_checks: Vec::new(),
            error: None,
            stages: None,
            export: None,
        };
        store.record_run(job, &run).await.expect("record run");
        published.id
    }
}

/// The manifest a run would hand to `publish` (the store fills in id, rows, files).
fn manifest(computed_at: DateTime<Utc>, features_as_of: DateTime<Utc>) -> Manifest {
    Manifest {
        format: MANIFEST_FORMAT,
        id: VersionId(0),
        job: String::new(),
        created_at: computed_at,
        features_as_of,
        model: ModelInfo {
            name: "churn".into(),
            path: "churn.onnx".into(),
            sha256: String::new(),
            format: "ONNX".into(),
            engine: "tree".into(),
            inputs: Vec::new(),
        },
        sources: Vec::new(),
        rows: 0,
        key: KeyInfo {
            column: "user_id".into(),
            key_type: "string".into(),
        },
        outputs: vec![OutputColumn {
            name: "probability".into(),
            data_type: "Float64".into(),
        }],
        checks: Vec::new(),
        distributions: Vec::new(),
        ranked: None,
        forced: false,
        files: Vec::new(),
        parent: None,
        run_seconds: 0.5,
        stages: None,
    }
}

/// A job served with no `max_age` and no default.
pub fn job(name: &str) -> ServeJob {
    ServeJob {
        name: name.into(),
        max_age: None,
        default: None,
        on_stale: OnStale::Serve,
    }
}

/// A job that refuses answers older than `max_age`.
pub fn strict_job(name: &str, max_age: Duration) -> ServeJob {
    ServeJob {
        max_age: Some(max_age),
        on_stale: OnStale::Error,
        ..job(name)
    }
}

/// A serving state over `fixture`'s store with every version loaded.
pub async fn serve(fixture: &Fixture, jobs: Vec<ServeJob>, token: Option<&str>) -> Arc<AppState> {
    let state = AppState::new(fixture.store(), jobs, token.map(str::to_owned));
    reload_all(&state).await;
    state
}

/// An answer: its status, `Content-Type` and body.
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("UTF-8")
    }

    /// Asserts an error answer: `status`, JSON `{"error": "..."}` with no path of the
    /// server's in it; returns the message.
    pub fn assert_error(&self, status: u16, data_dir: &Path) -> String {
        let body = self.json();
        assert_eq!(self.status, status, "{body}");
        assert!(
            self.content_type.starts_with("application/json"),
            "{}",
            self.content_type
        );
        let message = body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error message: {body}"))
            .to_owned();
        let text = body.to_string();
        let root = data_dir.parent().expect("the store has a parent folder");
        assert!(
            !text.contains(root.to_str().expect("UTF-8 path")),
            "a server path in an answer: {text}"
        );
        message
    }
}

/// Sends one request through the router.
pub async fn call(
    state: &Arc<AppState>,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: impl Into<Body>,
) -> Answer {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request.body(body.into()).expect("a request");
    let response = router(state.clone())
        .oneshot(request)
        .await
        .expect("the router answers");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().expect("ASCII").to_owned())
        .unwrap_or_default();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("a body")
        .to_vec();
    Answer {
        status,
        content_type,
        body,
    }
}

/// `GET uri`.
pub async fn get(state: &Arc<AppState>, uri: &str) -> Answer {
    call(state, "GET", uri, None, Body::empty()).await
}
