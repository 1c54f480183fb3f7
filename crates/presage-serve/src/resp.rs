//! The Redis protocol (RESP2 and RESP3) endpoint: any Redis client reads predictions.
//!
//! `GET job:key` answers the same JSON document as HTTP (nil for unknown keys),
//! `MGET` several at once. `PING`, `HELLO`, `COMMAND`, `INFO`, `CLIENT`, `SELECT 0`,
//! `CONFIG GET` and `QUIT` are there so that `redis-cli`, `redis-benchmark` and client
//! libraries connect as to any server. Everything else that writes is refused with a
//! read-only error. Pipelined commands are parsed from one read and answered with one
//! write.
//!
//! The endpoint runs its own event loops, one thread each (see [`spawn_resp`]), beside
//! the HTTP API's multi-threaded runtime.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::answer::{Status, refuse_stale, write_answer};
use crate::busy_poll::BusyPoll;
use crate::limits::{ConnectionCap, MAX_INLINE_BYTES, MAX_RESP_CONNECTIONS};
use crate::state::AppState;

/// Largest command accepted (bytes), so a client cannot make the server buffer forever.
const MAX_COMMAND_BYTES: usize = 1 << 20;
/// Most arguments in one command.
const MAX_ARGS: usize = 10_000;
/// Longest line of an array's or a bulk string's length: 20 digits and CRLF.
const MAX_LENGTH_LINE: usize = 22;
/// Bytes of a client's command name an error reply quotes at most, as Redis.
const MAX_ECHOED: usize = 128;
/// Bytes read from a socket at once.
const READ_CHUNK: usize = 64 * 1024;

/// Commands that modify data in Redis; presage answers them with a read-only error.
const WRITE_COMMANDS: &[&str] = &[
    "SET",
    "SETEX",
    "PSETEX",
    "SETNX",
    "MSET",
    "MSETNX",
    "DEL",
    "UNLINK",
    "EXPIRE",
    "PEXPIRE",
    "EXPIREAT",
    "PERSIST",
    "INCR",
    "INCRBY",
    "DECR",
    "DECRBY",
    "INCRBYFLOAT",
    "APPEND",
    "GETSET",
    "GETDEL",
    "GETEX",
    "HSET",
    "HMSET",
    "HDEL",
    "LPUSH",
    "RPUSH",
    "LPOP",
    "RPOP",
    "SADD",
    "SREM",
    "ZADD",
    "ZREM",
    "FLUSHDB",
    "FLUSHALL",
    "RENAME",
    "RENAMENX",
    "COPY",
    "MOVE",
    "RESTORE",
    "SETRANGE",
    "XADD",
    "EVAL",
    "EVALSHA",
    "FCALL",
    "PUBLISH",
];

/// How the Redis-protocol endpoint runs.
#[derive(Debug, Clone, Copy)]
pub struct RespOptions {
    /// Event-loop threads. Each accepts from the one listening socket, so connections
    /// spread over them.
    pub threads: usize,
    /// Keep each loop polling its sockets this long after its last read instead of
    /// sleeping at once (see [`crate::busy_poll`]); `None` sleeps at once.
    pub busy_poll: Option<Duration>,
    /// Connections open at once over all threads (Redis' `maxclients`); more are
    /// answered `-ERR max number of clients reached` and closed.
    pub max_connections: usize,
    /// A connection that sends nothing this long is closed (Redis' `timeout`);
    /// `None` keeps idle connections open.
    pub idle_timeout: Option<Duration>,
}

impl Default for RespOptions {
    /// One thread, no busy polling, [`MAX_RESP_CONNECTIONS`], no idle timeout.
    fn default() -> RespOptions {
        RespOptions {
            threads: 1,
            busy_poll: None,
            max_connections: MAX_RESP_CONNECTIONS,
            idle_timeout: None,
        }
    }
}

/// Starts the Redis-protocol endpoint on `listener`: `options.threads` threads, each an
/// event loop of its own (a single-threaded Tokio runtime) that accepts connections
/// and answers them. Returns once the threads run; they serve until the process ends.
///
/// Loops of their own rather than tasks on the HTTP API's multi-threaded runtime,
/// because busy polling needs a thread that owns its I/O driver: on a shared runtime
/// the driver goes to whichever worker parks, and a worker spinning beside it would
/// not see the sockets.
pub fn spawn_resp(
    listener: std::net::TcpListener,
    state: Arc<AppState>,
    options: RespOptions,
) -> std::io::Result<RespServer> {
    listener.set_nonblocking(true)?;
    let cap = ConnectionCap::new("Redis protocol", options.max_connections);
    let (stop, stopped) = watch::channel(false);
    let mut threads = Vec::new();
    for i in 0..options.threads.max(1) {
        let listener = listener.try_clone()?;
        let state = state.clone();
        let cap = cap.clone();
        let stopped = stopped.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        threads.push(
            std::thread::Builder::new()
                .name(format!("presage-resp-{i}"))
                .spawn(move || {
                    let served = runtime.block_on(async move {
                        let listener = TcpListener::from_std(listener)?;
                        let busy_poll = options.busy_poll.map(|window| {
                            let poller = BusyPoll::new(window);
                            tokio::spawn(poller.clone().run());
                            poller
                        });
                        let serving = Serving {
                            state,
                            busy_poll,
                            cap,
                            idle_timeout: options.idle_timeout,
                        };
                        accept_loop(listener, serving, stopped).await;
                        Ok::<(), std::io::Error>(())
                    });
                    if let Err(e) = served {
                        eprintln!("the Redis protocol endpoint stopped: {e}");
                    }
                })?,
        );
    }
    Ok(RespServer { stop, threads })
}

/// The running Redis-protocol endpoint; it serves until [`RespServer::stop`] or the
/// end of the process.
pub struct RespServer {
    stop: watch::Sender<bool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl RespServer {
    /// Stops accepting, lets every connection finish the commands it has read, and
    /// closes them; waits at most `grace` for that. Returns false if some loop was
    /// still busy when `grace` ran out (the process exit then cuts it).
    pub fn stop(self, grace: Duration) -> bool {
        let _ = self.stop.send(true);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if self
                .threads
                .iter()
                .all(std::thread::JoinHandle::is_finished)
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }
}

/// Resolves once `true` is sent; never, if the sender is dropped without sending it
/// (a [`RespServer`] dropped unstopped leaves the endpoint serving).
async fn stop_requested(stopped: &mut watch::Receiver<bool>) {
    if stopped.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// What every connection of one event loop shares.
struct Serving {
    state: Arc<AppState>,
    busy_poll: Option<Arc<BusyPoll>>,
    cap: Arc<ConnectionCap>,
    idle_timeout: Option<Duration>,
}

/// Accepts connections on `listener` and serves each on its own task until `stopped`,
/// then waits for the connections to finish what they read.
async fn accept_loop(listener: TcpListener, serving: Serving, mut stopped: watch::Receiver<bool>) {
    // The loop's own signal to its connections, so that the ones of different
    // threads never touch one lock on every read.
    let (stop_connections, connections_stopped) = watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop_requested(&mut stopped) => break,
            // Finished connections are reaped as they go.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, say: connections already open go on, and
                // accepting resumes once some close.
                eprintln!("Redis protocol: accepting a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(open) = serving.cap.open() else {
            // What Redis answers; a client whose socket cannot take it at once just
            // sees the connection close.
            let _ = stream.try_write(b"-ERR max number of clients reached\r\n");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let connection = Connection::new(
            stream,
            serving.state.clone(),
            serving.busy_poll.clone(),
            serving.idle_timeout,
        );
        let stopped = connections_stopped.clone();
        connections.spawn(async move {
            let _ = connection.run(stopped).await;
            drop(open);
        });
    }
    drop(listener);
    let _ = stop_connections.send(true);
    while connections.join_next().await.is_some() {}
}

/// One client. Its buffers are allocated when it first sends something, so that an
/// idle connection costs little.
struct Connection {
    stream: TcpStream,
    state: Arc<AppState>,
    input: Vec<u8>,
    /// Where the arguments of the command being run lie in `input`; reused, so that
    /// a command costs no allocation.
    spans: Vec<Range<usize>>,
    /// How far the command at the start of `input` has been parsed.
    progress: Progress,
    output: Vec<u8>,
    /// Scratch for one answer document.
    doc: Vec<u8>,
    resp3: bool,
    busy_poll: Option<Arc<BusyPoll>>,
    idle_timeout: Option<Duration>,
}

/// What parsing the input buffer found.
enum Parsed {
    /// A whole command (its arguments' spans written to the caller's list) and the
    /// bytes it used.
    Command(usize),
    /// More bytes are needed.
    Incomplete,
    /// The bytes are not RESP, or too many.
    Invalid(&'static str),
}

/// How far the command at the start of the input has been parsed, so that a command
/// arriving in pieces is scanned once, not from its start again at every read.
#[derive(Debug, Default, Clone, Copy)]
struct Progress {
    /// Inline: bytes already searched for the end of the line. Array: where its next
    /// argument starts, 0 until its length is read.
    pos: usize,
    /// Array: arguments still to read.
    remaining: usize,
}

impl Connection {
    fn new(
        stream: TcpStream,
        state: Arc<AppState>,
        busy_poll: Option<Arc<BusyPoll>>,
        idle_timeout: Option<Duration>,
    ) -> Connection {
        Connection {
            stream,
            state,
            input: Vec::new(),
            spans: Vec::new(),
            progress: Progress::default(),
            output: Vec::new(),
            doc: Vec::new(),
            resp3: false,
            busy_poll,
            idle_timeout,
        }
    }

    /// Serves the client until it quits, goes idle, breaks the protocol, or
    /// `stopped` turns true; the commands read before that are answered.
    async fn run(mut self, mut stopped: watch::Receiver<bool>) -> std::io::Result<()> {
        // Registered once: polling it again at every read costs one uncontended lock.
        let mut stop = std::pin::pin!(async move { stop_requested(&mut stopped).await });
        let readable = tokio::select! {
            biased;
            () = &mut stop => return Ok(()),
            readable = unless_idle(self.idle_timeout, self.stream.readable()) => readable,
        };
        let Some(readable) = readable else {
            return Ok(());
        };
        readable?;
        let mut chunk = vec![0u8; READ_CHUNK];
        self.input.reserve(16 * 1024);
        self.spans.reserve(4);
        self.output.reserve(16 * 1024);
        self.doc.reserve(256);
        loop {
            let read = tokio::select! {
                biased;
                    () = &mut stop => return Ok(()),
                read = unless_idle(self.idle_timeout, self.stream.read(&mut chunk)) => read,
            };
            let Some(n) = read else {
                return Ok(());
            };
            let n = n?;
            if n == 0 {
                return Ok(());
            }
            if let Some(busy_poll) = &self.busy_poll {
                busy_poll.touch();
            }
            self.input.extend_from_slice(&chunk[..n]);
            // Out of `self` while commands borrow their arguments from them.
            let input = std::mem::take(&mut self.input);
            let mut spans = std::mem::take(&mut self.spans);
            let mut consumed = 0;
            let mut quit = false;
            let mut invalid = None;
            loop {
                let rest = &input[consumed..];
                match parse(rest, &mut spans, &mut self.progress) {
                    Parsed::Command(used) => {
                        consumed += used;
                        let args = Args {
                            input: rest,
                            spans: &spans,
                        };
                        if self.execute(args).await {
                            quit = true;
                            break;
                        }
                    }
                    Parsed::Incomplete => break,
                    Parsed::Invalid(why) => {
                        invalid = Some(why);
                        break;
                    }
                }
            }
            self.input = input;
            self.spans = spans;
            if let Some(why) = invalid {
                self.error(&format!("ERR Protocol error: {why}"));
                self.stream.write_all(&self.output).await?;
                return Ok(());
            }
            self.input.drain(..consumed);
            if self.input.len() > MAX_COMMAND_BYTES {
                self.error("ERR Protocol error: command too large");
                quit = true;
            }
            if !self.output.is_empty() {
                self.stream.write_all(&self.output).await?;
                self.output.clear();
            }
            if quit {
                return Ok(());
            }
        }
    }

    /// Runs one command, appending its reply; true when the connection should close.
    async fn execute(&mut self, args: Args<'_>) -> bool {
        let Some(name) = args.get(0) else {
            return false;
        };
        // The hot path, without building the upper-cased name.
        if let Some(key) = args.get(1)
            && args.len() == 2
            && name.eq_ignore_ascii_case(b"GET")
        {
            let started = Instant::now();
            if self.get(key).await {
                self.state.latency.observe(started.elapsed());
            }
            return false;
        }
        let raw_name = name;
        let name = String::from_utf8_lossy(name).to_ascii_uppercase();
        match name.as_str() {
            "MGET" if args.len() >= 2 => {
                let started = Instant::now();
                self.array_header(args.len() - 1);
                if self.mget(args.after(1)).await {
                    // One observation per command, as HTTP has one per request.
                    self.state.latency.observe(started.elapsed());
                }
            }
            "GET" | "MGET" => self.error(&format!("ERR wrong number of arguments for '{}' command", name.to_lowercase())),
            "PING" => match args.get(1) {
                Some(message) => self.bulk(message),
                None => self.simple("PONG"),
            },
            "ECHO" if args.len() == 2 => self.bulk(args.get(1).unwrap_or_default()),
            "HELLO" => self.hello(args),
            "QUIT" => {
                self.simple("OK");
                return true;
            }
            "COMMAND" => self.array_header(0),
            "INFO" => self.info(),
            "SELECT" if args.get(1).is_some_and(|db| db == b"0") => self.simple("OK"),
            "SELECT" => self.error("ERR presage serves one database: 0"),
            "CLIENT" | "READONLY" | "RESET" => self.simple("OK"),
            "CONFIG" if args.get(1).is_some_and(|s| s.eq_ignore_ascii_case(b"GET")) => {
                // redis-benchmark asks for `save` and `appendonly`; presage has no settings to show.
                self.map_header(0)
            }
            "DBSIZE" => {
                let rows: u64 = self.state.jobs.values().filter_map(|s| s.current.load().as_ref().map(|v| v.manifest().rows)).sum();
                self.integer(rows as i64)
            }
            _ if WRITE_COMMANDS.contains(&name.as_str()) => {
                self.error("READONLY presage serves published predictions read-only; publish with `presage run`")
            }
            _ => self.unknown_command(raw_name),
        }
        false
    }

    /// Answers `GET job:key`; true when a version was read (what the latency
    /// histogram counts), false for a key naming no job, a job without a version or
    /// refusing stale answers, and a store that failed.
    async fn get(&mut self, full_key: &[u8]) -> bool {
        let Ok(full_key) = std::str::from_utf8(full_key) else {
            self.nil();
            return false;
        };
        let Some((job, key)) = full_key.split_once(':') else {
            self.nil();
            return false;
        };
        let state = self.state.clone();
        let Some(slot) = state.jobs.get(job) else {
            self.nil();
            return false;
        };
        let Some(version) = slot.current.load_full() else {
            self.nil();
            return false;
        };
        let now = Utc::now();
        if let Some(refusal) = refuse_stale(&slot.spec, version.manifest(), now) {
            self.error(&format!("STALE {refusal}"));
            return false;
        }
        // One answer buffer per connection, reused.
        let mut doc = std::mem::take(&mut self.doc);
        doc.clear();
        let mut status = None;
        let fetched = version
            .predictions(&[key], |_, prediction| {
                status = write_answer(
                    &slot.spec,
                    version.manifest(),
                    key,
                    prediction,
                    now,
                    &mut doc,
                );
            })
            .await;
        if let Err(e) = fetched {
            eprintln!("internal error: {e}");
            self.error("ERR presage could not read the store; see the server log");
            self.doc = doc;
            return false;
        }
        slot.counters.count(status);
        state.log_answer(job, key, &version, status, now);
        match status {
            Some(_) => self.bulk(&doc),
            None => self.nil(),
        }
        self.doc = doc;
        true
    }

    /// Answers `MGET`: consecutive keys of one job are read from its version in one
    /// call (one `MGET` round trip on a Redis-backed store); every other key, and
    /// every key of a job that refuses stale answers, as a `GET`. True when any key
    /// read a version.
    async fn mget(&mut self, full_keys: Args<'_>) -> bool {
        // `job:key` split once per key; `None` for a key that names no job.
        let split: Vec<Option<(&str, &str)>> = full_keys
            .iter()
            .map(|full| std::str::from_utf8(full).ok()?.split_once(':'))
            .collect();
        let mut read = false;
        let mut i = 0;
        while i < full_keys.len() {
            let group = match split[i] {
                Some((job, _)) => split[i..]
                    .iter()
                    .take_while(|s| s.is_some_and(|(next, _)| next == job))
                    .count(),
                None => 1,
            };
            let keys: Vec<&str> = split[i..i + group]
                .iter()
                .flatten()
                .map(|(_, key)| *key)
                .collect();
            let batched = match split[i] {
                Some((job, _)) if group > 1 => self.get_many(job, &keys).await,
                _ => None,
            };
            match batched {
                Some(read_version) => read |= read_version,
                None => {
                    for full in full_keys.after(i).iter().take(group) {
                        read |= self.get(full).await;
                    }
                }
            }
            i += group;
        }
        read
    }

    /// Answers `keys` of `job` from one read of its current version, appending one
    /// reply per key, and says whether the store was read (false when it failed);
    /// `None` (nothing appended) when the job is unknown, has no version or refuses
    /// stale answers, which `get` answers key by key.
    async fn get_many(&mut self, job: &str, keys: &[&str]) -> Option<bool> {
        let state = self.state.clone();
        let slot = state.jobs.get(job)?;
        let version = slot.current.load_full()?;
        let now = Utc::now();
        if refuse_stale(&slot.spec, version.manifest(), now).is_some() {
            return None;
        }
        let mut docs = std::mem::take(&mut self.doc);
        docs.clear();
        // Each key's status and its document's bytes in `docs`, by position.
        let mut answers: Vec<(Option<Status>, std::ops::Range<usize>)> =
            vec![(None, 0..0); keys.len()];
        let fetched = version
            .predictions(keys, |i, prediction| {
                let start = docs.len();
                let status = write_answer(
                    &slot.spec,
                    version.manifest(),
                    keys[i],
                    prediction,
                    now,
                    &mut docs,
                );
                answers[i] = (status, start..docs.len());
            })
            .await;
        if let Err(e) = fetched {
            eprintln!("internal error: {e}");
            for _ in keys {
                self.error("ERR presage could not read the store; see the server log");
            }
            self.doc = docs;
            return Some(false);
        }
        for (key, (status, range)) in keys.iter().zip(answers) {
            slot.counters.count(status);
            state.log_answer(job, key, &version, status, now);
            match status {
                Some(_) => self.bulk(&docs[range]),
                None => self.nil(),
            }
        }
        self.doc = docs;
        Some(true)
    }

    fn hello(&mut self, args: Args<'_>) {
        if let Some(version) = args.get(1) {
            match version {
                b"2" => self.resp3 = false,
                b"3" => self.resp3 = true,
                _ => return self.error("NOPROTO unsupported protocol version"),
            }
        }
        let fields: [(&str, HelloValue); 7] = [
            ("server", HelloValue::Str("presage")),
            ("version", HelloValue::Str(env!("CARGO_PKG_VERSION"))),
            ("proto", HelloValue::Int(if self.resp3 { 3 } else { 2 })),
            ("id", HelloValue::Int(1)),
            ("mode", HelloValue::Str("standalone")),
            ("role", HelloValue::Str("master")),
            ("modules", HelloValue::Empty),
        ];
        self.map_header(fields.len());
        for (name, value) in fields {
            self.bulk(name.as_bytes());
            match value {
                HelloValue::Str(s) => self.bulk(s.as_bytes()),
                HelloValue::Int(i) => self.integer(i),
                HelloValue::Empty => self.array_header(0),
            }
        }
    }

    fn info(&mut self) {
        let mut text = format!(
            "# Server\r\nredis_version:7.0.0\r\npresage_version:{}\r\nredis_mode:standalone\r\n\r\n# Keyspace\r\n",
            env!("CARGO_PKG_VERSION")
        );
        for (job, slot) in &self.state.jobs {
            if let Some(v) = slot.current.load().as_ref() {
                text.push_str(&format!(
                    "job_{job}:version={},keys={}\r\n",
                    v.manifest().id,
                    v.manifest().rows
                ));
            }
        }
        self.bulk(text.as_bytes());
    }

    fn simple(&mut self, s: &str) {
        self.output.push(b'+');
        self.output.extend_from_slice(s.as_bytes());
        self.output.extend_from_slice(b"\r\n");
    }

    /// An error reply; a line break in `s` would end it early and let what follows
    /// pass for another reply, so line breaks become spaces (as in Redis).
    fn error(&mut self, s: &str) {
        self.output.push(b'-');
        self.output.extend(
            s.bytes()
                .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
        );
        self.output.extend_from_slice(b"\r\n");
    }

    /// `-ERR unknown command '...'` quoting `name` as the client sent it, cut to
    /// [`MAX_ECHOED`] bytes, with every byte that is not printable ASCII, and the
    /// quotes, as a space: the client must not be able to write replies of its own.
    fn unknown_command(&mut self, name: &[u8]) {
        self.output.extend_from_slice(b"-ERR unknown command '");
        self.output
            .extend(name.iter().take(MAX_ECHOED).map(|&b| match b {
                b'\'' | b'"' => b' ',
                b' '..=b'~' => b.to_ascii_lowercase(),
                _ => b' ',
            }));
        self.output.extend_from_slice(b"'\r\n");
    }

    fn integer(&mut self, i: i64) {
        self.output.push(b':');
        self.output.extend_from_slice(i.to_string().as_bytes());
        self.output.extend_from_slice(b"\r\n");
    }

    fn bulk(&mut self, bytes: &[u8]) {
        self.output.push(b'$');
        self.output
            .extend_from_slice(bytes.len().to_string().as_bytes());
        self.output.extend_from_slice(b"\r\n");
        self.output.extend_from_slice(bytes);
        self.output.extend_from_slice(b"\r\n");
    }

    fn nil(&mut self) {
        if self.resp3 {
            self.output.extend_from_slice(b"_\r\n");
        } else {
            self.output.extend_from_slice(b"$-1\r\n");
        }
    }

    fn array_header(&mut self, n: usize) {
        self.output.push(b'*');
        self.output.extend_from_slice(n.to_string().as_bytes());
        self.output.extend_from_slice(b"\r\n");
    }

    /// A map in RESP3, a flat array of pairs in RESP2.
    fn map_header(&mut self, pairs: usize) {
        if self.resp3 {
            self.output.push(b'%');
            self.output.extend_from_slice(pairs.to_string().as_bytes());
            self.output.extend_from_slice(b"\r\n");
        } else {
            self.array_header(pairs * 2);
        }
    }
}

/// `io`, or `None` when there is an idle timeout and `io` takes longer.
async fn unless_idle<T>(idle_timeout: Option<Duration>, io: impl Future<Output = T>) -> Option<T> {
    match idle_timeout {
        Some(idle) => tokio::time::timeout(idle, io).await.ok(),
        None => Some(io.await),
    }
}

enum HelloValue {
    Str(&'static str),
    Int(i64),
    Empty,
}

/// A command's arguments, as spans of the input buffer.
#[derive(Clone, Copy)]
struct Args<'a> {
    input: &'a [u8],
    spans: &'a [Range<usize>],
}

impl<'a> Args<'a> {
    fn len(&self) -> usize {
        self.spans.len()
    }

    fn get(&self, i: usize) -> Option<&'a [u8]> {
        let input = self.input;
        self.spans.get(i).map(|span| &input[span.clone()])
    }

    fn iter(&self) -> impl Iterator<Item = &'a [u8]> + use<'a> {
        let input = self.input;
        self.spans.iter().map(move |span| &input[span.clone()])
    }

    /// The arguments after the first `skip`.
    fn after(self, skip: usize) -> Args<'a> {
        Args {
            input: self.input,
            spans: &self.spans[skip.min(self.spans.len())..],
        }
    }
}

/// Parses one command (a RESP array of bulk strings, or an inline command line) at
/// the start of `buf`, writing where its arguments lie in `buf` to `spans`.
///
/// `progress` carries what earlier calls found out about the same command while it
/// was incomplete, so each call reads only the bytes that arrived since; it starts
/// over once a command is parsed or refused. Between calls `buf` may only grow.
fn parse(buf: &[u8], spans: &mut Vec<Range<usize>>, progress: &mut Progress) -> Parsed {
    if progress.pos == 0 {
        spans.clear();
    }
    let Some(&first) = buf.first() else {
        return Parsed::Incomplete;
    };
    let parsed = if first == b'*' {
        parse_array(buf, spans, progress)
    } else {
        parse_inline(buf, spans, progress)
    };
    if !matches!(parsed, Parsed::Incomplete) {
        *progress = Progress::default();
    }
    parsed
}

/// An inline command: `PING\r\n` from telnet-like clients, arguments between spaces,
/// ended by LF or CRLF as in Redis.
fn parse_inline(buf: &[u8], spans: &mut Vec<Range<usize>>, progress: &mut Progress) -> Parsed {
    let Some(newline) = buf[progress.pos..]
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| i + progress.pos)
    else {
        progress.pos = buf.len();
        if buf.len() > MAX_INLINE_BYTES {
            return Parsed::Invalid("too big inline request");
        }
        return Parsed::Incomplete;
    };
    if newline > MAX_INLINE_BYTES {
        return Parsed::Invalid("too big inline request");
    }
    let end = if newline > 0 && buf[newline - 1] == b'\r' {
        newline - 1
    } else {
        newline
    };
    let mut start = 0;
    for (i, byte) in buf[..end].iter().enumerate() {
        if *byte == b' ' {
            if i > start {
                spans.push(start..i);
            }
            start = i + 1;
        }
    }
    if end > start {
        spans.push(start..end);
    }
    Parsed::Command(newline + 1)
}

/// An array of bulk strings, the arguments before `progress.pos` already in `spans`.
fn parse_array(buf: &[u8], spans: &mut Vec<Range<usize>>, progress: &mut Progress) -> Parsed {
    if progress.pos == 0 {
        let (count, next) = match length_line(buf, 1) {
            Line::Length(count, next) => (count, next),
            Line::Incomplete => return Parsed::Incomplete,
            Line::Invalid => return Parsed::Invalid("invalid multibulk length"),
        };
        if count < 0 || count as usize > MAX_ARGS {
            return Parsed::Invalid("invalid multibulk length");
        }
        progress.pos = next;
        progress.remaining = count as usize;
    }
    while progress.remaining > 0 {
        let pos = progress.pos;
        let Some(&marker) = buf.get(pos) else {
            return Parsed::Incomplete;
        };
        if marker != b'$' {
            return Parsed::Invalid("expected '$'");
        }
        let (len, start) = match length_line(buf, pos + 1) {
            Line::Length(len, start) => (len, start),
            Line::Incomplete => return Parsed::Incomplete,
            Line::Invalid => return Parsed::Invalid("invalid bulk length"),
        };
        if len < 0 || len as usize > MAX_COMMAND_BYTES {
            return Parsed::Invalid("invalid bulk length");
        }
        let stop = start + len as usize;
        if buf.len() < stop + 2 {
            return Parsed::Incomplete;
        }
        spans.push(start..stop);
        progress.pos = stop + 2;
        progress.remaining -= 1;
    }
    Parsed::Command(progress.pos)
}

/// What the length line of an array or a bulk string holds.
enum Line {
    /// The length and where the line's next byte is.
    Length(i64, usize),
    Incomplete,
    /// Not a number, or longer than any number: a client cannot make the server
    /// search a long line for its end.
    Invalid,
}

/// Reads the number between `from` and the next CRLF.
fn length_line(buf: &[u8], from: usize) -> Line {
    let window = buf.get(from..buf.len().min(from + MAX_LENGTH_LINE));
    match window.and_then(|w| w.windows(2).position(|w| w == b"\r\n")) {
        Some(end) => match parse_int(&buf[from..from + end]) {
            Some(n) => Line::Length(n, from + end + 2),
            None => Line::Invalid,
        },
        None if buf.len() >= from + MAX_LENGTH_LINE => Line::Invalid,
        None => Line::Incomplete,
    }
}

fn parse_int(bytes: &[u8]) -> Option<i64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(buf: &[u8]) -> (Vec<String>, usize) {
        let mut spans = Vec::new();
        match parse(buf, &mut spans, &mut Progress::default()) {
            Parsed::Command(used) => (
                Args {
                    input: buf,
                    spans: &spans,
                }
                .iter()
                .map(|a| String::from_utf8(a.to_vec()).unwrap())
                .collect(),
                used,
            ),
            Parsed::Incomplete => panic!("incomplete"),
            Parsed::Invalid(why) => panic!("invalid: {why}"),
        }
    }

    #[test]
    fn parses_arrays_and_inline() {
        let (a, used) = args(b"*2\r\n$3\r\nGET\r\n$7\r\nchurn:1\r\n*1\r\n");
        assert_eq!(a, ["GET", "churn:1"]);
        assert_eq!(used, 26);
        let mut spans = Vec::new();
        assert!(matches!(
            parse(
                b"*2\r\n$3\r\nGET\r\n$7\r\nchu",
                &mut spans,
                &mut Progress::default()
            ),
            Parsed::Incomplete
        ));
        let (a, used) = args(b"PING hello\r\n");
        assert_eq!(a, ["PING", "hello"]);
        assert_eq!(used, 12);
        let (a, _) = args(b"  GET   churn:1 \r\n");
        assert_eq!(a, ["GET", "churn:1"]);
        let (a, _) = args(b"\r\n");
        assert!(a.is_empty());
        assert!(matches!(
            parse(b"*x\r\n", &mut spans, &mut Progress::default()),
            Parsed::Invalid(_)
        ));
        // Arguments may hold any bytes, CRLF included: the length decides.
        let (a, _) = args(b"*2\r\n$4\r\nECHO\r\n$4\r\na\r\nb\r\n");
        assert_eq!(a, ["ECHO", "a\r\nb"]);
    }
}

/// Property tests of the parser: whatever the bytes, it does not panic and names only
/// bytes it was given, and a command parses the same however it is split into reads.
///
/// A longer run (10 s on 2 cores; 2,000,000 cases take 90 s):
/// `PROPTEST_CASES=200000 cargo test -p presage-serve --lib resp::fuzz`
#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    use super::*;

    /// Feeds `bytes` to the parser `pieces` at a time, as reads would, and parses
    /// every command in it; the commands' arguments, then how it ended.
    fn parse_all(bytes: &[u8], cuts: &[usize]) -> (Vec<Vec<Vec<u8>>>, Option<&'static str>) {
        let mut ends: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        ends.push(bytes.len());
        ends.sort_unstable();
        let mut spans = Vec::new();
        let mut progress = Progress::default();
        let mut commands = Vec::new();
        let mut consumed = 0;
        for end in ends {
            loop {
                let buf = &bytes[consumed..end];
                match parse(buf, &mut spans, &mut progress) {
                    Parsed::Command(used) => {
                        assert!(used > 0 && used <= buf.len(), "{used} of {}", buf.len());
                        for span in &spans {
                            assert!(span.start <= span.end && span.end <= used, "{span:?}");
                        }
                        commands.push(spans.iter().map(|s| buf[s.clone()].to_vec()).collect());
                        consumed += used;
                    }
                    Parsed::Incomplete => break,
                    Parsed::Invalid(why) => return (commands, Some(why)),
                }
            }
        }
        (commands, None)
    }

    /// A command as a client library sends it.
    fn encode(args: &[Vec<u8>]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            out.extend_from_slice(arg);
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    fn command() -> impl Strategy<Value = Vec<Vec<u8>>> {
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..6)
    }

    /// Mostly RESP-looking bytes, so the parser gets past its first checks.
    fn hostile_bytes() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            prop::collection::vec(any::<u8>(), 0..8),
            Just(b"\r\n".to_vec()),
            Just(b"*".to_vec()),
            Just(b"$".to_vec()),
            (-3i64..40).prop_map(|n| n.to_string().into_bytes()),
            Just(b"99999999999999999999999".to_vec()),
            Just(b"-".to_vec()),
            Just(b" ".to_vec()),
            Just(b"\n".to_vec()),
        ];
        prop::collection::vec(piece, 0..30).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #[test]
        fn any_bytes_in_any_pieces(
            bytes in hostile_bytes(),
            cuts in prop::collection::vec(any::<usize>(), 0..8),
        ) {
            // The same outcome in one read as in pieces.
            let whole = parse_all(&bytes, &[]);
            prop_assert_eq!(parse_all(&bytes, &cuts), whole);
        }

        #[test]
        fn commands_split_anywhere_parse_as_whole(
            commands in prop::collection::vec(command(), 1..4),
            cuts in prop::collection::vec(any::<usize>(), 0..8),
        ) {
            let bytes: Vec<u8> = commands.iter().flat_map(|c| encode(c)).collect();
            let (parsed, invalid) = parse_all(&bytes, &cuts);
            prop_assert_eq!(invalid, None);
            prop_assert_eq!(parsed, commands);
        }

        #[test]
        fn inline_commands_split_anywhere_parse_as_whole(
            words in prop::collection::vec("[A-Za-z0-9:]{1,12}", 1..6),
            crlf in any::<bool>(),
            cuts in prop::collection::vec(any::<usize>(), 0..8),
        ) {
            let line = format!("{}{}", words.join(" "), if crlf { "\r\n" } else { "\n" });
            let (parsed, invalid) = parse_all(line.as_bytes(), &cuts);
            prop_assert_eq!(invalid, None);
            let expected: Vec<Vec<u8>> = words.iter().map(|w| w.as_bytes().to_vec()).collect();
            prop_assert_eq!(parsed, vec![expected]);
        }
    }
}
