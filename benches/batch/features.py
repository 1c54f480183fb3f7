"""The benchmark's features, written once per engine: DataFusion SQL (presage), DuckDB
SQL and polars lazy expressions. Shared by benches/batch_peers.py and the two peers.

Every user of `users` gets one row (a LEFT JOIN from users); every feature is a DOUBLE.
Windows are half-open, `as_of - N days <= ts < as_of`; a user without an event in
a window counts 0 (spend 0.0); a user without any event before the cutoff gets
`days_since_last_event` = NO_EVENT_DAYS. The cutoff is midnight (UTC, naive) of the end
day, so every event in the data is before it.
"""
import datetime as dt

# The data: 90 days of events before END_DAY; the features are computed as of END_DAY.
END_DAY = dt.date(2026, 12, 1)
DAYS = 90
KINDS = ["session", "page_view", "purchase", "support_ticket", "email_open"]
PLANS = ["basic", "standard", "premium"]
COUNTRIES = ["US", "DE", "FR", "GB", "BR", "IN", "JP", "ES"]
NO_EVENT_DAYS = 91.0

FEATURES = [
    "sessions_7d",
    "sessions_30d",
    "page_views_30d",
    "purchases_30d",
    "tickets_30d",
    "spend_30d",
    "events_7d",
    "days_since_last_event",
    "tenure_days",
]
# --distinct: distinct event kinds per user in the 30-day window, in the same GROUP BY.
DISTINCT_FEATURE = "kinds_30d"


def feature_names(distinct):
    return FEATURES + ([DISTINCT_FEATURE] if distinct else [])


def as_of_datetime():
    return dt.datetime(END_DAY.year, END_DAY.month, END_DAY.day)


# (name, kind or None for any kind, window days): the counted features.
COUNTS = [
    ("sessions_7d", "session", 7),
    ("sessions_30d", "session", 30),
    ("page_views_30d", "page_view", 30),
    ("purchases_30d", "purchase", 30),
    ("tickets_30d", "support_ticket", 30),
    ("events_7d", None, 7),
]


def _sql_aggregates(cutoff, distinct):
    """The per-user aggregates over `events`, as SQL both DataFusion and DuckDB accept;
    `cutoff` is the timestamp literal."""
    lines = []
    for name, kind, days in COUNTS:
        cond = f"ts >= {cutoff} - INTERVAL '{days} days'"
        if kind:
            cond = f"kind = '{kind}' AND " + cond
        lines.append(f"count(CASE WHEN {cond} THEN 1 END) AS {name}")
    lines.append(f"sum(CASE WHEN kind = 'purchase' AND ts >= {cutoff} - INTERVAL '30 days' THEN amount END) AS spend_30d")
    lines.append("max(ts) AS last_ts")
    if distinct:
        lines.append(f"count(DISTINCT CASE WHEN ts >= {cutoff} - INTERVAL '30 days' THEN kind END) AS {DISTINCT_FEATURE}")
    return ",\n           ".join(lines)


def _sql_select(distinct, days_since, tenure):
    cols = []
    for name in FEATURES:
        if name == "spend_30d":
            cols.append("coalesce(a.spend_30d, 0.0) AS spend_30d")
        elif name == "days_since_last_event":
            cols.append(f"coalesce({days_since}, {NO_EVENT_DAYS}) AS days_since_last_event")
        elif name == "tenure_days":
            cols.append(f"{tenure} AS tenure_days")
        else:
            cols.append(f"CAST(coalesce(a.{name}, 0) AS DOUBLE) AS {name}")
    if distinct:
        cols.append(f"CAST(coalesce(a.{DISTINCT_FEATURE}, 0) AS DOUBLE) AS {DISTINCT_FEATURE}")
    return ",\n       ".join(["u.user_id"] + cols)


def datafusion_sql(distinct):
    """presage's `[features.X] sql`: DataFusion's dialect; {{as_of}} becomes
    TIMESTAMP '2026-12-01T00:00:00.000000' (naive UTC) when run with --as-of."""
    c = "{{as_of}}"
    days_since = f"(date_part('epoch', {c}) - date_part('epoch', a.last_ts)) / 86400.0"
    tenure = f"(date_part('epoch', {c}) - date_part('epoch', CAST(u.signup_date AS TIMESTAMP))) / 86400.0"
    return f"""WITH a AS (
    SELECT user_id,
           {_sql_aggregates(c, distinct)}
    FROM events
    WHERE ts < {c}
    GROUP BY user_id
)
SELECT {_sql_select(distinct, days_since, tenure)}
FROM users u
LEFT JOIN a ON a.user_id = u.user_id
"""


def duckdb_sql(users, events, distinct):
    """The same query in DuckDB's dialect over the relations `users` and `events`."""
    c = f"TIMESTAMP '{as_of_datetime():%Y-%m-%d %H:%M:%S}'"
    days_since = f"CAST(date_diff('microsecond', a.last_ts, {c}) AS DOUBLE) / 86400000000.0"
    tenure = f"CAST(date_diff('day', u.signup_date, DATE '{END_DAY:%Y-%m-%d}') AS DOUBLE)"
    return f"""WITH a AS (
    SELECT user_id,
           {_sql_aggregates(c, distinct)}
    FROM {events}
    WHERE ts < {c}
    GROUP BY user_id
)
SELECT {_sql_select(distinct, days_since, tenure)}
FROM {users} u
LEFT JOIN a ON a.user_id = u.user_id
"""


def polars_features(users, events, distinct):
    """The same features as a polars LazyFrame; `users` and `events` are LazyFrames
    (pl.scan_parquet)."""
    import polars as pl

    cutoff = as_of_datetime()
    ts, kind = pl.col("ts"), pl.col("kind")

    def since(days):
        return ts >= cutoff - dt.timedelta(days=days)

    aggs = []
    for name, k, days in COUNTS:
        cond = since(days) if k is None else (kind == k) & since(days)
        aggs.append(cond.sum().alias(name))
    aggs.append(pl.col("amount").filter((kind == "purchase") & since(30)).sum().alias("spend_30d"))
    aggs.append(ts.max().alias("last_ts"))
    if distinct:
        aggs.append(kind.filter(since(30)).n_unique().alias(DISTINCT_FEATURE))
    per_user = events.select("user_id", "ts", "kind", "amount").filter(ts < cutoff).group_by("user_id").agg(aggs)

    cols = []
    for name in feature_names(distinct):
        if name == "days_since_last_event":
            e = ((pl.lit(cutoff) - pl.col("last_ts")).dt.total_microseconds().cast(pl.Float64) / 86_400_000_000.0)
            cols.append(e.fill_null(NO_EVENT_DAYS).alias(name))
        elif name == "tenure_days":
            e = (pl.lit(END_DAY) - pl.col("signup_date")).dt.total_days().cast(pl.Float64)
            cols.append(e.alias(name))
        else:
            cols.append(pl.col(name).cast(pl.Float64).fill_null(0.0).alias(name))
    return users.select("user_id", "signup_date").join(per_user, on="user_id", how="left").select(
        [pl.col("user_id")] + cols)


class Stages:
    """A peer's stage clock: `mark(name)` ends the stage `name`; `report()` prints the
    stage times (and their wall-clock edges, for CPU use inside a stage) as JSON on
    one last stdout line, which benches/batch_peers.py reads."""

    def __init__(self):
        import time

        self._time = time.time
        self.start = self._time()
        self.last = self.start
        self.seconds = {}
        self.edges = {}

    def mark(self, name):
        now = self._time()
        self.seconds[name] = now - self.last
        self.edges[name] = [self.last, now]
        self.last = now

    def report(self, **extra):
        import json

        out = dict(self.seconds)
        out["total"] = self.last - self.start
        out["edges"] = self.edges
        out.update(extra)
        print(json.dumps(out), flush=True)


def duckdb_arrow(con, sql):
    """A DuckDB query's result as a pyarrow Table (`to_arrow_table` in DuckDB 2,
    `arrow` before)."""
    rel = con.sql(sql)
    fetch = getattr(rel, "to_arrow_table", None) or rel.arrow
    return fetch()
