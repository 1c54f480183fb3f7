//! The Redis store's API against a real redis-server: what the CLI tests do not
//! reach (duplicate keys, integer keys, abandoned writers, the cleanup report).

use std::sync::Arc;

use arrow::array::{ArrayRef, Float32Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field};
use chrono::Utc;
use presage_store::redis::{RedisOptions, RedisStore, RedisStoreError};
use presage_store::{KeyInfo, MANIFEST_FORMAT, Manifest, ModelInfo, VersionId};
use presage_test::{RedisServer, count_keys, redis_cli};

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
        let published = staged.publish(manifest("int"), 3).await.unwrap();
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
