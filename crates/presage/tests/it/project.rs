//! A small real project: the logistic-regression fixture over its own input rows.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use std::time::Duration;

use presage_test::{ChildProcess, TestProject, free_port, model_fixtures, wait_http_ok};

/// The `presage` binary under test.
pub fn presage() -> Command {
    Command::new(env!("CARGO_BIN_EXE_presage"))
}

/// Runs `presage` with `args` in `dir`.
pub fn run_in(dir: &Path, args: &[&str]) -> Output {
    presage()
        .current_dir(dir)
        .args(args)
        .output()
        .expect("running presage")
}

/// Starts `presage serve` in `dir` on a free loopback port with `args` added; returns
/// the server and its base URL once `/readyz` answers 200.
pub fn serve_in(dir: &Path, args: &[&str]) -> (ChildProcess, String) {
    let port = free_port();
    let mut command = presage();
    command
        .current_dir(dir)
        .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
        .args(args);
    let mut server = ChildProcess::spawn(command);
    server.wait_for_stderr("serving on", Duration::from_secs(30));
    let base = format!("http://127.0.0.1:{port}");
    wait_http_ok(&format!("{base}/readyz"), Duration::from_secs(30));
    (server, base)
}

/// Stderr as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Stdout as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The twelve feature columns of the `sk_logreg_binary` fixture.
pub fn inputs() -> Vec<String> {
    (0..12).map(|i| format!("f{i}")).collect()
}

/// A project scoring `sk_logreg_binary`'s 2,000 input rows keyed by `key`.
pub struct SmallProject {
    pub project: TestProject,
}

impl SmallProject {
    pub fn new() -> SmallProject {
        let project = TestProject::new();
        let fixture = model_fixtures().join("sk_logreg_binary");
        project.copy(&fixture.join("input.parquet"), "data/rows.parquet");
        project.copy(&fixture.join("model.onnx"), "models/logreg.onnx");
        let small = SmallProject { project };
        small.write_config(&Self::sql("rows"), "key", &inputs());
        small
    }

    /// SQL selecting the key and every feature from `table`.
    pub fn sql(table: &str) -> String {
        format!("SELECT key, {} FROM {table}", inputs().join(", "))
    }

    /// Rewrites `presage.toml` with this SQL, key column and model inputs.
    pub fn write_config(&self, sql: &str, key: &str, inputs: &[String]) {
        let inputs = inputs
            .iter()
            .map(|i| format!("\"{i}\""))
            .collect::<Vec<_>>()
            .join(", ");
        self.project.write(
            "presage.toml",
            format!(
                r#"
data_dir = "store"

[sources.rows]
path = "data/rows.parquet"

[features.f]
key = "{key}"
sql = """{sql}"""

[models.logreg]
path = "models/logreg.onnx"
inputs = [{inputs}]

[jobs.score]
features = "f"
model = "logreg"
max_age = "1h"
keep_versions = 3
[jobs.score.checks]
min_rows = 100
"#
            ),
        );
    }

    pub fn path(&self) -> &Path {
        self.project.path()
    }

    /// Edits `presage.toml`: each `(from, to)` replaces text that must be there.
    pub fn edit_config(&self, edits: &[(&str, &str)]) {
        let config = self.path().join("presage.toml");
        let mut text = fs_err::read_to_string(&config).unwrap();
        for (from, to) in edits {
            assert!(
                text.contains(from),
                "`{from}` is not in the config:\n{text}"
            );
            text = text.replace(from, to);
        }
        fs_err::write(&config, text).unwrap();
    }

    pub fn run(&self, args: &[&str]) -> Output {
        run_in(self.path(), args)
    }

    /// Starts `presage run score` and waits until it pauses at `point` (the store's
    /// failpoints), for a test to kill it there or act while it runs.
    pub fn run_paused_at(&self, point: &str) -> ChildProcess {
        let mut command = presage();
        command
            .current_dir(self.path())
            .args(["run", "score"])
            .env("PRESAGE_TEST_PAUSE", point);
        let mut run = ChildProcess::spawn(command);
        run.wait_for_stderr(&format!("paused at {point}"), Duration::from_secs(60));
        run
    }

    /// The job's `CURRENT`, if any.
    pub fn current(&self) -> Option<String> {
        fs_err::read_to_string(self.path().join("store/score/CURRENT"))
            .ok()
            .map(|s| s.trim().to_owned())
    }

    pub fn version_dir(&self, id: u64) -> PathBuf {
        self.path().join(format!("store/score/versions/{id}"))
    }
}
