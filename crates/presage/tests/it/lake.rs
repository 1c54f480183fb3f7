//! Data where it lives: the quickstart with its events in S3 (moto, hive-partitioned
//! by date) and its users in PostgreSQL gives the local run's predictions row for
//! row; predictions computed elsewhere are published like scored ones.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Float32Type;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use object_store::aws::AmazonS3Builder;
use presage_test::{MotoServer, TestProject, postgres_url, unique_schema};
use serde_json::Value;

use crate::project::{presage, run_in, serve_in, stderr, stdout};

const AS_OF: &str = "2026-11-28T00:00:00Z";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Every row of a Parquet file (or folder), sorted by `order`.
fn read_sorted(path: &Path, order: &str) -> RecordBatch {
    runtime().block_on(async {
        let ctx = SessionContext::new();
        ctx.register_parquet("t", path.to_str().unwrap(), ParquetReadOptions::default())
            .await
            .unwrap();
        let batches = ctx
            .sql(&format!("SELECT * FROM t ORDER BY {order}"))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
    })
}

/// A DataFusion context that reads and writes `s3://<bucket>` on `moto`.
fn moto_context(moto: &MotoServer, bucket: &str) -> SessionContext {
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

/// The quickstart's events, hive-partitioned by day under `s3://lake/events/`.
fn upload_events(moto: &MotoServer, events: &Path) {
    moto.create_bucket("lake");
    runtime().block_on(async {
        let ctx = moto_context(moto, "lake");
        ctx.register_parquet(
            "events",
            events.to_str().unwrap(),
            ParquetReadOptions::default(),
        )
        .await
        .unwrap();
        ctx.sql(
            "COPY (SELECT *, CAST(ts AS DATE) AS date FROM events)
             TO 's3://lake/events/' STORED AS PARQUET PARTITIONED BY (date)",
        )
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    });
}

/// The quickstart's users as a Postgres table `<schema>.users`; the schema is
/// dropped when the returned guard is.
fn load_users(users_csv: &Path) -> PgSchemaGuard {
    let schema = unique_schema("lake");
    let csv = fs_err::read(users_csv).unwrap();
    runtime().block_on(async {
        let client = pg_client().await;
        client
            .batch_execute(&format!(
                "CREATE SCHEMA {schema};
                 CREATE TABLE {schema}.users (user_id text PRIMARY KEY, signup_date date,
                     plan text, country text, age_band text);"
            ))
            .await
            .unwrap();
        let sink = client
            .copy_in(&format!(
                "COPY {schema}.users FROM STDIN (FORMAT csv, HEADER true)"
            ))
            .await
            .unwrap();
        futures::pin_mut!(sink);
        use futures::SinkExt;
        sink.send(bytes::Bytes::from(csv)).await.unwrap();
        sink.close().await.unwrap();
    });
    PgSchemaGuard(schema)
}

async fn pg_client() -> tokio_postgres::Client {
    let url = postgres_url();
    let (client, driver) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL at {url} (set PRESAGE_TEST_POSTGRES, or run scripts/test): {e}")
        });
    tokio::spawn(driver);
    client
}

struct PgSchemaGuard(String);

impl Drop for PgSchemaGuard {
    fn drop(&mut self) {
        let schema = self.0.clone();
        runtime().block_on(async move {
            let _ = pg_client()
                .await
                .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                .await;
        });
    }
}

fn version_dir(project: &Path, data_dir: &str, job: &str) -> PathBuf {
    let root = project.join(data_dir).join(job);
    let current = fs_err::read_to_string(root.join("CURRENT")).unwrap();
    root.join("versions").join(current.trim())
}

#[test]
fn quickstart_from_s3_and_postgres_predicts_as_from_local_files() {
    let project = TestProject::new();
    let out = run_in(project.path(), &["quickstart", "--dir", "demo", "--no-run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let demo = project.path().join("demo");

    let out = run_in(&demo, &["run", "churn", "--as-of", AS_OF, "--promote"]);
    assert!(out.status.success(), "{}", stderr(&out));

    let moto = MotoServer::start();
    upload_events(&moto, &demo.join("data/events"));
    let users = load_users(&demo.join("data/users.csv"));

    let config = fs_err::read_to_string(demo.join("presage.toml")).unwrap();
    let lake = config
        .replace(
            "data_dir = \"presage-data\"",
            &format!(
                "data_dir = \"presage-data-lake\"\n\n\
                 [storage.\"s3://lake\"]\n\
                 endpoint = \"{}\"\n\
                 region = \"us-east-1\"\n\
                 allow_http = true\n\
                 env = {{ access_key_id = \"LAKE_KEY_ID\", secret_access_key = \"LAKE_SECRET\" }}\n",
                moto.endpoint()
            ),
        )
        .replace(
            "[sources.users]\npath = \"data/users.csv\"",
            &format!(
                "[sources.users]\npostgres_env = \"USERS_DB\"\ntable = \"{}.users\"",
                users.0
            ),
        )
        .replace(
            "[sources.events]\npath = \"data/events/*.parquet\"",
            "[sources.events]\npath = \"s3://lake/events/\"\npartition_columns = { date = \"date\" }",
        );
    assert!(lake.contains("s3://lake/events/") && lake.contains("postgres_env"));
    fs_err::write(demo.join("lake.toml"), lake).unwrap();
    let out = presage()
        .current_dir(&demo)
        .args([
            "run",
            "churn",
            "--as-of",
            AS_OF,
            "--promote",
            "--config",
            "lake.toml",
        ])
        .env("LAKE_KEY_ID", "testing")
        .env("LAKE_SECRET", "testing")
        .env("USERS_DB", postgres_url())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    let local = read_sorted(
        &version_dir(&demo, "presage-data", "churn").join("predictions.parquet"),
        "user_id",
    );
    let remote = read_sorted(
        &version_dir(&demo, "presage-data-lake", "churn").join("predictions.parquet"),
        "user_id",
    );
    assert!(local.num_rows() > 1000);
    assert_eq!(local.num_rows(), remote.num_rows());
    assert_eq!(local.schema(), remote.schema());
    assert_eq!(local.column(0), remote.column(0), "the same users");
    for (i, field) in local.schema().fields().iter().enumerate().skip(1) {
        let (a, b) = (local.column(i), remote.column(i));
        if let (Some(a), Some(b)) = (
            a.as_primitive_opt::<Float32Type>(),
            b.as_primitive_opt::<Float32Type>(),
        ) {
            // Sums over events may add in another order: the last bit can differ.
            for (x, y) in a.values().iter().zip(b.values()) {
                assert!((x - y).abs() <= 1e-6, "{}: {x} vs {y}", field.name());
            }
        } else {
            assert_eq!(a, b, "{}", field.name());
        }
    }

    let manifest: Value = serde_json::from_slice(
        &fs_err::read(version_dir(&demo, "presage-data-lake", "churn").join("manifest.json"))
            .unwrap(),
    )
    .unwrap();
    let sources = manifest["sources"].as_array().unwrap();
    let events = sources.iter().find(|s| s["name"] == "events").unwrap();
    assert_eq!(events["path"], "s3://lake/events/");
    assert!(events["files"].as_u64().unwrap() >= 90, "{events}");
    let users_source = sources.iter().find(|s| s["name"] == "users").unwrap();
    assert!(
        users_source["path"]
            .as_str()
            .unwrap()
            .starts_with("$USERS_DB table "),
        "{users_source}"
    );
    assert!(
        users_source["fingerprint"]
            .as_str()
            .unwrap()
            .contains(" read at "),
        "{users_source}"
    );
}

/// A project whose job imports predictions from a CSV file.
fn imported_project(job: &str, scores: &str) -> TestProject {
    let project = TestProject::new();
    project.write("scores.csv", scores);
    project.write(
        "presage.toml",
        format!(
            "data_dir = \"store\"\n\
             [sources.scores]\npath = \"scores.csv\"\n\
             {job}"
        ),
    );
    project
}

#[test]
fn predictions_computed_elsewhere_are_checked_published_and_served() {
    let mut scores = String::from("user_id,ltv,segment,computed_at\n");
    for i in 0..50 {
        scores.push_str(&format!(
            "u{i:03},{}.5,{},2026-12-0{}T06:00:00\n",
            i * 10,
            if i % 2 == 0 { "a" } else { "b" },
            1 + i % 3
        ));
    }
    let p = imported_project(
        "[jobs.ltv]\npredictions = \"scores\"\nkey = \"user_id\"\n\
         features_as_of = \"computed_at\"\nmax_age = \"26h\"\n\
         [jobs.ltv.checks]\nmin_rows = 10\n",
        &scores,
    );
    let out = run_in(p.path(), &["run", "ltv"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let manifest: Value = serde_json::from_slice(
        &fs_err::read(version_dir(p.path(), "store", "ltv").join("manifest.json")).unwrap(),
    )
    .unwrap();
    // The oldest row's time: a version is as stale as its oldest prediction.
    assert_eq!(manifest["features_as_of"], "2026-12-01T06:00:00Z");
    assert_eq!(manifest["model"]["format"], "imported predictions");
    assert_eq!(manifest["rows"], 50);
    let outputs: Vec<&str> = manifest["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(outputs, ["ltv", "segment"]);

    let out = run_in(p.path(), &["lookup", "ltv", "u007"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let answer = stdout(&out);
    assert!(
        answer.contains("70.5") && answer.contains("\"b\""),
        "{answer}"
    );

    // The same gates as a scored job: too few rows block the run.
    p.write(
        "scores.csv",
        "user_id,ltv,segment,computed_at\nu1,1.0,a,2026-12-01T00:00:00\n",
    );
    let out = run_in(p.path(), &["run", "ltv"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("min_rows"), "{}", stderr(&out));

    // Backtests need a model; the message says why there is none.
    let out = run_in(p.path(), &["staleness", "ltv", "--labels", "scores"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("imports predictions computed elsewhere"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn imported_ranked_lists_and_bad_configs() {
    let mut scores = String::from("user_id,item,score\n");
    for user in 0..20 {
        for item in 0..5 {
            scores.push_str(&format!("u{user},i{item},{}\n", (item * 7 + user) % 11));
        }
    }
    let p = imported_project(
        "[jobs.recs]\npredictions = \"scores\"\nkey = \"user_id\"\nitem = \"item\"\n\
         score = \"score\"\ntop_k = 2\n",
        &scores,
    );
    let out = run_in(
        p.path(),
        &["run", "recs", "--as-of", "2026-12-01", "--promote"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run_in(p.path(), &["lookup", "recs", "u0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // u0: scores (7i) % 11 = 0, 7, 3, 10, 6: best i3 (10), then i1 (7).
    let answer = stdout(&out);
    let i3 = answer.find("\"i3\"").expect(&answer);
    let i1 = answer.find("\"i1\"").expect(&answer);
    assert!(i3 < i1 && !answer.contains("\"i0\""), "{answer}");

    for (job, message) in [
        (
            "[jobs.x]\npredictions = \"scores\"\n",
            "jobs.x.predictions: needs `jobs.x.key`",
        ),
        (
            "[jobs.x]\npredictions = \"nope\"\nkey = \"user_id\"\n",
            "jobs.x.predictions: no source `nope`",
        ),
        (
            "[jobs.x]\npredictions = \"scores\"\nkey = \"user_id\"\nitem = \"item\"\n",
            "needs both `item` and `score`",
        ),
        (
            "[jobs.x]\nfeatures = \"f\"\nkey = \"user_id\"\n",
            "jobs.x.key: belongs to jobs that import predictions",
        ),
    ] {
        let p = imported_project(job, &scores);
        let out = run_in(p.path(), &["run", "x"]);
        assert!(!out.status.success(), "{job}");
        assert!(stderr(&out).contains(message), "{job}: {}", stderr(&out));
    }
}

#[test]
fn published_versions_are_exported_and_a_failed_export_keeps_the_version() {
    let moto = MotoServer::start();
    moto.create_bucket("exports");
    let mut scores = String::from("user_id,ltv\n");
    for i in 0..30 {
        scores.push_str(&format!("u{i},{i}.25\n"));
    }
    let storage = format!(
        "[storage.\"s3://exports\"]\nendpoint = \"{}\"\nregion = \"us-east-1\"\nallow_http = true\n\
         options = {{ access_key_id = \"testing\", secret_access_key = \"testing\" }}\n",
        moto.endpoint()
    );
    let p = imported_project(
        &format!(
            "[jobs.ltv]\npredictions = \"scores\"\nkey = \"user_id\"\nexport = \"s3://exports/ltv/\"\n\
             [jobs.local]\npredictions = \"scores\"\nkey = \"user_id\"\nexport = \"exported/local\"\n\
             {storage}"
        ),
        &scores,
    );
    let out = run_in(
        p.path(),
        &["run", "ltv", "--as-of", "2026-12-01", "--promote"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("exported to s3://exports/ltv/version=1/"),
        "{}",
        stdout(&out)
    );
    // What analysts read: the version's rows and manifest, from the bucket.
    let exported = runtime().block_on(async {
        let ctx = moto_context(&moto, "exports");
        ctx.register_parquet(
            "t",
            "s3://exports/ltv/version=1/predictions.parquet",
            ParquetReadOptions::default(),
        )
        .await
        .unwrap();
        let batches = ctx
            .sql("SELECT count(*), sum(ltv) FROM t")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let manifest = object_store::ObjectStoreExt::get(
            &ctx.runtime_env()
                .object_store(
                    datafusion::execution::object_store::ObjectStoreUrl::parse("s3://exports")
                        .unwrap(),
                )
                .unwrap(),
            &object_store::path::Path::from("ltv/version=1/manifest.json"),
        )
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
        (
            arrow::util::pretty::pretty_format_batches(&batches)
                .unwrap()
                .to_string(),
            manifest,
        )
    });
    assert!(
        exported.0.contains("| 30 ") && exported.0.contains("442.5"),
        "{}",
        exported.0
    );
    let manifest: Value = serde_json::from_slice(&exported.1).unwrap();
    assert_eq!(manifest["id"], 1);

    let out = run_in(
        p.path(),
        &["run", "local", "--as-of", "2026-12-01", "--promote"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let folder = p.path().join("exported/local/version=1");
    assert!(folder.join("predictions.parquet").is_file() && folder.join("manifest.json").is_file());
    assert_eq!(
        read_sorted(&folder.join("predictions.parquet"), "user_id").num_rows(),
        30
    );

    // A destination that cannot be written: the version is published all the same,
    // and the failure shows in the run, `status` and `last_run.json`.
    let config = fs_err::read_to_string(p.path().join("presage.toml")).unwrap();
    fs_err::write(
        p.path().join("presage.toml"),
        config
            .replace("s3://exports/ltv/", "s3://exports-missing/ltv/")
            .replace(
                "[storage.\"s3://exports\"]",
                "[storage.\"s3://exports-missing\"]",
            ),
    )
    .unwrap();
    let out = run_in(
        p.path(),
        &["run", "ltv", "--as-of", "2026-12-02", "--promote"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the version is published, but exporting it to s3://exports-missing/ltv/version=2/ failed"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        fs_err::read_to_string(p.path().join("store/ltv/CURRENT"))
            .unwrap()
            .trim(),
        "2"
    );
    let out = run_in(p.path(), &["status"]);
    assert!(
        stdout(&out).contains("EXPORT FAILED to s3://exports-missing/ltv/version=2/"),
        "{}",
        stdout(&out)
    );
    let last_run: Value =
        serde_json::from_slice(&fs_err::read(p.path().join("store/ltv/last_run.json")).unwrap())
            .unwrap();
    assert!(last_run["export"]["error"].is_string(), "{last_run}");

    let (_server, base) = serve_in(p.path(), &[]);
    let metrics = ureq::get(&format!("{base}/metrics"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(
        metrics.contains("presage_last_export_ok{job=\"ltv\"} 0")
            && metrics.contains("presage_last_export_ok{job=\"local\"} 1"),
        "{metrics}"
    );
}
