//! `[store] kind = "redis"`: every command against a real redis-server (and a real
//! 3-node Redis Cluster), with the small project's 2,000 rows.

use std::time::{Duration, Instant};

use presage_test::{ChildProcess, RedisCluster, RedisServer, count_keys, free_port, redis_cli};
use serde_json::{Value, json};

use crate::project::{SmallProject, presage, serve_in, stderr, stdout};

/// Rows of the `sk_logreg_binary` fixture.
const ROWS: usize = 2000;
/// The first key of the fixture.
const KEY: &str = "e000000";

/// A small project publishing into Redis at `url` (a TOML string or array).
fn redis_project(url: &str, store_extra: &str, keep_versions: usize, checks: &str) -> SmallProject {
    let project = SmallProject::new();
    project.edit_config(&[
        (
            "data_dir = \"store\"\n",
            &format!(
                "data_dir = \"store\"\n\n[store]\nkind = \"redis\"\nurl = {url}\n{store_extra}\n"
            ),
        ),
        (
            "keep_versions = 3",
            &format!("keep_versions = {keep_versions}"),
        ),
        ("min_rows = 100", &format!("min_rows = 100\n{checks}")),
    ]);
    project
}

fn run_ok(project: &SmallProject, args: &[&str]) -> String {
    let out = project.run(args);
    assert!(out.status.success(), "presage {args:?}: {}", stderr(&out));
    stdout(&out)
}

fn get(url: &str) -> (u16, Value) {
    presage_test::http_json("GET", url, None, None)
}

/// Polls the server until `key` is answered from `version`.
fn wait_for_version(base: &str, version: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, answer) = get(&format!("{base}/v1/jobs/score/predictions/{KEY}"));
        if status == 200 && answer["version"] == json!(version) {
            return answer;
        }
        assert!(
            Instant::now() < deadline,
            "server did not move to version {version}: {status} {answer}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Data keys of version `id` of job `score` on the server at `port`.
fn version_keys(port: u16, id: u64) -> usize {
    count_keys(port, &format!("presage:score:v{id}:*"))
}

#[test]
fn redis_run_serve_http_resp_lookup_match_embedded() {
    let server = RedisServer::start();
    let project = redis_project(&format!("\"{}\"", server.url()), "", 3, "");
    run_ok(&project, &["run", "score"]);
    assert_eq!(
        redis_cli(server.port(), &["GET", "presage:{score}:current"]),
        "1"
    );
    assert_eq!(version_keys(server.port(), 1), ROWS);
    // Nothing lands on disk: the Redis store keeps no files.
    assert!(!project.path().join("store/score/CURRENT").exists());

    // The same project on the embedded store, for the answers to compare with.
    let embedded = SmallProject::new();
    assert!(embedded.run(&["run", "score"]).status.success());

    let resp_port = free_port();
    let (_server, base) = serve_in(
        project.path(),
        &["--resp-addr", &format!("127.0.0.1:{resp_port}")],
    );
    let (_embedded_server, embedded_base) = serve_in(embedded.path(), &[]);
    let (status, answer) = get(&format!("{base}/v1/jobs/score/predictions/{KEY}"));
    assert_eq!(status, 200, "{answer}");
    let (_, expected) = get(&format!("{embedded_base}/v1/jobs/score/predictions/{KEY}"));
    let fields = |doc: &Value| {
        let mut names: Vec<String> = doc.as_object().unwrap().keys().cloned().collect();
        names.sort();
        names
    };
    assert_eq!(fields(&answer), fields(&expected));
    assert_eq!(
        answer["prediction"], expected["prediction"],
        "{answer} vs {expected}"
    );
    assert_eq!(answer["status"], json!("fresh"));
    assert_eq!(answer["version"], json!(1));
    assert_eq!(answer["key"], json!(KEY));

    let (status, missing) = get(&format!("{base}/v1/jobs/score/predictions/nobody"));
    assert_eq!(status, 404, "{missing}");
    let (status, batch) = presage_test::http_json(
        "POST",
        &format!("{base}/v1/jobs/score/predictions:batchGet"),
        Some(&json!({"keys": [KEY, "nobody", "e000001"]})),
        None,
    );
    assert_eq!(status, 200, "{batch}");
    assert_eq!(batch["predictions"].as_array().unwrap().len(), 2);
    assert_eq!(batch["missing"], json!(["nobody"]));
    assert_eq!(
        batch["predictions"][0]["prediction"],
        expected["prediction"]
    );

    // The Redis-protocol endpoint answers the same document.
    let doc = redis_cli(resp_port, &["GET", &format!("score:{KEY}")]);
    let doc: Value = serde_json::from_str(&doc).expect("a JSON document");
    assert_eq!(doc["prediction"], expected["prediction"]);
    assert_eq!(doc["version"], json!(1));
    assert_eq!(redis_cli(resp_port, &["DBSIZE"]), ROWS.to_string());
    let many = redis_cli(
        resp_port,
        &["MGET", &format!("score:{KEY}"), "score:nobody"],
    );
    assert!(many.contains("\"version\":1"), "{many}");

    // `lookup`, `versions`, `status` read the same store.
    let line = run_ok(&project, &["lookup", "score", KEY]);
    let looked: Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(looked["prediction"], expected["prediction"]);
    let versions: Value =
        serde_json::from_str(&run_ok(&project, &["versions", "score", "--json"])).unwrap();
    assert_eq!(versions["current"], json!(1));
    assert_eq!(versions["versions"][0]["rows"], json!(ROWS));
    let status: Value = serde_json::from_str(&run_ok(&project, &["status", "--json"])).unwrap();
    assert_eq!(status["jobs"][0]["version"], json!(1));
    assert_eq!(status["jobs"][0]["last_run"]["outcome"], json!("published"));
}

#[test]
fn redis_second_run_flips_the_pointer_and_rollback_flips_it_back() {
    let server = RedisServer::start();
    let project = redis_project(&format!("\"{}\"", server.url()), "", 3, "max_psi = 0.25");
    run_ok(&project, &["run", "score"]);
    let (_server, base) = serve_in(project.path(), &[]);
    wait_for_version(&base, 1);

    run_ok(&project, &["run", "score"]);
    assert_eq!(
        redis_cli(server.port(), &["GET", "presage:{score}:current"]),
        "2"
    );
    let answer = wait_for_version(&base, 2);
    assert_eq!(answer["status"], json!("fresh"));
    // The second run measured drift against the first version's recorded bins.
    let versions: Value =
        serde_json::from_str(&run_ok(&project, &["versions", "score", "--json"])).unwrap();
    let checks = versions["versions"][0]["checks"].as_array().unwrap();
    let psi = checks
        .iter()
        .find(|c| c["name"] == "max_psi")
        .expect("max_psi ran");
    assert_eq!(psi["passed"], json!(true), "{psi}");
    assert!(
        psi["value"].as_f64().unwrap() < 1e-9,
        "same rows, no drift: {psi}"
    );

    let out = run_ok(&project, &["rollback", "score"]);
    assert!(out.contains("now serving version 1 (was 2)"), "{out}");
    assert_eq!(
        redis_cli(server.port(), &["GET", "presage:{score}:current"]),
        "1"
    );
    wait_for_version(&base, 1);
    let out = project.run(&["rollback", "score", "--to", "99"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("99"), "{}", stderr(&out));
    // Version 2 was rolled back from: serving it again takes --force.
    let out = project.run(&["rollback", "score", "--to", "2"]);
    assert!(stderr(&out).contains("pass --force"), "{}", stderr(&out));
    run_ok(&project, &["rollback", "score", "--to", "2", "--force"]);
    wait_for_version(&base, 2);
    // Version 1 is now the one rolled away from.
    let out = run_ok(&project, &["versions", "score"]);
    assert!(out.contains("(rolled back from)"), "{out}");
}

#[test]
fn redis_keep_versions_deletes_old_prefixes() {
    let server = RedisServer::start();
    let project = redis_project(&format!("\"{}\"", server.url()), "", 2, "");
    for _ in 0..4 {
        run_ok(&project, &["run", "score"]);
    }
    let port = server.port();
    assert_eq!(version_keys(port, 1), 0, "version 1 deleted");
    assert_eq!(version_keys(port, 2), 0, "version 2 deleted");
    assert_eq!(version_keys(port, 3), ROWS);
    assert_eq!(version_keys(port, 4), ROWS);
    assert_eq!(count_keys(port, "presage:score:v*"), 2 * ROWS);
    assert_eq!(count_keys(port, "presage:{score}:manifest:*"), 2);
    // Never by per-key TTL.
    let ttl = redis_cli(port, &["TTL", &format!("presage:score:v4:{KEY}")]);
    assert_eq!(ttl, "-1");
    let versions: Value =
        serde_json::from_str(&run_ok(&project, &["versions", "score", "--json"])).unwrap();
    let ids: Vec<u64> = versions["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [4, 3]);
    let out = project.run(&["rollback", "score", "--to", "1"]);
    assert!(
        !out.status.success(),
        "a deleted version cannot be rolled back to"
    );
}

/// Kills a run with SIGKILL at `point` and checks that version 1 stays current and
/// served, and that the next run (after the dead run's lease) deletes what the
/// killed run wrote; returns how many keys the killed run had written.
fn kill9_at(point: &str) -> usize {
    let server = RedisServer::start();
    let port = server.port();
    let project = redis_project(&format!("\"{}\"", server.url()), "lease = \"1s\"", 3, "");
    run_ok(&project, &["run", "score"]);
    let (_server, base) = serve_in(project.path(), &[]);
    wait_for_version(&base, 1);

    let mut command = presage();
    command
        .current_dir(project.path())
        .args(["run", "score"])
        .env("PRESAGE_TEST_PAUSE", point);
    let mut run = ChildProcess::spawn(command);
    run.wait_for_stderr(&format!("paused at {point}"), Duration::from_secs(60));
    run.kill9();

    assert_eq!(redis_cli(port, &["GET", "presage:{score}:current"]), "1");
    let written = version_keys(port, 2);
    assert_eq!(redis_cli(port, &["HLEN", "presage:{score}:staging"]), "1");
    let answer = wait_for_version(&base, 1);
    assert_eq!(answer["version"], json!(1));
    let versions: Value =
        serde_json::from_str(&run_ok(&project, &["versions", "score", "--json"])).unwrap();
    assert_eq!(versions["current"], json!(1));
    assert_eq!(versions["versions"].as_array().unwrap().len(), 1);

    // Once the dead run's lease is over, the next run deletes its keys.
    std::thread::sleep(Duration::from_millis(1500));
    run_ok(&project, &["run", "score"]);
    assert_eq!(
        version_keys(port, 2),
        0,
        "the dead run's prefix was cleaned"
    );
    assert_eq!(redis_cli(port, &["GET", "presage:{score}:current"]), "3");
    assert_eq!(redis_cli(port, &["HLEN", "presage:{score}:staging"]), "0");
    wait_for_version(&base, 3);
    written
}

#[test]
fn redis_kill9_mid_publish_keeps_the_old_version_and_the_next_run_cleans_up() {
    // Every key of version 2 was written; the pointer was not flipped.
    assert_eq!(kill9_at("publish"), ROWS);
}

#[test]
fn redis_kill9_mid_scoring_keeps_the_old_version_and_the_next_run_cleans_up() {
    assert!(kill9_at("scoring") <= ROWS);
}

#[test]
fn redis_blocked_run_is_never_visible_and_its_keys_are_deleted() {
    let server = RedisServer::start();
    let port = server.port();
    let project = redis_project(
        &format!("\"{}\"", server.url()),
        "",
        3,
        "expected_keys = \"SELECT key FROM rows\"",
    );
    run_ok(&project, &["run", "score"]);
    let versions: Value =
        serde_json::from_str(&run_ok(&project, &["versions", "score", "--json"])).unwrap();
    let checks = versions["versions"][0]["checks"].as_array().unwrap();
    let expected = checks
        .iter()
        .find(|c| c["name"] == "expected_keys")
        .unwrap();
    assert_eq!(expected["passed"], json!(true), "{expected}");

    // A key the version cannot have: the gate fails and nothing is published.
    let path = project.path().join("presage.toml");
    let text = fs_err::read_to_string(&path).unwrap().replace(
        "SELECT key FROM rows",
        "SELECT key FROM rows UNION ALL SELECT 'nobody' AS key",
    );
    fs_err::write(&path, text).unwrap();
    let out = project.run(&["run", "score"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("publish blocked by `expected_keys`"), "{err}");
    assert!(err.contains("`nobody`"), "{err}");
    assert!(err.contains("deleted"), "{err}");
    assert_eq!(redis_cli(port, &["GET", "presage:{score}:current"]), "1");
    assert_eq!(version_keys(port, 2), 0, "blocked run's keys deleted");
    assert_eq!(count_keys(port, "presage:score:v*"), ROWS);
    let status: Value = serde_json::from_str(&run_ok(&project, &["status", "--json"])).unwrap();
    assert_eq!(status["jobs"][0]["last_run"]["outcome"], json!("blocked"));
    assert_eq!(status["jobs"][0]["version"], json!(1));
}

#[test]
fn redis_config_and_connection_errors_name_the_field_and_url() {
    let project = SmallProject::new();
    let path = project.path().join("presage.toml");
    let base = fs_err::read_to_string(&path).unwrap();

    fs_err::write(&path, format!("{base}\n[store]\nkind = \"redis\"\n")).unwrap();
    let err = stderr(&project.run(&["run", "score"]));
    assert!(err.contains("store.url: required"), "{err}");

    fs_err::write(
        &path,
        format!("{base}\n[store]\nkind = \"redis\"\nurl = 5\n"),
    )
    .unwrap();
    let err = stderr(&project.run(&["versions", "score"]));
    assert!(err.contains("store.url: expected a URL"), "{err}");

    fs_err::write(
        &path,
        format!("{base}\n[store]\nkind = \"redis\"\nurl = \"http://x\"\n"),
    )
    .unwrap();
    let err = stderr(&project.run(&["versions", "score"]));
    assert!(
        err.contains("store.url: `http://x` is not a redis URL"),
        "{err}"
    );

    fs_err::write(
        &path,
        format!("{base}\n[store]\nkind = \"redis\"\nurl = \"rediss://127.0.0.1:1\"\n"),
    )
    .unwrap();
    let err = stderr(&project.run(&["versions", "score"]));
    assert!(
        err.contains("store.url: `rediss://127.0.0.1:1` asks for TLS (`rediss://`), which presage does not support yet"),
        "{err}"
    );

    fs_err::write(
        &path,
        format!("{base}\n[store]\nkind = \"redis\"\nurl = \"redis://127.0.0.1:1\"\nnamespace = \"a b\"\n"),
    )
    .unwrap();
    let err = stderr(&project.run(&["versions", "score"]));
    assert!(err.contains("store.namespace"), "{err}");

    let dead = format!("redis://127.0.0.1:{}", free_port());
    fs_err::write(
        &path,
        format!("{base}\n[store]\nkind = \"redis\"\nurl = \"{dead}\"\n"),
    )
    .unwrap();
    for command in [&["run", "score"][..], &["status"], &["serve"]] {
        let out = project.run(command);
        assert!(!out.status.success(), "{command:?}");
        let err = stderr(&out);
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(err.contains(&format!("`{dead}`")), "{command:?}: {err}");
    }
}

#[test]
fn redis_cluster_spreads_keys_and_keeps_pointer_with_manifest() {
    let cluster = RedisCluster::start();
    let urls = cluster
        .urls()
        .iter()
        .map(|u| format!("\"{u}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let project = redis_project(
        &format!("[{urls}]"),
        "",
        3,
        "expected_keys = \"SELECT key FROM rows\"\nmax_psi = 0.25",
    );
    run_ok(&project, &["run", "score"]);

    let ports = cluster.ports();
    let per_node: Vec<usize> = ports.iter().map(|&p| version_keys(p, 1)).collect();
    assert_eq!(per_node.iter().sum::<usize>(), ROWS, "{per_node:?}");
    assert!(
        per_node.iter().all(|&n| n > 0),
        "keys on every node: {per_node:?}"
    );
    // Pointer and manifests share one slot (the job's hash tag), so one node holds them.
    let slot = |key: &str| redis_cli(ports[0], &["CLUSTER", "KEYSLOT", key]);
    assert_eq!(
        slot("presage:{score}:current"),
        slot("presage:{score}:manifest:1")
    );
    assert_eq!(
        slot("presage:{score}:current"),
        slot("presage:{score}:versions")
    );
    let holders: Vec<u16> = ports
        .iter()
        .copied()
        .filter(|&p| count_keys(p, "presage:{score}:*") > 0)
        .collect();
    assert_eq!(holders.len(), 1, "{holders:?}");
    assert_eq!(count_keys(holders[0], "presage:{score}:manifest:*"), 1);

    // Serve, a second run, rollback: all through the cluster.
    let (_server, base) = serve_in(project.path(), &[]);
    let first = wait_for_version(&base, 1);
    run_ok(&project, &["run", "score"]);
    let second = wait_for_version(&base, 2);
    assert_eq!(first["prediction"], second["prediction"]);
    let (status, batch) = presage_test::http_json(
        "POST",
        &format!("{base}/v1/jobs/score/predictions:batchGet"),
        Some(&json!({"keys": [KEY, "e000001", "e000002", "e000003", "nobody"]})),
        None,
    );
    assert_eq!(status, 200, "{batch}");
    assert_eq!(batch["predictions"].as_array().unwrap().len(), 4, "{batch}");
    run_ok(&project, &["rollback", "score"]);
    wait_for_version(&base, 1);
    let line = run_ok(&project, &["lookup", "score", KEY]);
    assert!(line.contains("\"version\":1"), "{line}");
}
