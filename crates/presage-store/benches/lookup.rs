//! The embedded lookup file against LMDB (heed) and redb, on the same data in the
//! same run: build rate and memory, warm point lookups (hits and misses, ops/s and
//! per-lookup latency), and open + first lookup in a fresh process.
//!
//! ```text
//! cargo bench -p presage-store --bench lookup
//! PRESAGE_BENCH_ROWS=1000000 cargo bench -p presage-store --bench lookup   # a quick run
//! ```
//! Data: `PRESAGE_BENCH_ROWS` rows (10,000,000 by default) of 16-byte string keys
//! (hex of a hash of the row number), a `probability` (f32) and a `label` (i64), in
//! Arrow batches of 65,536 rows, in key-hash (random) order. Peers store the same
//! 12 value bytes per key. Files go to `PRESAGE_BENCH_DIR`, else a temporary folder
//! under cargo's target tmp dir.

#![allow(
    unsafe_code,
    reason = "opening LMDB and evicting files from the page cache are unsafe calls"
)]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, ArrayRef, AsArray, Float32Array, Int64Array, StringArray};
use arrow::datatypes::{Float32Type, Int64Type};
use presage_store::lookup::{
    FieldType, GET_MANY_GROUP, Key, KeyType, LookupFile, LookupWriter, Value, ValueField,
};

const BATCH_ROWS: usize = 65_536;
/// Keys looked up per pass (hits, and as many misses).
const SAMPLE: usize = 1_000_000;
/// Lookups timed one by one for the latency percentiles.
const LATENCY_SAMPLE: usize = 200_000;
const MISS_SALT: u64 = 0x0005_eed0_fa11_5a17;
const MAP_SIZE: usize = 16 << 30;

type Table = redb::TableDefinition<'static, &'static [u8], &'static [u8]>;
const REDB_TABLE: Table = redb::TableDefinition::new("predictions");

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        child(&args[2..]);
        return;
    }
    let rows: usize = env_or("PRESAGE_BENCH_ROWS", 10_000_000);
    let runs: usize = env_or("PRESAGE_BENCH_RUNS", 5);
    let base = std::env::var_os("PRESAGE_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    fs_err::create_dir_all(&base).unwrap();
    let dir = tempfile::tempdir_in(&base).unwrap();
    println!(
        "# lookup benchmark: {rows} rows, 16-byte string keys, f32 + i64 values; files in {}",
        dir.path().display()
    );
    println!(
        "# {} cores; lookups: {runs} passes of {} keys each after a warm-up pass, median; latency: {LATENCY_SAMPLE} lookups timed one by one",
        cores(),
        SAMPLE.min(rows)
    );

    let t = Instant::now();
    let batches = make_batches(rows);
    let hits: Vec<String> = sample_keys(rows, 0);
    let misses: Vec<String> = sample_keys(rows, MISS_SALT);
    println!(
        "# generated Arrow data in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let presage_path = dir.path().join("predictions.lookup");
    let lmdb_path = dir.path().join("lmdb");
    let redb_path = dir.path().join("predictions.redb");

    let builds = [
        (
            "presage",
            measure_build(|| build_presage(&presage_path, &batches)),
        ),
        ("lmdb", measure_build(|| build_lmdb(&lmdb_path, &batches))),
        ("redb", measure_build(|| build_redb(&redb_path, &batches))),
    ];
    drop(batches);
    println!();
    println!("| build | rows/s | seconds | peak memory added | file size |");
    println!("|---|---|---|---|---|");
    for (name, build) in &builds {
        println!(
            "| {name} | {:.2} M | {:.2} | {:.0} MiB | {:.0} MiB |",
            rows as f64 / build.time.as_secs_f64() / 1e6,
            build.time.as_secs_f64(),
            build.peak_added as f64 / (1 << 20) as f64,
            build.bytes as f64 / (1 << 20) as f64
        );
    }

    // Open + first lookup, in fresh processes, before anything here maps the files
    // (a mapped page cannot be evicted).
    let first_key = &hits[hits.len() / 2];
    let stores = [
        ("presage", &presage_path),
        ("lmdb", &lmdb_path),
        ("redb", &redb_path),
    ];
    let mut opens = Vec::new();
    for (name, path) in stores {
        let cold = median_duration(
            (0..runs)
                .map(|_| open_in_child(name, path, first_key, true))
                .collect(),
        );
        let warm = median_duration(
            (0..runs)
                .map(|_| open_in_child(name, path, first_key, false))
                .collect(),
        );
        opens.push((name, cold, warm));
    }
    println!();
    println!(
        "| open + first lookup (fresh process, median of {runs}) | file evicted from page cache | file in page cache |"
    );
    println!("|---|---|---|");
    for (name, cold, warm) in &opens {
        println!(
            "| {name} | {} | {} |",
            fmt_duration(*cold),
            fmt_duration(*warm)
        );
    }

    let timer = timer_overhead();
    let mut lookups = Vec::new();
    let huge_pages;
    let slot_width;
    {
        let file = LookupFile::open(&presage_path).unwrap();
        file.verify().unwrap();
        let get = |key: &str| -> Option<f32> {
            match file.get(Key::Str(key))?.value(0) {
                Value::Float32(p) => Some(p),
                _ => None,
            }
        };
        lookups.push(("presage", measure_lookups(&hits, &misses, runs, get)));
        let mut json = Vec::with_capacity(128);
        let get_json = |key: &str| -> Option<f32> {
            json.clear();
            file.get(Key::Str(key))?.write_json(&mut json);
            Some(json.len() as f32)
        };
        lookups.push((
            "presage get + write_json",
            measure_lookups(&hits, &misses, runs, get_json),
        ));
        let get_many = |chunk: &[String]| -> usize {
            let mut keys = [Key::Int(0); GET_MANY_GROUP];
            for (key, text) in keys.iter_mut().zip(chunk) {
                *key = Key::Str(text);
            }
            let mut found = 0;
            file.get_many(&keys[..chunk.len()], |_, record| {
                if let Some(record) = record
                    && let Value::Float32(p) = record.value(0)
                {
                    black_box(p);
                    found += 1;
                }
            });
            found
        };
        lookups.push((
            "presage get_many (8 keys a call)",
            measure_groups(&hits, &misses, runs, GET_MANY_GROUP, get_many),
        ));
        // Lookups are much slower when the file sits in 4 KiB pages (see
        // `lookup::map`), and the kernel does not always give it 2 MiB ones: say
        // which it was.
        huge_pages = proc_kib("/proc/self/smaps_rollup", "FilePmdMapped") >> 10;
        // 8: slots point into a data section; wider: each slot holds its record.
        slot_width = file.slot_width();
    }
    {
        let env = open_lmdb(&lmdb_path);
        let db = lmdb_database(&env);
        let rtxn = env.read_txn().unwrap();
        let get = |key: &str| -> Option<f32> {
            let value = db.get(&rtxn, key.as_bytes()).unwrap()?;
            Some(f32::from_le_bytes(value[..4].try_into().unwrap()))
        };
        lookups.push(("lmdb", measure_lookups(&hits, &misses, runs, get)));
        drop(rtxn);
        env.prepare_for_closing().wait();
    }
    {
        let db = redb::Database::open(&redb_path).unwrap();
        let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
        let table = txn.open_table(REDB_TABLE).unwrap();
        let get = |key: &str| -> Option<f32> {
            let guard = table.get(key.as_bytes()).unwrap()?;
            Some(f32::from_le_bytes(guard.value()[..4].try_into().unwrap()))
        };
        lookups.push(("redb", measure_lookups(&hits, &misses, runs, get)));
    }
    println!();
    println!(
        "| warm lookups, 1 thread | hits/s | hit p50 | hit p99 | misses/s | miss p50 | miss p99 |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, l) in &lookups {
        println!(
            "| {name} | {:.2} M | {} | {} | {:.2} M | {} | {} |",
            l.hits.ops / 1e6,
            fmt_duration(l.hits.p50),
            fmt_duration(l.hits.p99),
            l.misses.ops / 1e6,
            fmt_duration(l.misses.p50),
            fmt_duration(l.misses.p99),
        );
    }
    println!(
        "(latencies include one `Instant::now()` pair, {} here; the presage file has {slot_width}-byte index slots and was mapped with 2 MiB pages for {huge_pages} of its {} MiB)",
        fmt_duration(timer),
        builds[0].1.bytes >> 20
    );

    println!();
    println!(
        "| presage / peer | build rows/s | hits/s | misses/s | hit p99 (lower is better) | cold open + first lookup (lower is better) |"
    );
    println!("|---|---|---|---|---|---|");
    for peer in 1..3 {
        let (name, build) = &builds[peer];
        let lookup = &lookups.iter().find(|(n, _)| n == name).unwrap().1;
        let ours = &lookups[0].1;
        println!(
            "| vs {name} | {:.2}× | {:.2}× | {:.2}× | {:.2}× | {:.2}× |",
            build.time.as_secs_f64() / builds[0].1.time.as_secs_f64(),
            ours.hits.ops / lookup.hits.ops,
            ours.misses.ops / lookup.misses.ops,
            ours.hits.p99.as_secs_f64() / lookup.hits.p99.as_secs_f64(),
            opens[0].1.as_secs_f64() / opens[peer].1.as_secs_f64(),
        );
    }
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .map(|v| v.replace('_', "").parse().expect("a number"))
        .unwrap_or(default)
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The 16-character key of row `i` (or of a key not in the data, with a salt).
fn key_of(i: u64, salt: u64) -> String {
    format!("{:016x}", splitmix(i ^ salt))
}

fn make_batches(rows: usize) -> Vec<(ArrayRef, Vec<ArrayRef>)> {
    (0..rows)
        .step_by(BATCH_ROWS)
        .map(|start| {
            let end = (start + BATCH_ROWS).min(rows) as u64;
            let range = start as u64..end;
            let keys = StringArray::from_iter_values(range.clone().map(|i| key_of(i, 0)));
            let probability =
                Float32Array::from_iter_values(range.clone().map(|i| (i % 1000) as f32 / 1000.0));
            let label = Int64Array::from_iter_values(range.map(|i| (i % 2) as i64));
            let columns: Vec<ArrayRef> = vec![Arc::new(probability), Arc::new(label)];
            (Arc::new(keys) as ArrayRef, columns)
        })
        .collect()
}

/// `SAMPLE` keys spread over the rows, in random order.
fn sample_keys(rows: usize, salt: u64) -> Vec<String> {
    let n = SAMPLE.min(rows) as u64;
    (0..n)
        .map(|i| key_of(splitmix(i.wrapping_mul(31) ^ 7) % rows as u64, salt))
        .collect()
}

/// The 12 value bytes the peers store: probability f32, label i64.
fn peer_value(columns: &[ArrayRef], row: usize) -> [u8; 12] {
    let p = columns[0].as_primitive::<Float32Type>().value(row);
    let l = columns[1].as_primitive::<Int64Type>().value(row);
    let mut out = [0u8; 12];
    out[..4].copy_from_slice(&p.to_le_bytes());
    out[4..].copy_from_slice(&l.to_le_bytes());
    out
}

struct Build {
    time: Duration,
    peak_added: u64,
    bytes: u64,
}

/// Runs a build, timing it and reading how far the process's peak RSS rose above
/// its RSS before (the peak is reset through `/proc/self/clear_refs`).
fn measure_build(build: impl FnOnce() -> u64) -> Build {
    let before = proc_kib("/proc/self/status", "VmRSS");
    fs_err::write("/proc/self/clear_refs", "5").unwrap();
    let t = Instant::now();
    let bytes = build();
    let time = t.elapsed();
    let peak = proc_kib("/proc/self/status", "VmHWM");
    Build {
        time,
        peak_added: peak.saturating_sub(before) * 1024,
        bytes,
    }
}

/// A `field: N kB` line of a `/proc` file.
fn proc_kib(file: &str, field: &str) -> u64 {
    let status = fs_err::read_to_string(file).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn build_presage(path: &Path, batches: &[(ArrayRef, Vec<ArrayRef>)]) -> u64 {
    let fields = vec![
        ValueField::new("probability", FieldType::Float32),
        ValueField::new("label", FieldType::Int64),
    ];
    let mut writer = LookupWriter::create(path, KeyType::Str, fields).unwrap();
    for (keys, columns) in batches {
        writer.append_batch(keys.as_ref(), columns).unwrap();
    }
    writer.finish().unwrap().bytes
}

fn open_lmdb(path: &Path) -> heed::Env {
    fs_err::create_dir_all(path).unwrap();
    // SAFETY: the benchmark is the only user of this environment.
    unsafe {
        heed::EnvOpenOptions::new()
            .map_size(MAP_SIZE)
            .max_dbs(1)
            .open(path)
    }
    .unwrap()
}

type LmdbDatabase<'e> = heed::Database<'e, heed::types::Bytes, heed::types::Bytes>;

/// The unnamed database of an existing environment.
fn lmdb_database(env: &heed::Env) -> LmdbDatabase<'_> {
    env.open_databases_and_commit(env.read_txn().unwrap(), |opener, rtxn| {
        opener
            .open_database(rtxn, None)
            .map(heed::CommitOrAbort::<_, ()>::Commit)
    })
    .unwrap()
    .unwrap_commit()
    .expect("the unnamed database exists")
}

fn build_lmdb(path: &Path, batches: &[(ArrayRef, Vec<ArrayRef>)]) -> u64 {
    let env = open_lmdb(path);
    let db: LmdbDatabase<'_> = env
        .create_databases_and_commit(env.write_txn().unwrap(), |opener, wtxn| {
            opener
                .create_database(wtxn, None)
                .map(heed::CommitOrAbort::<_, ()>::Commit)
        })
        .unwrap()
        .unwrap_commit();
    let mut wtxn = env.write_txn().unwrap();
    for (keys, columns) in batches {
        let keys = keys.as_string::<i32>();
        for row in 0..keys.len() {
            db.put(
                &mut wtxn,
                keys.value(row).as_bytes(),
                &peer_value(columns, row),
            )
            .unwrap();
        }
    }
    wtxn.commit().unwrap();
    env.prepare_for_closing().wait();
    fs_err::metadata(path.join("data.mdb")).unwrap().len()
}

fn build_redb(path: &Path, batches: &[(ArrayRef, Vec<ArrayRef>)]) -> u64 {
    let db = redb::Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut table = txn.open_table(REDB_TABLE).unwrap();
        for (keys, columns) in batches {
            let keys = keys.as_string::<i32>();
            for row in 0..keys.len() {
                table
                    .insert(
                        keys.value(row).as_bytes(),
                        peer_value(columns, row).as_slice(),
                    )
                    .unwrap();
            }
        }
    }
    txn.commit().unwrap();
    drop(db);
    fs_err::metadata(path).unwrap().len()
}

/// Runs `--child open STORE PATH KEY COLD` and reads the nanoseconds it prints.
fn open_in_child(store: &str, path: &Path, key: &str, cold: bool) -> Duration {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args(["--child", "open", store])
        .arg(path)
        .args([key, if cold { "cold" } else { "warm" }])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Duration::from_nanos(
        String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap(),
    )
}

/// Evicts a file's pages from the page cache (they are clean: the builds fsynced).
fn evict(path: &Path) {
    use std::os::fd::AsRawFd;
    let file = fs_err::File::open(path).unwrap();
    // SAFETY: a plain syscall on a file descriptor we own.
    let rc =
        unsafe { libc::posix_fadvise(file.file().as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(rc, 0, "posix_fadvise failed");
}

fn child(args: &[String]) {
    let [mode, store, path, key, cold] = args else {
        panic!("usage: --child open STORE PATH KEY cold|warm");
    };
    assert_eq!(mode, "open");
    let path = Path::new(path);
    if cold == "cold" {
        match store.as_str() {
            "lmdb" => {
                evict(&path.join("data.mdb"));
                evict(&path.join("lock.mdb"));
            }
            _ => evict(path),
        }
    }
    let t = Instant::now();
    let found = match store.as_str() {
        "presage" => {
            let file = LookupFile::open(path).unwrap();
            file.get(Key::Str(key))
                .map(|r| black_box(r.value(0)))
                .is_some()
        }
        "lmdb" => {
            // SAFETY: the benchmark is the only user of this environment.
            let env = unsafe {
                heed::EnvOpenOptions::new()
                    .map_size(MAP_SIZE)
                    .max_dbs(1)
                    .open(path)
            }
            .unwrap();
            let db = lmdb_database(&env);
            let rtxn = env.read_txn().unwrap();
            db.get(&rtxn, key.as_bytes())
                .unwrap()
                .map(|v| black_box(v[0]))
                .is_some()
        }
        "redb" => {
            let db = redb::Database::open(path).unwrap();
            let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
            let table = txn.open_table(REDB_TABLE).unwrap();
            table
                .get(key.as_bytes())
                .unwrap()
                .map(|v| black_box(v.value()[0]))
                .is_some()
        }
        other => panic!("unknown store `{other}`"),
    };
    let elapsed = t.elapsed();
    assert!(found, "{store}: first key not found");
    println!("{}", elapsed.as_nanos());
}

struct Side {
    ops: f64,
    p50: Duration,
    p99: Duration,
}

struct Lookups {
    hits: Side,
    misses: Side,
}

/// Times `get` over `hits` and `misses`, one key a call.
fn measure_lookups(
    hits: &[String],
    misses: &[String],
    runs: usize,
    mut get: impl FnMut(&str) -> Option<f32>,
) -> Lookups {
    measure_groups(hits, misses, runs, 1, |keys| {
        usize::from(black_box(get(black_box(&keys[0]))).is_some())
    })
}

/// Times `get` over `hits` and `misses`, `group` keys a call; `get` returns how
/// many of its keys it found. A key's latency is its call's: the answers of a
/// group are ready when the call returns.
fn measure_groups(
    hits: &[String],
    misses: &[String],
    runs: usize,
    group: usize,
    mut get: impl FnMut(&[String]) -> usize,
) -> Lookups {
    // Warm-up: every page these keys touch is mapped and cached before timing.
    for keys in hits.chunks(group).chain(misses.chunks(group)) {
        black_box(get(keys));
    }
    let mut side = |keys: &[String], expect_hit: bool| {
        let mut rates = Vec::new();
        for _ in 0..runs {
            let t = Instant::now();
            let mut found = 0usize;
            for chunk in keys.chunks(group) {
                found += get(black_box(chunk));
            }
            rates.push(keys.len() as f64 / t.elapsed().as_secs_f64());
            assert_eq!(
                found,
                if expect_hit { keys.len() } else { 0 },
                "wrong answers"
            );
        }
        rates.sort_by(f64::total_cmp);
        let mut latencies: Vec<Duration> = keys[..LATENCY_SAMPLE.min(keys.len())]
            .chunks(group)
            .map(|chunk| {
                let t = Instant::now();
                black_box(get(black_box(chunk)));
                t.elapsed()
            })
            .collect();
        latencies.sort_unstable();
        Side {
            ops: rates[rates.len() / 2],
            p50: latencies[latencies.len() / 2],
            p99: latencies[latencies.len() * 99 / 100],
        }
    };
    let hits = side(hits, true);
    let misses = side(misses, false);
    Lookups { hits, misses }
}

fn timer_overhead() -> Duration {
    let mut samples: Vec<Duration> = (0..100_000)
        .map(|_| {
            let t = Instant::now();
            t.elapsed()
        })
        .collect();
    samples.sort_unstable();
    samples[samples.len() / 2]
}

fn median_duration(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

fn fmt_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns < 10_000 {
        format!("{ns} ns")
    } else if ns < 10_000_000 {
        format!("{:.1} µs", ns as f64 / 1e3)
    } else {
        format!("{:.1} ms", ns as f64 / 1e6)
    }
}
