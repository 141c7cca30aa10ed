//! The fast path (`[server] fast_path`, on by default) against Pingora's
//! own path (`fast_path = false`): two real `serve` processes with the same
//! rules get the same bytes, and must answer with the same bytes (every
//! `Date` value aside), count the same metrics and write the same access-log
//! lines (durations aside). `pingora_redirect_fast_path_requests_total`
//! shows which requests the fast path answered, so each case also asserts
//! that the requests it should answer were answered there and that the
//! others were handed to Pingora.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::*;

const RULES: &str = r#"
[log]
access = "access.log"
format = "json"

[defaults]
status = 307
query = "preserve"

[pools.backup]
targets = ["https://backup.example"]

[[redirect]]
id = "exact"
host = "a.example"
path = "/x"
to = "https://new.example/y"
status = 301

[[redirect]]
id = "suffix"
host = "a.example"
prefix = "/docs"
to = "https://docs.example/v2"
keep_suffix = true
status = 308
cache_control = "max-age=60"

[[redirect]]
id = "template"
host = "*.shop.example"
prefix = "/w"
to = "https://${host}/new${path}"
status = 302
retry_after = 30
headers = { "Link" = "<https://new.example/>; rel=\"canonical\"", "X-Moved-By" = "pingora-redirect" }

[[redirect]]
id = "regex"
host = "a.example"
regex = "^/re/(?P<id>[0-9]+)-(.*)$"
to = "/item/${id}?slug=${2}"
status = 303

[[redirect]]
id = "beta"
host = "a.example"
path = "/app"
to = "https://beta.example/app"
match_headers = { "X-Beta" = "1" }

[[redirect]]
id = "stable"
host = "a.example"
path = "/app"
to = "https://www.example/app"
status = 301

[[redirect]]
id = "html"
host = "a.example"
path = "/h"
to = "https://new.example/a?x=<b>&y='c'"

[[redirect]]
id = "pooled"
host = "a.example"
prefix = "/pool"
pool = "backup"
"#;

/// The two proxies: the fast path on, and off.
fn proxies() -> (Proxy, Proxy) {
    (
        Proxy::start(RULES),
        Proxy::start_with("fast_path = false", RULES),
    )
}

/// Sends `bytes` in one write, then reads until the proxy closes the
/// connection (the last request says `Connection: close`, or is one the
/// proxy closes after).
fn exchange(port: u16, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s.write_all(bytes).expect("write");
    let end = Instant::now() + IO_TIMEOUT;
    let mut out = Vec::new();
    let mut chunk = [0u8; 8192];
    while Instant::now() < end {
        match s.read(&mut chunk) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return out,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    panic!(
        "the connection stayed open; read so far:\n{}",
        String::from_utf8_lossy(&out)
    );
}

/// The bytes with every `Date` field's value blanked (it is the second the
/// answer was written in).
fn without_dates(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::new();
    let mut rest: &str = &text;
    while let Some(i) = rest.find("\r\nDate: ") {
        out.push_str(&rest[..i + 8]);
        rest = &rest[i + 8..];
        let end = rest.find("\r\n").unwrap_or(rest.len());
        out.push_str("<date>");
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

fn counter(proxy: &Proxy, series: &str) -> f64 {
    metric(proxy.admin_port, series).unwrap_or(0.0)
}

/// The access-log lines of `proxy` once there are `n`, as JSON values
/// without their time and duration.
fn log_lines(proxy: &Proxy, n: usize) -> Vec<serde_json::Value> {
    let path = proxy.dir.path.join("access.log");
    let mut last = String::new();
    let got = poll_until(Duration::from_secs(10), || {
        last = std::fs::read_to_string(&path).unwrap_or_default();
        (last.lines().count() >= n).then_some(())
    });
    assert!(
        got.is_some(),
        "{} lines, expected {n}:\n{last}",
        last.lines().count()
    );
    last.lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            let o = v.as_object_mut().expect("an object");
            o.remove("time");
            o.remove("duration_ms");
            v
        })
        .collect()
}

/// One case: raw requests, what both proxies must answer alike, and how
/// many of them the fast path answers.
struct Case {
    name: &'static str,
    bytes: &'static [u8],
    fast: f64,
}

const CASES: &[Case] = &[
    Case {
        name: "pipelined GET and HEAD redirects of every kind",
        bytes: b"GET /x HTTP/1.1\r\nHost: a.example\r\n\r\n\
HEAD /x?keep=1 HTTP/1.1\r\nHost: a.example\r\n\r\n\
GET /docs/a/b?q=1 HTTP/1.1\r\nHost: a.example\r\nUser-Agent: t/1\r\nReferer: https://r.example/\r\n\r\n\
GET /w/shoes HTTP/1.1\r\nHost: Blue.Shop.Example:8080\r\n\r\n\
GET /re/42-big-box HTTP/1.1\r\nHost: a.example\r\n\r\n\
GET /app HTTP/1.1\r\nHost: a.example\r\nX-Beta: 1\r\n\r\n\
GET /app HTTP/1.1\r\nhost: a.example\r\nx-beta: 2\r\n\r\n\
GET /h HTTP/1.1\r\nHost: a.example\r\nConnection: keep-alive\r\n\r\n\
GET /x/../x HTTP/1.1\r\nHost: a.example.\r\n\r\n\
GET /x HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n",
        fast: 9.0,
    },
    Case {
        name: "a request the fast path hands over ends its part: a POST after two GETs",
        bytes: b"GET /x HTTP/1.1\r\nHost: a.example\r\n\r\n\
GET /docs HTTP/1.1\r\nHost: a.example\r\n\r\n\
POST /x HTTP/1.1\r\nHost: a.example\r\nContent-Length: 5\r\n\r\nhello\
GET /x HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n",
        fast: 2.0,
    },
    Case {
        name: "no rule: 404",
        bytes: b"GET /nothing HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n",
        fast: 0.0,
    },
    Case {
        name: "a pool redirect",
        bytes: b"GET /pool/a HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n",
        fast: 0.0,
    },
    Case {
        name: "HTTP/1.0",
        bytes: b"GET /x HTTP/1.0\r\nHost: a.example\r\n\r\n",
        fast: 0.0,
    },
    Case {
        name: "two Host fields",
        bytes: b"GET /x HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
        fast: 0.0,
    },
    Case {
        name: "an absolute-form target",
        bytes: b"GET http://a.example/x HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n",
        fast: 0.0,
    },
    Case {
        name: "a path above the root",
        bytes: b"GET /../x HTTP/1.1\r\nHost: a.example\r\n\r\n",
        fast: 0.0,
    },
    Case {
        name: "a body on a GET",
        bytes: b"GET /x HTTP/1.1\r\nHost: a.example\r\nContent-Length: 2\r\nConnection: close\r\n\r\nab",
        fast: 0.0,
    },
    Case {
        name: "a malformed head after a redirect",
        bytes: b"GET /x HTTP/1.1\r\nHost: a.example\r\n\r\nGET /x HTTP/1.1\r\nHost a.example\r\n\r\n",
        fast: 1.0,
    },
];

#[test]
fn both_paths_answer_count_and_log_alike() {
    let (fast, slow) = proxies();
    let mut lines = 0;
    for case in CASES {
        let before = counter(&fast, "pingora_redirect_fast_path_requests_total");
        let a = without_dates(&exchange(fast.port, case.bytes));
        let b = without_dates(&exchange(slow.port, case.bytes));
        assert_eq!(
            a, b,
            "{}: the fast path's bytes differ from Pingora's",
            case.name
        );
        assert!(a.starts_with("HTTP/1.1 "), "{}: {a}", case.name);
        let answered = counter(&fast, "pingora_redirect_fast_path_requests_total") - before;
        assert_eq!(answered, case.fast, "{}: fast-path answers", case.name);
        lines += a.matches("HTTP/1.1 ").count();
    }
    assert_eq!(
        counter(&slow, "pingora_redirect_fast_path_requests_total"),
        0.0,
        "fast_path = false answers nothing there"
    );
    for series in [
        "pingora_redirect_requests_total{outcome=\"redirect\"}",
        "pingora_redirect_requests_total{outcome=\"not_found\"}",
        "pingora_redirect_requests_total{outcome=\"bad_request\"}",
        "pingora_redirect_hits_total{rule=\"exact\",status=\"301\"}",
        "pingora_redirect_hits_total{rule=\"suffix\",status=\"308\"}",
        "pingora_redirect_hits_total{rule=\"template\",status=\"302\"}",
        "pingora_redirect_hits_total{rule=\"regex\",status=\"303\"}",
        "pingora_redirect_hits_total{rule=\"beta\",status=\"307\"}",
        "pingora_redirect_hits_total{rule=\"stable\",status=\"301\"}",
        "pingora_redirect_hits_total{rule=\"html\",status=\"307\"}",
        "pingora_redirect_request_duration_seconds_count{outcome=\"redirect\"}",
    ] {
        assert_eq!(counter(&fast, series), counter(&slow, series), "{series}");
    }
    assert_eq!(
        counter(
            &fast,
            "pingora_redirect_hits_total{rule=\"exact\",status=\"301\"}"
        ),
        10.0
    );
    assert_eq!(log_lines(&fast, lines), log_lines(&slow, lines));
}

/// One GET of `/x` on a new connection: its status.
fn get_x(proxy: &Proxy) -> u16 {
    let mut c = proxy.connect();
    c.send(b"GET /x HTTP/1.1\r\nHost: a.example\r\n\r\n");
    c.read_response(false).status
}

#[test]
fn turning_it_off_takes_effect_at_a_reload() {
    let mut fast = Proxy::start(RULES);
    assert_eq!(get_x(&fast), 301);
    assert_eq!(
        counter(&fast, "pingora_redirect_fast_path_requests_total"),
        1.0
    );
    let reloads = "pingora_redirect_config_reloads_total{result=\"success\"}";
    let before = counter(&fast, reloads);
    let config = std::fs::read_to_string(&fast.config_path).unwrap();
    let off = config.replacen("[server]\n", "[server]\nfast_path = false\n", 1);
    std::fs::write(&fast.config_path, off).unwrap();
    send_signal(proxy_pid(&fast), SIGHUP, "HUP");
    expect_metric(fast.admin_port, reloads, Some(before + 1.0));
    assert_eq!(get_x(&fast), 301);
    assert_eq!(
        counter(&fast, "pingora_redirect_fast_path_requests_total"),
        1.0,
        "after the reload Pingora answers"
    );
    assert_eq!(
        counter(
            &fast,
            "pingora_redirect_hits_total{rule=\"exact\",status=\"301\"}"
        ),
        2.0
    );
    fast.stop();
}

#[test]
fn a_keep_alive_connection_goes_on_after_each_fast_answer() {
    let (fast, _slow) = proxies();
    let mut c = fast.connect();
    for i in 0..3 {
        c.send(b"GET /docs/k HTTP/1.1\r\nHost: a.example\r\n\r\n");
        let r = c.read_response(false);
        assert_eq!(r.status, 308, "request {i}");
        assert_eq!(r.header("Location"), Some("https://docs.example/v2/k"));
        assert_eq!(r.header("Connection"), Some("keep-alive"));
    }
    // Then one Pingora answers on the same connection.
    c.send(b"POST /x HTTP/1.1\r\nHost: a.example\r\nContent-Length: 0\r\n\r\n");
    let r = c.read_response(false);
    assert_eq!(r.status, 308);
    assert_eq!(r.header("Location"), Some("https://new.example/y"));
    assert_eq!(
        counter(&fast, "pingora_redirect_fast_path_requests_total"),
        3.0
    );
}

/// With `h2c = true`, a connection the fast path served first stays
/// HTTP/1.1, as Pingora's own keep-alive connections do: an HTTP/2 preface
/// after a redirect is a malformed HTTP/1.1 head, not a switch of protocol.
#[test]
fn with_h2c_a_served_connection_does_not_switch_to_http2() {
    let fast = Proxy::start_with("h2c = true", RULES);
    let slow = Proxy::start_with("h2c = true\nfast_path = false", RULES);
    let bytes: &[u8] =
        b"GET /x HTTP/1.1\r\nHost: a.example\r\n\r\nPRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let a = without_dates(&exchange(fast.port, bytes));
    let b = without_dates(&exchange(slow.port, bytes));
    assert_eq!(a, b);
    assert!(
        a.starts_with("HTTP/1.1 301 ") && a.contains("HTTP/1.1 400 "),
        "{a}"
    );
    assert_eq!(
        counter(&fast, "pingora_redirect_fast_path_requests_total"),
        1.0
    );
}
