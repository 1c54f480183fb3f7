//! The Redis-protocol endpoint, driven by the real `redis-cli` and the `redis` crate.

use std::process::Command;

use presage_test::{ChildProcess, free_port};
use redis::Value;

use crate::project::{SmallProject, serve_in, stderr};

fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("running redis-cli (install redis-tools)");
    assert!(out.status.success(), "redis-cli {args:?}: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
}

/// A published `SmallProject` served with the Redis protocol on a free port and
/// `extra` arguments: the project, the server, its RESP port and its HTTP base URL.
fn served_with_resp(extra: &[&str]) -> (SmallProject, ChildProcess, u16, String) {
    let project = SmallProject::new();
    let out = project.run(&["run", "score"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let resp_port = free_port();
    let resp_addr = format!("127.0.0.1:{resp_port}");
    let mut args = vec!["--resp-addr", resp_addr.as_str()];
    args.extend_from_slice(extra);
    let (server, base) = serve_in(project.path(), &args);
    (project, server, resp_port, base)
}

#[test]
fn redis_clients_read_the_same_answers_as_http() {
    let (_project, _server, resp_port, base) = served_with_resp(&[]);
    assert_eq!(redis_cli(resp_port, &["DBSIZE"]), "2000");
    assert_eq!(redis_cli(resp_port, &["PING"]), "PONG");
    // The first row of the `sk_logreg_binary` fixture.
    let key = "e000000";
    let (status, http) = presage_test::http_json(
        "GET",
        &format!("{base}/v1/jobs/score/predictions/{key}"),
        None,
        None,
    );
    assert_eq!(status, 200, "{http}");
    let doc = redis_cli(resp_port, &["GET", &format!("score:{key}")]);
    let doc: serde_json::Value = serde_json::from_str(&doc).expect("a JSON document");
    assert_eq!(doc["key"], serde_json::json!(key));
    assert_eq!(doc["prediction"], http["prediction"]);
    assert_eq!(doc["version"], serde_json::json!(1));
    assert!(doc["prediction"]["probability"].is_f64(), "{doc}");
    assert_eq!(redis_cli(resp_port, &["GET", "score:nobody"]), "");

    // batchGet answers a mix of hits and misses, more keys than one lookup group.
    let asked: Vec<String> = (0..30)
        .map(|i| match i % 4 {
            3 => format!("absent{i}"),
            _ => format!("e{:06}", i * 61),
        })
        .collect();
    let (status, batch) = presage_test::http_json(
        "POST",
        &format!("{base}/v1/jobs/score/predictions:batchGet"),
        Some(&serde_json::json!({ "keys": asked })),
        None,
    );
    assert_eq!(status, 200, "{batch}");
    let found: Vec<&str> = batch["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["key"].as_str().unwrap())
        .collect();
    let hits: Vec<&str> = asked
        .iter()
        .map(String::as_str)
        .filter(|k| !k.starts_with("absent"))
        .collect();
    assert_eq!(found, hits, "{batch}");
    assert_eq!(
        batch["missing"].as_array().unwrap().len(),
        asked.len() - hits.len()
    );
    let refused = redis_cli(resp_port, &["SET", "score:x", "1"]);
    assert!(refused.contains("READONLY"), "{refused}");

    // RESP2 and RESP3 through a Rust client.
    for protocol in ["resp2", "resp3"] {
        let url = format!("redis://127.0.0.1:{resp_port}/?protocol={protocol}");
        let mut conn = redis::Client::open(url.as_str())
            .unwrap()
            .get_connection()
            .unwrap_or_else(|e| panic!("{protocol}: {e}"));
        let values: Vec<Option<String>> = redis::cmd("MGET")
            .arg(format!("score:{key}"))
            .arg("score:nobody")
            .arg("nojob:x")
            .query(&mut conn)
            .unwrap();
        let first: serde_json::Value = serde_json::from_str(values[0].as_ref().unwrap()).unwrap();
        assert_eq!(first["prediction"], doc["prediction"], "{protocol}");
        assert_eq!(values[1..], [None, None], "{protocol}");

        // Many keys of one job are looked up in groups (`LookupFile::get_many`):
        // each answer is the one GET gives, in order, hits and misses mixed.
        let keys: Vec<String> = asked.iter().map(|key| format!("score:{key}")).collect();
        let many: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query(&mut conn).unwrap();
        let prediction = |doc: &Option<String>| {
            doc.as_ref().map(|d| {
                serde_json::from_str::<serde_json::Value>(d).unwrap()["prediction"].clone()
            })
        };
        for (key, got) in keys.iter().zip(&many) {
            let one: Option<String> = redis::cmd("GET").arg(key).query(&mut conn).unwrap();
            assert_eq!(prediction(got), prediction(&one), "{protocol} {key}");
            assert_eq!(got.is_some(), !key.contains("absent"), "{protocol} {key}");
        }
        let pong: Value = redis::cmd("PING").query(&mut conn).unwrap();
        assert!(
            matches!(pong, Value::SimpleString(ref s) if s == "PONG"),
            "{pong:?}"
        );
        let err = redis::cmd("DEL")
            .arg(format!("score:{key}"))
            .query::<i64>(&mut conn)
            .unwrap_err();
        assert!(err.to_string().to_lowercase().contains("readonly"), "{err}");
    }
}

/// CPU ticks (user + system) of the process's Redis-protocol threads.
fn resp_thread_ticks(pid: u32) -> u64 {
    let mut ticks = 0;
    let mut threads = 0;
    for task in fs_err::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let stat = fs_err::read_to_string(task.unwrap().path().join("stat")).unwrap();
        // `pid (comm) state ...`: fields after the comm's closing parenthesis.
        let (comm, rest) = stat.split_once(") ").unwrap();
        if !comm.contains("presage-resp") {
            continue;
        }
        threads += 1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        ticks += fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    }
    assert!(threads > 0, "no presage-resp thread in process {pid}");
    ticks
}

#[test]
fn busy_polling_answers_like_sleeping_and_stops_spinning_when_idle() {
    let (_project, server, resp_port, _base) = served_with_resp(&["--busy-poll", "2ms"]);
    let url = format!("redis://127.0.0.1:{resp_port}/");
    let mut conn = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    for i in 0..500 {
        let key = format!("score:e{:06}", i * 3);
        let doc: Option<String> = redis::cmd("GET").arg(&key).query(&mut conn).unwrap();
        let doc: serde_json::Value = serde_json::from_str(&doc.expect(&key)).unwrap();
        assert_eq!(doc["key"], serde_json::json!(format!("e{:06}", i * 3)));
    }
    let missing: Option<String> = redis::cmd("GET")
        .arg("score:nobody")
        .query(&mut conn)
        .unwrap();
    assert_eq!(missing, None);

    // Idle, the loops sleep: a spinning thread would gain about 50 ticks in 0.5 s.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let before = resp_thread_ticks(server.id());
    std::thread::sleep(std::time::Duration::from_millis(500));
    let spent = resp_thread_ticks(server.id()) - before;
    assert!(
        spent <= 10,
        "the Redis-protocol threads used {spent} ticks while idle"
    );
}

#[test]
fn busy_poll_needs_the_resp_endpoint_and_a_short_window() {
    let project = SmallProject::new();
    let cases: [(&[&str], &str); 3] = [
        (&["serve", "--busy-poll", "50us"], "--resp-addr"),
        (
            &["serve", "--resp-addr", "127.0.0.1:0", "--busy-poll", "2s"],
            "longer spinning only burns CPU",
        ),
        (
            &["serve", "--resp-addr", "127.0.0.1:0", "--busy-poll", "soon"],
            "not a duration",
        ),
    ];
    for (args, expected) in cases {
        let out = project.run(args);
        assert!(!out.status.success(), "{args:?} was accepted");
        let err = stderr(&out);
        assert!(err.contains(expected), "{args:?}: {err}");
    }
}
