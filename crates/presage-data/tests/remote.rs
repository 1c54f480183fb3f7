//! Sources on real servers: a moto S3 server started here, and the PostgreSQL
//! server on 127.0.0.1:5432 (database `test`), in a schema each test makes and drops.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    Array, AsArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use object_store::aws::AmazonS3Builder;
use presage_data::{
    FeatureSession, ObjectSource, PartitionColumn, PostgresConnection, PostgresRelation,
    PostgresSource, SourceSpec, StorageOptions,
};
use presage_test::{MotoServer, postgres_url, unique_schema};

fn storage(moto: &MotoServer) -> StorageOptions {
    StorageOptions {
        endpoint: Some(moto.endpoint()),
        region: Some("us-east-1".to_owned()),
        allow_http: Some(true),
        options: BTreeMap::from([
            ("access_key_id".to_owned(), "testing".to_owned()),
            ("secret_access_key".to_owned(), "testing".to_owned()),
        ]),
        options_env: BTreeMap::new(),
    }
}

/// A context that writes to the moto bucket, for making test data with DataFusion.
fn writer(moto: &MotoServer, bucket: &str) -> SessionContext {
    let store = AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_endpoint(moto.endpoint())
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_access_key_id("testing")
        .with_secret_access_key("testing")
        .build()
        .unwrap();
    let ctx = SessionContext::new();
    let url = url::Url::parse(&format!("s3://{bucket}")).unwrap();
    ctx.register_object_store(&url, Arc::new(store));
    ctx
}

/// 90 days of events, 10 a day, hive-partitioned by `date` under `s3://lake/events/`.
async fn write_events(moto: &MotoServer) {
    moto.create_bucket("lake");
    let first_day = 20_697; // 2026-09-01
    let rows = 900;
    let schema = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, false),
        Field::new("amount", DataType::Float64, false),
        Field::new("date", DataType::Date32, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from_iter_values((0..rows).map(|i| i % 37))),
            Arc::new(Float64Array::from_iter_values((0..rows).map(|i| i as f64))),
            Arc::new(Date32Array::from_iter_values(
                (0..rows).map(|i| first_day + (i / 10) as i32),
            )),
        ],
    )
    .unwrap();
    let ctx = writer(moto, "lake");
    ctx.register_table(
        "t",
        Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap()),
    )
    .unwrap();
    ctx.sql(
        "COPY (SELECT * FROM t) TO 's3://lake/events/' STORED AS PARQUET PARTITIONED BY (date)",
    )
    .await
    .unwrap()
    .collect()
    .await
    .unwrap();
}

fn events_source(moto: &MotoServer) -> SourceSpec {
    SourceSpec::new(
        "events",
        ObjectSource::new("s3://lake/events/", None)
            .with_partitions(vec![PartitionColumn::parse("date", "date").unwrap()])
            .with_storage(storage(moto)),
    )
}

/// Every batch `sql` returns in `session`.
async fn collect(session: &FeatureSession, sql: &str) -> Vec<RecordBatch> {
    session
        .plan("q", sql)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap()
}

/// Runs `sql` in a new session; the sum it returns and the objects it fetched.
async fn sum_and_objects(source: &SourceSpec, sql: &str) -> (f64, u64) {
    let session = FeatureSession::new(std::slice::from_ref(source)).unwrap();
    let batches = collect(&session, sql).await;
    let sum = batches[0].column(0).as_primitive::<Float64Type>().value(0);
    (sum, session.fetched().objects)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_filter_fetches_only_the_partitions_it_keeps() {
    let moto = MotoServer::start();
    write_events(&moto).await;
    let source = events_source(&moto);

    let (all, full_scan) = sum_and_objects(&source, "SELECT sum(amount) FROM events").await;
    assert_eq!(all, (0..900).sum::<i64>() as f64);
    assert!(full_scan >= 90, "a full scan fetched {full_scan} objects");

    // The last week: days 83..=89.
    let (week, pruned) = sum_and_objects(
        &source,
        "SELECT sum(amount) FROM events WHERE date >= DATE '2026-11-23'",
    )
    .await;
    assert_eq!(week, (830..900).sum::<i64>() as f64);
    eprintln!("objects fetched: full scan {full_scan}, one week {pruned}");
    assert!(
        pruned * 10 <= full_scan,
        "the one-week query fetched {pruned} objects, the full scan {full_scan}"
    );

    // The partition column is typed: date arithmetic works on it.
    let session = FeatureSession::new(std::slice::from_ref(&source)).unwrap();
    let batches = collect(&session, "SELECT max(date) - min(date) AS span FROM events").await;
    let span = arrow::util::display::array_value_to_string(batches[0].column(0), 0).unwrap();
    assert!(span.contains("89"), "{span}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_objects_a_glob_and_their_fingerprint() {
    let moto = MotoServer::start();
    moto.create_bucket("raw");
    let ctx = writer(&moto, "raw");
    for (name, offset) in [("a", 0), ("b", 100)] {
        ctx.sql(&format!(
            "COPY (SELECT {offset} + value AS n FROM generate_series(1, 10)) TO 's3://raw/t/{name}.parquet' STORED AS PARQUET"
        ))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    }
    let object = |url: &str| {
        SourceSpec::new(
            "t",
            ObjectSource::new(url, None).with_storage(storage(&moto)),
        )
    };
    for url in ["s3://raw/t/", "s3://raw/t/*.parquet"] {
        let session = FeatureSession::new(&[object(url)]).unwrap();
        let batches = collect(&session, "SELECT count(*) AS n, sum(n) AS total FROM t").await;
        assert_eq!(
            batches[0].column(0).as_primitive::<Int64Type>().value(0),
            20,
            "{url}"
        );
        let fingerprint = &session.fingerprints()[0];
        assert_eq!(fingerprint.files, 2, "{url}");
        assert_eq!(fingerprint.path, url);
        assert!(fingerprint.fingerprint.starts_with("sha256:"));
    }
    let session = FeatureSession::new(&[object("s3://raw/t/b.parquet")]).unwrap();
    let batches = collect(&session, "SELECT min(n) FROM t").await;
    assert_eq!(
        batches[0].column(0).as_primitive::<Int64Type>().value(0),
        101
    );
}

async fn plan_error(source: SourceSpec) -> String {
    let session = FeatureSession::new(&[source]).unwrap();
    let error = match session.plan("q", "SELECT * FROM t").await {
        Ok(query) => match query.collect().await {
            Ok(_) => panic!("the query ran"),
            Err(e) => e.to_string(),
        },
        Err(e) => e.to_string(),
    };
    eprintln!("{error}");
    error
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_failures_name_the_source_and_url() {
    let moto = MotoServer::start();
    moto.create_bucket("lake");
    let ctx = writer(&moto, "lake");
    ctx.sql("COPY (SELECT 1 AS a) TO 's3://lake/mixed/1.parquet' STORED AS PARQUET")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    ctx.sql("COPY (SELECT 'x' AS a) TO 's3://lake/mixed/2.parquet' STORED AS PARQUET")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let source = |url: &str, storage: StorageOptions| {
        SourceSpec::new("t", ObjectSource::new(url, None).with_storage(storage))
    };

    let err = plan_error(source("s3://nobucket/events/", storage(&moto))).await;
    assert!(
        err.starts_with(
            "source `t` (`s3://nobucket/events/`): cannot list: not found (NoSuchBucket: "
        ),
        "{err}"
    );
    assert!(!err.contains('\n'), "{err}");

    let err = plan_error(source("s3://lake/none/", storage(&moto))).await;
    assert!(err.contains("no object matches"), "{err}");

    let err = plan_error(source("s3://lake/mixed/", storage(&moto))).await;
    assert!(
        err.contains("`s3://lake/mixed/2.parquet` does not agree with the objects before it"),
        "{err}"
    );

    let mut unreachable = storage(&moto);
    unreachable.endpoint = Some(format!("http://127.0.0.1:{}", presage_test::free_port()));
    let started = std::time::Instant::now();
    let err = plan_error(source("s3://lake/mixed/", unreachable)).await;
    assert!(
        err.contains("cannot list: the endpoint is unreachable")
            && err.contains("s3://lake/mixed/"),
        "{err}"
    );
    // Bounded retries: seconds, not object_store's default three minutes.
    assert!(
        started.elapsed().as_secs() < 60,
        "took {:?}",
        started.elapsed()
    );

    let mut bad = storage(&moto);
    bad.options.insert("colour".to_owned(), "blue".to_owned());
    let err = plan_error(source("s3://lake/mixed/", bad)).await;
    assert!(
        err.contains("`colour` is not a setting of s3:// storage"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_denied_is_said_in_one_line() {
    // moto checks credentials when told to: every request needs a known key.
    let moto = MotoServer::start_with_auth();
    let err = plan_error(SourceSpec::new(
        "t",
        ObjectSource::new("s3://lake/events/", None).with_storage(storage(&moto)),
    ))
    .await;
    assert!(
        err.starts_with("source `t` (`s3://lake/events/`): cannot list:"),
        "{err}"
    );
    assert!(err.contains("access denied (InvalidAccessKeyId: "), "{err}");
    assert!(!err.contains('\n'), "{err}");
}

/// A schema of its own in the test database, dropped on drop.
struct PgSchema {
    name: String,
    client: tokio_postgres::Client,
}

impl PgSchema {
    async fn new(tag: &str) -> PgSchema {
        let url = postgres_url();
        let (client, driver) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| {
                panic!("PostgreSQL at {url} (set PRESAGE_TEST_POSTGRES, or run scripts/test): {e}")
            });
        tokio::spawn(driver);
        let name = unique_schema(tag);
        client
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await
            .unwrap();
        PgSchema { name, client }
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let url = postgres_url();
        let name = self.name.clone();
        // A plain thread: the test's runtime may be shutting down.
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                if let Ok((client, driver)) =
                    tokio_postgres::connect(&url, tokio_postgres::NoTls).await
                {
                    tokio::spawn(driver);
                    let _ = client
                        .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                        .await;
                }
            });
        })
        .join()
        .unwrap();
    }
}

fn postgres(relation: PostgresRelation) -> SourceSpec {
    SourceSpec::new(
        "accounts",
        PostgresSource::new(PostgresConnection::Url(postgres_url()), relation),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_table_reads_every_type_with_filters_pushed_down() {
    let pg = PgSchema::new("types").await;
    let schema = &pg.name;
    pg.client
        .batch_execute(&format!(
            "CREATE TABLE {schema}.accounts (
                id int8 PRIMARY KEY, small int2, n int4, score float8, ratio float4,
                price numeric(10, 2), plan text, region varchar(8), active bool,
                opened date, seen timestamptz, updated timestamp, token uuid);
             INSERT INTO {schema}.accounts
             SELECT i, i::int2, i * 2, i / 4.0, 0.5, i * 1.25, 'plan' || (i % 3),
                    CASE WHEN i % 5 = 0 THEN NULL ELSE 'eu' END, i % 2 = 0,
                    DATE '2026-01-01' + i, TIMESTAMPTZ '2026-11-01 00:00:00+00' + i * INTERVAL '1 hour',
                    TIMESTAMP '2026-11-01 00:00:00' + i * INTERVAL '1 day',
                    '00000000-0000-0000-0000-000000000001'
             FROM generate_series(1, 1000) AS i;"
        ))
        .await
        .unwrap();
    let source = postgres(PostgresRelation::Table(format!("{schema}.accounts")));
    let session = FeatureSession::new(&[source]).unwrap();
    let batches = collect(&session, "SELECT id, small, n, score, ratio, price, plan, region, active, opened, seen, updated, token
             FROM accounts
             WHERE seen < TIMESTAMP '2026-11-02T00:00:00' AND plan IN ('plan1', 'plan2')
             ORDER BY id").await;
    let batch = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
    // Hours 1..23 of Nov 1st, minus plan0 (every third).
    let ids: Vec<i64> = batch
        .column(0)
        .as_primitive::<Int64Type>()
        .values()
        .to_vec();
    let expected: Vec<i64> = (1..24).filter(|i| i % 3 != 0).collect();
    assert_eq!(ids, expected);
    let types: Vec<DataType> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    assert_eq!(
        types,
        vec![
            DataType::Int64,
            DataType::Int16,
            DataType::Int32,
            DataType::Float64,
            DataType::Float32,
            DataType::Float64,
            DataType::Utf8,
            DataType::Utf8,
            DataType::Boolean,
            DataType::Date32,
            DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None),
            DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None),
            DataType::Utf8,
        ]
    );
    let row = |column: usize| {
        arrow::util::display::array_value_to_string(batch.column(column), 0).unwrap()
    };
    assert_eq!(row(5), "1.25");
    assert_eq!(row(9), "2026-01-02");
    assert_eq!(row(10), "2026-11-01T01:00:00");
    assert_eq!(row(11), "2026-11-02T00:00:00");
    assert_eq!(row(12), "00000000-0000-0000-0000-000000000001");
    let regions = batch
        .column(7)
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    assert!(regions.is_null(ids.iter().position(|&i| i == 5).unwrap()));

    let fingerprint = &session.fingerprints()[0];
    assert!(
        fingerprint
            .path
            .contains(&format!("table {schema}.accounts")),
        "{fingerprint:?}"
    );
    assert!(
        fingerprint.fingerprint.contains(" read at "),
        "{fingerprint:?}"
    );
    assert!(!fingerprint.path.contains("password"));

    // count(*) reads rows with no columns.
    let session = FeatureSession::new(&[postgres(PostgresRelation::Table(format!(
        "{schema}.accounts"
    )))])
    .unwrap();
    let batches = collect(&session, "SELECT count(*) FROM accounts").await;
    assert_eq!(
        batches[0].column(0).as_primitive::<Int64Type>().value(0),
        1000
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_query_is_a_table_and_its_errors_are_postgres_own() {
    let pg = PgSchema::new("query").await;
    let schema = &pg.name;
    pg.client
        .batch_execute(&format!(
            "CREATE TABLE {schema}.t AS SELECT i AS id, i * 10 AS v FROM generate_series(1, 100) AS i"
        ))
        .await
        .unwrap();
    let session = FeatureSession::new(&[postgres(PostgresRelation::Query(format!(
        "SELECT id, v FROM {schema}.t WHERE id > 90"
    )))])
    .unwrap();
    let batches = collect(&session, "SELECT sum(v) AS s FROM accounts").await;
    assert_eq!(
        arrow::util::display::array_value_to_string(batches[0].column(0), 0).unwrap(),
        "9550"
    );

    let session = FeatureSession::new(&[postgres(PostgresRelation::Query(format!(
        "SELECT nope FROM {schema}.t"
    )))])
    .unwrap();
    let err = session
        .plan("q", "SELECT * FROM accounts")
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.starts_with("source `accounts` (`postgresql://")
            && err.contains("Postgres says: column \"nope\" does not exist"),
        "{err}"
    );

    let unreachable = SourceSpec::new(
        "accounts",
        PostgresSource::new(
            PostgresConnection::Url(format!(
                "postgresql://postgres@127.0.0.1:{}/test",
                presage_test::free_port()
            )),
            PostgresRelation::Table("t".to_owned()),
        ),
    );
    let err = FeatureSession::new(&[unreachable])
        .unwrap()
        .plan("q", "SELECT * FROM accounts")
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("cannot connect"), "{err}");

    let from_env = SourceSpec::new(
        "accounts",
        PostgresSource::new(
            PostgresConnection::Env("PRESAGE_TEST_UNSET_URL".to_owned()),
            PostgresRelation::Table("t".to_owned()),
        ),
    );
    let err = FeatureSession::new(&[from_env])
        .unwrap()
        .plan("q", "SELECT * FROM accounts")
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("`PRESAGE_TEST_UNSET_URL`, which is not set"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_partitioned_folder_is_one_table_with_typed_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = SessionContext::new();
    ctx.sql(&format!(
        "COPY (SELECT value AS n, CAST(value % 3 AS BIGINT) AS shard FROM generate_series(1, 30))
         TO '{}/' STORED AS PARQUET PARTITIONED BY (shard)",
        dir.path().display()
    ))
    .await
    .unwrap()
    .collect()
    .await
    .unwrap();
    std::fs::write(dir.path().join("_SUCCESS"), b"").unwrap();
    let source = SourceSpec::new(
        "t",
        presage_data::FileSource::new(dir.path(), None)
            .with_partitions(vec![PartitionColumn::parse("shard", "bigint").unwrap()]),
    );
    let session = FeatureSession::new(&[source]).unwrap();
    let batches = collect(&session, "SELECT shard, count(*) AS rows, sum(n) AS total FROM t WHERE shard > 0 GROUP BY shard ORDER BY shard").await;
    let text = arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string();
    assert_eq!(batches[0].schema().field(0).data_type(), &DataType::Int64);
    assert!(text.contains("| 1     | 10   | 145   |"), "{text}");
    assert!(text.contains("| 2     | 10   | 155   |"), "{text}");
    assert!(!text.contains("| 0 "), "{text}");
    assert_eq!(session.fingerprints()[0].files, 3);

    let not_a_folder = SourceSpec::new(
        "t",
        presage_data::FileSource::new(dir.path().join("_SUCCESS"), None)
            .with_partitions(vec![PartitionColumn::parse("shard", "bigint").unwrap()]),
    );
    let err = plan_error(not_a_folder).await;
    assert!(err.contains("a partitioned source is a folder"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_on_a_web_server_is_a_source() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("plans.csv"),
        "plan,price\nbasic,5\npro,12\n",
    )
    .unwrap();
    let port = presage_test::free_port();
    let mut command = std::process::Command::new("python3");
    command
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
            "--directory",
        ])
        .arg(dir.path());
    let _server = presage_test::ChildProcess::spawn(command);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "python3 -m http.server did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let url = format!("http://127.0.0.1:{port}/plans.csv");
    let session =
        FeatureSession::new(&[SourceSpec::new("plans", ObjectSource::new(&url, None))]).unwrap();
    let batches = collect(&session, "SELECT sum(price) AS total FROM plans").await;
    assert_eq!(
        arrow::util::display::array_value_to_string(batches[0].column(0), 0).unwrap(),
        "17"
    );
    assert_eq!(session.fingerprints()[0].path, url);

    let missing = format!("http://127.0.0.1:{port}/nope.csv");
    let err = plan_error(SourceSpec::new("t", ObjectSource::new(&missing, None))).await;
    assert!(
        err.starts_with(&format!("source `t` (`{missing}`): cannot read: not found")),
        "{err}"
    );
}
