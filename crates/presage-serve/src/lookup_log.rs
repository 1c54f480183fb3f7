//! The lookup log: a sample of answers appended as Parquet files, for knowing which
//! predictions are read at all and for joining served answers with labels later.
//!
//! Answers go through a bounded channel to one writer thread, so serving never waits
//! on disk: when the channel is full the answer is not logged (counted in
//! `dropped`). The thread writes a new file whenever it holds [`ROLL_ROWS`] rows or
//! [`ROLL_EVERY`] has passed; each file is written under a temporary name and renamed,
//! so a reader of the folder never sees a partial file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use arrow::array::{
    ArrayRef, Float64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
    UInt64Builder,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use chrono::{DateTime, Utc};

use crate::Status;

/// Rows per file at most.
pub const ROLL_ROWS: usize = 100_000;
/// A file is written at least this often while answers arrive.
pub const ROLL_EVERY: Duration = Duration::from_secs(5);
/// Answers waiting for the writer before new ones are dropped.
const QUEUE: usize = 65_536;

/// What the writer thread is sent.
enum Message {
    Entry(Entry),
    /// Write what is buffered now, then say so.
    Flush(SyncSender<()>),
}

/// One logged answer.
struct Entry {
    time: DateTime<Utc>,
    job: String,
    key: String,
    version: u64,
    status: Status,
    age_seconds: f64,
}

/// The columns of every lookup-log file.
pub fn lookup_log_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("job", DataType::Utf8, false),
        Field::new("key", DataType::Utf8, false),
        Field::new("version", DataType::UInt64, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("age_seconds", DataType::Float64, false),
    ]))
}

/// A sampled log of answers into a folder of Parquet files.
pub struct LookupLog {
    sender: Option<SyncSender<Message>>,
    writer: Option<std::thread::JoinHandle<()>>,
    /// Answers kept: `sample` of 2^64.
    threshold: u64,
    counter: AtomicU64,
    /// Answers not logged because the writer fell behind.
    pub dropped: AtomicU64,
}

impl LookupLog {
    /// Starts logging a `sample` fraction (0 to 1) of answers into `dir`.
    pub fn start(dir: &Path, sample: f64) -> std::io::Result<LookupLog> {
        std::fs::create_dir_all(dir)?;
        let (sender, receiver) = sync_channel(QUEUE);
        let dir = dir.to_path_buf();
        let writer = std::thread::Builder::new()
            .name("lookup-log".into())
            .spawn(move || write_files(&dir, &receiver))?;
        Ok(LookupLog {
            sender: Some(sender),
            writer: Some(writer),
            threshold: (sample.clamp(0.0, 1.0) * u64::MAX as f64) as u64,
            counter: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        })
    }

    /// Logs an answer if it falls in the sample.
    pub fn record(&self, job: &str, key: &str, version: u64, status: Status, age_seconds: f64) {
        if !self.sampled() {
            return;
        }
        let Some(sender) = &self.sender else { return };
        let entry = Entry {
            time: Utc::now(),
            job: job.to_owned(),
            key: truncated(key, MAX_LOGGED_KEY_BYTES).to_owned(),
            version,
            status,
            age_seconds,
        };
        if let Err(TrySendError::Full(_)) = sender.try_send(Message::Entry(entry)) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Writes every answer logged so far into a file and returns once it is written:
    /// what a server does before it exits, since the writer otherwise waits up to
    /// [`ROLL_EVERY`].
    pub fn flush(&self) {
        let Some(sender) = &self.sender else { return };
        let (done, written) = sync_channel(1);
        // Blocks while the queue is full: the writer is draining it.
        if sender.send(Message::Flush(done)).is_ok() {
            let _ = written.recv();
        }
    }

    /// A well-spread pseudo-random decision per answer (SplitMix64 of a counter).
    fn sampled(&self) -> bool {
        if self.threshold == u64::MAX {
            return true;
        }
        let mut z = self
            .counter
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) < self.threshold
    }
}

impl Drop for LookupLog {
    /// Writes what is buffered before the server exits.
    fn drop(&mut self) {
        drop(self.sender.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

fn write_files(dir: &Path, receiver: &Receiver<Message>) {
    let mut buffer: Vec<Entry> = Vec::new();
    let mut since = Instant::now();
    let mut sequence = 0u64;
    loop {
        let mut flushed = None;
        let open = match receiver.recv_timeout(Duration::from_millis(200)) {
            Ok(Message::Entry(entry)) => {
                if buffer.is_empty() {
                    since = Instant::now();
                }
                buffer.push(entry);
                true
            }
            Ok(Message::Flush(done)) => {
                flushed = Some(done);
                true
            }
            Err(RecvTimeoutError::Timeout) => true,
            Err(RecvTimeoutError::Disconnected) => false,
        };
        let due =
            buffer.len() >= ROLL_ROWS || (!buffer.is_empty() && since.elapsed() >= ROLL_EVERY);
        if !buffer.is_empty() && (due || !open || flushed.is_some()) {
            sequence += 1;
            if let Err(e) = write_file(dir, &std::mem::take(&mut buffer), sequence) {
                eprintln!("lookup log: writing into `{}`: {e}", dir.display());
            }
        }
        if let Some(done) = flushed {
            let _ = done.send(());
        }
        if !open {
            return;
        }
    }
}

fn write_file(dir: &Path, entries: &[Entry], sequence: u64) -> Result<PathBuf, String> {
    let mut time = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let mut job = StringBuilder::new();
    let mut key = StringBuilder::new();
    let mut version = UInt64Builder::new();
    let mut status = StringBuilder::new();
    let mut age = Float64Builder::new();
    for e in entries {
        time.append_value(e.time.timestamp_micros());
        job.append_value(&e.job);
        key.append_value(&e.key);
        version.append_value(e.version);
        status.append_value(e.status.as_str());
        age.append_value(e.age_seconds);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(time.finish()),
        Arc::new(job.finish()),
        Arc::new(key.finish()),
        Arc::new(version.finish()),
        Arc::new(status.finish()),
        Arc::new(age.finish()),
    ];
    let batch = RecordBatch::try_new(lookup_log_schema(), columns).map_err(|e| e.to_string())?;
    let name = format!(
        "lookups-{}-{}-{sequence:06}.parquet",
        Utc::now().format("%Y%m%dT%H%M%S"),
        std::process::id()
    );
    let tmp = dir.join(format!(".{name}.tmp"));
    let file = std::fs::File::create(&tmp).map_err(|e| e.to_string())?;
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None)
        .map_err(|e| e.to_string())?;
    writer.write(&batch).map_err(|e| e.to_string())?;
    writer.close().map_err(|e| e.to_string())?;
    let path = dir.join(name);
    std::fs::rename(&tmp, &path).map_err(|e| e.to_string())?;
    Ok(path)
}

/// Longest key the log records, in bytes: a job with a `default` answers any key,
/// and a client must not fill the log's disk with megabyte keys.
pub const MAX_LOGGED_KEY_BYTES: usize = 1024;

/// `text` cut to at most `max` bytes, at a character boundary.
fn truncated(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod key_tests {
    use super::truncated;

    #[test]
    fn long_keys_are_cut_at_a_character_boundary() {
        assert_eq!(truncated("abc", 1024), "abc");
        assert_eq!(truncated("aé", 2), "a");
        assert_eq!(truncated(&"k".repeat(5000), 1024).len(), 1024);
    }
}
