//! Clients that are slow, idle, too many or malicious, over real sockets: each limit
//! closes or refuses them within a bound, and well-behaved clients are served still.

use std::time::Duration;

use chrono::Utc;
use presage_serve::limits::{MAX_BODY_BYTES, MAX_INLINE_BYTES};
use presage_serve::{LookupLog, RespOptions, Status};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{
    Fixture, JOB, TOKEN, job, parse_http, read_until, read_until_closed, serve, short_limits,
    start_http, start_resp, start_resp_server,
};

/// Generous: the limits under test are 200 ms.
const CLOSED_WITHIN: Duration = Duration::from_secs(5);

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";

#[tokio::test]
async fn slow_and_idle_http_clients_are_closed() {
    let fixture = Fixture::new();
    fixture.publish(JOB, Utc::now()).await;
    let state = serve(&fixture, vec![job(JOB)], None).await;
    let server = start_http(&state, short_limits(100)).await;

    // Connected, never sends anything.
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    assert!(read_until_closed(&mut idle, CLOSED_WITHIN).await.len() < 1024);

    // Half a header, then nothing.
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    read_until_closed(&mut slow, CLOSED_WITHIN).await;

    // Served, then idle on a kept-alive connection.
    let mut kept = TcpStream::connect(server.addr).await.unwrap();
    kept.write_all(HEALTHZ).await.unwrap();
    let answer = read_until_closed(&mut kept, CLOSED_WITHIN).await;
    assert_eq!(parse_http(&answer), (200, json!({"status": "ok"})));
}

#[tokio::test]
async fn a_body_smaller_than_announced_times_out_and_a_huge_one_is_refused_unread() {
    let fixture = Fixture::new();
    fixture.publish(JOB, Utc::now()).await;
    let state = serve(&fixture, vec![job(JOB)], None).await;
    let server = start_http(&state, short_limits(100)).await;
    let head = |length: usize| {
        format!(
            "POST /v1/jobs/churn/predictions:batchGet HTTP/1.1\r\nHost: x\r\n\
             Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n{{\"keys\":[]"
        )
    };

    let mut huge = TcpStream::connect(server.addr).await.unwrap();
    huge.write_all(head(1_000_000_000).as_bytes())
        .await
        .unwrap();
    let (status, body) = parse_http(&read_until_closed(&mut huge, CLOSED_WITHIN).await);
    assert_eq!(status, 413, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains(&MAX_BODY_BYTES.to_string()),
        "{body}"
    );

    let mut short = TcpStream::connect(server.addr).await.unwrap();
    short.write_all(head(100).as_bytes()).await.unwrap();
    let (status, body) = parse_http(&read_until_closed(&mut short, CLOSED_WITHIN).await);
    assert_eq!(status, 408, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("too long"),
        "{body}"
    );
}

#[tokio::test]
async fn http_connections_over_the_cap_are_closed_until_some_close() {
    let fixture = Fixture::new();
    fixture.publish(JOB, Utc::now()).await;
    let state = serve(&fixture, vec![job(JOB)], None).await;
    let limits = presage_serve::HttpLimits {
        header_read_timeout: Duration::from_secs(60),
        ..short_limits(2)
    };
    let server = start_http(&state, limits).await;

    // Two connections served and kept alive fill the cap.
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut client = TcpStream::connect(server.addr).await.unwrap();
        client.write_all(HEALTHZ).await.unwrap();
        read_until(&mut client, b"{\"status\":\"ok\"}").await;
        open.push(client);
    }
    let mut refused = TcpStream::connect(server.addr).await.unwrap();
    let _ = refused.write_all(HEALTHZ).await;
    assert!(
        read_until_closed(&mut refused, CLOSED_WITHIN)
            .await
            .is_empty()
    );

    // Once one closes, a new client is served.
    drop(open.pop());
    let served = tokio::time::timeout(CLOSED_WITHIN, async {
        loop {
            let mut client = TcpStream::connect(server.addr).await.unwrap();
            let _ = client
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await;
            let mut answer = Vec::new();
            let _ = client.read_to_end(&mut answer).await;
            if !answer.is_empty() {
                return answer;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let answer = served.await.expect("served once a connection closed");
    assert_eq!(parse_http(&answer).0, 200);
}

#[tokio::test]
async fn shutdown_finishes_requests_in_flight_and_closes_idle_connections() {
    let fixture = Fixture::new();
    fixture.publish(JOB, Utc::now()).await;
    let state = serve(&fixture, vec![job(JOB)], None).await;
    let limits = presage_serve::HttpLimits {
        header_read_timeout: Duration::from_secs(60),
        body_read_timeout: Duration::from_secs(60),
        ..short_limits(100)
    };
    let mut server = start_http(&state, limits).await;

    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    idle.write_all(HEALTHZ).await.unwrap();
    read_until(&mut idle, b"{\"status\":\"ok\"}").await;
    let body = br#"{"keys":["u1"]}"#;
    let mut in_flight = TcpStream::connect(server.addr).await.unwrap();
    in_flight
        .write_all(
            format!(
                "POST /v1/jobs/churn/predictions:batchGet HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    // Wait for the handler to be reading the body.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let _ = server.stop.take().unwrap().send(());
    read_until_closed(&mut idle, CLOSED_WITHIN).await;
    assert!(!server.stopped.is_finished(), "a request is in flight");
    in_flight.write_all(body).await.unwrap();
    let (status, answer) = parse_http(&read_until_closed(&mut in_flight, CLOSED_WITHIN).await);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["predictions"][0]["key"], json!("u1"));
    tokio::time::timeout(CLOSED_WITHIN, &mut server.stopped)
        .await
        .expect("serve_http returns once nothing is in flight")
        .unwrap();
    assert!(TcpStream::connect(server.addr).await.is_err());
}

#[tokio::test]
async fn errors_over_a_socket_are_json_and_bearer_is_case_insensitive() {
    let fixture = Fixture::new();
    fixture.publish(JOB, Utc::now()).await;
    let state = serve(&fixture, vec![job(JOB)], Some(TOKEN)).await;
    let server = start_http(&state, short_limits(100)).await;
    let ask = |request: String| async move {
        let mut client = TcpStream::connect(server.addr).await.unwrap();
        client.write_all(request.as_bytes()).await.unwrap();
        parse_http(&read_until_closed(&mut client, CLOSED_WITHIN).await)
    };

    let (status, body) =
        ask("GET /v1/nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".into()).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) =
        ask("PATCH /v1/jobs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".into()).await;
    assert_eq!(status, 405, "{body}");
    let (status, body) =
        ask("GET /v1/jobs/%C3%28/versions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".into())
            .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = ask(format!(
        "POST /v1/jobs/churn/rollback HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Authorization: bearer {TOKEN}\r\nContent-Length: 0\r\n\r\n"
    ))
    .await;
    assert_eq!(status, 409, "{body}");
}

/// Sends `bytes` on a new Redis-protocol connection and reads until it closes.
async fn resp_exchange(addr: std::net::SocketAddr, bytes: &[u8]) -> String {
    let mut client = TcpStream::connect(addr).await.unwrap();
    client.write_all(bytes).await.unwrap();
    String::from_utf8(read_until_closed(&mut client, CLOSED_WITHIN).await).unwrap()
}

#[tokio::test]
async fn a_redis_protocol_error_cannot_forge_replies() {
    let fixture = Fixture::new();
    fixture.publish(JOB, Utc::now()).await;
    let state = serve(&fixture, vec![job(JOB)], None).await;
    let addr = start_resp(&state, RespOptions::default());

    // A command whose name holds a reply of its own.
    let name = "x'\r\n+OK\r\n$3\r\nabc";
    let command = format!("*1\r\n${}\r\n{name}\r\nQUIT\r\n", name.len());
    let replies = resp_exchange(addr, command.as_bytes()).await;
    assert_eq!(
        replies,
        "-ERR unknown command 'x   +ok  $3  abc'\r\n+OK\r\n"
    );

    // A long name is cut, as Redis cuts it.
    let name = "\u{e9}".repeat(100_000);
    let command = format!("*1\r\n${}\r\n{name}\r\nQUIT\r\n", name.len());
    let replies = resp_exchange(addr, command.as_bytes()).await;
    assert_eq!(
        replies,
        format!("-ERR unknown command '{}'\r\n+OK\r\n", " ".repeat(128))
    );
}

#[tokio::test]
async fn long_inline_lines_are_refused_and_long_lines_in_pieces_are_parsed_once() {
    let fixture = Fixture::new();
    fixture.publish(JOB, Utc::now()).await;
    let state = serve(&fixture, vec![job(JOB)], None).await;
    let addr = start_resp(&state, RespOptions::default());

    // Just under the limit, in small pieces: answered.
    let argument = "a".repeat(MAX_INLINE_BYTES - 100);
    let mut client = TcpStream::connect(addr).await.unwrap();
    let line = format!("PING {argument}\r\n");
    for piece in line.as_bytes().chunks(256) {
        client.write_all(piece).await.unwrap();
    }
    let reply = read_until(&mut client, b"\r\n").await;
    let reply = read_until_more(&mut client, reply, argument.len()).await;
    assert_eq!(
        reply,
        format!("${}\r\n{argument}\r\n", argument.len()).into_bytes()
    );

    // A megabyte without a line end, in pieces: refused once past the limit.
    let mut client = TcpStream::connect(addr).await.unwrap();
    let junk = vec![b'a'; 256];
    let mut sent = 0;
    while sent < 1 << 20 {
        if client.write_all(&junk).await.is_err() {
            break;
        }
        sent += junk.len();
    }
    let reply = read_until_closed(&mut client, CLOSED_WITHIN).await;
    assert_eq!(reply, b"-ERR Protocol error: too big inline request\r\n");
}

/// Reads on until `received` holds more than `at_least` bytes and ends with CRLF.
async fn read_until_more(
    stream: &mut TcpStream,
    mut received: Vec<u8>,
    at_least: usize,
) -> Vec<u8> {
    while received.len() <= at_least || !received.ends_with(b"\r\n") {
        let mut chunk = vec![0u8; 64 * 1024];
        let n = tokio::time::timeout(CLOSED_WITHIN, stream.read(&mut chunk))
            .await
            .expect("the rest of the reply")
            .unwrap();
        assert!(n > 0);
        received.extend_from_slice(&chunk[..n]);
    }
    received
}

#[tokio::test]
async fn redis_protocol_connections_over_the_cap_are_refused() {
    let fixture = Fixture::new();
    fixture.publish(JOB, Utc::now()).await;
    let state = serve(&fixture, vec![job(JOB)], None).await;
    let addr = start_resp(
        &state,
        RespOptions {
            threads: 2,
            max_connections: 2,
            ..RespOptions::default()
        },
    );

    let mut open = Vec::new();
    for _ in 0..2 {
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(b"PING\r\n").await.unwrap();
        read_until(&mut client, b"+PONG\r\n").await;
        open.push(client);
    }
    let refused = resp_exchange(addr, b"PING\r\n").await;
    assert_eq!(refused, "-ERR max number of clients reached\r\n");

    drop(open.pop());
    let served = tokio::time::timeout(CLOSED_WITHIN, async {
        loop {
            let replies = resp_exchange(addr, b"PING\r\nQUIT\r\n").await;
            if replies == "+PONG\r\n+OK\r\n" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    served.await.expect("served once a connection closed");
}

#[tokio::test]
async fn idle_redis_protocol_connections_are_closed_when_asked() {
    let fixture = Fixture::new();
    fixture.publish(JOB, Utc::now()).await;
    let state = serve(&fixture, vec![job(JOB)], None).await;
    let addr = start_resp(
        &state,
        RespOptions {
            idle_timeout: Some(Duration::from_millis(200)),
            ..RespOptions::default()
        },
    );

    let mut silent = TcpStream::connect(addr).await.unwrap();
    assert!(
        read_until_closed(&mut silent, CLOSED_WITHIN)
            .await
            .is_empty()
    );

    let mut served = TcpStream::connect(addr).await.unwrap();
    served.write_all(b"GET churn:u1\r\n").await.unwrap();
    let reply = read_until_closed(&mut served, CLOSED_WITHIN).await;
    assert!(
        String::from_utf8(reply).unwrap().contains("\"key\":\"u1\""),
        "the answer comes before the close"
    );
}

#[test]
fn flushing_the_lookup_log_writes_a_file_at_once() {
    let fixture = Fixture::new();
    let dir = fixture.data_dir().with_file_name("lookups");
    let log = LookupLog::start(&dir, 1.0).unwrap();
    log.record(JOB, "u1", 1, Status::Fresh, 0.5);
    log.flush();
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        files.len() == 1 && files[0].ends_with(".parquet"),
        "{files:?}"
    );
    // Flushing with nothing new writes nothing.
    log.flush();
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
}

#[tokio::test]
async fn stopping_the_redis_protocol_answers_what_was_read_and_closes_connections() {
    let fixture = Fixture::new();
    fixture.publish(JOB, Utc::now()).await;
    let state = serve(&fixture, vec![job(JOB)], None).await;
    let (addr, server) = start_resp_server(&state, RespOptions::default());
    let mut idle = TcpStream::connect(addr).await.unwrap();
    let mut busy = TcpStream::connect(addr).await.unwrap();
    busy.write_all(b"PING\r\n").await.unwrap();
    assert_eq!(read_until(&mut busy, b"\r\n").await, b"+PONG\r\n");

    let stopped = tokio::task::spawn_blocking(move || server.stop(CLOSED_WITHIN))
        .await
        .unwrap();
    assert!(stopped, "every event loop ended within the grace");
    // Both connections are closed, and nobody is accepted any more.
    assert!(read_until_closed(&mut idle, CLOSED_WITHIN).await.is_empty());
    assert!(read_until_closed(&mut busy, CLOSED_WITHIN).await.is_empty());
    assert!(TcpStream::connect(addr).await.is_err());
}
