//! A store with published versions, a serving state over it, and requests through the
//! router.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, Float64Array, StringArray};
use arrow::datatypes::{DataType, Field};
use axum::body::Body;
use axum::http::{Request, header};
use chrono::{DateTime, Utc};
use presage_serve::{
    AppState, HttpLimits, OnStale, RespOptions, ServeJob, reload_all, router, serve_http,
    spawn_resp,
};
use presage_store::{
    KeyInfo, LastRun, MANIFEST_FORMAT, Manifest, ModelInfo, OutputColumn, RunOutcomeKind,
    SourceInfo, Store, VersionId,
};
use presage_test::TestProject;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
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
            .publish(
                manifest(computed_at, features_as_of, self.project.path()),
                5,
                promote,
            )
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
            backfill: !promote,
        };
        store.record_run(job, &run).await.expect("record run");
        published.id
    }
}

/// The manifest a run would hand to `publish` (the store fills in id, rows, files),
/// its model and source under `root` as a config with absolute paths gives them.
fn manifest(computed_at: DateTime<Utc>, features_as_of: DateTime<Utc>, root: &Path) -> Manifest {
    let absolute = |relative: &str| root.join(relative).to_str().expect("UTF-8").to_owned();
    Manifest {
        format: MANIFEST_FORMAT,
        id: VersionId(0),
        job: String::new(),
        created_at: computed_at,
        features_as_of,
        model: ModelInfo {
            name: "churn".into(),
            path: absolute("models/churn.onnx"),
            sha256: String::new(),
            format: "ONNX".into(),
            engine: "tree".into(),
            inputs: Vec::new(),
        },
        sources: vec![SourceInfo {
            name: "events".into(),
            path: absolute("data/events.parquet"),
            files: 1,
            bytes: 100,
            fingerprint: "sha256:0".into(),
        }],
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
    send(state, request.body(body.into()).expect("a request")).await
}

/// Sends `request` through the router.
pub async fn send(state: &Arc<AppState>, request: Request<Body>) -> Answer {
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

/// Limits short enough for tests: 200 ms to send headers or a body, `max_connections`
/// open, 5 s to finish at shutdown.
pub fn short_limits(max_connections: usize) -> HttpLimits {
    HttpLimits {
        header_read_timeout: Duration::from_millis(200),
        body_read_timeout: Duration::from_millis(200),
        max_connections,
        shutdown_grace: Duration::from_secs(5),
    }
}

/// An HTTP server on a loopback port, stopped when `stop` is sent or dropped.
pub struct HttpServer {
    pub addr: SocketAddr,
    pub stop: Option<oneshot::Sender<()>>,
    pub stopped: tokio::task::JoinHandle<()>,
}

/// Serves `state` with `limits` on a free loopback port.
pub async fn start_http(state: &Arc<AppState>, limits: HttpLimits) -> HttpServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let addr = listener.local_addr().expect("its address");
    let (stop, stopping) = oneshot::channel();
    let stopped = tokio::spawn(serve_http(listener, router(state.clone()), limits, async {
        let _ = stopping.await;
    }));
    HttpServer {
        addr,
        stop: Some(stop),
        stopped,
    }
}

/// Serves the Redis protocol for `state` with `options` on a free loopback port.
pub fn start_resp(state: &Arc<AppState>, options: RespOptions) -> SocketAddr {
    start_resp_server(state, options).0
}

/// [`start_resp`], keeping the endpoint's handle to stop it.
pub fn start_resp_server(
    state: &Arc<AppState>,
    options: RespOptions,
) -> (SocketAddr, presage_serve::RespServer) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let addr = listener.local_addr().expect("its address");
    let server = spawn_resp(listener, state.clone(), options).expect("the Redis protocol endpoint");
    (addr, server)
}

/// What the server sends on `stream` until it closes it; panics if it is still open
/// after `within`.
pub async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Vec<u8> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "still open after {within:?}; received: {}",
        String::from_utf8_lossy(&received)
    );
    received
}

/// Reads from `stream` until what was received ends with `end`.
pub async fn read_until(stream: &mut TcpStream, end: &[u8]) -> Vec<u8> {
    let mut received = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    tokio::time::timeout(Duration::from_secs(10), async {
        while !received.ends_with(end) {
            let n = stream.read(&mut chunk).await.expect("reading");
            assert!(n > 0, "closed: {}", String::from_utf8_lossy(&received));
            received.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no end after 10 s: {}", String::from_utf8_lossy(&received)));
    received
}

/// An HTTP/1.1 answer read off a socket: its status line and JSON body.
pub fn parse_http(raw: &[u8]) -> (u16, serde_json::Value) {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP answer: {text}"));
    let status = head[9..12].parse().expect("a status");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    let body = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {text}"));
    (status, body)
}
