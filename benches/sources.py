#!/usr/bin/env python3
"""The quickstart's churn run from local files, from a loopback S3 server and with
its users in Postgres; and Postgres read throughput against psql's \\copy.

    python3 -m pip install -r benches/requirements.txt
    cargo build --release -p presage            # or pass --presage target/debug/presage
    python3 benches/sources.py [--runs 5] [--pg-rows 1000000] [--s3s-fs PATH]

Needs moto (S3 server, started here on a free loopback port; or s3s-fs, a Rust
S3 server, with --s3s-fs: cargo install s3s-fs --version 0.14.1 --features binary), duckdb (to write the
hive-partitioned copy of the events), boto3 (to upload it) and PostgreSQL at
$PRESAGE_TEST_POSTGRES or postgresql://postgres@127.0.0.1:5432/test with `psql` on
PATH. Everything it makes lives in a temporary folder and the schema
`presage_bench`, both removed at the end. Prints medians and ratios.
"""

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

AS_OF = "2026-11-28T00:00:00Z"
SCHEMA = "presage_bench"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_s3(s3s_fs, root):
    """moto, or s3s-fs (a Rust S3 server over a folder) when its binary is given."""
    port = free_port()
    if s3s_fs:
        cmd = [s3s_fs, "--host", "127.0.0.1", "--port", str(port), "--access-key", "testing",
               "--secret-key", "testing", root]
    else:
        cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    sys.exit(f"{cmd[0]} did not start")


def psql(url, sql):
    subprocess.run(["psql", url, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql], check=True,
                   stdout=subprocess.DEVNULL)


def timed(cmd, cwd, env=None):
    started = time.perf_counter()
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stderr}")
    return elapsed, out.stdout


def feature_seconds(stdout):
    match = re.search(r"time: features ([0-9.]+)s", stdout)
    return float(match.group(1)) if match else float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presage", default="target/release/presage")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--pg-rows", type=int, default=1_000_000)
    parser.add_argument("--s3s-fs", help="serve S3 with this s3s-fs binary instead of moto "
                        "(cargo install s3s-fs --features binary)")
    args = parser.parse_args()
    presage = os.path.abspath(args.presage)
    pg_url = os.environ.get("PRESAGE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")

    import boto3
    import duckdb

    work = tempfile.mkdtemp(prefix="presage-sources-bench-")
    os.makedirs(os.path.join(work, "s3"))
    moto, endpoint = start_s3(args.s3s_fs, os.path.join(work, "s3"))
    server = "s3s-fs" if args.s3s_fs else "moto"
    try:
        subprocess.run([presage, "quickstart", "--dir", "demo", "--no-run"], cwd=work,
                       check=True, capture_output=True)
        demo = os.path.join(work, "demo")

        # Events, hive-partitioned by day, into the loopback S3 server.
        parts = os.path.join(work, "events-by-day")
        duckdb.sql(
            f"COPY (SELECT *, CAST(ts AS DATE) AS date FROM '{demo}/data/events/*.parquet') "
            f"TO '{parts}' (FORMAT parquet, PARTITION_BY (date))"
        )
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        s3.create_bucket(Bucket="lake")
        objects = 0
        for root, _, files in os.walk(parts):
            for name in files:
                path = os.path.join(root, name)
                s3.upload_file(path, "lake", "events/" + os.path.relpath(path, parts))
                objects += 1

        # Users into Postgres.
        psql(pg_url, f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA}; "
                     f"CREATE TABLE {SCHEMA}.users (user_id text PRIMARY KEY, signup_date date, "
                     f"plan text, country text, age_band text)")
        psql(pg_url, f"\\copy {SCHEMA}.users FROM '{demo}/data/users.csv' (FORMAT csv, HEADER true)")

        base = open(os.path.join(demo, "presage.toml")).read()
        storage = (f'[storage."s3://lake"]\nendpoint = "{endpoint}"\nregion = "us-east-1"\n'
                   'allow_http = true\noptions = { access_key_id = "testing", '
                   'secret_access_key = "testing" }\n')
        s3_events = ('[sources.events]\npath = "s3://lake/events/"\n'
                     'partition_columns = { date = "date" }')
        pg_users = f'[sources.users]\npostgres = "{pg_url}"\ntable = "{SCHEMA}.users"'
        local_events = '[sources.events]\npath = "data/events/*.parquet"'
        local_users = '[sources.users]\npath = "data/users.csv"'
        configs = {
            "local files": base,
            f"events in S3 ({server})": base.replace(local_events, s3_events) + storage,
            "users in Postgres": base.replace(local_users, pg_users),
            "S3 + Postgres": base.replace(local_events, s3_events).replace(local_users, pg_users)
            + storage,
        }
        for name, text in configs.items():
            text = text.replace('data_dir = "presage-data"',
                                f'data_dir = "store-{name.replace(" ", "-")}"')
            with open(os.path.join(demo, f"{name.replace(' ', '-')}.toml"), "w") as f:
                f.write(text)

        times = {name: [] for name in configs}
        for _ in range(args.runs):
            for name in configs:
                seconds, _ = timed([presage, "run", "churn", "--as-of", AS_OF, "-c",
                                    f"{name.replace(' ', '-')}.toml"], demo)
                times[name].append(seconds)
        local = statistics.median(times["local files"])
        print(f"churn run, quickstart (100,000 users; events: {objects} day partitions in {server}), "
              f"median of {args.runs}")
        for name, values in times.items():
            median = statistics.median(values)
            print(f"  {name:22} {median:6.2f} s   {median / local:4.2f}x local   "
                  f"(runs: {', '.join(f'{v:.2f}' for v in values)})")

        # Postgres read throughput: presage's COPY reader against psql's \copy.
        rows = args.pg_rows
        psql(pg_url, f"CREATE TABLE {SCHEMA}.accounts AS SELECT i::int8 AS id, "
                     f"'plan' || (i % 5) AS plan, i / 7.0::float8 AS score, "
                     f"DATE '2020-01-01' + (i % 2000) AS opened, "
                     f"TIMESTAMP '2026-01-01' + i * INTERVAL '1 second' AS seen "
                     f"FROM generate_series(1, {rows}) AS i")
        select = f"SELECT id, plan, score, opened, seen FROM {SCHEMA}.accounts"
        project = os.path.join(work, "pg")
        os.makedirs(project)
        with open(os.path.join(project, "presage.toml"), "w") as f:
            f.write(f'data_dir = "store"\n[sources.accounts]\npostgres = "{pg_url}"\n'
                    f'table = "{SCHEMA}.accounts"\n'
                    '[jobs.read]\npredictions = "accounts"\nkey = "id"\n'
                    # The job's SQL is SELECT *: all five columns are read.
                    'columns = ["plan", "score"]\nfeatures_as_of = "seen"\n')
        psql_times, presage_times, run_times = [], [], []
        for _ in range(args.runs):
            seconds, _ = timed(["psql", pg_url, "-q", "-c",
                                f"\\copy ({select}) TO '/dev/null'"], work)
            psql_times.append(seconds)
            seconds, out = timed([presage, "run", "read", "--as-of", AS_OF], project)
            presage_times.append(feature_seconds(out))
            run_times.append(seconds)
        psql_median = statistics.median(psql_times)
        presage_median = statistics.median(presage_times)
        run_median = statistics.median(run_times)
        print(f"\nPostgres read, {rows:,} rows x 5 columns (int8, text, float8, date, "
              f"timestamp), median of {args.runs}")
        print(f"  psql \\copy to /dev/null   {psql_median:6.2f} s  "
              f"{rows / psql_median / 1e6:5.2f} M rows/s")
        print(f"  presage (feature stage)   {presage_median:6.2f} s  "
              f"{rows / presage_median / 1e6:5.2f} M rows/s   "
              f"{psql_median / presage_median:4.2f}x psql")
        print(f"  presage run, end to end   {run_median:6.2f} s  "
              f"{rows / run_median / 1e6:5.2f} M rows/s   {psql_median / run_median:4.2f}x psql"
              "   (read, checks, lookup file and Parquet written, published)")
    finally:
        moto.kill()
        try:
            psql(pg_url, f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        except Exception:
            pass
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
