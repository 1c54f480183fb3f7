#!/usr/bin/env python3
"""End-to-end batch prediction: `presage run` against two Python stacks, in one run.

The three contenders compute the same ~9 features per user from the same Parquet files,
score the same 200-tree XGBoost model and write one probability per user:

  presage   `presage run bench --as-of 2026-12-01`: features in DataFusion SQL, the
            model's XGBoost JSON on the native tree evaluator, published as a version
            into the embedded store (a fresh `data_dir` per run, so each run publishes
            a first version: lookup file, predictions.parquet, manifest).
  polars    polars lazy (scan_parquet, filter, group_by/agg, left join) -> the model
            converted to ONNX (onnxmltools) in onnxruntime on all cores -> `user_id,
            probability` to Parquet (benches/batch/polars_peer.py).
  duckdb    one DuckDB SQL query -> xgboost `Booster.predict` (nthread = all cores) ->
            `SET bench:<user_id> <probability>` into a fresh redis-server (no
            persistence, a free loopback port) through redis-py pipelines of 10,000
            (benches/batch/duckdb_peer.py).

What it does, in order:

  1. Data (cached in --work, reused for the same --users and --seed): users.parquet
     (`user_id` `u0000042` zero-padded to the width of the count, `signup_date` date,
     `plan`, `country`) and events/ hive-partitioned by day
     (`events/date=2026-11-30/part-0.parquet`: `user_id`, `ts` timestamp[us] without
     time zone, `kind` (session, page_view, purchase, support_ticket, email_open),
     `amount` float64, set on purchases only), about 18 events per user over the 90
     days before 2026-12-01. Written day by day with numpy and pyarrow, so memory
     stays bounded (a few hundred MB at 10 M users).
  2. Features as of 2026-12-01T00:00 (benches/batch/features.py, once per engine): per
     user, sessions in 7 and 30 days, page views, purchases and support tickets in 30
     days, spend in 30 days, all events in 7 days, days since the last event (91 when
     none), tenure in days; every user gets a row, every feature is a DOUBLE.
     `--distinct` adds `count(DISTINCT CASE WHEN ts >= as_of - 30 days THEN kind END)`
     in the same GROUP BY (distinct kinds per user), in all three engines.
  3. Model (cached): XGBoost binary classifier, 200 trees, max_depth 6, trained on the
     features of an evenly spaced sample of 200,000 users (DuckDB) with a synthetic
     label drawn from the features; saved as XGBoost JSON and converted to ONNX. The
     --distinct variant has its own model with the extra input.
  4. Each contender is its own process, run one after another, --runs times,
     alternating the order between runs (the reverse order on odd runs). Measured per
     run: wall time; peak RSS (`ru_maxrss` from wait4, through benches/batch/launch.py,
     a small interpreter that forks the command, so that this script's own memory does
     not leak into the number); CPU% = (user + sys) / wall
     (200 % = both cores); a timeline sampled every 0.25 s from /proc (the process's
     CPU time and RSS, and the whole machine's busy CPU, from which the CPU others
     used during the run is reported). Stage times: the peers print theirs (with
     their wall-clock edges, so CPU% inside a stage comes from the timeline); presage's
     come from `stages` in `presage status --json` (`last_run`) or else the version's
     manifest.json, "n/a" when the build records none: busy seconds per stage, where
     features, scoring and writing overlap (so no CPU% per stage), and the bytes the
     feature query spilled. For duckdb, the redis-server's own CPU time and memory
     (`used_memory`, VmHWM) are reported separately.
  5. Cross-check: the three must have one row per user, and for 1,000 random users
     (seeded) the probabilities must agree within 1e-4 (presage's from the version's
     predictions.parquet, polars's Parquet file, redis GET); any disagreement stops
     the script with the users, the probabilities and the DuckDB and polars features
     of the worst ones.
  6. A table (medians over runs) with presage's ratios (peer time / presage time;
     presage RSS / the leaner peer's), and a JSON file of everything
     (--json, default WORK/results-<users>[-distinct].json).

All servers listen on 127.0.0.1 only and are killed at the end, also on errors and
Ctrl-C. Every subprocess runs with a timeout (--timeout, default 600 s + 600 s per
million users). A contender whose RSS passes --max-rss (default 85 % of the memory
available at the start) is killed and reported as such, so that a run that would not
fit cannot take the machine down (the --distinct query in DataFusion needs tens of KB
per user).

Usage:
  python3 benches/batch_peers.py [--users 1M] [--runs 1] [--work /work/bench-batch]
      [--presage /work/target-bench/release/presage] [--only presage,polars,duckdb]
      [--distinct] [--memory-limit X] [--max-rss 16G] [--seed 7] [--json FILE]
      [--prepare-only]
  e.g. python3 benches/batch_peers.py --users 10M --runs 3
--memory-limit is passed to `presage run` only when given; --prepare-only writes the
data, the model and presage.toml, and stops.
Needs: pip install -r benches/requirements.txt; redis-server on the PATH.
Disk: about 0.26 GB of data per 1 M users, plus each contender's output (about 0.1 GB
per 1 M users for presage's version and the Parquet file).
"""
import argparse
import atexit
import datetime as dt
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "batch"))
import features as F  # noqa: E402

GENERATOR_VERSION = 1  # bump when the generated data changes
MODEL_VERSION = 1
CONTENDERS = ["presage", "polars", "duckdb"]
LABELS = {
    "presage": "presage, embedded store",
    "polars": "polars → onnxruntime → Parquet",
    "duckdb": "DuckDB → XGBoost → redis-py",
}
JOB = "bench"
SAMPLE_EVERY = 0.25  # seconds between /proc samples
CHECK_USERS = 1000
TOLERANCE = 1e-4
TRAIN_USERS = 200_000
EVENTS_PER_USER = 18.3  # the generator's target mean over the 90 days

PROCS = []  # processes started here, killed at exit


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def parse_count(text):
    t = text.strip().lower().replace("_", "").replace(",", "")
    mult = {"k": 1_000, "m": 1_000_000}.get(t[-1:], 1)
    if mult != 1:
        t = t[:-1]
    return int(float(t) * mult)


def parse_size_kb(text):
    t = text.strip().upper().rstrip("IB").rstrip("B")
    mult = {"K": 1, "M": 1024, "G": 1024**2, "T": 1024**3}.get(t[-1:], None)
    return int(float(t[:-1]) * mult) if mult else int(int(t) / 1024)


def fmt_count(n):
    if n >= 1_000_000 and n % 100_000 == 0:
        return f"{n / 1e6:g} M"
    if n >= 1_000 and n % 100 == 0:
        return f"{n / 1e3:g} k"
    return f"{n:,}"


def mib(kb):
    return kb / 1024


def fmt_mem(kb):
    if kb is None:
        return "n/a"
    m = kb / 1024
    return f"{m / 1024:.1f} GiB" if m >= 1024 else f"{m:.0f} MiB"


# ---------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------

def user_ids(n):
    width = len(str(n))
    padded = pc.utf8_lpad(pc.cast(pa.array(np.arange(n, dtype=np.int64)), pa.string()), width, "0")
    return pc.binary_join_element_wise("u", padded, "")


def generate(data, n, seed):
    """Writes data/users.parquet and data/events/date=YYYY-MM-DD/part-0.parquet unless
    data/meta.json says they are there for these arguments."""
    want = {"users": n, "seed": seed, "generator": GENERATOR_VERSION}
    meta_path = os.path.join(data, "meta.json")
    if os.path.exists(meta_path):
        meta = json.load(open(meta_path))
        if {k: meta.get(k) for k in want} == want:
            log(f"data: reusing {data} ({meta['events']:,} events)")
            return meta
    if os.path.exists(data):
        shutil.rmtree(data)
    tmp = data + ".tmp"
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    os.makedirs(os.path.join(tmp, "events"))
    started = time.time()
    rng = np.random.default_rng(seed)
    ids = user_ids(n)
    end_days = (F.END_DAY - dt.date(1970, 1, 1)).days
    first_day = end_days - F.DAYS

    # Users: signed up 1 day to 3 years before the end day (about 8 % inside the window).
    signup = end_days - rng.integers(1, 3 * 365 + 1, n)
    plan = rng.choice(len(F.PLANS), n, p=[0.5, 0.35, 0.15])
    country = rng.choice(len(F.COUNTRIES), n, p=[0.3, 0.15, 0.1, 0.1, 0.1, 0.1, 0.08, 0.07])
    users = pa.table({
        "user_id": ids,
        "signup_date": pa.array(signup.astype(np.int32), pa.date32()),
        "plan": pa.array(F.PLANS).take(pa.array(plan)),
        "country": pa.array(F.COUNTRIES).take(pa.array(country)),
    })
    pq.write_table(users, os.path.join(tmp, "users.parquet"))
    del users

    # Behaviour: a daily event rate (gamma), a trend over the 90 days (some users fade,
    # some grow), purchase and support-ticket shares (by plan, and per user).
    rate = rng.gamma(2.0, 1.0, n) * (EVENTS_PER_USER / F.DAYS / 2.0 / 1.05)
    trend = rng.normal(0.0, 1.2, n).astype(np.float32)
    p_purchase = (np.array([0.04, 0.06, 0.09])[plan] * rng.uniform(0.5, 1.5, n)).astype(np.float32)
    p_ticket = np.minimum(0.3, 0.03 * rng.gamma(1.0, 1.0, n)).astype(np.float32)
    del plan, country
    kinds = pa.array(F.KINDS)
    total = 0
    for d in range(F.DAYS):
        day = first_day + d
        x = d / (F.DAYS - 1) - 0.5
        weight = rate * np.exp(trend * x) * (signup <= day)
        cum = np.cumsum(weight)
        del weight
        k = int(rng.poisson(cum[-1]))
        who = np.minimum(np.searchsorted(cum, rng.random(k) * cum[-1], side="right"), n - 1)
        del cum
        ts = day * 86_400_000_000 + rng.integers(0, 86_400_000_000, k)
        order = np.argsort(ts, kind="stable")
        who, ts = who[order], ts[order]
        u = rng.random(k).astype(np.float32)
        pp, pt = p_purchase[who], p_ticket[who]
        rest = (u - pp - pt) / (1 - pp - pt)
        code = np.where(u < pp, 2, np.where(u < pp + pt, 3,
                        np.where(rest < 0.55, 0, np.where(rest < 0.88, 1, 4)))).astype(np.int8)
        purchase = code == 2
        amount = np.round(rng.lognormal(3.0, 0.8, k), 2)
        table = pa.table({
            "user_id": ids.take(pa.array(who)),
            "ts": pa.array(ts, pa.timestamp("us")),
            "kind": kinds.take(pa.array(code)),
            "amount": pa.array(amount, pa.float64(), mask=~purchase),
        })
        date = dt.date(1970, 1, 1) + dt.timedelta(days=int(day))
        folder = os.path.join(tmp, "events", f"date={date:%Y-%m-%d}")
        os.makedirs(folder)
        pq.write_table(table, os.path.join(folder, "part-0.parquet"))
        total += k
        if d % 10 == 9 or d == F.DAYS - 1:
            log(f"data: day {d + 1}/{F.DAYS} ({date}), {total:,} events so far, {time.time() - started:.0f}s")
    meta = dict(want, events=total, seconds=round(time.time() - started, 1),
                bytes=sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(tmp) for f in fs))
    with open(os.path.join(tmp, "meta.json"), "w") as f:
        json.dump(meta, f)
    os.replace(tmp, data)
    log(f"data: {n:,} users, {total:,} events in {meta['seconds']}s ({meta['bytes'] / 2**20:.0f} MiB) -> {data}")
    return meta


# ---------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------

def train(data, n, distinct, seed):
    """Trains (or reuses) the XGBoost model on a sample of users' features; writes
    model.json (XGBoost) and model.onnx (onnxmltools) into data/model[-distinct]/."""
    folder = os.path.join(data, "model-distinct" if distinct else "model")
    meta_path = os.path.join(folder, "meta.json")
    want = {"model": MODEL_VERSION, "seed": seed, "inputs": F.feature_names(distinct)}
    if os.path.exists(meta_path):
        meta = json.load(open(meta_path))
        if {k: meta.get(k) for k in want} == want:
            log(f"model: reusing {folder}")
            return folder, meta
    import duckdb
    import onnxmltools
    import onnxruntime as ort
    import xgboost as xgb
    from onnxmltools.convert.common.data_types import FloatTensorType

    started = time.time()
    names = F.feature_names(distinct)
    step = max(1, n // TRAIN_USERS)
    sample = pa.table({"user_id": user_ids(n).take(pa.array(np.arange(0, n, step)))})
    con = duckdb.connect()
    con.register("sample_ids", sample)
    users = (f"(SELECT * FROM read_parquet('{data}/users.parquet') "
             "WHERE user_id IN (SELECT user_id FROM sample_ids))")
    events = (f"(SELECT * FROM read_parquet('{data}/events/*/*.parquet') "
              "WHERE user_id IN (SELECT user_id FROM sample_ids))")
    feats = F.duckdb_arrow(con, F.duckdb_sql(users, events, distinct))
    con.close()
    X = np.column_stack([feats.column(c).to_numpy() for c in names]).astype(np.float32)
    col = {c: X[:, i].astype(np.float64) for i, c in enumerate(names)}
    # The label: more likely for users who fade (long since the last event, few
    # sessions lately), file tickets and spend little; new users churn more.
    logit = (-1.2 + 0.05 * col["days_since_last_event"] - 0.25 * col["sessions_7d"]
             - 0.04 * col["sessions_30d"] + 0.35 * col["tickets_30d"] - 0.004 * col["spend_30d"]
             - 0.02 * col["page_views_30d"] + 0.8 * (col["tenure_days"] < 60))
    if distinct:
        logit += 0.4 * (col[F.DISTINCT_FEATURE] <= 2)
    rng = np.random.default_rng(seed + 1)
    y = (rng.random(len(X)) < 1 / (1 + np.exp(-logit))).astype(np.int32)
    clf = xgb.XGBClassifier(n_estimators=200, max_depth=6, learning_rate=0.1, tree_method="hist",
                            n_jobs=os.cpu_count(), random_state=seed)
    clf.fit(X, y)
    os.makedirs(folder, exist_ok=True)
    clf.get_booster().save_model(os.path.join(folder, "model.json"))
    onx = onnxmltools.convert_xgboost(clf, initial_types=[("input", FloatTensorType([None, len(names)]))],
                                      target_opset=15)
    with open(os.path.join(folder, "model.onnx"), "wb") as f:
        f.write(onx.SerializeToString())
    sess = ort.InferenceSession(os.path.join(folder, "model.onnx"), providers=["CPUExecutionProvider"])
    p_onnx = sess.run([sess.get_outputs()[1].name], {sess.get_inputs()[0].name: X})[0][:, 1]
    p_xgb = clf.get_booster().predict(xgb.DMatrix(X))
    diff = float(np.max(np.abs(p_onnx - p_xgb)))
    if diff > TOLERANCE:
        raise RuntimeError(f"the ONNX conversion scores differently from XGBoost: max abs diff {diff}")
    meta = dict(want, users=len(X), positives=float(y.mean()), onnx_vs_xgboost_max_diff=diff,
                seconds=round(time.time() - started, 1), xgboost=xgb.__version__,
                onnxmltools=onnxmltools.__version__)
    with open(meta_path, "w") as f:
        json.dump(meta, f)
    log(f"model: {len(X):,} users ({y.mean():.1%} positive), 200 trees, in {meta['seconds']}s; "
        f"ONNX vs XGBoost max diff {diff:.1e} -> {folder}")
    return folder, meta


# ---------------------------------------------------------------------------------
# presage
# ---------------------------------------------------------------------------------

def write_config(run_dir, data, model_dir, distinct):
    inputs = F.feature_names(distinct)
    sql = F.datafusion_sql(distinct)
    config = f"""# Written by benches/batch_peers.py{' (--distinct)' if distinct else ''}.
data_dir = "presage-data"

[sources.users]
path = "{data}/users.parquet"
[sources.events]
path = "{data}/events"

[features.bench]
key = "user_id"
sql = \"\"\"
{sql}\"\"\"

[models.m]
path = "{model_dir}/model.json"
inputs = {json.dumps(inputs)}

[jobs.{JOB}]
features = "bench"
model = "m"
max_age = "3650d"
keep_versions = 1
"""
    path = os.path.join(run_dir, "presage.toml")
    with open(path, "w") as f:
        f.write(config)
    return path


def presage_version_dir(run_dir):
    job = os.path.join(run_dir, "presage-data", JOB)
    current = open(os.path.join(job, "CURRENT")).read().strip()
    return os.path.join(job, "versions", current)


def presage_stages(presage, config, run_dir):
    """The run's `stages`: from `last_run` in `presage status --json` when it is this
    version's run (the manifest is written before the version is moved into place, so
    its `publish` reads 0), else from the version's manifest.json; None when this
    presage records none."""
    manifest = json.load(open(os.path.join(presage_version_dir(run_dir), "manifest.json")))
    stages = None
    try:
        out = subprocess.run([presage, "status", "--json", "--config", config], capture_output=True,
                             text=True, timeout=60, check=True).stdout
        for job in json.loads(out).get("jobs", []):
            last = job.get("last_run") or {}
            if job.get("job") == JOB and last.get("version") == manifest["id"]:
                stages = last.get("stages")
    except (subprocess.SubprocessError, ValueError) as e:
        log(f"presage status --json: {e}")
    return manifest, stages or manifest.get("stages") or None


# ---------------------------------------------------------------------------------
# Processes and measurement
# ---------------------------------------------------------------------------------

TICK = os.sysconf("SC_CLK_TCK")


def proc_sample(pid):
    """(CPU seconds, VmRSS kB, VmHWM kB) of a live process, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
        rss = hwm = 0
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
        return (int(parts[11]) + int(parts[12])) / TICK, rss, hwm
    except (OSError, IndexError, ValueError):
        return None


def machine_busy():
    """Busy CPU seconds of the whole machine so far (all cores)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / TICK


LAUNCHER = os.path.join(HERE, "batch", "launch.py")


RSS_CAP = {"kb": None}  # --max-rss: a contender whose RSS passes it is killed


def measure(name, cmd, timeout, logs, extra_pids=()):
    """Runs cmd to completion through batch/launch.py (whose wait4 gives the command's
    own peak RSS and CPU time), sampling it every SAMPLE_EVERY seconds from /proc.
    Returns wall, CPU, peak RSS, the timeline and the last stdout line; a command whose
    RSS passes --max-rss is killed, and the result says so (`killed`)."""
    out_path, err_path, usage_path = logs + ".stdout", logs + ".stderr", logs + ".rusage.json"
    for path in (usage_path, usage_path + ".pid"):
        if os.path.exists(path):
            os.remove(path)
    with open(out_path, "w") as out, open(err_path, "w") as err:
        busy0 = machine_busy()
        extra0 = {pid: (proc_sample(pid) or (0, 0, 0))[0] for pid in extra_pids}
        t0 = time.time()
        p = subprocess.Popen([sys.executable, "-S", "-E", LAUNCHER, usage_path] + cmd,
                             stdout=out, stderr=err, start_new_session=True)
        PROCS.append(p)
        timeline = []  # [seconds since start, process CPU s, VmRSS MiB, machine busy CPU s since start]
        hwm = 0
        child = None
        while True:
            status = p.poll()
            now = time.time()
            if status is not None:
                break
            if child is None and os.path.exists(usage_path + ".pid"):
                text = open(usage_path + ".pid").read().strip()
                child = int(text) if text else None
            s = proc_sample(child) if child else None
            if s:
                timeline.append([round(now - t0, 3), s[0], round(mib(s[1]), 1), round(machine_busy() - busy0, 2)])
                hwm = max(hwm, s[2])
                if RSS_CAP["kb"] and s[1] > RSS_CAP["kb"]:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait(timeout=60)
                    PROCS.remove(p)
                    log(f"{name}: KILLED after {now - t0:.1f}s: RSS {fmt_mem(s[1])} passed --max-rss {fmt_mem(RSS_CAP['kb'])}")
                    return {"killed": f"RSS passed --max-rss {fmt_mem(RSS_CAP['kb'])} after {now - t0:.1f} s",
                            "t0": t0, "wall": now - t0, "cpu_seconds": s[0], "cpu_pct": 100 * s[0] / (now - t0),
                            "peak_rss_kb": s[2], "peak_rss_kb_sampled": hwm, "rows": None, "stages": None,
                            "others_cpu_cores": max(0.0, (machine_busy() - busy0 - s[0]) / (now - t0)),
                            "timeline": timeline, "last_line": "", "stdout_tail": []}
            if now - t0 > timeout:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=30)
                PROCS.remove(p)
                raise RuntimeError(f"{name}: timed out after {timeout}s: {' '.join(cmd)}")
            time.sleep(max(0.0, SAMPLE_EVERY - (time.time() - now)))
        busy = machine_busy() - busy0
        extra_cpu = sum((proc_sample(pid) or (0, 0, 0))[0] - c for pid, c in extra0.items())
    PROCS.remove(p)
    stdout = open(out_path).read()
    if p.returncode != 0 or not os.path.exists(usage_path):
        tail = (stdout + open(err_path).read())[-4000:]
        raise RuntimeError(f"{name} failed (exit {p.returncode}): {' '.join(cmd)}\n{tail}")
    usage = json.load(open(usage_path))
    wall, cpu = usage["wall"], usage["utime"] + usage["stime"]
    # The command started a few ms after the launcher: its timeline counts from the fork.
    shift = usage["started"] - t0
    t0 = usage["started"]
    for row in timeline:
        row[0] = round(row[0] - shift, 3)
    timeline.append([round(wall, 3), cpu, None, round(busy, 2)])
    lines = [l for l in stdout.strip().splitlines() if l.strip()]
    return {
        "t0": t0,
        "wall": wall,
        "cpu_seconds": cpu,
        "cpu_pct": 100 * cpu / wall,
        "peak_rss_kb": usage["maxrss_kb"],
        "peak_rss_kb_sampled": hwm,
        "others_cpu_cores": max(0.0, (busy - cpu - extra_cpu) / wall),
        "timeline": timeline,
        "last_line": lines[-1] if lines else "",
        "stdout_tail": lines[-5:],
    }


def cpu_in_window(m, start, end):
    """CPU% of the measured process between two absolute times, from its timeline."""
    if end - start < 2 * SAMPLE_EVERY:
        return None
    t = [row[0] for row in m["timeline"]]
    c = [row[1] for row in m["timeline"]]
    a, b = start - m["t0"], end - m["t0"]
    if not t or a < t[0] - SAMPLE_EVERY or b > t[-1] + SAMPLE_EVERY:
        return None
    return 100 * (float(np.interp(b, t, c)) - float(np.interp(a, t, c))) / (end - start)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A fresh redis-server on a free loopback port, without persistence."""

    def __init__(self, folder):
        import redis

        os.makedirs(folder, exist_ok=True)
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--protected-mode", "yes",
             "--save", "", "--appendonly", "no", "--dir", folder],
            stdout=open(os.path.join(folder, "redis-server.log"), "w"), stderr=subprocess.STDOUT,
            start_new_session=True)
        PROCS.append(self.proc)
        self.client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=60)
        deadline = time.time() + 30
        while True:
            try:
                if self.client.ping():
                    break
            except redis.exceptions.ConnectionError:
                pass
            if time.time() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.1)

    def memory(self):
        info = self.client.info("memory")
        s = proc_sample(self.proc.pid) or (0, 0, 0)
        return {"used_memory_kb": info["used_memory"] // 1024, "used_memory_rss_kb": info["used_memory_rss"] // 1024,
                "vm_hwm_kb": s[2], "cpu_seconds": s[0]}

    def stop(self):
        try:
            self.client.close()
        except Exception:
            pass
        stop(self.proc)


def stop(p):
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=15)
    if p in PROCS:
        PROCS.remove(p)


def stop_all():
    for p in list(PROCS):
        try:
            stop(p)
        except Exception as e:
            log(f"stopping {p.args[0]} (pid {p.pid}): {e}")


# ---------------------------------------------------------------------------------
# The runs
# ---------------------------------------------------------------------------------

PRESAGE_STAGES = ("features", "scoring", "writing", "checks", "publish")


def run_presage(ctx, run):
    data_dir = os.path.join(ctx["run_dir"], "presage-data")
    if os.path.exists(data_dir):
        shutil.rmtree(data_dir)
    cmd = [ctx["presage"], "run", JOB, "--config", ctx["config"], "--as-of", F.END_DAY.isoformat()]
    if ctx["memory_limit"]:
        cmd += ["--memory-limit", ctx["memory_limit"]]
    m = measure("presage", cmd, ctx["timeout"], os.path.join(ctx["run_dir"], f"presage-{run}"))
    if m.get("killed"):
        return m
    manifest, stages = presage_stages(ctx["presage"], ctx["config"], ctx["run_dir"])
    m["rows"] = manifest["rows"]
    m["run_seconds"] = manifest.get("run_seconds")
    # Busy seconds per stage; features, scoring and writing overlap (writing has its own
    # thread), so they have no window of their own to take CPU% from.
    m["stages"] = {k: stages[k] for k in PRESAGE_STAGES if isinstance(stages.get(k), (int, float))} if stages else None
    m["spilled_bytes"] = (stages or {}).get("spilled_bytes")
    m["stages_raw"] = stages
    m["stage_cpu_pct"] = None
    return m


def run_polars(ctx, run):
    out = os.path.join(ctx["run_dir"], "polars-predictions.parquet")
    cmd = [sys.executable, os.path.join(HERE, "batch", "polars_peer.py"), "--data", ctx["data"],
           "--model", os.path.join(ctx["model_dir"], "model.onnx"), "--out", out]
    if ctx["distinct"]:
        cmd.append("--distinct")
    m = measure("polars", cmd, ctx["timeout"], os.path.join(ctx["run_dir"], f"polars-{run}"))
    return peer_stages(m)


def run_duckdb(ctx, run):
    if ctx.get("redis"):
        ctx["redis"].stop()
    ctx["redis"] = RedisServer(os.path.join(ctx["run_dir"], "redis"))
    cmd = [sys.executable, os.path.join(HERE, "batch", "duckdb_peer.py"), "--data", ctx["data"],
           "--model", os.path.join(ctx["model_dir"], "model.json"), "--redis-port", str(ctx["redis"].port)]
    if ctx["distinct"]:
        cmd.append("--distinct")
    before = ctx["redis"].memory()
    m = measure("duckdb", cmd, ctx["timeout"], os.path.join(ctx["run_dir"], f"duckdb-{run}"),
                extra_pids=[ctx["redis"].proc.pid])
    if m.get("killed"):
        return m
    after = ctx["redis"].memory()
    m["redis"] = {"used_memory_kb": after["used_memory_kb"], "used_memory_rss_kb": after["used_memory_rss_kb"],
                  "vm_hwm_kb": after["vm_hwm_kb"], "cpu_seconds": after["cpu_seconds"] - before["cpu_seconds"],
                  "keys": ctx["redis"].client.dbsize()}
    return peer_stages(m)


def peer_stages(m):
    if m.get("killed"):
        return m
    report = json.loads(m["last_line"])
    m["peer_report"] = report
    m["rows"] = report["rows"]
    m["versions"] = report.get("versions")
    m["stages"] = {k: report[k] for k in ("features", "scoring", "writing")}
    m["stages"]["imports"] = report.get("imports")
    m["stage_cpu_pct"] = {k: cpu_in_window(m, *report["edges"][k]) for k in report["edges"]}
    return m


RUNNERS = {"presage": run_presage, "polars": run_polars, "duckdb": run_duckdb}


# ---------------------------------------------------------------------------------
# Cross-check
# ---------------------------------------------------------------------------------

def parquet_lookup(path, key_col, prob_col, keys):
    t = pq.read_table(path, columns=[key_col, prob_col])
    t = t.filter(pc.is_in(t.column(key_col), value_set=pa.array(keys)))
    return dict(zip(t.column(key_col).to_pylist(), t.column(prob_col).to_pylist())), pq.ParquetFile(path).metadata.num_rows


def cross_check(ctx, contenders, n, seed):
    rng = random.Random(seed + 2)
    width = len(str(n))
    keys = [f"u{i:0{width}d}" for i in rng.sample(range(n), min(CHECK_USERS, n))]
    got, rows = {}, {}
    if "presage" in contenders:
        vdir = presage_version_dir(ctx["run_dir"])
        manifest = json.load(open(os.path.join(vdir, "manifest.json")))
        got["presage"], rows["presage"] = parquet_lookup(os.path.join(vdir, "predictions.parquet"),
                                                         manifest["key"]["column"], "probability", keys)
        rows["presage manifest"] = manifest["rows"]
    if "polars" in contenders:
        got["polars"], rows["polars"] = parquet_lookup(os.path.join(ctx["run_dir"], "polars-predictions.parquet"),
                                                       "user_id", "probability", keys)
    if "duckdb" in contenders:
        client = ctx["redis"].client
        values = client.mget(["bench:" + k for k in keys])
        got["duckdb"] = {k: float(v) for k, v in zip(keys, values) if v is not None}
        rows["duckdb"] = client.dbsize()
    problems = [f"{name} has {r:,} rows, not {n:,}" for name, r in rows.items() if r != n]
    for name, found in got.items():
        missing = [k for k in keys if k not in found]
        if missing:
            problems.append(f"{name} has no prediction for {len(missing)} sampled users, e.g. {missing[:3]}")
    names = list(got)
    pairs = {}
    worst = {}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            diffs = [(abs(got[a][k] - got[b][k]), k) for k in keys if k in got[a] and k in got[b]]
            if not diffs:
                continue
            top = max(diffs)
            pairs[f"{a} vs {b}"] = top[0]
            bad = [k for d, k in diffs if d > TOLERANCE]
            if bad:
                problems.append(f"{a} vs {b}: {len(bad)} of {len(diffs)} sampled users differ by more than "
                                f"{TOLERANCE} (worst {top[0]:.2e} for {top[1]})")
                for d, k in sorted(diffs, reverse=True)[:5]:
                    worst[k] = max(worst.get(k, 0), d)
    result = {"sampled_users": len(keys), "rows": rows, "max_abs_diff": pairs, "problems": problems}
    if problems:
        for p in problems:
            log(f"CROSS-CHECK FAILED: {p}")
        for k in sorted(worst, key=worst.get, reverse=True)[:5]:
            log(f"  {k}: " + ", ".join(f"{name} {got[name].get(k)}" for name in names))
        try:
            explain(ctx, sorted(worst, key=worst.get, reverse=True)[:5])
        except Exception as e:  # diagnosis only
            log(f"  (features of those users could not be computed: {e})")
    return result


def explain(ctx, keys):
    """Prints the DuckDB and polars features of `keys`, to find which feature differs."""
    import duckdb
    import polars as pl

    data, distinct = ctx["data"], ctx["distinct"]
    con = duckdb.connect()
    con.register("k", pa.table({"user_id": keys}))
    users = f"(SELECT * FROM read_parquet('{data}/users.parquet') WHERE user_id IN (SELECT user_id FROM k))"
    events = f"(SELECT * FROM read_parquet('{data}/events/*/*.parquet') WHERE user_id IN (SELECT user_id FROM k))"
    d = F.duckdb_arrow(con, F.duckdb_sql(users, events, distinct))
    con.close()
    u = pl.scan_parquet(os.path.join(data, "users.parquet")).filter(pl.col("user_id").is_in(keys))
    e = pl.scan_parquet(os.path.join(data, "events"), hive_partitioning=True).filter(pl.col("user_id").is_in(keys))
    p = F.polars_features(u, e, distinct).collect()
    for key in keys:
        dr = d.filter(pc.equal(d.column("user_id"), key)).to_pylist()
        pr = p.filter(pl.col("user_id") == key).to_dicts()
        log(f"  features of {key}:")
        log(f"    duckdb {dr[0] if dr else None}")
        log(f"    polars {pr[0] if pr else None}")


# ---------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------

def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(runs):
    """Medians over the runs of each contender (runs killed by --max-rss are left out
    of the medians and counted)."""
    out = {}
    for name, all_runs in runs.items():
        killed = [m for m in all_runs if m.get("killed")]
        ms = [m for m in all_runs if not m.get("killed")]
        stage_names = []
        for m in ms:
            for k in (m.get("stages") or {}):
                if k not in stage_names:
                    stage_names.append(k)
        out[name] = {
            "runs": len(ms),
            "killed": [m["killed"] for m in killed],
            "killed_peak_rss_kb": max((m["peak_rss_kb"] for m in killed), default=None),
            "wall": med([m["wall"] for m in ms]),
            "peak_rss_kb": med([m["peak_rss_kb"] for m in ms]),
            "cpu_pct": med([m["cpu_pct"] for m in ms]),
            "others_cpu_cores": max(m["others_cpu_cores"] for m in all_runs),
            "stages": {k: med([(m.get("stages") or {}).get(k) for m in ms]) for k in stage_names} or None,
            "stage_cpu_pct": {k: med([(m.get("stage_cpu_pct") or {}).get(k) for m in ms]) for k in stage_names},
        }
        if name == "presage":
            out[name]["spilled_bytes"] = med([m.get("spilled_bytes") for m in ms])
        if name == "duckdb" and ms:
            out[name]["redis_used_memory_kb"] = med([m["redis"]["used_memory_kb"] for m in ms])
            out[name]["redis_vm_hwm_kb"] = med([m["redis"]["vm_hwm_kb"] for m in ms])
            out[name]["redis_cpu_seconds"] = med([m["redis"]["cpu_seconds"] for m in ms])
    return out


def report(res):
    s = res["summary"]
    n, ev = res["users"], res["events"]
    print()
    print(f"Batch prediction, {n:,} users ({ev:,} events){', --distinct' if res['distinct'] else ''}; "
          f"{res['machine']['cpu']} x{res['machine']['cpus']}, {res['machine']['mem_gib']} GiB; "
          f"medians of {res['runs']} run(s)")
    print("; ".join(f"{k} {v}" for k, v in res["versions"].items()))
    print()
    names = [c for c in CONTENDERS if c in s]
    done = {c: s[c]["runs"] > 0 for c in names}
    print(f"| {fmt_count(n)} users ({fmt_ev(ev)} events) |" + "".join(f" {LABELS[c]} |" for c in names))
    print("|---|" + "---:|" * len(names))

    def row(title, f):
        print(f"| {title} |" + "".join(f" {f(c) if done[c] else ''} |" for c in names))

    print("| wall time |" + "".join(
        f" {s[c]['wall']:.1f} s |" if done[c] else f" killed: {s[c]['killed'][0]} |" for c in names))
    print("| peak RSS |" + "".join(
        f" {fmt_mem(s[c]['peak_rss_kb'])} |" if done[c] else f" > {fmt_mem(s[c]['killed_peak_rss_kb'])} |"
        for c in names))
    row("CPU (user+sys) / wall", lambda c: f"{s[c]['cpu_pct']:.0f} %")

    def stage(c, k):
        st = s[c]["stages"]
        if not st or st.get(k) is None:
            return "n/a"
        cpu = (s[c]["stage_cpu_pct"] or {}).get(k)
        return f"{st[k]:.1f} s" + (f" ({cpu:.0f} %)" if cpu is not None else "")

    for k in ("imports", "features", "scoring", "writing", "checks", "publish"):
        if k in ("features", "scoring", "writing") or any((s[c]["stages"] or {}).get(k) is not None for c in names):
            row(f"stage: {k} (CPU)", lambda c, k=k: stage(c, k))
    p = s.get("presage")
    if p and done["presage"]:
        row("peer time / presage time", lambda c: "1.00×" if c == "presage" else f"**{s[c]['wall'] / p['wall']:.2f}×**")
        row("presage RSS / peer RSS", lambda c: "1.00×" if c == "presage"
            else f"{p['peak_rss_kb'] / s[c]['peak_rss_kb']:.2f}×")
    if "duckdb" in s and done["duckdb"]:
        d = s["duckdb"]
        row("redis-server (its own process)", lambda c: "" if c != "duckdb" else
            f"used_memory {fmt_mem(d['redis_used_memory_kb'])}, VmHWM {fmt_mem(d['redis_vm_hwm_kb'])}, "
            f"{d['redis_cpu_seconds']:.1f} CPU s")
    print("| other processes' CPU during the run (max, cores) |"
          + "".join(f" {s[c]['others_cpu_cores']:.2f} |" for c in names))
    print()
    peers = [c for c in names if c != "presage" and done[c]]
    if p and done["presage"] and peers:
        lean = min(peers, key=lambda c: s[c]["peak_rss_kb"])
        print(f"presage peak RSS / the leaner peer's ({lean}): {p['peak_rss_kb'] / s[lean]['peak_rss_kb']:.2f}×")
    if p and done["presage"] and not p["stages"]:
        print("presage stage times: n/a (this presage build records no `stages` in its manifest)")
    elif p and p["stages"]:
        print("presage stages are its busy seconds per stage (`presage status --json`): features, scoring and writing "
              "overlap, so they add up to more than the wall time and have no CPU% of their own"
              + (f"; the feature query spilled {p['spilled_bytes'] / 2**20:,.0f} MiB" if p.get("spilled_bytes") else ""))
    c = res.get("cross_check")
    if c:
        print(f"cross-check: {c['sampled_users']} users, max abs diff "
              + (", ".join(f"{k} {v:.1e}" for k, v in c["max_abs_diff"].items()) or "n/a")
              + f"; rows {', '.join(f'{k} {v:,}' for k, v in c['rows'].items())}")


def fmt_ev(ev):
    return f"{ev / 1e6:.0f} M" if ev >= 10_000_000 else (f"{ev / 1e6:.1f} M" if ev >= 1_000_000 else f"{ev:,}")


# ---------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", default="1M", help="number of users: 1000000, 1M, 200k (default 1M)")
    ap.add_argument("--runs", type=int, default=1, help="runs of each contender (medians; order alternates)")
    ap.add_argument("--work", default="/work/bench-batch", help="work folder: data, models, outputs, results")
    ap.add_argument("--presage", default="/work/target-bench/release/presage", help="the presage binary")
    ap.add_argument("--only", default=",".join(CONTENDERS), help="contenders to run, comma separated")
    ap.add_argument("--distinct", action="store_true", help="add count(DISTINCT kind) in 30 days (own model)")
    ap.add_argument("--memory-limit", help="passed to `presage run` as --memory-limit")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--prepare-only", action="store_true", help="write the data, the model and the config, then stop")
    ap.add_argument("--timeout", type=float, help="seconds per contender run (default 600 + 600 per M users)")
    ap.add_argument("--json", help="results file (default WORK/results-<users>[-distinct].json)")
    ap.add_argument("--max-rss", help="kill a contender whose RSS passes this (e.g. 16G; default 85 %% of "
                    "the memory available at the start), so that an out-of-memory run cannot take the machine down")
    args = ap.parse_args()

    n = parse_count(args.users)
    if args.max_rss:
        RSS_CAP["kb"] = parse_size_kb(args.max_rss)
    else:
        with open("/proc/meminfo") as f:
            avail = next(int(l.split()[1]) for l in f if l.startswith("MemAvailable:"))
        RSS_CAP["kb"] = int(0.85 * avail)
    only = [c.strip() for c in args.only.split(",") if c.strip()]
    unknown = set(only) - set(CONTENDERS)
    if unknown or not only:
        sys.exit(f"--only: choose among {', '.join(CONTENDERS)}")
    contenders = [c for c in CONTENDERS if c in only]
    work = os.path.abspath(args.work)
    presage = os.path.abspath(args.presage)
    if "presage" in contenders and not args.prepare_only and not os.access(presage, os.X_OK):
        sys.exit(f"no presage binary at {presage}; build it: "
                 "CARGO_TARGET_DIR=/work/target-bench cargo build --release -p presage")
    if "duckdb" in contenders and not shutil.which("redis-server"):
        sys.exit("redis-server is not on the PATH (apt-get install redis-server)")

    def on_signal(signum, _frame):
        stop_all()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    atexit.register(stop_all)

    data = os.path.join(work, f"data-{n}-seed{args.seed}")
    run_dir = os.path.join(work, f"run-{n}" + ("-distinct" if args.distinct else ""))
    os.makedirs(run_dir, exist_ok=True)
    meta = generate(data, n, args.seed)
    model_dir, model_meta = train(data, n, args.distinct, args.seed)
    config = write_config(run_dir, data, model_dir, args.distinct)
    if args.prepare_only:
        log(f"prepared: {data}, {model_dir}, {config}")
        return
    ctx = {"presage": presage, "config": config, "data": data, "model_dir": model_dir, "run_dir": run_dir,
           "distinct": args.distinct, "memory_limit": args.memory_limit,
           "timeout": args.timeout or 600 + 600 * n / 1e6}

    versions = {"python": platform.python_version()}
    if "presage" in contenders:
        versions["presage"] = subprocess.run([presage, "--version"], capture_output=True, text=True,
                                             timeout=30).stdout.strip()
    if "duckdb" in contenders:
        versions["redis-server"] = subprocess.run(["redis-server", "--version"], capture_output=True, text=True,
                                                  timeout=30).stdout.strip().split(" sha=")[0]
    res = {
        "users": n,
        "events": meta["events"],
        "seed": args.seed,
        "distinct": args.distinct,
        "runs": args.runs,
        "memory_limit": args.memory_limit,
        "max_rss_kb": RSS_CAP["kb"],
        "data": data,
        "model": model_meta,
        "features_sql_datafusion": F.datafusion_sql(args.distinct),
        "machine": {
            "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?"),
            "cpus": os.cpu_count(),
            "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "kernel": platform.release(),
            "loadavg_at_start": open("/proc/loadavg").read().split()[:3],
        },
        "versions": versions,
        "measurements": {c: [] for c in contenders},
    }
    try:
        for run in range(args.runs):
            order = contenders if run % 2 == 0 else list(reversed(contenders))
            for name in order:
                log(f"run {run + 1}/{args.runs}: {name}")
                m = RUNNERS[name](ctx, run)
                if m.get("versions"):
                    versions.update(m["versions"])
                res["measurements"][name].append(m)
                st = m.get("stages")
                if m.get("killed"):
                    continue
                log(f"  {name}: {m['wall']:.1f}s wall, peak RSS {fmt_mem(m['peak_rss_kb'])}, CPU {m['cpu_pct']:.0f} %, "
                    f"{m['rows']:,} rows; stages "
                    + (", ".join(f"{k} {v:.1f}s" for k, v in st.items() if v is not None) if st else "n/a")
                    + f"; others used {m['others_cpu_cores']:.2f} cores")
        finished = [c for c in contenders if not any(m.get("killed") for m in res["measurements"][c])]
        res["cross_check"] = cross_check(ctx, finished, n, args.seed)
        res["loadavg_at_end"] = open("/proc/loadavg").read().split()[:3]
    finally:
        if ctx.get("redis"):
            ctx["redis"].stop()
        stop_all()
    res["summary"] = summarize(res["measurements"])
    out = args.json or os.path.join(work, f"results-{n}" + ("-distinct" if args.distinct else "") + ".json")
    with open(out, "w") as f:
        json.dump(res, f, indent=1, default=str)
    report(res)
    log(f"results: {out}")
    if res["cross_check"]["problems"]:
        sys.exit("cross-check failed: " + "; ".join(res["cross_check"]["problems"]))


if __name__ == "__main__":
    main()
