//! `presage serve --lookup-log`: answers are logged as Parquet files, and
//! `presage status` counts how many of the current version's predictions were read.

use std::time::{Duration, Instant};

use presage_test::http_json;

use crate::project::{SmallProject, run_in, serve_in, stderr, stdout};

#[test]
fn logged_answers_show_what_was_read() {
    let project = SmallProject::new();
    let out = project.run(&["run", "score"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let log = project.path().join("lookups");
    let (_server, base) = serve_in(project.path(), &["--lookup-log", log.to_str().unwrap()]);
    // Ten distinct keys, each read twice, and one unknown key (not an answer).
    for _ in 0..2 {
        for i in 0..10 {
            let url = format!("{base}/v1/jobs/score/predictions/e{i:06}");
            let (status, answer) = http_json("GET", &url, None, None);
            assert_eq!(status, 200, "{answer}");
        }
    }
    let (status, _) = http_json(
        "GET",
        &format!("{base}/v1/jobs/score/predictions/nobody"),
        None,
        None,
    );
    assert_eq!(status, 404);

    // Files roll every few seconds; wait for the first one.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let out = run_in(
            project.path(),
            &["status", "--json", "--lookup-log", log.to_str().unwrap()],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let status: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        if status["jobs"][0]["read_keys"].as_u64().unwrap_or(0) > 0 {
            break status;
        }
        assert!(Instant::now() < deadline, "no lookup log file: {status}");
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(
        status["jobs"][0]["read_keys"],
        serde_json::json!(10),
        "{status}"
    );
    let files: Vec<_> = std::fs::read_dir(&log)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        files
            .iter()
            .all(|f| f.starts_with("lookups-") && f.ends_with(".parquet")),
        "only finished files are visible: {files:?}"
    );
    let table = stdout(&run_in(
        project.path(),
        &["status", "--lookup-log", log.to_str().unwrap()],
    ));
    assert!(
        table.contains("read: 10 of its 2000 predictions"),
        "{table}"
    );
}

#[test]
fn sigterm_finishes_requests_in_flight_and_writes_the_lookup_log() {
    use std::io::{Read, Write};

    let project = SmallProject::new();
    let out = project.run(&["run", "score"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let log = project.path().join("lookups");
    let resp_addr = format!("127.0.0.1:{}", presage_test::free_port());
    let (mut server, base) = serve_in(
        project.path(),
        &[
            "--lookup-log",
            log.to_str().unwrap(),
            "--resp-addr",
            &resp_addr,
        ],
    );
    // A Redis-protocol client that reads once, then stays connected.
    let mut resp_client = std::net::TcpStream::connect(&resp_addr).unwrap();
    resp_client.write_all(b"GET score:e000004\r\n").unwrap();
    resp_client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reply = [0u8; 1];
    resp_client.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"$", "a bulk string answers the GET");
    for i in 0..3 {
        let url = format!("{base}/v1/jobs/score/predictions/e{i:06}");
        let (status, answer) = http_json("GET", &url, None, None);
        assert_eq!(status, 200, "{answer}");
    }
    // A request in flight when SIGTERM arrives: headers sent, body not yet.
    let body = br#"{"keys": ["e000003"]}"#;
    let mut client = std::net::TcpStream::connect(base.trim_start_matches("http://")).unwrap();
    write!(
        client,
        "POST /v1/jobs/score/predictions:batchGet HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    server.terminate();
    server.wait_for_stderr("stopping", Duration::from_secs(10));
    client.write_all(body).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = String::new();
    let _ = client.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"e000003\""), "{answer}");

    let status = server
        .wait_exit(Duration::from_secs(20))
        .expect("the server exits after SIGTERM");
    assert!(status.success(), "{status}");
    // The idle Redis-protocol connection was closed, not waited for.
    let mut rest = Vec::new();
    let _ = resp_client.read_to_end(&mut rest);
    assert!(
        !server
            .stderr_lines()
            .iter()
            .any(|l| l.contains("still busy")),
        "{:?}",
        server.stderr_lines()
    );
    // Written at exit, not at the next roll: the five answers are in the log now.
    let out = run_in(
        project.path(),
        &["status", "--json", "--lookup-log", log.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let status: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        status["jobs"][0]["read_keys"],
        serde_json::json!(5),
        "{status}"
    );
}
