//! The Redis store's API against a real redis-server: what the CLI tests do not
//! reach (duplicate keys, integer keys, abandoned writers, the cleanup report).

use std::sync::Arc;

use arrow::array::{ArrayRef, Float32Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field};
use chrono::Utc;
use presage_store::redis::{RedisOptions, RedisStore, RedisStoreError};
use presage_store::{KeyInfo, MANIFEST_FORMAT, Manifest, ModelInfo, VersionId};
use presage_test::{RedisCluster, RedisServer, count_keys, redis_cli};

fn manifest(key_type: &str) -> Manifest {
    let now = Utc::now();
    Manifest {
        format: MANIFEST_FORMAT,
        id: VersionId(0),
        job: String::new(),
        created_at: now,
        features_as_of: now,
        model: ModelInfo {
            name: "m".into(),
            path: "m.onnx".into(),
            sha256: String::new(),
            format: "ONNX".into(),
            engine: "tree".into(),
            inputs: Vec::new(),
        },
        sources: Vec::new(),
        rows: 0,
        key: KeyInfo {
            column: "id".into(),
            key_type: key_type.into(),
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

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn outputs() -> Vec<Field> {
    vec![Field::new("probability", DataType::Float32, true)]
}

fn probabilities(n: usize) -> Vec<ArrayRef> {
    vec![Arc::new(Float32Array::from_iter_values(
        (0..n).map(|i| i as f32 / 8.0),
    ))]
}

#[test]
fn integer_keys_are_found_by_their_text() {
    let server = RedisServer::start();
    runtime().block_on(async {
        let store = RedisStore::connect(&[server.url()]).await.unwrap();
        let mut writer = store
            .begin("ints", Field::new("id", DataType::Int64, false), &outputs())
            .await
            .unwrap();
        let keys: ArrayRef = Arc::new(Int64Array::from(vec![7, -3, 42]));
        writer.write(&keys, &probabilities(3)).await.unwrap();
        let staged = writer.finish().await.unwrap();
        let published = staged.publish(manifest("int"), 3, true).await.unwrap();
        assert_eq!(published.id, VersionId(1));
        assert_eq!(published.rows, 3);

        let version = store.open("ints", VersionId(1)).await.unwrap();
        let found = version
            .mget_json(&["7", "+42", "-3", "x", "8"])
            .await
            .unwrap();
        let found: Vec<Option<String>> = found
            .into_iter()
            .map(|v| v.map(|v| String::from_utf8(v).unwrap()))
            .collect();
        assert_eq!(
            found,
            [
                Some(r#"{"probability":0.0}"#.to_owned()),
                Some(r#"{"probability":0.25}"#.to_owned()),
                Some(r#"{"probability":0.125}"#.to_owned()),
                None,
                None
            ]
        );
        assert_eq!(store.current("ints").await.unwrap(), Some(VersionId(1)));
    });
    assert_eq!(
        redis_cli(server.port(), &["GET", "presage:ints:v1:42"]),
        r#"{"probability":0.25}"#
    );
}

#[test]
fn a_duplicate_key_fails_the_version_and_its_keys_are_deleted() {
    let server = RedisServer::start();
    runtime().block_on(async {
        let store = RedisStore::connect(&[server.url()]).await.unwrap();
        let mut writer = store
            .begin("dups", Field::new("id", DataType::Utf8, false), &outputs())
            .await
            .unwrap();
        let keys: ArrayRef = Arc::new(StringArray::from(vec!["a", "b", "c"]));
        writer.write(&keys, &probabilities(3)).await.unwrap();
        let again: ArrayRef = Arc::new(StringArray::from(vec!["d", "b"]));
        let result = match writer.write(&again, &probabilities(2)).await {
            Ok(()) => writer.finish().await.map(drop),
            Err(e) => {
                drop(writer);
                Err(e)
            }
        };
        match result {
            Err(RedisStoreError::DuplicateKey { key, job }) => {
                assert_eq!((key.as_str(), job.as_str()), ("b", "dups"));
            }
            other => panic!("expected a duplicate key error, got {other:?}"),
        }
        assert_eq!(store.current("dups").await.unwrap(), None);
        // The dropped writer gives its version up in the background; a cleanup
        // (which every run starts with) leaves nothing behind.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        store.clean("dups").await.unwrap();
    });
    assert_eq!(count_keys(server.port(), "presage:dups:v*"), 0);
}

#[test]
fn an_aborted_writer_deletes_what_it_wrote() {
    let server = RedisServer::start();
    runtime().block_on(async {
        let store = RedisStore::connect(&[server.url()]).await.unwrap();
        let mut writer = store
            .begin("gone", Field::new("id", DataType::Utf8, false), &outputs())
            .await
            .unwrap();
        let keys: ArrayRef = Arc::new(StringArray::from(vec!["a", "b"]));
        writer.write(&keys, &probabilities(2)).await.unwrap();
        assert_eq!(writer.id(), VersionId(1));
        writer.abort().await.unwrap();
        // The next version gets a new id; the abandoned one is never reused.
        let writer = store
            .begin("gone", Field::new("id", DataType::Utf8, false), &outputs())
            .await
            .unwrap();
        assert_eq!(writer.id(), VersionId(2));
        writer.abort().await.unwrap();
    });
    assert_eq!(count_keys(server.port(), "presage:gone:v*"), 0);
    assert_eq!(
        redis_cli(server.port(), &["HLEN", "presage:{gone}:staging"]),
        "0"
    );
}

#[test]
fn a_duplicate_key_in_an_earlier_pipeline_is_found() {
    let server = RedisServer::start();
    runtime().block_on(async {
        // Two rows per pipeline: the repeated key is in a pipeline already written.
        let options = RedisOptions {
            pipeline_rows: 2,
            ..RedisOptions::default()
        };
        let store = RedisStore::connect_with(&[server.url()], options)
            .await
            .unwrap();
        let mut writer = store
            .begin("dups", Field::new("id", DataType::Utf8, false), &outputs())
            .await
            .unwrap();
        let keys: ArrayRef = Arc::new(StringArray::from(vec!["a", "b", "c", "b", "e"]));
        let result = match writer.write(&keys, &probabilities(5)).await {
            Ok(()) => writer.finish().await.map(drop),
            Err(e) => Err(e),
        };
        match result {
            Err(RedisStoreError::DuplicateKey { key, .. }) => assert_eq!(key, "b"),
            other => panic!("expected a duplicate key error, got {other:?}"),
        }
    });
}

/// Publishes `n` string keys `k0`, `k1`, ... as a new version of `job`.
async fn publish_keys(store: &RedisStore, job: &str, n: usize) -> VersionId {
    let mut writer = store
        .begin(job, Field::new("id", DataType::Utf8, false), &outputs())
        .await
        .unwrap();
    let keys: ArrayRef = Arc::new(StringArray::from_iter_values(
        (0..n).map(|i| format!("k{i}")),
    ));
    writer.write(&keys, &probabilities(n)).await.unwrap();
    let staged = writer.finish().await.unwrap();
    staged.publish(manifest("str"), 3, true).await.unwrap().id
}

/// The keys a version's completeness record sampled, from its JSON (`-c`: in a
/// cluster, the hash may sit on another node).
fn sampled_keys(port: u16, job: &str, id: VersionId) -> Vec<String> {
    let record = redis_cli(
        port,
        &[
            "-c",
            "HGET",
            &format!("presage:{{{job}}}:complete"),
            &id.to_string(),
        ],
    );
    let record: serde_json::Value = serde_json::from_str(&record).unwrap();
    record["sample"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key.as_str().unwrap().to_owned())
        .collect()
}

fn assert_incomplete(result: Result<impl std::fmt::Debug, RedisStoreError>, needle: &str) {
    let error = result.expect_err("an incomplete version must be refused");
    let message = error.to_string();
    assert!(
        matches!(error, RedisStoreError::Incomplete { .. }) && message.contains(needle),
        "{message}"
    );
    assert_eq!(
        presage_store::StoreError::from(error).kind(),
        presage_store::StoreErrorKind::Corrupt
    );
}

#[test]
fn a_version_that_lost_a_key_is_refused_not_answered_with_misses() {
    let server = RedisServer::start();
    let port = server.port();
    runtime().block_on(async {
        let store = RedisStore::connect(&[server.url()]).await.unwrap();
        let id = publish_keys(&store, "lost", 1000).await;
        store.open("lost", id).await.unwrap();
        let sample = sampled_keys(port, "lost", id);
        assert_eq!(sample.len(), 64);
        // One sampled key gone, as eviction or a hand-made DEL would leave it.
        redis_cli(port, &["DEL", &format!("presage:lost:v{id}:{}", sample[17])]);
        assert_incomplete(
            store.open("lost", id).await,
            &format!(
                "version `{id}` of job `lost` in redis at `{}` is incomplete: 1 of 64 sampled keys under `presage:lost:v{id}:` are gone",
                server.url()
            ),
        );
        assert_incomplete(store.get_json("lost", id, "k1").await, "1 of 64");
    });
}

#[test]
fn a_version_whose_completeness_record_is_gone_is_refused() {
    let server = RedisServer::start();
    let port = server.port();
    runtime().block_on(async {
        let store = RedisStore::connect(&[server.url()]).await.unwrap();
        let first = publish_keys(&store, "rec", 10).await;
        let second = publish_keys(&store, "rec", 10).await;
        redis_cli(
            port,
            &["HDEL", "presage:{rec}:complete", &second.to_string()],
        );
        assert_incomplete(
            store.open("rec", second).await,
            "its completeness record (field `2` of `presage:{rec}:complete`) is gone",
        );
        // A record that disagrees with the manifest.
        redis_cli(
            port,
            &[
                "HSET",
                "presage:{rec}:complete",
                &first.to_string(),
                r#"{"rows":9,"sample":[]}"#,
            ],
        );
        assert_incomplete(
            store.open("rec", first).await,
            "its manifest says 10 keys, its completeness record 9",
        );
    });
}

#[test]
fn versions_published_before_completeness_records_open_unchecked() {
    let server = RedisServer::start();
    let port = server.port();
    runtime().block_on(async {
        let store = RedisStore::connect(&[server.url()]).await.unwrap();
        let old = publish_keys(&store, "old", 10).await;
        let new = publish_keys(&store, "old", 10).await;
        // As an upgrade leaves them: the old version without a record, records kept
        // from the new one on.
        redis_cli(port, &["HDEL", "presage:{old}:complete", &old.to_string()]);
        redis_cli(
            port,
            &["HSET", "presage:{old}:complete", "since", &new.to_string()],
        );
        let version = store.open("old", old).await.unwrap();
        assert!(version.get_json("k3").await.unwrap().is_some());
        store.open("old", new).await.unwrap();
        // A job that never had a record at all.
        redis_cli(port, &["DEL", "presage:{old}:complete"]);
        store.open("old", old).await.unwrap();
        store.open("old", new).await.unwrap();
    });
}

#[test]
fn retention_drops_the_records_of_dropped_versions() {
    let server = RedisServer::start();
    let port = server.port();
    runtime().block_on(async {
        let store = RedisStore::connect(&[server.url()]).await.unwrap();
        for _ in 0..5 {
            publish_keys(&store, "keep", 3).await;
        }
    });
    // Kept: 3 versions, plus the `since` field.
    assert_eq!(redis_cli(port, &["HLEN", "presage:{keep}:complete"]), "4");
    assert_eq!(
        redis_cli(port, &["HGET", "presage:{keep}:complete", "since"]),
        "1"
    );
}

#[test]
fn a_cluster_version_that_lost_a_key_is_refused() {
    let cluster = RedisCluster::start();
    let ports = cluster.ports();
    runtime().block_on(async {
        let store = RedisStore::connect(&cluster.urls()).await.unwrap();
        assert!(store.is_cluster());
        let id = publish_keys(&store, "spread", 2000).await;
        // The sampled keys sit on every node: one EXISTS split by slot, counts added.
        store.open("spread", id).await.unwrap();
        let sample = sampled_keys(ports[0], "spread", id);
        redis_cli(
            ports[0],
            &["-c", "DEL", &format!("presage:spread:v{id}:{}", sample[0])],
        );
        assert_incomplete(store.open("spread", id).await, "1 of 64 sampled keys");
    });
}

#[test]
fn tls_urls_are_refused_before_connecting() {
    runtime().block_on(async {
        // Nothing listens there: the refusal must come from the URL, not the network.
        let url = "rediss://:secret@127.0.0.1:1".to_owned();
        let error = RedisStore::connect(std::slice::from_ref(&url))
            .await
            .unwrap_err();
        assert!(
            matches!(error, RedisStoreError::UnsupportedUrl { .. }),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "`rediss://:***@127.0.0.1:1` asks for TLS (`rediss://`), which presage does not support yet; connect with `redis://host:port` (through a TLS tunnel such as stunnel where the server requires TLS)"
        );
        // The path config loading takes.
        let error = presage_store::Store::redis(&[url], RedisOptions::default())
            .await
            .map(drop)
            .unwrap_err();
        assert_eq!(error.kind(), presage_store::StoreErrorKind::Invalid);
        assert!(error.to_string().contains("asks for TLS"), "{error}");
        // One TLS node among cluster seeds is refused as well.
        let nodes = ["redis://127.0.0.1:1".to_owned(), "rediss://127.0.0.1:2".to_owned()];
        assert!(matches!(
            RedisStore::connect(&nodes).await,
            Err(RedisStoreError::UnsupportedUrl { .. })
        ));
    });
    assert!(RedisStore::check_url("redis://127.0.0.1:6379").is_ok());
    assert!(RedisStore::check_url("rediss://127.0.0.1:6379").is_err());
}

#[test]
fn one_run_of_a_job_at_a_time_across_processes_sharing_a_server() {
    let server = RedisServer::start();
    runtime().block_on(async {
        let store = RedisStore::connect(&[server.url()]).await.unwrap();
        let held = store.lock_run("score").await.unwrap();
        let holder = redis_cli(server.port(), &["GET", "presage:{score}:run_lock"]);
        assert!(
            holder.starts_with(&format!("pid {} on ", std::process::id())),
            "{holder}"
        );
        let error = store.lock_run("score").await.err().expect("held");
        assert!(
            error
                .to_string()
                .contains("a run of job `score` is in progress (pid "),
            "{error}"
        );
        // Another job runs beside it.
        store.lock_run("other").await.unwrap().release().await;
        held.release().await;
        assert_eq!(
            redis_cli(server.port(), &["EXISTS", "presage:{score}:run_lock"]),
            "0"
        );
        store.lock_run("score").await.unwrap().release().await;
    });
}

#[test]
fn rollback_follows_the_history_and_backfills_wait_beside_the_current_version() {
    let server = RedisServer::start();
    runtime().block_on(async {
        let store = RedisStore::connect(&[server.url()]).await.unwrap();
        let publish = |promote| publish_two_keys(&store, "h", promote);
        for _ in 0..2 {
            publish(true).await;
        }
        assert_eq!(
            store.rollback("h", None, false).await.unwrap(),
            (VersionId(2), VersionId(1))
        );
        publish(true).await;
        // Back to 1, not to 2, which was rolled away from.
        assert_eq!(
            store.rollback("h", None, false).await.unwrap(),
            (VersionId(3), VersionId(1))
        );
        assert!(
            store
                .rollback("h", Some(VersionId(2)), false)
                .await
                .is_err()
        );
        // A backfill is kept, not served.
        assert_eq!(publish(false).await, VersionId(4));
        assert_eq!(store.current("h").await.unwrap(), Some(VersionId(1)));
        let history = store.history("h").await.unwrap();
        assert_eq!(
            history.state(VersionId(4), Some(VersionId(1))),
            presage_store::VersionState::Backfill
        );
        assert_eq!(history.entries().len(), 6);
    });
}

#[test]
fn an_edited_manifest_is_refused() {
    let server = RedisServer::start();
    runtime().block_on(async {
        let store = RedisStore::connect(&[server.url()]).await.unwrap();
        publish_two_keys(&store, "m", true).await;
        store.open("m", VersionId(1)).await.unwrap();

        let key = "presage:{m}:manifest:1";
        let edited = redis_cli(server.port(), &["GET", key]).replace("\"rows\":2", "\"rows\":3");
        redis_cli(server.port(), &["SET", key, &edited]);
        let error = store.open("m", VersionId(1)).await.expect_err("refused");
        assert!(
            error
                .to_string()
                .contains("its manifest was changed since it was published"),
            "{error}"
        );
    });
}

/// Publishes a version of `job` with integer keys 1 and 2; returns its id.
async fn publish_two_keys(store: &RedisStore, job: &str, promote: bool) -> VersionId {
    let mut writer = store
        .begin(job, Field::new("id", DataType::Int64, false), &outputs())
        .await
        .unwrap();
    let keys: ArrayRef = Arc::new(Int64Array::from(vec![1, 2]));
    writer.write(&keys, &probabilities(2)).await.unwrap();
    let staged = writer.finish().await.unwrap();
    staged
        .publish(manifest("int"), 5, promote)
        .await
        .unwrap()
        .id
}
