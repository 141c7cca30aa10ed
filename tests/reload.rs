mod support;

// Integration tests of configuration reload and graceful upgrade
// (docs/operations.md, the reload metrics of docs/metrics.md), run against the built binary
// (`pingora-redirect serve`): SIGHUP with good and broken configurations,
// `watch = true` with editors that rename a new file over the old one,
// upstream / pool / maintenance swaps, a proxied request in flight across a
// swap, a listener change that needs a restart, and a load run across 20
// reloads and one `serve --upgrade` + SIGQUIT hand-over with zero failed
// requests.
//
// Processes are found by their pid under `/proc` (children of this test
// process whose command line names the test's own configuration file) and
// signalled with `kill`; a signal is only sent once `/proc/PID/status` shows
// the process catches it (the default action of SIGHUP and SIGQUIT would
// end the process).

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::{
    catches, expect_metric, find_serve, has_exited, metric, poll_until, proxy_pid, send_signal,
    server_section, toml_str, Backend, Proxy, RawResponse, TempDir, Upgraded, IO_TIMEOUT, POLL,
    SIGHUP, SIGQUIT, START_DEADLINE,
};

/// How long a reload (SIGHUP or a watched change) may take to show.
const RELOAD_DEADLINE: Duration = Duration::from_secs(10);

const SUCCESS: &str = r#"pingora_redirect_config_reloads_total{result="success"}"#;
const FAILURE: &str = r#"pingora_redirect_config_reloads_total{result="failure"}"#;
const LAST_OK: &str = "pingora_redirect_config_last_reload_successful";
const LAST_SUCCESS_TS: &str = "pingora_redirect_config_last_reload_success_timestamp_seconds";

fn rules_series(kind: &str) -> String {
    format!("pingora_redirect_rules{{kind=\"{kind}\"}}")
}

fn outcome_series(outcome: &str) -> String {
    format!("pingora_redirect_requests_total{{outcome=\"{outcome}\"}}")
}

// ---------------------------------------------------------------------------
// Configuration files

/// The whole configuration file of `proxy` with `[server]` extra lines and
/// `sections`, laid out as `Proxy::start_with` lays it out.
fn config_text(proxy: &Proxy, server_extra: &str, sections: &str) -> String {
    format!(
        "{}\n{sections}\n",
        server_section(&proxy.dir.path, proxy.port, proxy.admin_port, server_extra)
    )
}

/// Replaces `path` the way editors and deployment tools do: writes a new file
/// next to it, then renames it over the old one (readers never see half a
/// file).
fn replace_file(path: &Path, contents: &str) {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .expect("file name");
    let tmp = path.with_file_name(format!(
        ".{name}.tmp{}",
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::write(&tmp, contents).expect("write the new file");
    std::fs::rename(&tmp, path).expect("rename it over the old one");
}

/// Rewrites the configuration of `proxy` (same `[server]` section).
fn rewrite(proxy: &Proxy, server_extra: &str, sections: &str) -> String {
    let text = config_text(proxy, server_extra, sections);
    replace_file(&proxy.config_path, &text);
    text
}

/// The 1-based line of `text` that is exactly `line`.
fn line_of(text: &str, line: &str) -> usize {
    let found: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| *l == line)
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(found.len(), 1, "test setup: {line:?} in\n{text}");
    found[0]
}

// ---------------------------------------------------------------------------
// Processes and signals

fn hup(pid: u32) {
    send_signal(pid, SIGHUP, "HUP");
}

/// Sends SIGHUP and waits until the reload counter `series` reaches `n`.
fn hup_and_wait(pid: u32, admin_port: u16, series: &str, n: u32) {
    hup(pid);
    expect_metric(admin_port, series, Some(f64::from(n)));
}

/// What `proxy` wrote to stderr after byte `from`.
fn stderr_since(proxy: &Proxy, from: usize) -> String {
    let all = proxy.stderr();
    all.get(from..).unwrap_or_default().to_string()
}

/// Polls the stderr of `proxy` (after byte `from`) for a line that contains
/// every one of `needles`; returns that line.
fn expect_stderr_line(proxy: &Proxy, from: usize, needles: &[&str]) -> String {
    let found = poll_until(RELOAD_DEADLINE, || {
        stderr_since(proxy, from)
            .lines()
            .find(|l| needles.iter().all(|n| l.contains(n)))
            .map(str::to_string)
    });
    found.unwrap_or_else(|| {
        panic!(
            "no stderr line with all of {needles:?}; stderr since the reload:\n{}",
            stderr_since(proxy, from)
        )
    })
}

// ---------------------------------------------------------------------------
// Requests

/// One `GET path` with `Connection: close` on a fresh connection, read to the
/// end of the stream and parsed leniently (proxied answers included);
/// `None` when the connection fails.
fn try_get(port: u16, path: &str) -> Option<RawResponse> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(IO_TIMEOUT)).ok()?;
    s.set_write_timeout(Some(IO_TIMEOUT)).ok()?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: reload.test\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .ok()?;
    let mut buf = Vec::new();
    let end = Instant::now() + IO_TIMEOUT;
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset && !buf.is_empty() => break,
            Err(_) => return None,
        }
        if Instant::now() >= end {
            return None;
        }
    }
    support::parse_response(&buf, false)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `GET path`, which must be answered.
fn get(port: u16, path: &str) -> RawResponse {
    try_get(port, path).unwrap_or_else(|| panic!("GET {path}: no answer on port {port}"))
}

/// The status and Location of `GET path`.
fn redirect_of(port: u16, path: &str) -> (u16, Option<String>) {
    let r = get(port, path);
    (r.status, r.header("location").map(str::to_string))
}

/// Polls `GET path` until it is answered `status` with Location `location`.
fn expect_redirect(port: u16, path: &str, status: u16, location: &str) {
    let mut last = None;
    let got = poll_until(RELOAD_DEADLINE, || {
        let r = redirect_of(port, path);
        let ok = r.0 == status && r.1.as_deref() == Some(location);
        last = Some(r);
        ok.then_some(())
    });
    assert!(
        got.is_some(),
        "GET {path}: last answer {last:?}, expected {status} {location}"
    );
}

/// The Unix time now, in whole seconds.
fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as f64
}

/// Waits until the wall clock is past second `ts` (the reload timestamps
/// have a resolution of one second; at most about one second).
fn wait_past_second(ts: f64) {
    assert!(
        poll_until(Duration::from_secs(3), || (unix_now() > ts).then_some(())).is_some(),
        "the clock does not pass {ts}"
    );
}

// ---------------------------------------------------------------------------
// 1. SIGHUP applies a new rule set

const RULES_BEFORE: &str = r#"
[[redirect]]
id = "moving"
path = "/moving"
to = "https://before.example.com/moving-before"

[[redirect]]
id = "docs"
prefix = "/docs"
to = "https://before.example.com/documentation"
status = 301
"#;

const RULES_AFTER: &str = r#"
[[redirect]]
id = "moving"
path = "/moving"
to = "https://after.example.com/moved-here"
status = 308

[[redirect]]
id = "added"
path = "/added"
to = "https://after.example.com/added-here"

[[redirect]]
id = "article"
regex = "^/article/(?P<n>[0-9]+)$"
to = "https://after.example.com/a/${n}"
"#;

#[test]
fn sighup_applies_a_new_rule_set() {
    let proxy = Proxy::start(RULES_BEFORE);
    let (port, admin) = (proxy.port, proxy.admin_port);
    let pid = proxy_pid(&proxy);

    // After a clean start.
    assert_eq!(metric(admin, SUCCESS), Some(0.0));
    assert_eq!(metric(admin, FAILURE), Some(0.0));
    assert_eq!(metric(admin, LAST_OK), Some(1.0));
    assert_eq!(metric(admin, &rules_series("exact")), Some(1.0));
    assert_eq!(metric(admin, &rules_series("prefix")), Some(1.0));
    assert_eq!(metric(admin, &rules_series("regex")), Some(0.0));
    let started = metric(admin, LAST_SUCCESS_TS).expect("success timestamp after the start");
    assert!(
        (started - unix_now()).abs() <= 60.0,
        "start timestamp {started}"
    );
    assert_eq!(
        redirect_of(port, "/moving"),
        (307, Some("https://before.example.com/moving-before".into()))
    );
    assert_eq!(
        redirect_of(port, "/docs/a").1.as_deref(),
        Some("https://before.example.com/documentation/a")
    );

    // The timestamp has a resolution of one second: let one pass so a
    // reload's timestamp is seen to move.
    wait_past_second(started);
    rewrite(&proxy, "", RULES_AFTER);
    hup_and_wait(pid, admin, SUCCESS, 1);

    // The counter moves after the swap: the new rules answer at once.
    assert_eq!(
        redirect_of(port, "/moving"),
        (308, Some("https://after.example.com/moved-here".into()))
    );
    assert_eq!(
        redirect_of(port, "/added"),
        (307, Some("https://after.example.com/added-here".into()))
    );
    assert_eq!(
        redirect_of(port, "/article/42"),
        (307, Some("https://after.example.com/a/42".into()))
    );
    // The removed prefix rule no longer answers (no [upstream]: 404).
    assert_eq!(redirect_of(port, "/docs/a"), (404, None));

    assert_eq!(metric(admin, SUCCESS), Some(1.0));
    assert_eq!(metric(admin, FAILURE), Some(0.0));
    assert_eq!(metric(admin, LAST_OK), Some(1.0));
    let reloaded = metric(admin, LAST_SUCCESS_TS).expect("success timestamp");
    assert!(
        reloaded > started && reloaded <= unix_now(),
        "success timestamp {started} -> {reloaded}"
    );
    assert_eq!(metric(admin, &rules_series("exact")), Some(2.0));
    assert_eq!(metric(admin, &rules_series("prefix")), Some(0.0));
    assert_eq!(metric(admin, &rules_series("regex")), Some(1.0));
    // Logged (right after the counter moves).
    expect_stderr_line(&proxy, 0, &["reload (SIGHUP)", "loaded"]);
}

// ---------------------------------------------------------------------------
// 2. A broken configuration keeps the running one

const GOOD_OLD: &str = r#"
[[redirect]]
id = "r"
path = "/r"
to = "https://old.example.com/r-old"
"#;

#[test]
fn broken_configurations_by_sighup_keep_the_old_behaviour() {
    let proxy = Proxy::start(GOOD_OLD);
    let (port, admin) = (proxy.port, proxy.admin_port);
    let pid = proxy_pid(&proxy);
    let config = proxy.config_path.display().to_string();
    let old = (307, Some("https://old.example.com/r-old".to_string()));
    assert_eq!(redirect_of(port, "/r"), old);

    // Each broken file also changes the target: none of it may apply.
    let syntax = r#"
[[redirect]]
id = "r"
path = "/r"
to = "https://new.example.com/r-new"
status = = 308
"#;
    let bad_regex = r#"
[[redirect]]
id = "r"
path = "/r"
to = "https://new.example.com/r-new"

[[redirect]]
id = "broken-regex"
regex = "^/(unclosed"
to = "https://new.example.com/x"
"#;
    let missing_list = r#"
[[redirect]]
id = "r"
path = "/r"
to = "https://new.example.com/r-new"

[[list]]
id = "gone"
file = "gone.csv"
format = "cloudflare"
"#;

    // (1) TOML syntax: the line of the doubled `=`.
    let from = proxy.stderr().len();
    let text = rewrite(&proxy, "", syntax);
    let line = line_of(&text, "status = = 308");
    hup_and_wait(pid, admin, FAILURE, 1);
    expect_stderr_line(
        &proxy,
        from,
        &[&format!("{config}:{line}:"), "error[parse]"],
    );
    assert_eq!(redirect_of(port, "/r"), old, "after a syntax error");
    assert_eq!(metric(admin, LAST_OK), Some(0.0));
    assert_eq!(metric(admin, SUCCESS), Some(0.0));

    // (2) A regex that does not compile: the rule's table or its `regex` key.
    let from = proxy.stderr().len();
    let text = rewrite(&proxy, "", bad_regex);
    let table = line_of(&text, "id = \"broken-regex\"") - 1;
    let key = line_of(&text, "regex = \"^/(unclosed\"");
    hup_and_wait(pid, admin, FAILURE, 2);
    let l = expect_stderr_line(&proxy, from, &["error[bad_regex]", "broken-regex"]);
    assert!(
        l.contains(&format!("{config}:{table}:")) || l.contains(&format!("{config}:{key}:")),
        "the bad regex is not placed at {config}:{table} or :{key}: {l}"
    );
    assert_eq!(redirect_of(port, "/r"), old, "after a bad regex");
    assert_eq!(metric(admin, LAST_OK), Some(0.0));
    assert_eq!(metric(admin, &rules_series("regex")), Some(0.0));
    assert_eq!(metric(admin, &rules_series("exact")), Some(1.0));

    // (3) A list file that is missing: the list file and code `io`.
    let from = proxy.stderr().len();
    rewrite(&proxy, "", missing_list);
    hup_and_wait(pid, admin, FAILURE, 3);
    let list_file = proxy.dir.path.join("gone.csv").display().to_string();
    expect_stderr_line(&proxy, from, &[&list_file, "error[io]"]);
    assert_eq!(redirect_of(port, "/r"), old, "after a missing list");
    assert_eq!(metric(admin, LAST_OK), Some(0.0));
    assert_eq!(metric(admin, SUCCESS), Some(0.0));
    let failed_ts = metric(admin, LAST_SUCCESS_TS).expect("success timestamp");

    // A good configuration again.
    wait_past_second(failed_ts);
    rewrite(
        &proxy,
        "",
        &GOOD_OLD.replace("old.example.com", "good.example.com"),
    );
    hup_and_wait(pid, admin, SUCCESS, 1);
    assert_eq!(
        redirect_of(port, "/r"),
        (307, Some("https://good.example.com/r-old".to_string()))
    );
    assert_eq!(metric(admin, LAST_OK), Some(1.0));
    assert_eq!(metric(admin, FAILURE), Some(3.0));
    let ts = metric(admin, LAST_SUCCESS_TS).expect("success timestamp");
    assert!(ts > failed_ts, "success timestamp {failed_ts} -> {ts}");
}

/// A reload that fails logs every error of every phase of the load (the
/// model, the compile, a list, the lint), each with its place and rule.
#[test]
fn a_failed_reload_logs_every_error_of_every_phase() {
    use support::two_errors::{CASES, CSV_NAME};
    let proxy = Proxy::start(GOOD_OLD);
    let (port, admin) = (proxy.port, proxy.admin_port);
    let pid = proxy_pid(&proxy);
    let config = proxy.config_path.display().to_string();
    let list = proxy.dir.path.join(CSV_NAME).display().to_string();
    let old = redirect_of(port, "/r");
    for (n, case) in CASES.iter().enumerate() {
        match case.csv {
            Some(csv) => replace_file(&proxy.dir.path.join(CSV_NAME), csv),
            None => {
                let _ = std::fs::remove_file(proxy.dir.path.join(CSV_NAME));
            }
        }
        let from = proxy.stderr().len();
        let text = rewrite(&proxy, "", case.sections);
        let at = text
            .find(case.sections)
            .expect("the sections are in the file");
        let offset = text[..at].matches('\n').count() as u32;
        hup_and_wait(pid, admin, FAILURE, n as u32 + 1);
        for want in &case.expect {
            expect_stderr_line(&proxy, from, &[&want.prefix(&config, &list, offset)]);
        }
        assert_eq!(
            redirect_of(port, "/r"),
            old,
            "{}: the old rules serve",
            case.name
        );
    }
}

// ---------------------------------------------------------------------------
// 3. watch = true

#[test]
fn watch_picks_up_renamed_config_and_list_files() {
    let csv = "watch.test/old,https://list.example.com/one,301\n";
    let sections = |target: &str| {
        format!(
            r#"
[[redirect]]
id = "w"
path = "/w"
to = "{target}"

[[list]]
id = "bulk"
file = "bulk.csv"
"#
        )
    };
    // The harness makes the proxy's directory, so the first configuration
    // has no list; the first reload adds it.
    let proxy = Proxy::start_with(
        "watch = true",
        r#"
[[redirect]]
id = "w"
path = "/w"
to = "https://one.example.com/w-1"
"#,
    );
    let (port, admin) = (proxy.port, proxy.admin_port);
    let pid = proxy_pid(&proxy);
    // The watcher takes its first look when the reload service starts,
    // which registers its SIGHUP handler just before: wait for that, and one
    // poll interval more, so the first edit below is not part of that look.
    assert!(
        poll_until(START_DEADLINE, || catches(pid, SIGHUP).then_some(())).is_some(),
        "no SIGHUP handler"
    );
    std::thread::sleep(POLL);
    expect_redirect(port, "/w", 307, "https://one.example.com/w-1");

    // (1) The configuration, renamed over (and a list it now names).
    let list_path = proxy.dir.path.join("bulk.csv");
    std::fs::write(&list_path, csv).expect("write the list");
    rewrite(
        &proxy,
        "watch = true",
        &sections("https://two.example.com/w-2"),
    );
    expect_redirect(port, "/w", 307, "https://two.example.com/w-2");
    expect_metric(admin, SUCCESS, Some(1.0));
    let list_req = "/old";
    // The list row is host-bound: ask with its Host.
    let row = |p: &str| {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        s.write_all(
            format!("GET {p} HTTP/1.1\r\nHost: watch.test\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        support::parse_response(&buf, false).expect("a response")
    };
    let r = row(list_req);
    assert_eq!(r.status, 301, "{r:?}");
    assert_eq!(r.header("location"), Some("https://list.example.com/one"));

    // (2) The list CSV, renamed over.
    replace_file(
        &list_path,
        "watch.test/old,https://list.example.com/two,302\n",
    );
    let got = poll_until(RELOAD_DEADLINE, || {
        let r = row(list_req);
        (r.header("location") == Some("https://list.example.com/two")).then_some(r)
    });
    let r = got.expect("the edited list is picked up");
    assert_eq!(r.status, 302, "{r:?}");
    expect_metric(admin, SUCCESS, Some(2.0));
    assert_eq!(metric(admin, &rules_series("exact")), Some(2.0));

    // (3) A broken edit is one failed reload, not one per poll, and the
    // running rules stay.
    let from = proxy.stderr().len();
    let text = rewrite(
        &proxy,
        "watch = true",
        &format!(
            "{}\nstatus = = 301\n",
            sections("https://three.example.com/w-3")
        ),
    );
    let line = line_of(&text, "status = = 301");
    expect_metric(admin, FAILURE, Some(1.0));
    expect_stderr_line(
        &proxy,
        from,
        &[
            &format!("{}:{line}:", proxy.config_path.display()),
            "error[parse]",
        ],
    );
    assert_eq!(
        redirect_of(port, "/w"),
        (307, Some("https://two.example.com/w-2".into()))
    );
    // Proving that nothing more happens needs a bounded wait: four watch
    // intervals (250 ms each) with the files unchanged must not reload again.
    let quiet_until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < quiet_until {
        assert_eq!(metric(admin, FAILURE), Some(1.0), "repeated failed reloads");
        assert_eq!(metric(admin, SUCCESS), Some(2.0), "spurious reloads");
        std::thread::sleep(POLL);
    }
    assert_eq!(metric(admin, LAST_OK), Some(0.0));

    // (4) Fixed again.
    rewrite(
        &proxy,
        "watch = true",
        &sections("https://four.example.com/w-4"),
    );
    expect_redirect(port, "/w", 307, "https://four.example.com/w-4");
    expect_metric(admin, SUCCESS, Some(3.0));
    assert_eq!(metric(admin, LAST_OK), Some(1.0));
}

// ---------------------------------------------------------------------------
// 4. Upstream, pools and maintenance

fn routing_sections(backends: &str, health: &str, maintenance: bool) -> String {
    routing_with_pool(backends, health, maintenance, "https://backup1.example.net")
}

fn routing_with_pool(backends: &str, health: &str, maintenance: bool, pool: &str) -> String {
    format!(
        r#"
[pools.backup]
targets = ["{pool}"]

[upstream]
backends = [{backends}]
{health}

[maintenance]
enabled = {maintenance}
redirect_pool = "backup"
retry_after = 120

[[redirect]]
id = "moved"
path = "/moved"
to = "https://new.example.com/moved-here"
"#
    )
}

#[test]
fn sighup_swaps_upstream_and_maintenance() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let quoted = |x: &Backend| format!("\"{}\"", x.addr());
    let proxy = Proxy::start(&routing_sections(&quoted(&a), "", false));
    let (port, admin) = (proxy.port, proxy.admin_port);
    let pid = proxy_pid(&proxy);

    for i in 0..3 {
        let r = get(port, &format!("/page/{i}"));
        assert_eq!((r.status, r.body_str()), (200, a.answer()), "{r:?}");
    }

    // [upstream] A -> B.
    rewrite(&proxy, "", &routing_sections(&quoted(&b), "", false));
    hup_and_wait(pid, admin, SUCCESS, 1);
    let a_before = a.traffic().len();
    for i in 0..10 {
        let r = get(port, &format!("/after/{i}"));
        assert_eq!((r.status, r.body_str()), (200, b.answer()), "{r:?}");
    }
    assert_eq!(a.traffic().len(), a_before, "A got traffic after the swap");
    assert_eq!(b.traffic().len(), 10);

    // [maintenance] enabled = false -> true: misses go to the pool, rules win.
    rewrite(&proxy, "", &routing_sections(&quoted(&b), "", true));
    hup_and_wait(pid, admin, SUCCESS, 2);
    let r = get(port, "/shop/cart?item=3");
    assert_eq!(r.status, 307, "{r:?}");
    assert_eq!(
        r.header("location"),
        Some("https://backup1.example.net/shop/cart?item=3")
    );
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("retry-after"), Some("120"));
    assert_eq!(
        redirect_of(port, "/moved"),
        (307, Some("https://new.example.com/moved-here".into()))
    );
    expect_metric(admin, &outcome_series("maintenance"), Some(1.0));

    // The pool's targets change: maintenance redirects follow.
    rewrite(
        &proxy,
        "",
        &routing_with_pool(&quoted(&b), "", true, "https://backup2.example.net"),
    );
    hup_and_wait(pid, admin, SUCCESS, 3);
    let r = get(port, "/shop/cart?item=5");
    assert_eq!(r.status, 307, "{r:?}");
    assert_eq!(
        r.header("location"),
        Some("https://backup2.example.net/shop/cart?item=5")
    );
    expect_metric(admin, &outcome_series("maintenance"), Some(2.0));
    assert_eq!(b.traffic().len(), 10, "B got traffic during maintenance");

    // And back.
    rewrite(&proxy, "", &routing_sections(&quoted(&b), "", false));
    hup_and_wait(pid, admin, SUCCESS, 4);
    let r = get(port, "/shop/cart?item=4");
    assert_eq!((r.status, r.body_str()), (200, b.answer()), "{r:?}");
    assert_eq!(r.header("location"), None);
    assert_eq!(b.traffic().len(), 11);
    assert_eq!(metric(admin, &outcome_series("maintenance")), Some(2.0));

    // A new upstream with a dead backend and health checks: it is checked
    // before it serves, so no request meets the dead one (no request
    // fails because of a reload). The interval is long, so only the check
    // made at the reload can have taken it out.
    let dead = format!("\"127.0.0.1:{}\"", support::free_port());
    rewrite(
        &proxy,
        "",
        &routing_sections(
            &format!("{}, {dead}", quoted(&b)),
            "health_check = { type = \"tcp\", interval = \"30s\" }",
            false,
        ),
    );
    hup_and_wait(pid, admin, SUCCESS, 5);
    for i in 0..20 {
        let r = get(port, &format!("/checked/{i}"));
        assert_eq!(
            (r.status, r.body_str()),
            (200, b.answer()),
            "request {i} after the reload: {r:?}"
        );
    }
    assert_eq!(metric(admin, FAILURE), Some(0.0));
}

/// A one-request upstream that holds its answer: it accepts one connection,
/// reads one request head, reports it, and answers `200 slow` only when told
/// to (or when the test is gone). Bounded: 20 s to be reached, 20 s to be told.
struct HeldBackend {
    port: u16,
    received: std::sync::mpsc::Receiver<String>,
    release: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HeldBackend {
    fn start() -> HeldBackend {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("local addr").port();
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let (got_tx, received) = std::sync::mpsc::channel();
        let (release, go) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let accepted = poll_until(Duration::from_secs(20), || listener.accept().ok());
            let Some((mut s, _)) = accepted else { return };
            let _ = s.set_nonblocking(false);
            let _ = s.set_read_timeout(Some(IO_TIMEOUT));
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while find(&buf, b"\r\n\r\n").is_none() && buf.len() < 64 * 1024 {
                match s.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let _ = got_tx.send(String::from_utf8_lossy(&buf).into_owned());
            let _ = go.recv_timeout(Duration::from_secs(20));
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nslow",
            );
        });
        HeldBackend {
            port,
            received,
            release: Some(release),
            thread: Some(thread),
        }
    }
}

impl Drop for HeldBackend {
    fn drop(&mut self) {
        self.release.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn a_request_in_flight_finishes_on_the_upstream_it_started_with() {
    let held = HeldBackend::start();
    let b = Backend::start("b");
    let proxy = Proxy::start(&routing_sections(
        &format!("\"127.0.0.1:{}\"", held.port),
        "",
        false,
    ));
    let (port, admin) = (proxy.port, proxy.admin_port);
    let pid = proxy_pid(&proxy);

    // A request reaches the held upstream and waits there.
    let client = std::thread::spawn(move || try_get(port, "/in-flight"));
    let head = held
        .received
        .recv_timeout(Duration::from_secs(20))
        .expect("the request reaches the held upstream");
    assert!(head.starts_with("GET /in-flight "), "{head}");

    // Meanwhile the upstream is swapped to B.
    rewrite(
        &proxy,
        "",
        &routing_sections(&format!("\"{}\"", b.addr()), "", false),
    );
    hup_and_wait(pid, admin, SUCCESS, 1);
    let r = get(port, "/new");
    assert_eq!((r.status, r.body_str()), (200, b.answer()), "{r:?}");

    // The request in flight still gets its answer from where it started.
    if let Some(release) = &held.release {
        let _ = release.send(());
    }
    let r = client
        .join()
        .expect("the client thread")
        .expect("the request in flight is answered");
    assert_eq!((r.status, r.body_str()), (200, "slow".to_string()), "{r:?}");
    assert_eq!(b.traffic().len(), 1);
}

// ---------------------------------------------------------------------------
// 5. A listener change needs a restart

#[test]
fn changed_listen_address_needs_a_restart_and_the_old_listener_keeps_serving() {
    let proxy = Proxy::start(GOOD_OLD);
    let (port, admin) = (proxy.port, proxy.admin_port);
    let pid = proxy_pid(&proxy);
    let other = support::free_port();
    let from = proxy.stderr().len();
    let text = format!(
        "{}\n{}\n",
        server_section(&proxy.dir.path, other, admin, ""),
        GOOD_OLD.replace("old.example.com", "new.example.com")
    );
    replace_file(&proxy.config_path, &text);
    hup_and_wait(pid, admin, SUCCESS, 1);
    let l = expect_stderr_line(&proxy, from, &["listen", "restart"]);
    assert!(l.contains("WARN") || l.contains("ERROR"), "{l}");

    // Everything but the listener is applied, on the old listener.
    assert_eq!(
        redirect_of(port, "/r"),
        (307, Some("https://new.example.com/r-old".into()))
    );
    assert_eq!(metric(admin, LAST_OK), Some(1.0));
    // Proving that the new address is not listened on needs a bounded
    // wait: for one second (far longer than the reload took) nothing accepts
    // there, while the old listener keeps answering.
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        assert!(
            TcpStream::connect(("127.0.0.1", other)).is_err(),
            "the new listen address 127.0.0.1:{other} accepts connections"
        );
        std::thread::sleep(POLL);
    }
    assert_eq!(redirect_of(port, "/r").0, 307);
}

// ---------------------------------------------------------------------------
// 6. Zero failed requests across 20 reloads and a graceful upgrade

/// Rule set A: an exact rule answers `/flip` with 307.
const SET_A: &str = r#"
[[redirect]]
id = "flip"
path = "/flip"
to = "https://a.example.com/flip-a"

[[redirect]]
id = "docs-a"
prefix = "/docs"
to = "https://a.example.com/documentation"
"#;

/// Rule set B: a regex rule answers `/flip` with 308.
const SET_B: &str = r#"
[[redirect]]
id = "flip-b"
regex = "^/(fl)(ip)$"
to = "https://b.example.com/${1}-${2}-b"
status = 308

[[redirect]]
id = "docs-b"
path = "/docs"
to = "https://b.example.com/documentation"
"#;

const LOC_A: &str = "https://a.example.com/flip-a";
const LOC_B: &str = "https://b.example.com/fl-ip-b";

const CLIENTS: usize = 8;
/// The least number of answered requests of the run.
const MIN_TOTAL: u64 = 20_000;
/// The most requests one client sends.
const PER_CLIENT_CAP: u64 = 400_000;
/// The most time the clients run.
const LOAD_DEADLINE: Duration = Duration::from_secs(60);
const REQUEST: &[u8] = b"GET /flip HTTP/1.1\r\nHost: reload.test\r\n\r\n";

#[derive(Default, Debug)]
struct ClientStats {
    /// Requests sent (retries not counted twice).
    sent: u64,
    /// Answered with (307, A's Location) or (308, B's Location).
    a: u64,
    b: u64,
    /// Failed requests (anything but the two answers above).
    failed: u64,
    /// The first few failures.
    errors: Vec<String>,
    /// TCP connections opened.
    connects: u64,
    /// Kept-alive connections the server had closed before the next request
    /// was written (seen before writing; replaced, not a retry).
    closed_idle: u64,
    /// Requests retried once on a new connection because the server closed
    /// the connection before it read the request (the write failed, or the
    /// peer's FIN or reset came back without one byte of a response).
    retried: u64,
    /// Why each retry was needed (the first few).
    retry_reasons: Vec<String>,
    /// Responses that said `Connection: close`.
    close_responses: u64,
    /// The time bound ended the run.
    timed_out: bool,
}

impl ClientStats {
    fn fail(&mut self, why: String) {
        self.failed += 1;
        if self.errors.len() < 10 {
            self.errors.push(why);
        }
    }

    fn add(&mut self, o: ClientStats) {
        self.sent += o.sent;
        self.a += o.a;
        self.b += o.b;
        self.failed += o.failed;
        self.errors.extend(o.errors);
        self.connects += o.connects;
        self.closed_idle += o.closed_idle;
        self.retried += o.retried;
        self.retry_reasons.extend(o.retry_reasons);
        self.close_responses += o.close_responses;
        self.timed_out |= o.timed_out;
    }
}

/// What one request on a connection gave.
enum Exchange {
    /// A complete response.
    Response {
        status: u16,
        location: Option<String>,
        close: bool,
    },
    /// Not one byte of a response: the write failed, or the server's FIN or
    /// reset came first.
    NoResponse(String),
    /// Anything else: a partial or malformed response, a timeout.
    Broken(String),
}

fn connect(port: u16) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// Whether the server has closed (FIN or reset) an idle kept-alive
/// connection: a non-blocking peek sees the end of the stream.
fn closed_by_server(s: &TcpStream) -> bool {
    if s.set_nonblocking(true).is_err() {
        return true;
    }
    let mut b = [0u8; 1];
    let r = s.peek(&mut b);
    let restored = s.set_nonblocking(false).is_ok();
    match r {
        Ok(0) => true,
        // Unsolicited bytes: left for `exchange` to report.
        Ok(_) => !restored,
        Err(e) if e.kind() == ErrorKind::WouldBlock => !restored,
        Err(_) => true,
    }
}

fn exchange(s: &mut TcpStream) -> Exchange {
    use Exchange::*;
    if let Err(e) = s.write_all(REQUEST) {
        return match e.kind() {
            ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => {
                NoResponse(format!("write: {e}"))
            }
            _ => Broken(format!("write: {e}")),
        };
    }
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let end = Instant::now() + IO_TIMEOUT;
    let mut read_more = |buf: &mut Vec<u8>| -> Result<(), Exchange> {
        loop {
            if Instant::now() >= end {
                return Err(Broken(format!(
                    "no complete response within {IO_TIMEOUT:?}: {:?}",
                    String::from_utf8_lossy(buf)
                )));
            }
            match s.read(&mut chunk) {
                Ok(0) if buf.is_empty() => return Err(NoResponse("FIN before a response".into())),
                Ok(0) => {
                    return Err(Broken(format!(
                        "closed inside a response: {:?}",
                        String::from_utf8_lossy(buf)
                    )))
                }
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    return Ok(());
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset && buf.is_empty() => {
                    return Err(NoResponse(format!("reset before a response: {e}")))
                }
                Err(e) => {
                    return Err(Broken(format!(
                        "read: {e} after {:?}",
                        String::from_utf8_lossy(buf)
                    )))
                }
            }
        }
    };
    let head_end = loop {
        if let Some(p) = find(&buf, b"\r\n\r\n") {
            break p;
        }
        if buf.len() > 64 * 1024 {
            return Broken("response head over 64 KiB".into());
        }
        if let Err(e) = read_more(&mut buf) {
            return e;
        }
    };
    let Some(text) = std::str::from_utf8(&buf[..head_end]).ok() else {
        return Broken("response head is not UTF-8".into());
    };
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default().to_string();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let status = parts.next().and_then(|s| s.parse::<u16>().ok());
    let (Some(status), true) = (status, version == "HTTP/1.1") else {
        return Broken(format!("bad status line {status_line:?}"));
    };
    let (mut location, mut length, mut close) = (None, None, false);
    for l in lines {
        let Some((n, v)) = l.split_once(':') else {
            return Broken(format!("bad header line {l:?}"));
        };
        let v = v.trim();
        if n.eq_ignore_ascii_case("location") {
            location = Some(v.to_string());
        } else if n.eq_ignore_ascii_case("content-length") {
            length = v.parse::<usize>().ok();
        } else if n.eq_ignore_ascii_case("connection") {
            close = v.to_ascii_lowercase().contains("close");
        }
    }
    let Some(length) = length else {
        return Broken(format!("no Content-Length: {text:?}"));
    };
    let total = head_end + 4 + length;
    while buf.len() < total {
        if let Err(e) = read_more(&mut buf) {
            return match e {
                NoResponse(w) | Broken(w) => Broken(format!("inside the body: {w}")),
                r => r,
            };
        }
    }
    if buf.len() > total {
        return Broken(format!(
            "bytes after the response: {:?}",
            String::from_utf8_lossy(&buf[total..])
        ));
    }
    Response {
        status,
        location,
        close,
    }
}

/// What the load clients and the test share.
#[derive(Default)]
struct Shared {
    /// Set when the test is done with reloads and the upgrade.
    stop: AtomicBool,
    /// Responses received by all clients.
    answered: AtomicU64,
    /// 0: before SIGQUIT, 1: from SIGQUIT until the old process has exited,
    /// 2: after. Outside phase 1 no connection may be closed by the server.
    phase: AtomicUsize,
}

/// One client: its own keep-alive connection, `GET /flip` again and again.
fn load_client(port: u16, shared: Arc<Shared>) -> ClientStats {
    let mut st = ClientStats::default();
    let mut conn: Option<TcpStream> = None;
    // Responses read on the current connection.
    let mut served = 0u64;
    let deadline = Instant::now() + LOAD_DEADLINE;
    let disturbed = |st: &mut ClientStats, what: &str| {
        let phase = shared.phase.load(Ordering::SeqCst);
        if phase != 1 {
            st.fail(format!("{what} in phase {phase}, outside the upgrade"));
        }
    };
    while st.sent < PER_CLIENT_CAP {
        if shared.stop.load(Ordering::SeqCst) && shared.answered.load(Ordering::SeqCst) >= MIN_TOTAL
        {
            break;
        }
        if Instant::now() >= deadline {
            st.timed_out = true;
            break;
        }
        // A kept-alive connection the server closed while idle is replaced
        // before the request is written.
        if conn.as_ref().is_some_and(closed_by_server) {
            conn = None;
            st.closed_idle += 1;
            disturbed(&mut st, "an idle connection closed by the server");
        }
        st.sent += 1;
        if conn.is_none() {
            match connect(port) {
                Ok(s) => {
                    st.connects += 1;
                    conn = Some(s);
                    served = 0;
                }
                Err(e) => {
                    st.fail(format!("connect: {e}"));
                    std::thread::sleep(POLL);
                    continue;
                }
            }
        }
        let mut outcome = exchange(conn.as_mut().expect("connected"));
        if let (Exchange::NoResponse(why), true) = (&outcome, served > 0) {
            // The server closed the kept-alive connection before it read the
            // request: an idempotent request is sent once more on a new
            // connection (as HTTP clients do; never on a fresh connection).
            st.retried += 1;
            if st.retry_reasons.len() < 10 {
                st.retry_reasons.push(why.clone());
            }
            disturbed(&mut st, "a retry");
            conn = None;
            match connect(port) {
                Ok(mut s) => {
                    st.connects += 1;
                    served = 0;
                    outcome = exchange(&mut s);
                    conn = Some(s);
                }
                Err(e) => {
                    st.fail(format!("connect for the retry: {e}"));
                    continue;
                }
            }
        }
        match outcome {
            Exchange::Response {
                status,
                location,
                close,
            } => {
                served += 1;
                shared.answered.fetch_add(1, Ordering::SeqCst);
                match (status, location.as_deref()) {
                    (307, Some(LOC_A)) => st.a += 1,
                    (308, Some(LOC_B)) => st.b += 1,
                    other => st.fail(format!("unexpected answer {other:?}")),
                }
                if close {
                    st.close_responses += 1;
                    disturbed(&mut st, "a `Connection: close` response");
                    conn = None;
                }
            }
            Exchange::NoResponse(why) => {
                st.fail(format!(
                    "no response (after {served} on the connection): {why}"
                ));
                conn = None;
            }
            Exchange::Broken(why) => {
                st.fail(why);
                conn = None;
            }
        }
    }
    st
}

/// Waits until `answered` grew by `n` (so each rule set gets traffic).
fn wait_answered(answered: &AtomicU64, n: u64) {
    let from = answered.load(Ordering::SeqCst);
    assert!(
        poll_until(Duration::from_secs(20), || {
            (answered.load(Ordering::SeqCst) >= from + n).then_some(())
        })
        .is_some(),
        "the load stalled at {} answers",
        answered.load(Ordering::SeqCst)
    );
}

/// Reload `i` of 20 (the `n`th of process `pid`): odd ones write set B,
/// even ones set A, so the last one writes A.
fn reload_set(proxy: &Proxy, pid: u32, i: u32, n: u32, answered: &AtomicU64) {
    let (rules, status, location) = if i % 2 == 1 {
        (SET_B, 308, LOC_B)
    } else {
        (SET_A, 307, LOC_A)
    };
    rewrite(proxy, "", rules);
    hup_and_wait(pid, proxy.admin_port, SUCCESS, n);
    // The counter moves after the swap: a new request sees the new set.
    assert_eq!(
        redirect_of(proxy.port, "/flip"),
        (status, Some(location.to_string())),
        "after reload {i}"
    );
    wait_answered(answered, 300);
}

#[test]
fn no_request_fails_across_reloads_and_a_graceful_upgrade() {
    let mut proxy = Proxy::start(SET_A);
    let (port, admin) = (proxy.port, proxy.admin_port);
    let old_pid = proxy_pid(&proxy);
    // Both handlers are in place before the load starts.
    assert!(
        poll_until(START_DEADLINE, || {
            (catches(old_pid, SIGHUP) && catches(old_pid, SIGQUIT)).then_some(())
        })
        .is_some(),
        "signal handlers of {old_pid}"
    );
    assert_eq!(redirect_of(port, "/flip"), (307, Some(LOC_A.into())));

    let shared = Arc::new(Shared::default());
    let answered = &shared.answered;
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("load-{i}"))
                .spawn(move || load_client(port, shared))
                .expect("spawn a load client")
        })
        .collect();
    // Whatever happens below, the clients are told to stop.
    struct StopOnDrop(Arc<Shared>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.stop.store(true, Ordering::SeqCst);
        }
    }
    let stopper = StopOnDrop(shared.clone());
    wait_answered(answered, 500);

    for i in 1..=10 {
        reload_set(&proxy, old_pid, i, i, answered);
    }

    // The graceful upgrade: a new process waits on upgrade_sock, SIGQUIT
    // makes the old one hand its listeners over, drain and exit.
    let mut upgraded = Upgraded::start(&proxy.config_path, &proxy.dir.path);
    upgraded.wait_waiting();
    let before_upgrade = answered.load(Ordering::SeqCst);
    shared.phase.store(1, Ordering::SeqCst);
    send_signal(old_pid, SIGQUIT, "QUIT");
    let upgrade_at = Instant::now();
    assert!(
        poll_until(Duration::from_secs(30), || has_exited(old_pid)
            .then_some(()))
        .is_some(),
        "the old process did not exit after SIGQUIT\nits stderr:\n{}",
        proxy.stderr()
    );
    let during_upgrade = answered.load(Ordering::SeqCst) - before_upgrade;
    shared.phase.store(2, Ordering::SeqCst);
    let old_exit = proxy.stop().expect("the old process's exit status");
    let upgrade_took = upgrade_at.elapsed();
    assert!(old_exit.success(), "old process: {old_exit}");
    assert!(upgraded.running(), "serve --upgrade is not running");
    let old_stderr = proxy.stderr();
    assert!(
        old_stderr.contains("listener sockets sent"),
        "the old process did not hand its sockets over:\n{old_stderr}"
    );
    // Only the new process is left on the admin port: its own counters.
    expect_metric(admin, SUCCESS, Some(0.0));
    let new_pid = upgraded.pid();
    wait_answered(answered, 300);

    for i in 11..=20 {
        reload_set(&proxy, new_pid, i, i - 10, answered);
    }
    let wait_min = poll_until(LOAD_DEADLINE, || {
        (answered.load(Ordering::SeqCst) >= MIN_TOTAL).then_some(())
    });
    assert!(wait_min.is_some(), "fewer than {MIN_TOTAL} answers");
    drop(stopper);
    let mut total = ClientStats::default();
    for c in clients {
        total.add(c.join().expect("a load client panicked"));
    }
    let elapsed = started.elapsed();
    eprintln!(
        "load: {total:?}; {} answered in {elapsed:?}, {during_upgrade} between SIGQUIT and the \
         old process's exit ({upgrade_took:?})",
        total.a + total.b
    );

    assert_eq!(
        total.failed, 0,
        "failed requests: {:?}\nload: {total:?}",
        total.errors
    );
    assert!(!total.timed_out, "the time bound ended the run: {total:?}");
    assert!(
        total.a + total.b >= MIN_TOTAL,
        "{} answers: {total:?}",
        total.a + total.b
    );
    assert_eq!(total.a + total.b, total.sent, "{total:?}");
    assert!(total.a > 0 && total.b > 0, "both sets answered: {total:?}");

    // The new process serves, with the set of the last reload (A), and has
    // counted its own ten reloads.
    assert!(upgraded.running(), "serve --upgrade is not running");
    assert_eq!(redirect_of(port, "/flip"), (307, Some(LOC_A.into())));
    assert_eq!(metric(admin, SUCCESS), Some(10.0));
    assert_eq!(metric(admin, FAILURE), Some(0.0));
    assert_eq!(
        find_serve(&proxy.config_path, false),
        None,
        "the old process"
    );
    let status = upgraded.stop().expect("an exit status");
    assert!(
        find_serve(&proxy.config_path, true).is_none(),
        "serve --upgrade still runs after {status}"
    );
}

#[test]
fn a_pool_target_added_by_reload_is_checked_before_it_gets_clients() {
    let live = Backend::start("live");
    let dead_port = support::free_port();
    let pool = |targets: &str| {
        format!(
            "[pools.p]\ntargets = [{targets}]\nhealth_check = {{ type = \"tcp\", interval = \"30s\" }}\n\n\
             [[redirect]]\nid = \"dl\"\nprefix = \"/dl\"\npool = \"p\"\n"
        )
    };
    let live_url = format!("\"http://{}\"", live.addr());
    let proxy = Proxy::start(&pool(&live_url));
    let (port, admin) = (proxy.port, proxy.admin_port);
    let pid = proxy_pid(&proxy);
    rewrite(
        &proxy,
        "",
        &pool(&format!("{live_url}, \"http://127.0.0.1:{dead_port}\"")),
    );
    hup_and_wait(pid, admin, SUCCESS, 1);
    // Round robin over [live, dead]: without the check before use, every
    // second redirect would name the dead target.
    for i in 0..20 {
        let (status, location) = redirect_of(port, &format!("/dl/f{i}"));
        assert_eq!(status, 307);
        assert_eq!(
            location.as_deref(),
            Some(format!("http://{}/dl/f{i}", live.addr()).as_str()),
            "request {i} went to an unchecked target"
        );
    }
}

// ---------------------------------------------------------------------------
// 7. What a reload keeps

/// `n` rows of list `tag`, and row `changed` (if any) sent elsewhere.
fn list_rows(tag: &str, n: usize, changed: Option<usize>) -> String {
    (0..n)
        .map(|i| {
            let to = if Some(i) == changed {
                format!("https://changed.example/{tag}/{i}")
            } else {
                format!("https://new.example/{tag}/{i}")
            };
            format!("reload.test/{tag}/{i},{to},301\n")
        })
        .collect()
}

#[test]
fn a_reload_compiles_only_the_list_or_the_redirects_that_changed() {
    const ROWS: usize = 100_000;
    let a = Backend::start("a");
    let lists = TempDir::new("reload-lists");
    lists.write("one.csv", &list_rows("one", ROWS, None));
    let two = lists.write("two.csv", &list_rows("two", ROWS, None));
    // `redirect` is the one [[redirect]] table, before the lists.
    let sections = |maintenance: bool, redirect: &str| {
        format!(
            "[pools.backup]\ntargets = [\"https://backup1.example.net\"]\n\n\
             [upstream]\nbackends = [\"{}\"]\n\n\
             [maintenance]\nenabled = {maintenance}\nredirect_pool = \"backup\"\n\n\
             [[redirect]]\nid = \"moved\"\n{redirect}\n\n\
             [[list]]\nid = \"one\"\nfile = {}\n\n[[list]]\nid = \"two\"\nfile = {}\n",
            a.addr(),
            toml_str(&lists.path.join("one.csv").display().to_string()),
            toml_str(&two.display().to_string()),
        )
    };
    let moved_to = |to: &str| format!("path = \"/moved\"\nstatus = 301\nto = \"{to}\"");
    let proxy = Proxy::start(&sections(false, &moved_to("https://first.example/")));
    let (port, admin) = (proxy.port, proxy.admin_port);
    let pid = proxy_pid(&proxy);
    let row = |tag: &str, i: usize| redirect_of(port, &format!("/{tag}/{i}"));
    let moved = |host: &str, tag: &str, i: usize| (301, Some(format!("https://{host}/{tag}/{i}")));
    // The rows answer as the lists say: row 7 of `two` sent elsewhere
    // once `edited`.
    let rows_answer = |edited: bool| {
        for (tag, i) in [
            ("one", 5),
            ("one", 7),
            ("two", 6),
            ("two", 7),
            ("two", ROWS - 1),
        ] {
            let host = match edited && (tag, i) == ("two", 7) {
                true => "changed.example",
                false => "new.example",
            };
            assert_eq!(row(tag, i), moved(host, tag, i), "{tag} {i}");
        }
    };
    assert_eq!(get(port, "/elsewhere").status, 200);
    rows_answer(false);
    let series = |label: &str| {
        format!("pingora_redirect_config_reload_duration_seconds_count{{rules=\"{label}\"}}")
    };
    let (kept, partly, compiled) = (series("kept"), series("partly_kept"), series("compiled"));

    // The flip: nothing the rules are compiled from changed; they are kept.
    rewrite(
        &proxy,
        "",
        &sections(true, &moved_to("https://first.example/")),
    );
    hup_and_wait(pid, admin, SUCCESS, 1);
    let r = get(port, "/elsewhere");
    assert_eq!(
        (r.status, r.header("location")),
        (307, Some("https://backup1.example.net/elsewhere"))
    );
    rows_answer(false);
    let line = expect_stderr_line(&proxy, 0, &["reload (SIGHUP)", "rules kept"]);
    assert!(
        line.contains(&format!("{} rules kept", 2 * ROWS + 1)),
        "{line}"
    );
    expect_metric(admin, &kept, Some(1.0));
    expect_metric(admin, &compiled, Some(0.0));

    // One row of the second list changes: that list alone is compiled, and
    // that row alone answers differently.
    let before = proxy.stderr().len();
    replace_file(&two, &list_rows("two", ROWS, Some(7)));
    hup_and_wait(pid, admin, SUCCESS, 2);
    let line = expect_stderr_line(&proxy, before, &["reload (SIGHUP)", "of them kept"]);
    assert!(
        line.contains(&format!(
            "{} rules, {} of them kept (2 of 3 parts kept",
            2 * ROWS + 1,
            ROWS + 1
        )),
        "{line}"
    );
    expect_metric(admin, &partly, Some(1.0));
    expect_metric(admin, &compiled, Some(0.0));
    rows_answer(true);
    // The chain lint runs after the swap, and says so.
    expect_stderr_line(&proxy, before, &["chains of the", "rules in force linted"]);

    // The [[redirect]] changes: both lists are kept.
    let before = proxy.stderr().len();
    rewrite(
        &proxy,
        "",
        &sections(true, &moved_to("https://second.example/")),
    );
    hup_and_wait(pid, admin, SUCCESS, 3);
    let line = expect_stderr_line(&proxy, before, &["reload (SIGHUP)", "of them kept"]);
    assert!(
        line.contains(&format!("{} of them kept (2 of 3 parts kept", 2 * ROWS)),
        "{line}"
    );
    expect_metric(admin, &partly, Some(2.0));
    assert_eq!(
        redirect_of(port, "/moved"),
        (301, Some("https://second.example/".to_string()))
    );
    rows_answer(true);
    expect_stderr_line(&proxy, before, &["chains of the", "rules in force linted"]);

    // A [[redirect]] that closes a loop with a row of a kept list is
    // refused, and the running rules stay.
    let before = proxy.stderr().len();
    rewrite(
        &proxy,
        "",
        &sections(
            true,
            "host = \"new.example\"\npath = \"/one/5\"\nto = \"http://reload.test/one/5\"",
        ),
    );
    hup_and_wait(pid, admin, FAILURE, 1);
    let line = expect_stderr_line(&proxy, before, &["loop"]);
    assert!(line.contains("\"one\" row \"reload.test/one/5\""), "{line}");
    assert_eq!(
        redirect_of(port, "/moved"),
        (301, Some("https://second.example/".to_string()))
    );
    rows_answer(true);

    // Maintenance is still on, and a list rewritten with the same bytes
    // keeps the rules again.
    rewrite(
        &proxy,
        "",
        &sections(true, &moved_to("https://second.example/")),
    );
    assert_eq!(get(port, "/elsewhere").status, 307);
    let before = proxy.stderr().len();
    replace_file(&two, &list_rows("two", ROWS, Some(7)));
    hup_and_wait(pid, admin, SUCCESS, 4);
    expect_stderr_line(&proxy, before, &["reload (SIGHUP)", "rules kept"]);
    expect_metric(admin, &kept, Some(2.0));
    // Only the refused reload compiled from scratch (a failure counts there).
    expect_metric(admin, &compiled, Some(1.0));
}
