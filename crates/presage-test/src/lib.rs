//! Test harness shared by presage's integration tests.
//!
//! Tests drive real components: the real `presage` binary, a real `redis-server`
//! on a free loopback port, real fixture files. This crate starts and stops them and
//! cleans up after itself (every child process is killed on drop).

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The workspace root (where `Cargo.toml` with `[workspace]` is).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/presage-test is two levels below the root")
        .to_path_buf()
}

/// The model conformance fixtures: `$PRESAGE_FIXTURES`, or the repository's own
/// `fixtures/models`.
pub fn model_fixtures() -> PathBuf {
    match std::env::var_os("PRESAGE_FIXTURES") {
        Some(dir) => PathBuf::from(dir),
        None => workspace_root().join("fixtures/models"),
    }
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding an ephemeral loopback port")
        .port()
}

/// A temporary project folder, removed on drop.
pub struct TestProject {
    dir: tempfile::TempDir,
}

impl TestProject {
    /// An empty project folder.
    pub fn new() -> TestProject {
        TestProject {
            dir: tempfile::Builder::new()
                .prefix("presage-test-")
                .tempdir()
                .expect("creating a temp dir"),
        }
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file (creating folders), relative to the project.
    pub fn write(&self, relative: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir.path().join(relative);
        if let Some(parent) = path.parent() {
            fs_err::create_dir_all(parent).expect("creating folders");
        }
        fs_err::write(&path, contents).expect("writing a test file");
        path
    }

    /// Copies a file into the project.
    pub fn copy(&self, from: &Path, relative: &str) -> PathBuf {
        let bytes = fs_err::read(from).expect("reading a fixture");
        self.write(relative, bytes)
    }
}

impl Default for TestProject {
    fn default() -> Self {
        TestProject::new()
    }
}

/// A child process killed on drop, with its stderr collected line by line.
pub struct ChildProcess {
    child: Child,
    stderr: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl ChildProcess {
    /// Spawns `command` with stdout discarded and stderr captured.
    pub fn spawn(mut command: Command) -> ChildProcess {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawning a child process");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        ChildProcess {
            child,
            stderr: rx,
            seen: Vec::new(),
        }
    }

    /// Waits until a stderr line contains `needle`; panics with what was seen after
    /// `timeout`.
    pub fn wait_for_stderr(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        if let Some(line) = self.seen.iter().find(|l| l.contains(needle)) {
            return line.clone();
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no stderr line with `{needle}` within {timeout:?}; saw:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Every stderr line so far; once the process has exited, all of them (waits up
    /// to 2 s for the last ones).
    pub fn stderr_lines(&mut self) -> &[String] {
        if self.child.try_wait().ok().flatten().is_some() {
            // The reader thread ends with the pipe: read until it does.
            let deadline = Instant::now() + Duration::from_secs(2);
            while let Ok(line) = self
                .stderr
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                self.seen.push(line);
            }
        } else {
            while let Ok(line) = self.stderr.try_recv() {
                self.seen.push(line);
            }
        }
        &self.seen
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM, as a service manager stopping the process does.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits for the process to exit; `None` if it still runs after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for a child process") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGKILL and reaps the process.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Polls `url` until it answers 200, or panics after `timeout`.
pub fn wait_http_ok(url: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(resp) = ureq::get(url).call()
            && resp.status() == 200
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "`{url}` did not answer 200 within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An HTTP answer: status and JSON body.
pub fn http_json(
    method: &str,
    url: &str,
    body: Option<&serde_json::Value>,
    bearer: Option<&str>,
) -> (u16, serde_json::Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let auth = bearer.map(|t| format!("Bearer {t}"));
    let result = match (method, body) {
        ("GET", _) => {
            let mut req = agent.get(url);
            if let Some(a) = &auth {
                req = req.header("Authorization", a);
            }
            req.call()
        }
        (_, body) => {
            let mut req = agent.post(url);
            if let Some(a) = &auth {
                req = req.header("Authorization", a);
            }
            match body {
                Some(b) => req.send_json(b),
                None => req.send_empty(),
            }
        }
    };
    let mut resp = result.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    (status, json)
}

/// A real `redis-server` on a free loopback port, without persistence; killed on drop.
pub struct RedisServer {
    port: u16,
    _process: ChildProcess,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts one (standalone) and waits until it accepts connections.
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// Starts one with extra arguments (e.g. `--cluster-enabled yes`).
    pub fn start_with(extra: &[&str]) -> RedisServer {
        let dir = tempfile::tempdir().expect("temp dir for redis");
        let port = free_port();
        let mut command = Command::new("redis-server");
        command
            .arg("--port")
            .arg(port.to_string())
            .args([
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--loglevel",
                "warning",
            ])
            .arg("--dir")
            .arg(dir.path())
            .args(extra);
        let process = ChildProcess::spawn(command);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on port {port}; is it installed?"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        RedisServer {
            port,
            _process: process,
            _dir: dir,
        }
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

/// `redis-cli` against `127.0.0.1:port`; its stdout, trimmed. Panics when it fails.
pub fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("running redis-cli (install redis-tools)");
    assert!(
        out.status.success(),
        "redis-cli -p {port} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
}

/// A 3-node Redis Cluster (primaries only) on free loopback ports, made with
/// `redis-cli --cluster create`; every node is killed on drop.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three `redis-server --cluster-enabled yes`, joins them into a cluster
    /// with the 16384 slots split evenly, and waits until every node reports
    /// `cluster_state:ok`.
    pub fn start() -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                // The cluster bus port, explicit: the default (port + 10000) may be
                // taken or out of range for an ephemeral port.
                let bus = free_port().to_string();
                RedisServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-port",
                    &bus,
                    "--cluster-node-timeout",
                    "5000",
                ])
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let mut create = vec!["--cluster", "create"];
        create.extend(addrs.iter().map(String::as_str));
        create.extend(["--cluster-replicas", "0", "--cluster-yes"]);
        redis_cli(nodes[0].port(), &create);
        let deadline = Instant::now() + Duration::from_secs(20);
        for node in &nodes {
            loop {
                let info = redis_cli(node.port(), &["CLUSTER", "INFO"]);
                if info.lines().any(|l| l.trim() == "cluster_state:ok") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "redis cluster did not become ok on port {}: {info}",
                    node.port()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        RedisCluster { nodes }
    }

    /// The nodes' ports.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(RedisServer::port).collect()
    }

    /// `redis://127.0.0.1:PORT` of every node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }
}

/// Counts the keys on the server at `port` that match `pattern`, with `SCAN`
/// (never `KEYS`).
pub fn count_keys(port: u16, pattern: &str) -> usize {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["--scan", "--pattern", pattern])
        .output()
        .expect("running redis-cli --scan");
    assert!(out.status.success(), "redis-cli --scan on port {port}");
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// A real S3-compatible server (moto in server mode, from PyPI) on a free loopback
/// port, holding nothing until a test uploads; killed on drop.
pub struct MotoServer {
    port: u16,
    _process: ChildProcess,
}

impl MotoServer {
    /// Starts one and waits until it answers (scripts/test installs moto).
    pub fn start() -> MotoServer {
        MotoServer::start_with_env(&[])
    }

    /// Starts one that checks credentials on every request (moto's IAM emulation):
    /// any key a test makes up is refused.
    pub fn start_with_auth() -> MotoServer {
        MotoServer::start_with_env(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")])
    }

    fn start_with_env(env: &[(&str, &str)]) -> MotoServer {
        let port = free_port();
        let mut command = Command::new("python3");
        command.args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ]);
        command.envs(env.iter().copied());
        let process = ChildProcess::spawn(command);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if ureq::get(&format!("http://127.0.0.1:{port}/moto-api/"))
                .call()
                .is_ok()
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "moto did not start on port {port}; is it installed? (python3 -m pip install 'moto[server]')"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        MotoServer {
            port,
            _process: process,
        }
    }

    /// `http://127.0.0.1:PORT`, the endpoint S3 clients are given.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates `bucket` (moto takes unsigned requests).
    pub fn create_bucket(&self, bucket: &str) {
        ureq::put(&format!("{}/{bucket}", self.endpoint()))
            .send_empty()
            .unwrap_or_else(|e| panic!("creating bucket {bucket} on moto: {e}"));
    }

    /// The environment an S3 client needs to reach this server with fake credentials.
    pub fn aws_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ]
    }
}

/// The PostgreSQL server the tests use: `$PRESAGE_TEST_POSTGRES`, or the one on
/// 127.0.0.1:5432, database `test`, trust auth (scripts/test starts it where it can).
pub fn postgres_url() -> String {
    std::env::var("PRESAGE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/test".to_owned())
}

/// A schema name no other test process uses: `presage_it_<pid>_<n>`.
pub fn unique_schema(tag: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "presage_it_{}_{}_{tag}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
