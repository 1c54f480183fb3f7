//! Progress for long work: a bar on a terminal, plain log lines otherwise.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use presage_data::{ByteSize, QueryProgress};
use presage_job::{Reporter, Stage};

/// Draws a run's progress on stderr.
pub struct RunReporter {
    job: String,
    bar: Option<ProgressBar>,
    plain: Mutex<PlainState>,
}

struct PlainState {
    started: Instant,
    last_line: Instant,
    expected: Option<u64>,
}

impl RunReporter {
    /// A reporter for `job`; a bar when stderr is a terminal.
    pub fn new(job: &str) -> RunReporter {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        let now = Instant::now();
        RunReporter {
            job: job.to_owned(),
            bar,
            plain: Mutex::new(PlainState {
                started: now,
                last_line: now,
                expected: None,
            }),
        }
    }

    /// Removes the bar before the summary line is printed.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn stage_name(stage: Stage) -> &'static str {
    match stage {
        Stage::LoadingModel => "loading model",
        Stage::Planning => "planning features",
        Stage::Features => "computing features",
        Stage::Scoring { .. } => "scoring",
        Stage::Checking => "checking",
        Stage::Publishing => "publishing",
        Stage::Exporting => "exporting",
    }
}

impl Reporter for RunReporter {
    fn stage(&self, stage: Stage) {
        let name = stage_name(stage);
        let mut plain = self.plain.lock().expect("reporter lock");
        if let Stage::Scoring { expected_rows } = stage {
            plain.expected = expected_rows;
            plain.started = Instant::now();
        }
        match &self.bar {
            Some(bar) => {
                if let Stage::Scoring {
                    expected_rows: Some(n),
                } = stage
                {
                    bar.set_length(n);
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{prefix} {msg} [{bar:30}] {human_pos}/~{human_len} rows, {per_sec}, eta {eta}",
                        )
                        .expect("valid template")
                        .progress_chars("=> "),
                    );
                } else if let Stage::Scoring {
                    expected_rows: None,
                } = stage
                {
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{spinner} {prefix} {msg}: {human_pos} rows, {per_sec}",
                        )
                        .expect("valid template"),
                    );
                }
                bar.set_prefix(self.job.clone());
                bar.set_message(name);
            }
            None => eprintln!("{}: {name}", self.job),
        }
    }

    fn features(&self, progress: QueryProgress, elapsed: Duration) {
        let mut line = format!(
            "computing features: {} rows read",
            human_count(progress.rows_read)
        );
        if progress.bytes_read > 0 {
            line += &format!(", {}", ByteSize(progress.bytes_read));
            let secs = elapsed.as_secs_f64();
            if secs >= 1.0 {
                line += &format!(
                    " ({}/s)",
                    ByteSize((progress.bytes_read as f64 / secs) as u64)
                );
            }
        }
        if progress.objects_fetched > 0 {
            line += &format!(
                ", {} objects fetched",
                human_count(progress.objects_fetched)
            );
        }
        if progress.spilled_bytes > 0 {
            line += &format!(", {} spilled", ByteSize(progress.spilled_bytes));
        }
        line += &format!(", {:.0}s", elapsed.as_secs_f64());
        match &self.bar {
            Some(bar) => bar.set_message(line),
            None => {
                let mut plain = self.plain.lock().expect("reporter lock");
                if plain.last_line.elapsed() >= Duration::from_secs(5) {
                    plain.last_line = Instant::now();
                    eprintln!("{}: {line}", self.job);
                }
            }
        }
    }

    fn rows(&self, rows: u64) {
        match &self.bar {
            Some(bar) => bar.set_position(rows),
            None => {
                let mut plain = self.plain.lock().expect("reporter lock");
                if plain.last_line.elapsed() >= Duration::from_secs(5) {
                    plain.last_line = Instant::now();
                    let secs = plain.started.elapsed().as_secs_f64().max(1e-9);
                    let rate = rows as f64 / secs;
                    let eta = plain
                        .expected
                        .filter(|&n| n > rows && rate > 0.0)
                        .map(|n| format!(", eta {:.0}s", (n - rows) as f64 / rate))
                        .unwrap_or_default();
                    eprintln!("{}: scored {rows} rows ({rate:.0} rows/s{eta})", self.job);
                }
            }
        }
    }
}

/// `812`, `45.1 K`, `12.3 M`, `1.20 B`.
fn human_count(n: u64) -> String {
    match n {
        0..1_000 => n.to_string(),
        1_000..1_000_000 => format!("{:.1} K", n as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} M", n as f64 / 1e6),
        _ => format!("{:.2} B", n as f64 / 1e9),
    }
}
