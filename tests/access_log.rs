//! The access log (docs/operations.md, "Access log"): one line per request,
//! fields exact, in `combined` and `json`, whatever bytes a client sends;
//! rotation by SIGUSR1 with no line lost; a writer that cannot keep up
//! (a FIFO nobody reads) drops lines and counts them while requests keep
//! being answered. Also the latency and upstream metrics that go with it.

mod support;

use regex::Regex;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::*;

const RULES: &str = r#"
[[redirect]]
id = "old"
host = "a.example"
path = "/old"
to = "https://new.example/x"
status = 301

[[redirect]]
id = "p"
host = "a.example"
prefix = "/p"
to = "https://new.example/p"
status = 301
"#;

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Polls until `path` holds exactly `n` lines (a few more would show at
/// once: lines never come twice).
fn wait_lines(path: &Path, n: usize) -> Vec<String> {
    let mut last = Vec::new();
    let got = poll_until(Duration::from_secs(10), || {
        last = lines(path);
        (last.len() >= n).then_some(())
    });
    assert!(
        got.is_some(),
        "{} lines in {}, expected {n}:\n{}",
        last.len(),
        path.display(),
        last.join("\n")
    );
    assert_eq!(last.len(), n, "{}", last.join("\n"));
    last
}

fn send(proxy: &Proxy, raw: &[u8]) -> RawResponse {
    let mut c = proxy.connect();
    c.send(raw);
    c.read_response(false)
}

fn start(backend: &Backend, format: &str) -> Proxy {
    Proxy::start_with(
        "header_timeout = \"300ms\"",
        &format!(
            "[log]\naccess = \"access.log\"\nformat = \"{format}\"\n\n[upstream]\nbackends = [\"{}\"]\n{RULES}",
            backend.addr()
        ),
    )
}

/// The requests every format test sends, with what each line must say
/// (`bytes` is the body length the client received).
fn traffic(proxy: &Proxy, backend: &mut Backend) -> Vec<Value> {
    let ua = "curl/8 \"quoted\" \\ back";
    let redirect = send(
        proxy,
        format!("GET /old?q=1 HTTP/1.1\r\nHost: a.example\r\nUser-Agent: {ua}\r\nReferer: https://ref.example/\r\n\r\n").as_bytes(),
    );
    assert_eq!(redirect.status, 301);
    let proxied = send(proxy, b"GET /page HTTP/1.1\r\nHost: b.example\r\n\r\n");
    assert_eq!(proxied.status, 200);
    assert_eq!(proxied.body, backend.answer().as_bytes());
    let bad = send(proxy, b"GET /../x HTTP/1.1\r\nHost: a.example\r\n\r\n");
    assert_eq!(bad.status, 400);
    backend.stop();
    let failed = send(
        proxy,
        b"POST /form HTTP/1.1\r\nHost: b.example\r\nContent-Length: 2\r\n\r\nab",
    );
    assert_eq!(failed.status, 502);
    vec![
        json!({"method": "GET", "path": "/old?q=1", "host": "a.example", "status": 301, "bytes": redirect.body.len(), "outcome": "redirect", "rule": "old", "location": "https://new.example/x?q=1", "backend": null, "upstream_status": null, "user_agent": ua, "referer": "https://ref.example/"}),
        json!({"method": "GET", "path": "/page", "host": "b.example", "status": 200, "bytes": proxied.body.len(), "outcome": "proxy", "rule": null, "location": null, "backend": backend.addr(), "upstream_status": 200, "user_agent": null, "referer": null}),
        json!({"method": "GET", "path": "/../x", "host": "a.example", "status": 400, "bytes": bad.body.len(), "outcome": "bad_request", "rule": null, "location": null, "backend": null, "upstream_status": null, "user_agent": null, "referer": null}),
        json!({"method": "POST", "path": "/form", "host": "b.example", "status": 502, "bytes": failed.body.len(), "outcome": "proxy", "rule": null, "location": null, "backend": backend.addr(), "upstream_status": null, "user_agent": null, "referer": null}),
    ]
}

/// The one line that `wanted` picks; fails unless exactly one does.
fn line_of<'a>(lines: &'a [String], wanted: impl Fn(&str) -> bool, what: &str) -> &'a str {
    let found: Vec<&String> = lines.iter().filter(|l| wanted(l)).collect();
    assert_eq!(found.len(), 1, "lines for {what}:\n{}", lines.join("\n"));
    found[0]
}

#[test]
fn json_lines_say_exactly_what_each_request_got() {
    let mut backend = Backend::start("up");
    let proxy = start(&backend, "json");
    let want = traffic(&proxy, &mut backend);
    let log = proxy.dir.path.join("access.log");
    let got = wait_lines(&log, want.len());
    // Lines are written in the order requests end, which two worker threads
    // need not keep: each is found by its path.
    let parsed: Vec<Value> = got
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    for want in &want {
        let matching: Vec<&Value> = parsed
            .iter()
            .filter(|v| v["path"] == want["path"])
            .collect();
        assert_eq!(matching.len(), 1, "{want}:\n{}", got.join("\n"));
        let v = matching[0];
        for (k, w) in want.as_object().expect("object") {
            assert_eq!(&v[k], w, "{k} in {v}");
        }
        assert_eq!(v["client"], "127.0.0.1", "{v}");
        assert_eq!(v["scheme"], "http", "{v}");
        assert_eq!(v["protocol"], "HTTP/1.1", "{v}");
        assert!(v["duration_ms"].as_f64().is_some_and(|d| d >= 0.0), "{v}");
        let time = v["time"].as_str().expect("time");
        assert!(
            time::OffsetDateTime::parse(time, &time::format_description::well_known::Rfc3339)
                .is_ok(),
            "{time}"
        );
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "time",
                "client",
                "method",
                "scheme",
                "host",
                "path",
                "protocol",
                "status",
                "bytes",
                "duration_ms",
                "outcome",
                "rule",
                "location",
                "backend",
                "upstream_status",
                "user_agent",
                "referer"
            ]
        );
    }

    // The latency and upstream metrics of the same requests.
    let m = |s: &str| metric(proxy.admin_port, s);
    assert_eq!(
        m(r#"pingora_redirect_request_duration_seconds_count{outcome="redirect"}"#),
        Some(1.0)
    );
    assert_eq!(
        m(r#"pingora_redirect_request_duration_seconds_count{outcome="proxy"}"#),
        Some(2.0)
    );
    assert_eq!(
        m(r#"pingora_redirect_request_duration_seconds_count{outcome="bad_request"}"#),
        Some(1.0)
    );
    let b = backend.addr();
    assert_eq!(
        m(&format!(
            r#"pingora_redirect_upstream_responses_total{{backend="{b}",code="2xx"}}"#
        )),
        Some(1.0)
    );
    assert_eq!(
        m(&format!(
            r#"pingora_redirect_upstream_responses_total{{backend="{b}",code="error"}}"#
        )),
        Some(1.0)
    );
    assert_eq!(m("pingora_redirect_access_log_dropped_total"), Some(0.0));
}

#[test]
fn combined_lines_follow_the_nginx_format_and_four_fields_more() {
    let mut backend = Backend::start("up");
    let proxy = start(&backend, "combined");
    let want = traffic(&proxy, &mut backend);
    let log = proxy.dir.path.join("access.log");
    let got = wait_lines(&log, want.len());
    let line = Regex::new(
        r#"^(\S+) - - \[(\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000)\] "([^"]*)" (\d{3}) (\d+) "([^"]*)" "([^"]*)" (\d+\.\d{6}) (\S+) (\S+) (\S+)$"#,
    )
    .unwrap();
    let b = backend.addr();
    let bytes = |i: usize| want[i]["bytes"].to_string();
    let expected = [
        (
            "GET /old?q=1 HTTP/1.1",
            "301",
            bytes(0),
            "https://ref.example/",
            r"curl/8 \x22quoted\x22 \x5C back",
            "redirect",
            "old",
            "-",
        ),
        (
            "GET /page HTTP/1.1",
            "200",
            bytes(1),
            "-",
            "-",
            "proxy",
            "-",
            b.as_str(),
        ),
        (
            "GET /../x HTTP/1.1",
            "400",
            bytes(2),
            "-",
            "-",
            "bad_request",
            "-",
            "-",
        ),
        (
            "POST /form HTTP/1.1",
            "502",
            bytes(3),
            "-",
            "-",
            "proxy",
            "-",
            b.as_str(),
        ),
    ];
    for e in expected {
        let l = line_of(&got, |l| l.contains(&format!("\"{}\"", e.0)), e.0);
        let c = line
            .captures(l)
            .unwrap_or_else(|| panic!("not a combined line: {l}"));
        assert_eq!(&c[1], "127.0.0.1", "{l}");
        assert_eq!(
            (&c[3], &c[4], &c[5], &c[6], &c[7], &c[9], &c[10], &c[11]),
            (e.0, e.1, e.2.as_str(), e.3, e.4, e.5, e.6, e.7),
            "{l}"
        );
    }
}

#[test]
fn no_request_bytes_can_forge_or_split_a_line() {
    let backend = Backend::start("up");
    for format in ["json", "combined"] {
        let proxy = start(&backend, format);
        let big = "u".repeat(64 * 1024);
        let cases: Vec<(Vec<u8>, &[u8], String)> = vec![
            // (the raw request, the path as logged, the user agent as sent)
            (
                b"GET /p/a\"b'c\\d HTTP/1.1\r\nHost: a.example\r\nUser-Agent: x\"y\r\n\r\n".to_vec(),
                b"/p/a\"b'c\\d",
                "x\"y".into(),
            ),
            (
                b"GET /p/tab HTTP/1.1\r\nHost: a.example\r\nUser-Agent: a\tb \xff\xfe end\r\n\r\n".to_vec(),
                b"/p/tab",
                "a\tb \u{ff}\u{fe} end".into(),
            ),
            (
                format!("GET /p/big HTTP/1.1\r\nHost: a.example\r\nUser-Agent: {big}\r\n\r\n").into_bytes(),
                b"/p/big",
                big.clone(),
            ),
            (
                b"GET /p/x%0D%0AForged:%20line HTTP/1.1\r\nHost: a.example\r\nUser-Agent: \"\r\n\r\n".to_vec(),
                b"/p/x%0D%0AForged:%20line",
                "\"".into(),
            ),
        ];
        for (raw, _, _) in &cases {
            let r = send(&proxy, raw);
            assert_eq!(r.status, 301, "{}", String::from_utf8_lossy(&raw[..40]));
        }
        // A NUL or a raw CR in the head: Pingora refuses the request, and
        // its line says so without a request line.
        let r = send(
            &proxy,
            b"GET /nul HTTP/1.1\r\nHost: a.example\r\nUser-Agent: a\x00b\r\n\r\n",
        );
        assert_eq!(r.status, 400);
        let log = proxy.dir.path.join("access.log");
        let got = wait_lines(&log, cases.len() + 1);
        for line in &got {
            assert!(!line.contains('\r'), "{line:?}");
            if format == "combined" {
                // The only raw `"` are the six delimiters of the format, and
                // every byte is printable ASCII.
                assert_eq!(line.matches('"').count(), 6, "{line}");
                assert!(line.bytes().all(|b| (0x20..0x7f).contains(&b)), "{line:?}");
            }
        }
        if format == "json" {
            let parsed: Vec<Value> = got
                .iter()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
                .collect();
            for (_, path, ua) in &cases {
                let v = parsed
                    .iter()
                    .find(|v| v["path"].as_str().map(str::as_bytes) == Some(*path))
                    .unwrap_or_else(|| panic!("no line for {}", String::from_utf8_lossy(path)));
                assert_eq!(v["user_agent"], ua.as_str(), "{v}");
                assert_eq!(v["status"], 301, "{v}");
            }
            let refused: Vec<&Value> = parsed.iter().filter(|v| v["method"].is_null()).collect();
            assert_eq!(refused.len(), 1, "{}", got.join("\n"));
            assert_eq!(refused[0]["status"], 400);
            assert_eq!(refused[0]["outcome"], "bad_request");
        } else {
            let expected = [
                r#""GET /p/a\x22b'c\x5Cd HTTP/1.1" 301"#.to_string(),
                r#""GET /p/tab HTTP/1.1" 301"#.to_string(),
                r#""GET /p/x%0D%0AForged:%20line HTTP/1.1" 301"#.to_string(),
                r#""GET /p/big HTTP/1.1" 301"#.to_string(),
                r#""-" 400 "#.to_string(),
            ];
            for e in &expected {
                line_of(&got, |l| l.contains(e.as_str()), e);
            }
            let tab = line_of(&got, |l| l.contains("/p/tab"), "/p/tab");
            assert!(tab.contains(r#" "-" "a\x09b \xFF\xFE end" "#), "{tab}");
            let quote = line_of(&got, |l| l.contains("Forged"), "Forged");
            assert!(quote.contains(r#""-" "\x22" "#), "{quote}");
        }
    }
}

#[test]
fn sigusr1_reopens_the_file_and_no_line_is_lost() {
    let backend = Backend::start("up");
    let proxy = start(&backend, "combined");
    let log = proxy.dir.path.join("access.log");
    let rotated = proxy.dir.path.join("access.log.1");
    for _ in 0..20 {
        assert_eq!(
            send(&proxy, b"GET /old HTTP/1.1\r\nHost: a.example\r\n\r\n").status,
            301
        );
    }
    wait_lines(&log, 20);
    std::fs::rename(&log, &rotated).expect("rotate");
    send_signal(proxy_pid(&proxy), SIGUSR1, "USR1");
    // Requests keep coming; once the writer has reopened, they reach the new
    // file. Every request has its line in one of the two.
    let mut sent = 20;
    let reopened = poll_until(Duration::from_secs(10), || {
        assert_eq!(
            send(&proxy, b"GET /old HTTP/1.1\r\nHost: a.example\r\n\r\n").status,
            301
        );
        sent += 1;
        (!lines(&log).is_empty()).then_some(())
    });
    assert!(reopened.is_some(), "no new file after SIGUSR1");
    for _ in 0..20 {
        assert_eq!(
            send(&proxy, b"GET /old HTTP/1.1\r\nHost: a.example\r\n\r\n").status,
            301
        );
        sent += 1;
    }
    let total = poll_until(Duration::from_secs(10), || {
        let n = lines(&rotated).len() + lines(&log).len();
        (n == sent).then_some(n)
    });
    assert_eq!(
        total,
        Some(sent),
        "{} + {} lines for {sent} requests",
        lines(&rotated).len(),
        lines(&log).len()
    );
    assert!(lines(&log).len() >= 20);
}

/// Sends `n` keep-alive GETs of `/old` (h2load, 4 connections, 8 in flight
/// on each) and asserts that every one got its 3xx.
fn redirects_under_load(proxy: &Proxy, n: u32) {
    let out = Command::new("h2load")
        .args(["--h1", "-n", &n.to_string(), "-c", "4", "-m", "8"])
        .args(["-H", ":authority: a.example"])
        .arg(proxy.url("/old"))
        .output()
        .expect("run h2load (Debian's nghttp2-client package)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("status codes: 0 2xx, {n} 3xx, 0 4xx, 0 5xx")),
        "{stdout}"
    );
}

#[test]
fn a_writer_that_cannot_keep_up_drops_lines_and_requests_go_on() {
    let backend = Backend::start("up");
    let dir = TempDir::new("fifo");
    let fifo = dir.path.join("stuck.log");
    let ok = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(ok.success());
    let proxy = Proxy::start(&format!(
        "[log]\naccess = {}\n\n[upstream]\nbackends = [\"{}\"]\n{RULES}",
        toml_str(&fifo.display().to_string()),
        backend.addr()
    ));
    // Nobody reads the FIFO: the writer cannot even open it. Far more
    // requests than the buffers hold (two worker threads, 4 MiB each, lines
    // of over 100 bytes: at most 83,886 lines) are all answered.
    let n = 200_000;
    redirects_under_load(&proxy, n);
    let dropped = metric(
        proxy.admin_port,
        "pingora_redirect_access_log_dropped_total",
    )
    .expect("the dropped-lines counter");
    assert!(dropped >= f64::from(n - 83_886), "dropped {dropped} of {n}");
    // A reader comes: the writer opens the FIFO and writes what it held.
    // Every request is a line read or a line counted as dropped.
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let f = std::fs::File::open(&fifo).expect("open the FIFO for reading");
            let mut lines = 0u32;
            for line in std::io::BufRead::lines(std::io::BufReader::new(f)) {
                let line = line.expect("a line");
                assert!(line.contains("\"GET /old HTTP/1.1\" 301 "), "{line}");
                lines += 1;
                if f64::from(lines) + dropped == f64::from(n) {
                    break;
                }
            }
            lines
        })
    };
    let read = poll_until(Duration::from_secs(30), || {
        reader.is_finished().then_some(())
    });
    assert!(
        read.is_some(),
        "the held lines did not all come out of the FIFO"
    );
    let lines = reader.join().expect("the reader");
    assert_eq!(f64::from(lines) + dropped, f64::from(n));
}

#[test]
fn a_full_disk_is_reported_once_and_requests_go_on() {
    // /dev/full opens and refuses every write with ENOSPC, as a full disk.
    let proxy = Proxy::start(&format!("[log]\naccess = \"/dev/full\"\n{RULES}"));
    let n = 20_000;
    redirects_under_load(&proxy, n);
    let complaint = "access log: cannot write to /dev/full: No space left on device";
    let said = poll_until(Duration::from_secs(10), || {
        proxy.stderr().contains(complaint).then_some(())
    });
    assert!(said.is_some(), "no complaint\n{}", proxy.stderr());
    // The writer tries again every 10 ms and fails every time; more
    // requests fail again. One complaint a minute, not one per request.
    redirects_under_load(&proxy, 2_000);
    let stderr = proxy.stderr();
    assert_eq!(stderr.matches(complaint).count(), 1, "{stderr}");
}

#[test]
fn a_reload_applies_a_changed_log_section() {
    let backend = Backend::start("up");
    let upstream = format!("[upstream]\nbackends = [\"{}\"]\n{RULES}", backend.addr());
    let proxy = Proxy::start(&upstream);
    let pid = proxy_pid(&proxy);
    let log = proxy.dir.path.join("access.log");
    let get = |path: &str| {
        let r = send(
            &proxy,
            format!("GET {path} HTTP/1.1\r\nHost: a.example\r\n\r\n").as_bytes(),
        );
        assert_eq!(r.status, 301);
    };
    let reload_with = |log_section: &str, n: f64| {
        let text = format!(
            "{}\n{log_section}\n{upstream}",
            server_section(&proxy.dir.path, proxy.port, proxy.admin_port, "")
        );
        std::fs::write(&proxy.config_path, text).expect("write the configuration");
        send_signal(pid, SIGHUP, "HUP");
        expect_metric(
            proxy.admin_port,
            r#"pingora_redirect_config_reloads_total{result="success"}"#,
            Some(n),
        );
    };
    // Off: nothing is written.
    get("/old?off");
    reload_with("[log]\naccess = \"access.log\"\nformat = \"json\"", 1.0);
    get("/old?json");
    let got = wait_lines(&log, 1);
    let v: Value = serde_json::from_str(&got[0]).expect("a JSON line");
    assert_eq!(v["path"], "/old?json");
    // The format changes with the next reload; the file is appended to.
    reload_with("[log]\naccess = \"access.log\"\nformat = \"combined\"", 2.0);
    get("/old?combined");
    let got = wait_lines(&log, 2);
    assert!(
        got[1].contains("\"GET /old?combined HTTP/1.1\" 301 "),
        "{}",
        got[1]
    );
    // And off again.
    reload_with("[log]\naccess = \"off\"", 3.0);
    get("/old?off-again");
    get("/old?combined-check");
    assert_eq!(lines(&log).len(), 2);
    // A [log] whose directory is missing is a failed reload: the running
    // configuration stays, and says where.
    let text = format!(
        "{}\n[log]\naccess = \"missing/access.log\"\n{upstream}",
        server_section(&proxy.dir.path, proxy.port, proxy.admin_port, "")
    );
    std::fs::write(&proxy.config_path, text).expect("write the configuration");
    send_signal(pid, SIGHUP, "HUP");
    expect_metric(
        proxy.admin_port,
        r#"pingora_redirect_config_reloads_total{result="failure"}"#,
        Some(1.0),
    );
    let err = poll_until(Duration::from_secs(10), || {
        proxy
            .stderr()
            .lines()
            .find(|l| l.contains("error[io]") && l.contains("missing"))
            .map(str::to_string)
    })
    .expect("the reload error on stderr");
    assert!(
        err.contains(&format!("{}:", proxy.config_path.display()))
            && err.contains("does not exist"),
        "{err}"
    );
}

#[test]
fn answers_written_before_a_request_line_have_lines_too() {
    // A head that stops arriving gets 408.
    let backend = Backend::start("up");
    let proxy = start(&backend, "json");
    let mut c = proxy.connect();
    c.send(b"GET /old HTTP/1.1\r\nHost: a.ex");
    let r = c.read_response(false);
    assert_eq!(r.status, 408);
    let log = proxy.dir.path.join("access.log");
    let got = wait_lines(&log, 1);
    let v: Value = serde_json::from_str(&got[0]).expect("JSON");
    assert_eq!(
        (
            &v["status"],
            &v["bytes"],
            &v["outcome"],
            &v["method"],
            &v["path"]
        ),
        (
            &json!(408),
            &json!(r.body.len()),
            &json!("bad_request"),
            &Value::Null,
            &Value::Null
        ),
        "{v}"
    );
    drop(proxy);

    // A full listener answers 503 and closes.
    let proxy = Proxy::start_with(
        "max_connections = 1",
        &format!("[log]\naccess = \"access.log\"\nformat = \"json\"\n{RULES}"),
    );
    let open = format!(
        "pingora_redirect_connections{{listener=\"127.0.0.1:{}\"}}",
        proxy.port
    );
    // Once the start-up probe's connection is closed, one request was
    // served and no connection is open, the slot is this test's alone.
    poll_until(Duration::from_secs(10), || {
        (metric(proxy.admin_port, &open) == Some(0.0)).then_some(())
    })
    .expect("no connection open");
    assert_eq!(
        send(
            &proxy,
            b"GET /old HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n"
        )
        .status,
        301
    );
    poll_until(Duration::from_secs(10), || {
        (metric(proxy.admin_port, &open) == Some(0.0)).then_some(())
    })
    .expect("no connection open");
    let mut held = proxy.connect();
    held.send(b"GET /old HTTP/1.1\r\n");
    poll_until(Duration::from_secs(10), || {
        (metric(proxy.admin_port, &open) == Some(1.0)).then_some(())
    })
    .expect("the held connection open");
    let refused = send(&proxy, b"GET /old HTTP/1.1\r\nHost: a.example\r\n\r\n");
    assert_eq!(refused.status, 503);
    let log = proxy.dir.path.join("access.log");
    let got = wait_lines(&log, 2);
    let v: Value =
        serde_json::from_str(line_of(&got, |l| !l.contains("\"GET\""), "the 503")).expect("JSON");
    assert_eq!(
        (&v["status"], &v["bytes"], &v["outcome"], &v["method"]),
        (
            &json!(503),
            &json!(refused.body.len()),
            &json!("rejected"),
            &Value::Null
        ),
        "{v}"
    );
    drop(held);
}

#[test]
fn http2_requests_are_logged_with_their_protocol_and_authority() {
    let proxy = Proxy::start_with(
        "h2c = true",
        &format!("[log]\naccess = \"access.log\"\nformat = \"json\"\n{RULES}"),
    );
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{size_download}",
        ])
        .args(["--http2-prior-knowledge", "-A", "h2-agent"])
        .args(["-H", "Host: a.example"])
        .arg(proxy.url("/old?h2"))
        .output()
        .expect("run curl");
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    let (code, size) = printed.split_once(' ').expect("code and size");
    assert_eq!(code, "301", "{printed}");
    let got = wait_lines(&proxy.dir.path.join("access.log"), 1);
    let v: Value = serde_json::from_str(&got[0]).expect("JSON");
    assert_eq!(
        (
            &v["protocol"],
            &v["host"],
            &v["path"],
            &v["status"],
            &v["bytes"],
            &v["rule"],
            &v["user_agent"]
        ),
        (
            &json!("HTTP/2.0"),
            &json!("a.example"),
            &json!("/old?h2"),
            &json!(301),
            &json!(size.parse::<u64>().expect("size")),
            &json!("old"),
            &json!("h2-agent")
        ),
        "{v}"
    );
}

#[test]
fn every_line_is_in_the_file_once_the_process_has_exited() {
    for signal in ["-INT", "-TERM"] {
        let backend = Backend::start("up");
        let mut proxy = start(&backend, "combined");
        let n = 300;
        let out = Command::new("h2load")
            .args(["--h1", "-n", &n.to_string(), "-c", "2"])
            .args(["-H", ":authority: a.example"])
            .arg(proxy.url("/old"))
            .output()
            .expect("run h2load (Debian's nghttp2-client package)");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains(&format!("{n} 3xx")), "{stdout}");
        // Stopped right after the last answer.
        let pid = proxy_pid(&proxy);
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let exited = proxy.stop().expect("an exit status");
        assert!(exited.success(), "{signal}: {exited}");
        let log = lines(&proxy.dir.path.join("access.log"));
        assert_eq!(log.len(), n, "{signal}");
    }
}
