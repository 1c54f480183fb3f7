#!/usr/bin/env python3
"""presage serving against redis-server: the same keys and values, in one run.

What it does, in order:

  1. data: a Parquet table of --rows rows (`key`: 12-digit zero-padded strings
     000000000000.., and the 20 float32 inputs of the xgb_binary_nan fixture, resampled
     with 5 % noise, NaNs kept) and a presage.toml whose job is named `key`, so that
     redis-benchmark's `key:__rand_int__` (`-r N` gives `key:000000123456`) is presage's
     job `key`, entity `000000123456`. Reused when the work folder already has it.
  2. `presage run key` publishes the version (skipped when one is already published).
  3. `presage serve` (HTTP and RESP on free loopback ports), and a fresh `redis-server`
     (its own free loopback port, no persistence).
  4. Redis gets the same keys and values: every key's document is read from presage's
     RESP endpoint with MGET and written to Redis with `SET key:K <document>` through
     `redis-cli --pipe`; a sample is then compared key by key (the documents carry
     `age_seconds`, which moves with the clock; that field aside they are identical).
  5. Memory: Redis `INFO memory` (used_memory, used_memory_rss) and presage's
     /proc/PID/status (VmRSS = RssAnon + RssFile), after a warm-up and after the runs.
  6. `redis-benchmark -t get -r ROWS -c 50 -P 1` and `-P 16` against both, --runs times
     each, alternating which server goes first; medians.
     Then the client's cost per `-P 1` request against each server, from two clients
     run at the same time on the client CPU (so that drift in that CPU's speed, which
     moves single runs by 10-20 %, hits both alike), --client-cost-rounds times, and
     once with both clients against the same server as a check of the method.
  7. HTTP `GET /v1/jobs/key/predictions/{key}` with wrk, 64 connections, random keys
     (Lua): peak requests/s with p50/p99 (--runs runs, median). Then 80 % of that peak:
     wrk cannot hold a rate (its `delay()` hook waits in whole milliseconds, which
     either bursts requests at each tick or misses the rate by tens of percent), so the
     connection count is searched (1, 2, 4, ... then bisection) for the closed-loop
     rate nearest 80 % of the peak, and a full-length run at that count gives p50/p99.
  8. A table with presage / redis ratios; everything also written as JSON.

Cores: the machine has 2. By default both servers are pinned to CPU 0 and every load
generator to CPU 1 (`taskset`), so a server never shares its core with the client;
Redis is single-threaded for commands, and presage's Tokio runtime sizes itself to the
one CPU it may use. `--no-pin` leaves scheduling to the kernel. On a machine other jobs
share, `--nice -20` (root) puts this script's session, servers and load generators
first (with autogroup scheduling the session's group nice is what counts; it is put
back at the end); the CPU time other processes still got during each run is reported.

All servers listen on 127.0.0.1 only and are killed at the end, also on errors and
Ctrl-C. Every external command runs with a timeout.

Usage:
  python3 benches/serve_peers.py [--rows 10000000] [--runs 3] [--presage PATH]
      [--work DIR] [--requests-p1 N] [--requests-p16 N] [--wrk-seconds S] [--no-pin]
      [--nice -20] [--quiet-wait S] [--perf] [--client-cost-rounds N]
      [--busy-poll 200us]
Needs: numpy, pyarrow; redis-server, redis-cli, redis-benchmark (7.x); wrk; taskset.
Fixtures: $PRESAGE_FIXTURES, or the workspace's fixtures/models.
"""
import argparse
import csv
import io
import json
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.environ.get("PRESAGE_FIXTURES") or os.path.join(ROOT, "fixtures", "models")
MODEL_FIXTURE = "xgb_binary_nan"
JOB = "key"
SEED = 20241129
CONNECTIONS = 64
REDIS_CLIENTS = 50

PROCS = []  # servers started here, killed at exit


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------
# Data and config
# ---------------------------------------------------------------------------------

def make_data(work, rows):
    """Writes work/data/rows.parquet (key + model inputs) unless it is there already."""
    path = os.path.join(work, "data", "rows.parquet")
    marker = path + ".rows"
    if os.path.exists(marker) and open(marker).read().strip() == str(rows):
        log(f"data: reusing {path}")
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fixture = os.path.join(FIXTURES, MODEL_FIXTURE)
    table = pq.read_table(os.path.join(fixture, "input.parquet"))
    cols = [c for c in table.column_names if c.startswith("f")]
    base = np.column_stack([table.column(c).to_numpy(zero_copy_only=False) for c in cols]).astype(np.float32)
    scale = (np.nanstd(base, axis=0) * 0.05).astype(np.float32)
    rng = np.random.default_rng(SEED)
    started = time.time()
    chunk = 1_000_000
    schema = pa.schema([("key", pa.string())] + [(c, pa.float32()) for c in cols])
    with pq.ParquetWriter(path + ".tmp", schema, compression="snappy") as writer:
        for lo in range(0, rows, chunk):
            hi = min(rows, lo + chunk)
            idx = rng.integers(0, len(base), hi - lo)
            X = base[idx] + rng.normal(size=(hi - lo, base.shape[1])).astype(np.float32) * scale
            keys = pc.utf8_lpad(pc.cast(pa.array(np.arange(lo, hi)), pa.string()), 12, "0")
            arrays = [keys] + [pa.array(X[:, j]) for j in range(X.shape[1])]
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
    os.replace(path + ".tmp", path)
    with open(marker, "w") as f:
        f.write(str(rows))
    log(f"data: {rows:,} rows in {time.time() - started:.1f}s -> {path} ({os.path.getsize(path) / 2**20:.0f} MiB)")
    return path


def write_config(work, rows):
    fixture = os.path.join(FIXTURES, MODEL_FIXTURE)
    meta = json.load(open(os.path.join(fixture, "meta.json")))
    inputs = [f"f{i}" for i in range(meta["features"])]
    config = f"""# Written by benches/serve_peers.py: {rows:,} rows, job `{JOB}` (redis-benchmark's key prefix).
data_dir = "presage-data"

[sources.rows]
path = "data/rows.parquet"

[features.rows]
key = "key"
sql = "SELECT key, {', '.join(inputs)} FROM rows"

[models.m]
path = "{os.path.abspath(os.path.join(fixture, 'model.json'))}"
inputs = {json.dumps(inputs)}

[jobs.{JOB}]
features = "rows"
model = "m"
max_age = "3650d"
keep_versions = 1
"""
    path = os.path.join(work, "presage.toml")
    with open(path, "w") as f:
        f.write(config)
    return path


NICE = {"level": 0}


def placed(cmd, cpu):
    """cmd pinned to `cpu` (taskset) and run at --nice (both exec, so the pid is the program's)."""
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu)] + cmd
    if NICE["level"]:
        cmd = ["nice", "-n", str(NICE["level"])] + cmd
    return cmd


def run_wait4(cmd, timeout, stdout_path=None, cpu=None, env=None):
    """Runs cmd; returns (returncode, stdout text, rusage, wall seconds)."""
    cmd = placed(cmd, cpu)
    out = open(stdout_path, "w+") if stdout_path else tempfile.TemporaryFile("w+")
    started = time.time()
    p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = started + timeout
    while True:
        pid, status, usage = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        if time.time() > deadline:
            p.kill()
            os.wait4(p.pid, 0)
            raise RuntimeError(f"timed out after {timeout}s: {' '.join(cmd)}")
        time.sleep(0.02)
    p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.time() - started
    out.seek(0)
    text = out.read()
    out.close()
    return p.returncode, text, usage, wall


def publish(presage, config, work, rows):
    current = os.path.join(work, "presage-data", JOB, "CURRENT")
    if os.path.exists(current):
        log(f"presage run: reusing the published version ({open(current).read().strip()})")
        return None
    log(f"presage run {JOB}: scoring and publishing {rows:,} rows")
    rc, text, usage, wall = run_wait4([presage, "run", JOB, "--config", config], timeout=3600)
    if rc != 0:
        raise RuntimeError(f"presage run failed ({rc}):\n{text[-3000:]}")
    log(f"presage run: {wall:.1f}s, peak RSS {usage.ru_maxrss / 1024:.0f} MiB")
    return {"seconds": wall, "peak_rss_mib": usage.ru_maxrss / 1024, "output_tail": text.strip().splitlines()[-3:]}


# ---------------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd, logfile, cpu):
    cmd = placed(cmd, cpu)
    p = subprocess.Popen(cmd, stdout=open(logfile, "w"), stderr=subprocess.STDOUT)
    PROCS.append(p)
    return p


def stop_all():
    for p in PROCS:
        if p.poll() is None:
            p.terminate()
    for p in PROCS:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)
    PROCS.clear()


def wait_until(check, what, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what}: not ready after {timeout}s")


def http_get(port, path, timeout=5):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
        return r.status, r.read()


def server_pid(p):
    """The server's pid (taskset execs the server, so it is the same process)."""
    return p.pid


def proc_status(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "RssAnon", "RssFile", "VmHWM", "Threads"):
                fields[name] = int(value.split()[0])
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("FilePmdMapped:"):
                    fields["FilePmdMapped"] = int(line.split()[1])  # file pages mapped in 2 MiB pages
    except OSError:
        pass
    return fields  # kB, except Threads


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu():
    """Busy CPU seconds of the whole machine so far (all cores, from /proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]  # idle + iowait
    return (sum(v[:8]) - idle) / os.sysconf("SC_CLK_TCK")


QUIET = {"max_wait": 0, "waited": 0.0}


def wait_for_quiet():
    """Waits (at most --quiet-wait seconds per run) until other processes use < 0.15 core."""
    deadline = time.time() + QUIET["max_wait"]
    started = time.time()
    while True:
        a = machine_cpu()
        time.sleep(1)
        busy = machine_cpu() - a
        if busy < 0.15 or time.time() > deadline:
            break
    waited = time.time() - started - 1
    if waited > 0.5:
        log(f"  waited {waited:.0f}s for other processes to leave the CPUs (now {busy:.2f} busy)")
    QUIET["waited"] += waited


class Resp:
    """A minimal RESP client for the few commands this script sends."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.buf = b""

    def send(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))

    def _line(self):
        while b"\r\n" not in self.buf:
            self._more()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _more(self):
        data = self.sock.recv(1 << 20)
        if not data:
            raise RuntimeError("connection closed")
        self.buf += data

    def reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self._more()
            value, self.buf = self.buf[:n], self.buf[n + 2:]
            return value
        if kind == b"*":
            return [self.reply() for _ in range(int(rest))]
        if kind == b"_":
            return None
        raise RuntimeError(f"unexpected reply {line[:60]!r}")

    def call(self, *args):
        self.send(*args)
        return self.reply()

    def mget_raw(self, keys):
        """MGET returning the raw reply, read until its last CRLF (every key must exist)."""
        self.send(b"MGET", *keys)
        want = 1 + 2 * len(keys)  # "*N" line, then "$len" and the document per key
        buf = bytearray(self.buf)
        self.buf = b""
        seen = buf.count(b"\r\n")
        while seen < want:
            data = self.sock.recv(1 << 20)
            if not data:
                raise RuntimeError("connection closed")
            buf += data
            seen = buf.count(b"\r\n")  # recounted whole: a CRLF may straddle two reads
        return bytes(buf)

    def close(self):
        self.sock.close()


def key_name(i):
    return b"%012d" % i


def load_redis(presage_resp, redis_port, rows, batch=1000):
    """Copies every key's document from presage's RESP GET into Redis with SET."""
    started = time.time()
    src = Resp(presage_resp)
    pipe = subprocess.Popen(["redis-cli", "-h", "127.0.0.1", "-p", str(redis_port), "--pipe"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    total_bytes = 0
    try:
        for lo in range(0, rows, batch):
            hi = min(rows, lo + batch)
            names = [b"key:" + key_name(i) for i in range(lo, hi)]
            raw = src.mget_raw(names)
            parts = raw.split(b"\r\n")
            if parts[0] != b"*%d" % len(names) or len(parts) != 2 + 2 * len(names):
                raise RuntimeError(f"unexpected MGET reply for keys {lo}..{hi}: {raw[:200]!r}")
            lens, docs = parts[1:-1:2], parts[2:-1:2]
            if any(not l.startswith(b"$") for l in lens):
                raise RuntimeError(f"a key in {lo}..{hi} has no document in presage")
            out = b"".join([b"*3\r\n$3\r\nSET\r\n$16\r\n%s\r\n%s\r\n%s\r\n" % (n, l, d)
                            for n, l, d in zip(names, lens, docs)])
            total_bytes += len(out)
            pipe.stdin.write(out)
            if lo and lo % 1_000_000 == 0:
                log(f"  loaded {lo:,} keys ({time.time() - started:.0f}s)")
        pipe.stdin.close()
        text = pipe.stdout.read().decode(errors="replace")
        pipe.wait(timeout=600)
    finally:
        src.close()
        if pipe.poll() is None:
            pipe.kill()
    if pipe.returncode != 0 or "errors: 0" not in text:
        raise RuntimeError(f"redis-cli --pipe: {text}")
    seconds = time.time() - started
    log(f"redis: loaded {rows:,} keys in {seconds:.1f}s ({total_bytes / 2**20:.0f} MiB of protocol)")
    return seconds


def strip_age(doc):
    d = json.loads(doc)
    d.pop("age_seconds", None)
    return d


def compare_sample(presage_resp, redis_port, http_port, rows, n=2000):
    rng = random.Random(SEED)
    p, r = Resp(presage_resp), Resp(redis_port)
    try:
        for _ in range(n):
            k = b"key:" + key_name(rng.randrange(rows))
            a, b = p.call(b"GET", k), r.call(b"GET", k)
            if a is None or b is None or strip_age(a) != strip_age(b):
                raise RuntimeError(f"{k!r}: presage {a!r} != redis {b!r}")
        # Unknown keys: nil on both.
        for k in (b"key:" + key_name(rows), b"key:nope"):
            if p.call(b"GET", k) is not None or r.call(b"GET", k) is not None:
                raise RuntimeError(f"{k!r} should be nil on both")
        dbsize = r.call(b"DBSIZE")
        if dbsize != rows:
            raise RuntimeError(f"redis DBSIZE {dbsize} != {rows}")
        _, body = http_get(http_port, f"/v1/jobs/{JOB}/predictions/{key_name(rows // 2).decode()}")
        via_resp = p.call(b"GET", b"key:" + key_name(rows // 2))
        if strip_age(body) != strip_age(via_resp):
            raise RuntimeError(f"HTTP {body!r} != RESP {via_resp!r}")
    finally:
        p.close()
        r.close()
    log(f"checked {n} random keys: presage and redis answer the same documents")


def redis_info_memory(port):
    r = Resp(port)
    try:
        text = r.call(b"INFO", b"memory").decode()
    finally:
        r.close()
    info = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {k: int(info[k]) for k in ("used_memory", "used_memory_rss", "used_memory_dataset")}


def lookups_by_status(http_port):
    _, body = http_get(http_port, "/metrics")
    out = {}
    for line in body.decode().splitlines():
        if line.startswith("presage_lookups_total{") and f'job="{JOB}"' in line:
            status = line.split('status="')[1].split('"')[0]
            out[status] = int(float(line.rsplit(" ", 1)[1]))
    return out


# ---------------------------------------------------------------------------------
# Load generators
# ---------------------------------------------------------------------------------

def get_benchmark_cmd(port, rows, requests, pipeline):
    """`redis-benchmark -t get` with random keys of `rows`, REDIS_CLIENTS connections."""
    return ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-t", "get", "-r", str(rows),
            "-n", str(requests), "-c", str(REDIS_CLIENTS), "-P", str(pipeline)]


def redis_benchmark(port, rows, requests, pipeline, client_cpu, server_pid_):
    cmd = get_benchmark_cmd(port, rows, requests, pipeline) + ["--csv"]
    wait_for_quiet()
    cpu0, all0 = cpu_seconds(server_pid_), machine_cpu()
    rc, text, usage, wall = run_wait4(cmd, timeout=900, cpu=client_cpu)
    server_cpu = cpu_seconds(server_pid_) - cpu0
    other = machine_cpu() - all0 - server_cpu - (usage.ru_utime + usage.ru_stime)
    if rc != 0:
        raise RuntimeError(f"redis-benchmark failed ({rc}): {text[-2000:]}")
    rows_ = [r for r in csv.reader(io.StringIO(text)) if r and r[0] == "GET"]
    if not rows_:
        raise RuntimeError(f"redis-benchmark printed no GET line: {text[-2000:]}")
    header = next(r for r in csv.reader(io.StringIO(text)) if r and r[0] == "test")
    row = dict(zip(header, rows_[0]))
    return {
        "rps": float(row["rps"]),
        "p50_ms": float(row["p50_latency_ms"]),
        "p99_ms": float(row["p99_latency_ms"]),
        "server_cpu": server_cpu / wall,
        "client_cpu": (usage.ru_utime + usage.ru_stime) / wall,
        "other_cpu": max(0.0, other / wall),
        "seconds": wall,
    }


def client_cost(ports, rows, requests, client_cpu):
    """Two `redis-benchmark -P 1` clients at once, one per port, both on the client CPU.

    Run one after the other, the two servers' throughputs differ by more between runs
    than between servers: the client is saturated, and its CPU's speed drifts over
    seconds. Run at the same time on one CPU, both clients see the same drift, and
    what each spends per request (its own user + system CPU time over its requests)
    compares the servers by the one thing that sets `-P 1` throughput here: the
    client's cost per request, including the kernel's loopback TCP path into the
    server's socket and the waking of the server. Returns microseconds per request,
    one per port.
    """
    wait_for_quiet()
    procs = []
    for port in ports:
        cmd = placed(get_benchmark_cmd(port, rows, requests, 1) + ["-q"], client_cpu)
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    deadline = time.time() + 900
    costs = [None] * len(procs)
    try:
        while any(c is None for c in costs):
            for i, p in enumerate(procs):
                if costs[i] is None:
                    pid, status, usage = os.wait4(p.pid, os.WNOHANG)
                    if pid:
                        if os.waitstatus_to_exitcode(status) != 0:
                            raise RuntimeError(f"redis-benchmark against port {ports[i]} failed")
                        costs[i] = (usage.ru_utime + usage.ru_stime) / requests * 1e6
            if time.time() > deadline:
                raise RuntimeError("redis-benchmark (client cost) timed out after 900s")
            time.sleep(0.02)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return costs


CONTROL_SERVER = r"""
# The control: an HTTP/1.1 keep-alive responder that does no work per request (one
# fixed 16-byte JSON body), to show what the client, kernel and machine add to latency.
import selectors, socket, sys
body = b'{"status":"ok"}\n'
resp = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
sel = selectors.DefaultSelector()
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", int(sys.argv[1])))
ls.listen(128)
sel.register(ls, selectors.EVENT_READ)
pending = {}
while True:
    for key, _ in sel.select():
        s = key.fileobj
        if s is ls:
            c, _ = ls.accept()
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sel.register(c, selectors.EVENT_READ)
            pending[c] = b""
            continue
        try:
            data = s.recv(65536)
        except OSError:
            data = b""
        if not data:
            sel.unregister(s)
            s.close()
            pending.pop(s, None)
            continue
        buf = pending[s] + data
        n = buf.count(b"\r\n\r\n")
        if n:
            s.sendall(resp * n)
            buf = buf[buf.rfind(b"\r\n\r\n") + 4:]
        pending[s] = buf
"""


def control_latency(work, connections, seconds, server_cpu, client_cpu):
    """wrk against the do-nothing responder, same cores and connection count."""
    path = os.path.join(work, "control_server.py")
    with open(path, "w") as f:
        f.write(CONTROL_SERVER)
    lua = os.path.join(work, "summary.lua")
    with open(lua, "w") as f:
        f.write(WRK_LUA.split("request = function()")[0] + "done" + WRK_LUA.split("\ndone", 1)[1])
    port = free_port()
    p = start([sys.executable, path, str(port)], os.path.join(work, "control-server.log"), server_cpu)
    try:
        wait_until(lambda: http_get(port, "/")[0] == 200, "control server", 30)
        r = wrk(port, 1, seconds, lua, client_cpu, p.pid, connections=connections)
    finally:
        p.terminate()
        p.wait(timeout=10)
    return r


WRK_LUA = r"""
-- Random keys among ROWS, 12-digit zero-padded; a summary line as JSON at the end.
local rows = tonumber(os.getenv("ROWS"))
local job = os.getenv("JOB")
math.randomseed(os.time())

request = function()
  local k = math.random(0, rows - 1)
  return wrk.format("GET", string.format("/v1/jobs/%s/predictions/%012d", job, k))
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_JSON {\"requests\":%d,\"duration_us\":%d,\"p50_us\":%d,\"p90_us\":%d,\"p99_us\":%d,\"p999_us\":%d,\"max_us\":%d,\"mean_us\":%.1f,\"connect\":%d,\"read\":%d,\"write\":%d,\"status\":%d,\"timeout\":%d}\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def wrk(http_port, rows, seconds, script, client_cpu, server_pid_, connections=CONNECTIONS):
    env = dict(os.environ, ROWS=str(rows), JOB=JOB)
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "-s", script,
           f"http://127.0.0.1:{http_port}"]
    wait_for_quiet()
    cpu0, all0 = cpu_seconds(server_pid_), machine_cpu()
    rc, text, usage, wall = run_wait4(cmd, timeout=seconds + 60, cpu=client_cpu, env=env)
    server_cpu = cpu_seconds(server_pid_) - cpu0
    other = machine_cpu() - all0 - server_cpu - (usage.ru_utime + usage.ru_stime)
    if rc != 0:
        raise RuntimeError(f"wrk failed ({rc}): {text[-2000:]}")
    line = next((l for l in text.splitlines() if l.startswith("WRK_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary: {text[-2000:]}")
    r = json.loads(line[len("WRK_JSON "):])
    errors = r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"]
    if errors:
        raise RuntimeError(f"wrk saw {errors} errors (non-2xx or socket): {r}")
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    r["server_cpu"] = server_cpu / wall
    r["client_cpu"] = (usage.ru_utime + usage.ru_stime) / wall
    r["other_cpu"] = max(0.0, other / wall)
    return r


def wrk_at_rate(http_port, rows, target, seconds, script, client_cpu, pid):
    """Closed-loop wrk with as many connections as give the rate nearest `target`.

    wrk cannot hold a fixed rate, and its `delay()` hook waits in whole milliseconds,
    so think time either releases requests in bursts at each millisecond tick or misses
    the rate by tens of percent. Fewer connections, each sending its next request as
    soon as the previous answer arrives, is a steady load whose rate is set by the
    server; its latency has no queue of 64 behind it, which is what running below the
    peak means for a server with one core.
    """
    tries, runs = {}, {}

    def rate(c):
        if c not in tries:
            r = wrk(http_port, rows, 3, script, client_cpu, pid, connections=c)
            tries[c] = r["rps"]
            runs[c] = {k: r[k] for k in ("rps", "p50_us", "p99_us", "p999_us", "other_cpu")}
            log(f"  wrk -c{c}: {r['rps']:,.0f} req/s ({r['rps'] / target - 1:+.1%} of the target {target:,.0f}; "
                f"others {r['other_cpu']:.0%})")
        return tries[c]

    lo, hi = None, None
    for c in (1, 2, 4, 8, 16, 32, CONNECTIONS):
        if rate(c) >= target:
            hi = c
            break
        lo = c
    if hi is None:
        hi = CONNECTIONS
    while lo is not None and hi - lo > 1:
        mid = (lo + hi) // 2
        if rate(mid) >= target:
            hi = mid
        else:
            lo = mid
    best = min((c for c in tries if c in (lo, hi)), key=lambda c: abs(tries[c] - target))
    final = wrk(http_port, rows, seconds, script, client_cpu, pid, connections=best)
    final["connections"] = best
    final["search"] = {str(c): runs[c] for c in sorted(runs)}
    final["target_rps"] = target
    return final


def profile(pid, name, load, work, cpu):
    """perf record (flat, 1999 Hz) of the server while `load` runs; the top symbols to a file."""
    data = os.path.join(work, f"perf-{name}.data")
    cmd = ["perf", "record", "-F", "1999", "-p", str(pid), "-o", data, "--", "sleep", "1000"]
    rec = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1)
        r = load()
    finally:
        rec.send_signal(signal.SIGINT)
        rec.wait(timeout=60)
    text = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", "dso,sym",
                           "--percent-limit", "0.5"], capture_output=True, text=True, timeout=300).stdout
    out = os.path.join(work, f"perf-{name}.txt")
    with open(out, "w") as f:
        f.write(f"# load: {name}, {r['rps']:,.0f}/s during the profile\n" + text)
    log(f"perf: {name} -> {out}")


# ---------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------

def median(xs):
    return statistics.median(xs)


def fmt_rate(x):
    return f"{x:,.0f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--runs", type=int, default=3, help="redis-benchmark and wrk peak runs per setting (median)")
    ap.add_argument("--presage", default="/work/target-bench/release/presage")
    ap.add_argument("--work", default=None, help="data, config and store (default: $TMPDIR/presage-serve-peers-ROWS)")
    ap.add_argument("--requests-p1", type=int, default=1_000_000)
    ap.add_argument("--requests-p16", type=int, default=5_000_000)
    ap.add_argument("--busy-poll", default=None,
                    help="pass `--busy-poll DURATION` to presage serve (e.g. 200us); skips the client-cost "
                         "comparison, whose two servers share a CPU that a spinning presage would take from Redis")
    ap.add_argument("--client-cost-rounds", type=int, default=8,
                    help="rounds of the side-by-side -P 1 client-cost comparison (0 skips it); "
                         "two more rounds run both clients against one server, to show the method's own bias")
    ap.add_argument("--wrk-seconds", type=int, default=10)
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--quiet-wait", type=int, default=120,
                    help="before each measured run, wait up to this many seconds for other processes to go idle")
    ap.add_argument("--nice", type=int, default=0,
                    help="niceness of servers and load generators (e.g. -20 on a machine other jobs share; needs root)")
    ap.add_argument("--no-pin", action="store_true", help="do not pin servers and load generators to CPUs")
    ap.add_argument("--perf", action="store_true",
                    help="after the measured runs, profile presage (perf record) under each load into WORK/perf-*.txt")
    ap.add_argument("--json", default=None, help="also write the results here (default: WORK/results.json)")
    args = ap.parse_args()

    QUIET["max_wait"] = args.quiet_wait
    NICE["level"] = args.nice
    autogroup_before = None
    if args.nice:
        # With autogroup scheduling (one group per session), a process's nice only
        # counts inside its session's group: the group's own nice is what competes
        # with other sessions. Servers and load generators all stay in this session.
        try:
            with open("/proc/self/autogroup") as f:
                autogroup_before = f.read().split("nice")[-1].strip()
            with open("/proc/self/autogroup", "w") as f:
                f.write(str(args.nice))
        except OSError as e:
            log(f"could not set this session's autogroup nice: {e}")
    server_cpu = None if args.no_pin else args.server_cpu
    client_cpu = None if args.no_pin else args.client_cpu
    work = os.path.abspath(args.work or os.path.join(tempfile.gettempdir(), f"presage-serve-peers-{args.rows}"))
    os.makedirs(work, exist_ok=True)
    presage = os.path.abspath(args.presage)
    if not os.access(presage, os.X_OK):
        sys.exit(f"no presage binary at {presage}; build it: "
                 "CARGO_TARGET_DIR=/work/target-bench cargo build --release -p presage")

    def on_signal(signum, _frame):
        stop_all()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    results = {
        "rows": args.rows,
        "machine": {
            "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?"),
            "cpus": os.cpu_count(),
            "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "kernel": platform.release(),
            "pinning": ("none" if args.no_pin else f"servers on CPU {server_cpu}, load generators on CPU {client_cpu}")
            + (f", nice {args.nice}" if args.nice else "")
            + (f"; presage serve --busy-poll {args.busy_poll}" if args.busy_poll else ""),
        },
        "versions": {
            "presage": subprocess.run([presage, "--version"], capture_output=True, text=True, timeout=30).stdout.strip(),
            "redis-server": subprocess.run(["redis-server", "--version"], capture_output=True, text=True, timeout=30).stdout.strip(),
            "wrk": subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=30).stdout.strip().splitlines()[0],
        },
    }
    results["loadavg_at_start"] = open("/proc/loadavg").read().split()[:3]
    try:
        make_data(work, args.rows)
        config = write_config(work, args.rows)
        results["publish"] = publish(presage, config, work, args.rows)
        version_dir = os.path.join(work, "presage-data", JOB, "versions",
                                   open(os.path.join(work, "presage-data", JOB, "CURRENT")).read().strip())
        results["lookup_file_mib"] = os.path.getsize(os.path.join(version_dir, "predictions.lookup")) / 2**20

        http_port, resp_port, redis_port = free_port(), free_port(), free_port()
        script = os.path.join(work, "random_keys.lua")
        with open(script, "w") as f:
            f.write(WRK_LUA)

        log(f"presage serve: HTTP on {http_port}, RESP on {resp_port}")
        srv = start([presage, "serve", "--config", config, "--addr", f"127.0.0.1:{http_port}",
                     "--resp-addr", f"127.0.0.1:{resp_port}"]
                    + (["--busy-poll", args.busy_poll] if args.busy_poll else []),
                    os.path.join(work, "presage-serve.log"), server_cpu)
        wait_until(lambda: http_get(http_port, "/readyz")[0] == 200, "presage serve", 300)
        ppid = server_pid(srv)
        results["presage_threads"] = proc_status(ppid)["Threads"]
        mem = {"presage_after_start_kb": proc_status(ppid)}

        redis_dir = os.path.join(work, "redis")
        os.makedirs(redis_dir, exist_ok=True)
        log(f"redis-server on {redis_port}")
        rds = start(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                     "--appendonly", "no", "--dir", redis_dir, "--protected-mode", "yes"],
                    os.path.join(work, "redis-server.log"), server_cpu)
        wait_until(lambda: Resp(redis_port).call(b"PING") == "PONG", "redis-server", 30)
        rpid = server_pid(rds)
        mem["redis_empty"] = redis_info_memory(redis_port)

        one = Resp(resp_port)
        sample = one.call(b"GET", b"key:" + key_name(42))
        one.close()
        log(f"presage GET key:{key_name(42).decode()} -> {sample.decode()}")
        results["sample_document"] = sample.decode()

        results["redis_load_seconds"] = load_redis(resp_port, redis_port, args.rows)
        compare_sample(resp_port, redis_port, http_port, args.rows)

        # Warm-up: each server answers a pass of random GETs before memory is read.
        for port, pid in ((resp_port, ppid), (redis_port, rpid)):
            redis_benchmark(port, args.rows, min(args.requests_p16, 1_000_000), 16, client_cpu, pid)
        mem["presage_after_warmup_kb"] = proc_status(ppid)
        mem["redis_after_warmup"] = redis_info_memory(redis_port)
        mem["redis_process_after_warmup_kb"] = proc_status(rpid)
        log(f"memory after warm-up: presage VmRSS {mem['presage_after_warmup_kb']['VmRSS'] / 1024:.0f} MiB; "
            f"redis used_memory {mem['redis_after_warmup']['used_memory'] / 2**20:.0f} MiB")

        before = lookups_by_status(http_port)  # the checks above asked for two unknown keys
        servers = {"presage": (resp_port, ppid), "redis": (redis_port, rpid)}
        bench = {}
        for pipeline, n in ((1, args.requests_p1), (16, args.requests_p16)):
            for run in range(args.runs):
                order = ["presage", "redis"] if run % 2 == 0 else ["redis", "presage"]
                for name in order:
                    port, pid = servers[name]
                    r = redis_benchmark(port, args.rows, n, pipeline, client_cpu, pid)
                    bench.setdefault(f"P{pipeline}", {}).setdefault(name, []).append(r)
                    log(f"redis-benchmark -P {pipeline} run {run + 1} {name}: {r['rps']:,.0f} GET/s "
                        f"p50 {r['p50_ms']} ms p99 {r['p99_ms']} ms (server CPU {r['server_cpu']:.0%}, client {r['client_cpu']:.0%}, others {r['other_cpu']:.0%})")
        results["redis_benchmark"] = bench

        if args.client_cost_rounds and args.busy_poll:
            log("client cost: skipped; with --busy-poll presage spins on the CPU the two servers would share")
        elif args.client_cost_rounds:
            cost = {"rounds": [], "same_server": []}
            n = min(args.requests_p1, 300_000)
            for run in range(args.client_cost_rounds):
                names = ["presage", "redis"] if run % 2 == 0 else ["redis", "presage"]
                us = dict(zip(names, client_cost([servers[x][0] for x in names], args.rows, n, client_cpu)))
                cost["rounds"].append(us)
                log(f"client cost round {run + 1}: {us['presage']:.2f} us a GET against presage, "
                    f"{us['redis']:.2f} against redis (redis / presage {us['redis'] / us['presage']:.3f})")
            for name in ("redis", "presage"):
                a, b = client_cost([servers[name][0]] * 2, args.rows, n, client_cpu)
                cost["same_server"].append({"server": name, "first": a, "second": b})
                log(f"client cost, both clients against {name}: {a:.2f} and {b:.2f} us a GET (ratio {b / a:.3f})")
            results["client_cost_p1"] = cost

        peaks = []
        for run in range(args.runs):
            r = wrk(http_port, args.rows, args.wrk_seconds, script, client_cpu, ppid)
            peaks.append(r)
            log(f"wrk peak run {run + 1}: {r['rps']:,.0f} req/s p50 {r['p50_us']} us p99 {r['p99_us']} us "
                f"(server CPU {r['server_cpu']:.0%}, client {r['client_cpu']:.0%}, others {r['other_cpu']:.0%})")
        peak_rps = median([p["rps"] for p in peaks])
        log(f"wrk at 80% of the peak ({0.8 * peak_rps:,.0f} req/s)")
        at80 = wrk_at_rate(http_port, args.rows, 0.8 * peak_rps, args.wrk_seconds, script, client_cpu, ppid)
        log(f"wrk at {at80['rps']:,.0f} req/s ({at80['rps'] / peak_rps:.0%} of peak): p50 {at80['p50_us']} us "
            f"p99 {at80['p99_us']} us p99.9 {at80['p999_us']} us (others {at80['other_cpu']:.0%})")
        results["quiet_waited_seconds"] = QUIET["waited"]
        control = control_latency(work, at80["connections"], args.wrk_seconds, server_cpu, client_cpu)
        log(f"control (do-nothing HTTP responder) at -c{at80['connections']}: {control['rps']:,.0f} req/s "
            f"p50 {control['p50_us']} us p99 {control['p99_us']} us")
        results["http"] = {"peak_runs": peaks, "at_80": at80, "control": control}

        results["loadavg_after_runs"] = open("/proc/loadavg").read().split()[:3]
        mem["presage_after_bench_kb"] = proc_status(ppid)
        mem["redis_after_bench"] = redis_info_memory(redis_port)
        mem["redis_process_after_bench_kb"] = proc_status(rpid)
        results["memory"] = mem
        after = lookups_by_status(http_port)
        results["presage_lookups"] = {k: after[k] - before.get(k, 0) for k in after}
        if results["presage_lookups"].get("miss", 0):
            raise RuntimeError(f"presage answered misses during the benchmark: {results['presage_lookups']}")
        if args.perf:
            loads = {
                "resp-P1": lambda: redis_benchmark(resp_port, args.rows, args.requests_p1, 1, client_cpu, ppid),
                "resp-P16": lambda: redis_benchmark(resp_port, args.rows, args.requests_p16, 16, client_cpu, ppid),
                "http": lambda: wrk(http_port, args.rows, args.wrk_seconds, script, client_cpu, ppid),
            }
            for name, load in loads.items():
                profile(ppid, name, load, work, server_cpu)
    finally:
        stop_all()
        if autogroup_before is not None:
            with open("/proc/self/autogroup", "w") as f:
                f.write(autogroup_before)

    out = args.json or os.path.join(work, "results.json")
    with open(out, "w") as f:
        json.dump(results, f, indent=1)
    report(results)
    log(f"results: {out}")


def report(res):
    b = res["redis_benchmark"]
    mem = res["memory"]
    print()
    print(f"presage serving vs redis-server, {res['rows']:,} keys; {res['machine']['cpu']} x{res['machine']['cpus']}; "
          f"{res['machine']['pinning']}")
    print(f"{res['versions']['presage']}; {res['versions']['redis-server']}; {res['versions']['wrk']}")
    print()
    print("| redis-benchmark -t get, 50 clients | presage GET/s | redis GET/s | presage / redis | presage p50 / p99 ms | redis p50 / p99 ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for key in sorted(b, key=lambda k: int(k[1:])):
        p, r = b[key]["presage"], b[key]["redis"]
        prps, rrps = median([x["rps"] for x in p]), median([x["rps"] for x in r])
        print(f"| -P {key[1:]} (median of {len(p)}) | {fmt_rate(prps)} | {fmt_rate(rrps)} | {prps / rrps:.2f}x | "
              f"{median([x['p50_ms'] for x in p]):.3f} / {median([x['p99_ms'] for x in p]):.3f} | "
              f"{median([x['p50_ms'] for x in r]):.3f} / {median([x['p99_ms'] for x in r]):.3f} |")
    print()
    for key in sorted(b, key=lambda k: int(k[1:])):
        # Run i of each server ran back to back, so their ratio cancels the drift
        # between runs that the medians above keep.
        pairs = [x["rps"] / y["rps"] for x, y in zip(b[key]["presage"], b[key]["redis"])]
        print(f"-P {key[1:]}, presage / redis run by run (back to back): "
              + ", ".join(f"{r:.2f}" for r in pairs)
              + f"; median {median(pairs):.2f}x, presage ahead in {sum(r >= 1 for r in pairs)} of {len(pairs)}")
    cost = res.get("client_cost_p1")
    if cost:
        rounds = cost["rounds"]
        ratios = [r["redis"] / r["presage"] for r in rounds]
        print()
        print(f"-P 1 client cost, both clients at once on the client CPU ({len(rounds)} rounds): "
              f"{median([r['presage'] for r in rounds]):.2f} us of client CPU a GET against presage, "
              f"{median([r['redis'] for r in rounds]):.2f} against redis; redis / presage "
              f"{median(ratios):.3f} (range {min(ratios):.3f}-{max(ratios):.3f}; above 1 means presage costs "
              f"the client less); both clients against one server: "
              + ", ".join(f"{c['server']} {c['second'] / c['first']:.3f}" for c in cost["same_server"]))
    print()
    print("| CPU use during the runs (median, 1.0 = one core) | presage server | redis server | client vs presage | client vs redis | other processes (max) |")
    print("|---|---:|---:|---:|---:|---:|")
    for key in sorted(b, key=lambda k: int(k[1:])):
        p, r = b[key]["presage"], b[key]["redis"]
        print(f"| -P {key[1:]} | {median([x['server_cpu'] for x in p]):.2f} | {median([x['server_cpu'] for x in r]):.2f} | "
              f"{median([x['client_cpu'] for x in p]):.2f} | {median([x['client_cpu'] for x in r]):.2f} | "
              f"{max(x['other_cpu'] for x in p + r):.2f} |")
    print()
    pw, rw = mem["presage_after_warmup_kb"], mem["redis_after_warmup"]
    pb, rb = mem["presage_after_bench_kb"], mem["redis_after_bench"]
    print("| memory (MiB) | after warm-up | after the runs |")
    print("|---|---:|---:|")
    print(f"| presage VmRSS (RssAnon + RssFile) | {pw['VmRSS'] / 1024:.0f} ({pw['RssAnon'] / 1024:.0f} + {pw['RssFile'] / 1024:.0f}) | "
          f"{pb['VmRSS'] / 1024:.0f} ({pb['RssAnon'] / 1024:.0f} + {pb['RssFile'] / 1024:.0f}) |")
    print(f"| redis used_memory | {rw['used_memory'] / 2**20:.0f} | {rb['used_memory'] / 2**20:.0f} |")
    print(f"| redis used_memory_rss | {rw['used_memory_rss'] / 2**20:.0f} | {rb['used_memory_rss'] / 2**20:.0f} |")
    print(f"| presage VmRSS / redis used_memory | {pw['VmRSS'] * 1024 / rw['used_memory']:.2f}x | {pb['VmRSS'] * 1024 / rb['used_memory']:.2f}x |")
    print(f"(presage lookup file: {res['lookup_file_mib']:.0f} MiB; presage after start, before any lookup: "
          f"{mem['presage_after_start_kb']['VmRSS'] / 1024:.0f} MiB; {res['presage_threads']} threads; "
          f"file pages mapped in 2 MiB pages after the runs: {pb.get('FilePmdMapped', 0) / 1024:.0f} MiB)")
    print()
    h = res["http"]
    peaks = h["peak_runs"]
    a = h["at_80"]
    peak = median([p["rps"] for p in peaks])
    print(f"| HTTP GET /v1/jobs/{JOB}/predictions/{{key}}, wrk -t1 -c{CONNECTIONS} | req/s | p50 us | p99 us | p99.9 us | server CPU | client CPU | other processes |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| peak (median of {len(peaks)}) | {fmt_rate(peak)} | {median([p['p50_us'] for p in peaks]):.0f} | "
          f"{median([p['p99_us'] for p in peaks]):.0f} | {median([p['p999_us'] for p in peaks]):.0f} | "
          f"{median([p['server_cpu'] for p in peaks]):.2f} | {median([p['client_cpu'] for p in peaks]):.2f} | "
          f"{max(p['other_cpu'] for p in peaks):.2f} (max) |")
    print(f"| at {a['rps'] / peak:.0%} of peak: wrk -t1 -c{a['connections']} | {fmt_rate(a['rps'])} | {a['p50_us']} | "
          f"{a['p99_us']} | {a['p999_us']} | {a['server_cpu']:.2f} | {a['client_cpu']:.2f} | {a['other_cpu']:.2f} |")
    c = h.get("control")
    if c:
        print(f"| control: do-nothing Python responder, wrk -t1 -c{a['connections']} | {fmt_rate(c['rps'])} | {c['p50_us']} | "
              f"{c['p99_us']} | {c['p999_us']} | {c['server_cpu']:.2f} | {c['client_cpu']:.2f} | {c['other_cpu']:.2f} |")
    print()
    print("80 % search (3 s each): " + ", ".join(
        f"-c{k}: {v['rps']:,.0f}/s p99 {v['p99_us']} us" for k, v in a["search"].items()))
    print()
    print(f"sample document: {res['sample_document']}")


if __name__ == "__main__":
    main()
