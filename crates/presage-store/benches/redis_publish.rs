//! Publishing already-scored rows into a local Redis: presage's Redis store against
//! redis-py pipelining the same `SET`s, and `redis-benchmark`'s pipelined `SET` as
//! the server's own ceiling, in the same run on the same server.
//!
//! ```text
//! pip install redis hiredis
//! cargo bench -p presage-store --bench redis_publish
//! PRESAGE_BENCH_ROWS=200000 PRESAGE_BENCH_RUNS=1 cargo bench -p presage-store --bench redis_publish
//! ```
//!
//! Data: `PRESAGE_BENCH_ROWS` rows (1,000,000 by default) with string keys
//! `user:00000042`, a `probability` (f32) and a `label` (i64), in Arrow batches of
//! 8,192 rows, built before timing. One timed presage run is `begin`, every
//! `write`, `finish` and `publish` (the pointer flip included), against an empty
//! server (`FLUSHALL` before each run, so no retention work is timed). The peer
//! (`benches/redis_peer.py`) sets the very keys and values presage wrote (dumped from
//! Redis after the last presage run, untimed) with redis-py pipelines of 8,192
//! commands. Medians of `PRESAGE_BENCH_RUNS` runs (5 by default).

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, Float32Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field};
use chrono::Utc;
use presage_store::redis::RedisStore;
use presage_store::{KeyInfo, MANIFEST_FORMAT, Manifest, ModelInfo, VersionId};

const BATCH_ROWS: usize = 8192;
const JOB: &str = "bench";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// A redis-server on a free loopback port, killed on drop.
struct Server {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = tempfile::tempdir().expect("temp dir");
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--loglevel", "warning"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .spawn()
            .expect("starting redis-server (is it installed?)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Server {
            child,
            port,
            _dir: dir,
        }
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn batches(rows: usize) -> Vec<(ArrayRef, Vec<ArrayRef>)> {
    (0..rows)
        .step_by(BATCH_ROWS)
        .map(|start| {
            let end = (start + BATCH_ROWS).min(rows);
            let keys: StringArray = (start..end).map(|i| Some(format!("user:{i:08}"))).collect();
            let probability: Float32Array = (start..end)
                .map(|i| ((i as u64).wrapping_mul(2_654_435_761) % 1_000_000) as f32 / 1e6)
                .collect();
            let label: Int64Array = probability
                .values()
                .iter()
                .map(|&p| i64::from(p > 0.5))
                .collect();
            (
                Arc::new(keys) as ArrayRef,
                vec![
                    Arc::new(probability) as ArrayRef,
                    Arc::new(label) as ArrayRef,
                ],
            )
        })
        .collect()
}

fn manifest() -> Manifest {
    let now = Utc::now();
    Manifest {
        format: MANIFEST_FORMAT,
        id: VersionId(0),
        job: JOB.to_owned(),
        created_at: now,
        features_as_of: now,
        model: ModelInfo {
            name: "bench".into(),
            path: String::new(),
            sha256: String::new(),
            format: String::new(),
            engine: String::new(),
            inputs: Vec::new(),
        },
        sources: Vec::new(),
        rows: 0,
        key: KeyInfo {
            column: "user".into(),
            key_type: "string".into(),
        },
        outputs: Vec::new(),
        checks: Vec::new(),
        distributions: Vec::new(),
        ranked: None,
        forced: false,
        files: Vec::new(),
        parent: None,
        run_seconds: 0.0,
        stages: None,
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// One timed publish; returns rows/s and the version's key prefix.
async fn publish_once(
    store: &RedisStore,
    data: &[(ArrayRef, Vec<ArrayRef>)],
    rows: usize,
) -> (f64, String) {
    let outputs = [
        Field::new("probability", DataType::Float32, true),
        Field::new("label", DataType::Int64, true),
    ];
    let started = Instant::now();
    let mut writer = store
        .begin(JOB, Field::new("user", DataType::Utf8, false), &outputs)
        .await
        .expect("begin");
    for (keys, values) in data {
        writer.write(keys, values).await.expect("write");
    }
    let staged = writer.finish().await.expect("finish");
    let prefix = staged.prefix().to_owned();
    staged.publish(manifest(), 5, true).await.expect("publish");
    (rows as f64 / started.elapsed().as_secs_f64(), prefix)
}

/// Writes `key\tvalue` lines of every key under `prefix` (as presage wrote them).
async fn dump(store_url: &str, prefix: &str, path: &std::path::Path) {
    use std::io::Write;
    let client = redis::Client::open(store_url).expect("url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let mut keys: Vec<Vec<u8>> = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, found): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(10_000)
            .query_async(&mut conn)
            .await
            .expect("scan");
        keys.extend(found);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("dump file"));
    for chunk in keys.chunks(10_000) {
        let values: Vec<Vec<u8>> = redis::cmd("MGET")
            .arg(chunk)
            .query_async(&mut conn)
            .await
            .expect("mget");
        for (key, value) in chunk.iter().zip(values) {
            out.write_all(key).unwrap();
            out.write_all(b"\t").unwrap();
            out.write_all(&value).unwrap();
            out.write_all(b"\n").unwrap();
        }
    }
    out.flush().unwrap();
}

fn main() {
    let rows = env_usize("PRESAGE_BENCH_ROWS", 1_000_000);
    let runs = env_usize("PRESAGE_BENCH_RUNS", 5).max(1);
    let server = Server::start();
    let url = format!("redis://127.0.0.1:{}", server.port);
    println!(
        "redis publish: {rows} rows, {runs} runs, redis-server {} on port {}",
        server
            .cli(&["INFO", "server"])
            .lines()
            .find_map(|l| l.strip_prefix("redis_version:"))
            .unwrap_or("?"),
        server.port
    );
    let data = batches(rows);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");

    let mut presage = Vec::new();
    let mut prefix = String::new();
    runtime.block_on(async {
        let store = RedisStore::connect(std::slice::from_ref(&url))
            .await
            .expect("connect");
        for run in 0..runs {
            server.cli(&["FLUSHALL", "SYNC"]);
            let (rate, p) = publish_once(&store, &data, rows).await;
            println!("  presage run {run}: {rate:.0} rows/s");
            presage.push(rate);
            prefix = p;
        }
    });
    let used = server.cli(&["INFO", "memory"]);
    let used = used
        .lines()
        .find_map(|l| l.strip_prefix("used_memory_human:"))
        .unwrap_or("?")
        .to_owned();
    let dump_dir = tempfile::tempdir().expect("temp dir");
    let dump_path = dump_dir.path().join("rows.tsv");
    runtime.block_on(dump(&url, &prefix, &dump_path));
    server.cli(&["FLUSHALL", "SYNC"]);

    let peer_script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../benches/redis_peer.py");
    let peer = Command::new("python3")
        .arg(&peer_script)
        .args([
            "--port",
            &server.port.to_string(),
            "--runs",
            &runs.to_string(),
        ])
        .arg("--input")
        .arg(&dump_path)
        .output();
    let peer_rates: Vec<f64> = match &peer {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("rows_per_second "))
            .filter_map(|v| v.trim().parse().ok())
            .collect(),
        Ok(out) => {
            eprintln!(
                "peer failed (pip install redis hiredis?): {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Vec::new()
        }
        Err(e) => {
            eprintln!("peer failed to start: {e}");
            Vec::new()
        }
    };
    for (run, rate) in peer_rates.iter().enumerate() {
        println!("  redis-py run {run}: {rate:.0} rows/s");
    }
    let peer_version = peer
        .as_ref()
        .ok()
        .and_then(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .find_map(|l| l.strip_prefix("peer ").map(str::to_owned))
        })
        .unwrap_or_else(|| "redis-py".to_owned());

    server.cli(&["FLUSHALL", "SYNC"]);
    let ceiling = Command::new("redis-benchmark")
        .args([
            "-p",
            &server.port.to_string(),
            "-t",
            "set",
            "-P",
            "64",
            "-q",
        ])
        .args(["-n", &rows.to_string(), "-r", &rows.to_string(), "-d", "36"])
        .output()
        .ok()
        .and_then(|out| {
            String::from_utf8_lossy(&out.stdout)
                .split(['\r', '\n'])
                .filter_map(|l| l.strip_prefix("SET: "))
                .next_back()
                .and_then(|l| {
                    l.split_whitespace()
                        .next()
                        .and_then(|v| v.parse::<f64>().ok())
                })
        });

    let presage = median(presage);
    println!();
    println!("| writer | rows/s (median of {runs}) | vs presage |");
    println!("|---|---:|---:|");
    println!("| presage Redis store (begin → publish) | {presage:.0} | 1.00× |");
    if !peer_rates.is_empty() {
        let peer = median(peer_rates);
        println!(
            "| {peer_version}, pipelined SET, 8,192 per pipeline | {peer:.0} | {:.2}× |",
            peer / presage
        );
    }
    if let Some(ceiling) = ceiling {
        println!(
            "| redis-benchmark SET -P 64 (server ceiling, 36-byte values) | {ceiling:.0} | {:.2}× |",
            ceiling / presage
        );
    }
    println!("redis used_memory after a presage run: {used}");
    println!("goal: >= 500,000 rows/s; presage measured {presage:.0} rows/s");
}
