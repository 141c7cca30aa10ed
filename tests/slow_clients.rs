//! Slow and abusive clients against the real binary: the request-head
//! deadline (408), idle connections, the per-listener connection bound (503),
//! body read timeouts, and a slowloris crowd that must not hold up anybody
//! else's redirects.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::*;

const RULES: &str = r#"
[[redirect]]
id = "p"
prefix = "/p"
to = "https://new.example/base"
"#;

const EXACT_408: &str = "HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 48\r\nConnection: close\r\n\r\nThe request head did not arrive within the time.";
const EXACT_503: &str = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 42\r\nRetry-After: 1\r\nConnection: close\r\n\r\nToo many connections to this listener now.";

/// Reads everything until the peer closes (or `limit` passes), returning
/// the bytes and whether the stream ended.
fn read_to_close(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let end = Instant::now() + limit;
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    while Instant::now() < end {
        match stream.read(&mut chunk) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return (out, true),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    (out, false)
}

/// Watches an open connection for `span`: nothing may arrive and it may not
/// close (the wait is the observation, not a pause).
fn expect_quiet(stream: &mut TcpStream, span: Duration) {
    let until = Instant::now() + span;
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut one = [0u8; 1];
    while Instant::now() < until {
        match stream.read(&mut one) {
            Ok(0) => panic!("an idle keep-alive connection was closed"),
            Ok(n) => panic!("{n} bytes arrived on an idle keep-alive connection"),
            Err(e) => assert!(
                matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
                "{e}"
            ),
        }
    }
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

fn redirect_ok(port: u16, n: usize) {
    let mut c = Conn::connect(port);
    c.send(format!("GET /p/{n} HTTP/1.1\r\nHost: a.example\r\n\r\n").as_bytes());
    let r = c.read_response(false);
    assert_eq!(r.status, 307);
    assert_eq!(
        r.header("Location"),
        Some(format!("https://new.example/base/{n}").as_str())
    );
}

/// A request head that never ends: every byte comes well within Pingora's
/// per-read timeout, the head as a whole never completes.
const DRIBBLED: &[u8] = b"GET /p/slow HTTP/1.1\r\nHost: a.example\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

/// Sends [`DRIBBLED`] one byte at a time until the proxy answers or closes,
/// then reads to the close; returns what came and asserts the close.
fn dribble(s: &mut TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 1024];
    let mut closed = false;
    for b in DRIBBLED.iter() {
        if s.write_all(std::slice::from_ref(b)).is_err() {
            break;
        }
        match s.read(&mut chunk) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("read: {e}"),
        }
        if !got.is_empty() {
            break;
        }
    }
    if !closed {
        let (rest, ended) = read_to_close(s, IO_TIMEOUT);
        got.extend_from_slice(&rest);
        assert!(ended, "the connection stayed open after the deadline");
    }
    got
}

#[test]
fn a_head_dribbled_past_the_deadline_gets_408_and_is_closed() {
    let proxy = Proxy::start_with("header_timeout = \"1s\"", RULES);
    let mut s = connect(proxy.addr().port());
    let got = dribble(&mut s);
    assert_eq!(String::from_utf8_lossy(&got), EXACT_408);
    expect_metric(
        proxy.admin_port,
        "pingora_redirect_client_timeouts_total{phase=\"header\"}",
        Some(1.0),
    );
    // The proxy still answers.
    redirect_ok(proxy.addr().port(), 1);
}

#[test]
fn a_later_head_dribbled_on_a_keep_alive_connection_gets_408_too() {
    let proxy = Proxy::start_with("header_timeout = \"1s\"", RULES);
    let mut c = Conn::connect(proxy.addr().port());
    c.send(b"GET /p/1 HTTP/1.1\r\nHost: a.example\r\n\r\n");
    assert_eq!(c.read_response(false).status, 307);
    let got = dribble(&mut c.stream);
    assert_eq!(String::from_utf8_lossy(&got), EXACT_408);
    expect_metric(
        proxy.admin_port,
        "pingora_redirect_client_timeouts_total{phase=\"header\"}",
        Some(1.0),
    );
}

#[test]
fn a_connection_that_sends_nothing_is_closed_without_an_answer() {
    let proxy = Proxy::start_with("header_timeout = \"1s\"", RULES);
    let mut s = connect(proxy.addr().port());
    let (got, ended) = read_to_close(&mut s, IO_TIMEOUT);
    assert!(ended, "an idle new connection stayed open");
    assert_eq!(got, b"");
}

#[test]
fn with_h2c_a_stalled_connection_is_closed_too() {
    let proxy = Proxy::start_with("h2c = true\nheader_timeout = \"1s\"", RULES);
    let mut s = connect(proxy.addr().port());
    s.write_all(b"PRI * HT").unwrap();
    let (got, ended) = read_to_close(&mut s, IO_TIMEOUT);
    assert!(ended, "a stalled preface kept the connection open");
    assert_eq!(got, b"");
    // A short HTTP/1.0 request is answered at once, not after 24 bytes.
    let mut c = Conn::connect(proxy.addr().port());
    c.send(b"GET /p/h HTTP/1.0\r\n\r\n");
    let r = c.read_response(false);
    assert_eq!(r.status, 307);
    assert_eq!(r.header("Location"), Some("https://new.example/base/h"));
}

#[test]
fn an_idle_h2c_connection_is_closed_after_idle_timeout() {
    let proxy = Proxy::start_with("h2c = true\nidle_timeout = \"1s\"", RULES);
    let mut s = connect(proxy.addr().port());
    // The preface and an empty SETTINGS frame, then nothing.
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .unwrap();
    let (got, ended) = read_to_close(&mut s, IO_TIMEOUT);
    assert!(ended, "an idle HTTP/2 connection stayed open");
    // The frames the server sent: its SETTINGS and the ACK of ours, then
    // the close.
    let mut types = Vec::new();
    let mut at = 0;
    while at + 9 <= got.len() {
        let len = u32::from_be_bytes([0, got[at], got[at + 1], got[at + 2]]) as usize;
        types.push(got[at + 3]);
        at += 9 + len;
    }
    assert_eq!(at, got.len(), "a partial frame: {got:?}");
    assert_eq!(types, vec![0x4, 0x4]);
    expect_metric(
        proxy.admin_port,
        &format!(
            "pingora_redirect_connections{{listener=\"127.0.0.1:{}\"}}",
            proxy.addr().port()
        ),
        Some(0.0),
    );
}

#[test]
fn keep_alive_gives_each_request_its_own_head_deadline() {
    let proxy = Proxy::start_with("header_timeout = \"1s\"", RULES);
    let mut c = Conn::connect(proxy.addr().port());
    // The first request is answered; the connection then idles past the
    // head deadline (idle_timeout governs it), and a second request is
    // still answered on it.
    c.send(b"GET /p/1 HTTP/1.1\r\nHost: a.example\r\n\r\n");
    assert_eq!(c.read_response(false).status, 307);
    expect_quiet(&mut c.stream, Duration::from_millis(1500));
    c.send(b"GET /p/2 HTTP/1.1\r\nHost: a.example\r\n\r\n");
    let r = c.read_response(false);
    assert_eq!(r.status, 307);
    assert_eq!(r.header("Location"), Some("https://new.example/base/2"));
}

#[test]
fn pipelined_requests_with_bodies_keep_their_deadlines_straight() {
    let backend = Backend::start("app");
    let proxy = Proxy::start_with(
        "header_timeout = \"1s\"",
        &format!("{RULES}\n[upstream]\nbackends = [\"{}\"]\n", backend.addr()),
    );
    let mut c = Conn::connect(proxy.addr().port());
    // Two POST heads in one write: the second is already buffered when the
    // first request ends, so no read starts its deadline; its body comes
    // later, in a read of its own.
    c.send(
        b"POST /form/1 HTTP/1.1\r\nHost: a.example\r\nContent-Length: 3\r\n\r\none\
POST /form/2 HTTP/1.1\r\nHost: a.example\r\nContent-Length: 3\r\n\r\n",
    );
    assert_eq!(c.read_response(false).status, 200);
    c.send(b"two");
    assert_eq!(c.read_response(false).status, 200);
    // Idle past the head deadline: no 408 arrives, and the connection
    // still serves a request.
    expect_quiet(&mut c.stream, Duration::from_millis(1500));
    c.send(b"GET /p/3 HTTP/1.1\r\nHost: a.example\r\n\r\n");
    let r = c.read_response(false);
    assert_eq!(r.status, 307);
    assert_eq!(r.header("Location"), Some("https://new.example/base/3"));
    let bodies: Vec<(String, Vec<u8>)> = backend
        .requests()
        .into_iter()
        .map(|r| (r.target, r.body))
        .collect();
    assert_eq!(
        bodies,
        vec![
            ("/form/1".to_string(), b"one".to_vec()),
            ("/form/2".to_string(), b"two".to_vec())
        ]
    );
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_idle_timeout() {
    let proxy = Proxy::start_with("idle_timeout = \"1s\"", RULES);
    let mut c = Conn::connect(proxy.addr().port());
    c.send(b"GET /p/1 HTTP/1.1\r\nHost: a.example\r\n\r\n");
    assert_eq!(c.read_response(false).status, 307);
    let (got, ended) = read_to_close(&mut c.stream, IO_TIMEOUT);
    assert!(ended, "an idle keep-alive connection stayed open");
    assert_eq!(got, b"");
}

#[test]
fn connections_over_the_bound_get_503_and_a_freed_slot_is_reused() {
    let proxy = Proxy::start_with("max_connections = 3\nheader_timeout = \"30s\"", RULES);
    let port = proxy.addr().port();
    let label = format!("127.0.0.1:{port}");
    let open = format!("pingora_redirect_connections{{listener=\"{label}\"}}");
    let rejected = format!("pingora_redirect_connections_rejected_total{{listener=\"{label}\"}}");
    // The start-up probe's connection (accepted and closed at some point) is
    // over once a later connection has been served and none is open; only
    // then are the slots this test's alone.
    redirect_ok(port, 0);
    poll_until(Duration::from_secs(10), || {
        (metric(proxy.admin_port, &open) == Some(0.0)).then_some(())
    })
    .expect("no connection open after the first redirect");
    let rejected_before =
        metric(proxy.admin_port, &rejected).expect("the refused-connections series");
    // Each held connection is accepted (the gauge says so) before the next.
    let mut held: Vec<TcpStream> = Vec::new();
    for n in 1..=3 {
        let mut s = connect(port);
        s.write_all(b"GET /p/held HTTP/1.1\r\n").unwrap();
        held.push(s);
        poll_until(Duration::from_secs(10), || {
            (metric(proxy.admin_port, &open) == Some(f64::from(n))).then_some(())
        })
        .unwrap_or_else(|| panic!("{n} connections open"));
    }
    let mut fourth = connect(port);
    fourth
        .write_all(b"GET /p/4 HTTP/1.1\r\nHost: a.example\r\n\r\n")
        .unwrap();
    let (got, ended) = read_to_close(&mut fourth, IO_TIMEOUT);
    assert!(ended);
    assert_eq!(String::from_utf8_lossy(&got), EXACT_503);
    expect_metric(proxy.admin_port, &rejected, Some(rejected_before + 1.0));
    // A held connection still completes its request.
    held[0]
        .write_all(b"Host: a.example\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (got, ended) = read_to_close(&mut held[0], IO_TIMEOUT);
    assert!(ended);
    let r = parse_response(&got, false).expect("a response");
    assert_eq!(r.status, 307);
    assert_eq!(r.header("Location"), Some("https://new.example/base/held"));
    // Its slot is freed: a new connection is served.
    drop(held.remove(0));
    poll_until(Duration::from_secs(10), || {
        (metric(proxy.admin_port, &open) == Some(2.0)).then_some(())
    })
    .expect("the slot is freed");
    redirect_ok(port, 5);
}

#[test]
fn a_stalled_body_to_the_upstream_is_cut_by_body_timeout() {
    let backend = Backend::start("app");
    let proxy = Proxy::start_with(
        "body_timeout = \"1s\"",
        &format!("{RULES}\n[upstream]\nbackends = [\"{}\"]\n", backend.addr()),
    );
    let mut s = connect(proxy.addr().port());
    s.write_all(b"POST /form HTTP/1.1\r\nHost: a.example\r\nContent-Length: 100\r\n\r\nonly-ten-b")
        .unwrap();
    let (_got, ended) = read_to_close(&mut s, IO_TIMEOUT);
    assert!(ended, "a stalled body kept the connection open");
    expect_metric(
        proxy.admin_port,
        "pingora_redirect_client_timeouts_total{phase=\"body\"}",
        Some(1.0),
    );
    // The backend never got a complete request.
    assert!(
        backend.requests().iter().all(|r| r.target != "/form"),
        "the backend received the incomplete POST as a request"
    );
}

#[test]
fn a_slowloris_crowd_does_not_hold_up_other_clients() {
    const SLOW: usize = 40;
    let proxy = Proxy::start_with("header_timeout = \"30s\"", RULES);
    let port = proxy.addr().port();
    let mut slow: Vec<TcpStream> = (0..SLOW)
        .map(|_| {
            let mut s = connect(port);
            s.write_all(b"GET /p/slow HTTP/1.1\r\nHost: a.example\r\nX-Slow: ")
                .unwrap();
            s
        })
        .collect();
    let label = format!("127.0.0.1:{port}");
    let open = format!("pingora_redirect_connections{{listener=\"{label}\"}}");
    poll_until(Duration::from_secs(10), || {
        (metric(proxy.admin_port, &open) == Some(SLOW as f64)).then_some(())
    })
    .expect("the slow connections are open");
    // Interleave: a byte from every slow client, then a whole redirect for a
    // normal client, 100 rounds. Every normal request is answered in full
    // while every slow connection is still open and unanswered.
    for round in 0..100 {
        for s in &mut slow {
            s.write_all(b"a").unwrap();
        }
        redirect_ok(port, round);
    }
    for s in &mut slow {
        s.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
        let mut b = [0u8; 1];
        match s.read(&mut b) {
            Ok(n) => panic!("a slow client got {n} bytes (or was closed) early"),
            Err(e) => assert!(
                matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
                "{e}"
            ),
        }
    }
    assert_eq!(metric(proxy.admin_port, &open), Some(SLOW as f64));
    // Finishing their heads, the slow clients are answered too.
    for s in &mut slow {
        s.write_all(b"\r\nConnection: close\r\n\r\n").unwrap();
    }
    for s in &mut slow {
        let (got, ended) = read_to_close(s, IO_TIMEOUT);
        assert!(ended);
        let r = parse_response(&got, false).expect("a response");
        assert_eq!(r.status, 307);
        assert_eq!(r.header("Location"), Some("https://new.example/base/slow"));
    }
}

#[test]
fn bad_limits_are_configuration_errors_with_places() {
    let dir = TempDir::new("limits");
    let cfg = dir.write(
        "bad.toml",
        "[server]\nheader_timeout = \"10ms\"\nmax_connections = 0\nidle_timeout = \"1500ms\"\n",
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pingora-redirect"))
        .args(["check", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let all = format!("{stdout}{stderr}");
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("bad.toml:2:18")
            && all.contains("`header_timeout` must be between 100ms and 1h"),
        "{all}"
    );
    assert!(
        all.contains("bad.toml:3:19")
            && all.contains("`max_connections` = 0 must be between 1 and 1000000"),
        "{all}"
    );
    assert!(
        all.contains("bad.toml:4:16") && all.contains("`idle_timeout` is whole seconds"),
        "{all}"
    );
}
