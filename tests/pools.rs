mod support;

// Integration tests of backup-host pools (docs/configuration.md `[pools.*]`,
// `[upstream] failover_pool`, `[maintenance]`; docs/operations.md pools and
// failover; docs/metrics.md pool and outcome metrics), run against the built binary (`pingora-redirect serve`) with real
// loopback `Backend`s as pool targets and upstream backends, stopped,
// restarted and told to fail `/healthz` during the tests.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::{expect_metric, metric, poll_until, Backend, Conn, Proxy, RawResponse};

/// The Host every request carries.
const HOST: &str = "pools.test";
/// How long a health transition may take to show (interval 1 s + probe).
const HEALTH_DEADLINE: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------
// Helpers

/// The base URL of a backend used as a pool target, as configured.
fn base(b: &Backend) -> String {
    format!("http://127.0.0.1:{}", b.port)
}

/// A pool target entry for `targets = [...]`.
fn weighted(b: &Backend, weight: u32) -> String {
    format!("{{ url = \"{}\", weight = {weight} }}", base(b))
}

fn up_series(pool: &str, b: &Backend) -> String {
    format!(
        "pingora_redirect_pool_target_up{{pool=\"{pool}\",target=\"{}\"}}",
        base(b)
    )
}

fn selections_series(pool: &str, b: &Backend) -> String {
    format!(
        "pingora_redirect_pool_selections_total{{pool=\"{pool}\",target=\"{}\"}}",
        base(b)
    )
}

fn outcome_series(outcome: &str) -> String {
    format!("pingora_redirect_requests_total{{outcome=\"{outcome}\"}}")
}

/// The request head (without the final empty line) for `method path`.
fn head(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8], close: bool) -> Vec<u8> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {HOST}\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    if close {
        req.push_str("Connection: close\r\n");
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// One request on a keep-alive connection (the framing is checked by
/// `Conn::read_response`).
fn send(c: &mut Conn, method: &str, path: &str, headers: &[(&str, &str)]) -> RawResponse {
    c.send(&head(method, path, headers, b"", false));
    c.read_response(method == "HEAD")
}

/// One request on a fresh connection with `Connection: close`, read to the
/// end of the stream (lenient about framing, for polls across failures).
fn once(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> RawResponse {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the proxy");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&head(method, path, headers, body, true))
        .expect("write request");
    let mut buf = Vec::new();
    let end = Instant::now() + Duration::from_secs(10);
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset && !buf.is_empty() => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!(
                "{method} {path}: {e}; got {:?}",
                String::from_utf8_lossy(&buf)
            ),
        }
        assert!(Instant::now() < end, "{method} {path}: no end of stream");
    }
    support::parse_response(&buf, method == "HEAD").unwrap_or_else(|| {
        panic!(
            "{method} {path}: bad response {:?}",
            String::from_utf8_lossy(&buf)
        )
    })
}

/// The index of the target whose base the Location starts with, and asserts
/// the rest of the Location is `rest`.
fn target_of(r: &RawResponse, targets: &[&Backend], rest: &str) -> usize {
    let loc = r
        .header("location")
        .unwrap_or_else(|| panic!("no Location: {r:?}"));
    let i = targets
        .iter()
        .position(|b| loc.starts_with(&format!("{}/", base(b))))
        .unwrap_or_else(|| panic!("Location {loc} names no pool target"));
    assert_eq!(
        loc,
        format!("{}{rest}", base(targets[i])),
        "Location of {r:?}"
    );
    i
}

/// Asserts a pool redirect: status, exact Location under one of `targets`,
/// Cache-Control, Retry-After; returns the target's index.
fn assert_pool_redirect(
    r: &RawResponse,
    status: u16,
    targets: &[&Backend],
    rest: &str,
    cache_control: &str,
    retry_after: Option<&str>,
) -> usize {
    assert_eq!(r.status, status, "{r:?}");
    assert_eq!(r.all("location").len(), 1, "{r:?}");
    assert_eq!(
        r.header("content-type"),
        Some("text/html; charset=utf-8"),
        "{r:?}"
    );
    assert_eq!(r.header("cache-control"), Some(cache_control), "{r:?}");
    assert_eq!(r.header("retry-after"), retry_after, "{r:?}");
    target_of(r, targets, rest)
}

/// Asserts the answer of a pool with no healthy target: 503, a Retry-After,
/// no Location.
fn assert_unavailable(r: &RawResponse, retry_after: Option<&str>) {
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.header("location"), None, "{r:?}");
    let got = r
        .header("retry-after")
        .unwrap_or_else(|| panic!("503 without Retry-After: {r:?}"));
    match retry_after {
        Some(want) => assert_eq!(got, want, "{r:?}"),
        None => assert!(
            got.parse::<u32>().is_ok(),
            "Retry-After {got:?} is not seconds"
        ),
    }
}

/// Polls the admin `/metrics` until `series` is `want`; panics after
/// [`HEALTH_DEADLINE`].
fn wait_metric(admin_port: u16, series: &str, want: f64) {
    let mut last = None;
    let ok = poll_until(HEALTH_DEADLINE, || {
        last = metric(admin_port, series);
        (last == Some(want)).then_some(())
    });
    assert!(ok.is_some(), "{series} stayed {last:?}, expected {want}");
}

// ---------------------------------------------------------------------------
// 1. Round robin, Location, status, Retry-After, methods, query

#[test]
fn round_robin_pool_rule_follows_weights_exactly() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let c = Backend::start("c");
    let proxy = Proxy::start(&format!(
        r#"
[pools.p]
targets = ["{}", {}, {}]
selection = "round_robin"

[[redirect]]
id = "dl"
prefix = "/dl"
pool = "p"
retry_after = 30

[[redirect]]
id = "perm"
prefix = "/perm"
pool = "p"
status = 301

[[redirect]]
id = "nq"
prefix = "/nq"
pool = "p"
query = "drop"

[pools.sub]
targets = ["{}/mirror/"]

[[redirect]]
id = "sub"
prefix = "/sub"
pool = "sub"
"#,
        base(&a),
        weighted(&b, 1),
        weighted(&c, 2),
        base(&a)
    ));
    let targets = [&a, &b, &c];
    let mut conn = proxy.connect();

    // Weights 1, 1, 2 over 1,000 requests (250 full rounds): round robin is
    // exact, so the counts are exactly 250, 250 and 500 (well within ±2 points).
    let mut counts = [0usize; 3];
    for i in 0..1000 {
        let path = format!("/dl/file-{i}.iso?v={i}&x=y");
        let r = send(&mut conn, "GET", &path, &[]);
        counts[assert_pool_redirect(&r, 307, &targets, &path, "no-store", Some("30"))] += 1;
    }
    assert_eq!(counts, [250, 250, 500], "round robin shares");
    // Every selection is counted per pool and target.
    expect_metric(proxy.admin_port, &selections_series("p", &a), Some(250.0));
    expect_metric(proxy.admin_port, &selections_series("p", &b), Some(250.0));
    expect_metric(proxy.admin_port, &selections_series("p", &c), Some(500.0));
    expect_metric(
        proxy.admin_port,
        "pingora_redirect_hits_total{rule=\"dl\",status=\"307\"}",
        Some(1000.0),
    );
    expect_metric(proxy.admin_port, &outcome_series("redirect"), Some(1000.0));

    // The request path is kept as received (dot segments resolved, escapes
    // kept byte for byte); a bare `?` is an empty query.
    let r = send(&mut conn, "GET", "/dl/a%20b/./c%2Fd", &[]);
    assert_pool_redirect(&r, 307, &targets, "/dl/a%20b/c%2Fd", "no-store", Some("30"));
    let r = send(&mut conn, "GET", "/dl/empty?", &[]);
    assert_pool_redirect(&r, 307, &targets, "/dl/empty", "no-store", Some("30"));
    let r = send(&mut conn, "GET", "/dl", &[]);
    assert_pool_redirect(&r, 307, &targets, "/dl", "no-store", Some("30"));

    // POST keeps 307 and the method; the body is not read as a request.
    let r = once(proxy.port, "POST", "/dl/upload?id=9", &[], b"name=value");
    assert_pool_redirect(&r, 307, &targets, "/dl/upload?id=9", "no-store", Some("30"));

    // The rule's status and the permanent Cache-Control; no Retry-After when
    // the rule has none; 301 becomes 308 for POST (preserve_method).
    let r = send(&mut conn, "GET", "/perm/x?q=1", &[]);
    assert_pool_redirect(&r, 301, &targets, "/perm/x?q=1", "max-age=86400", None);
    let r = once(proxy.port, "POST", "/perm/x?q=1", &[], b"k=v");
    assert_pool_redirect(&r, 308, &targets, "/perm/x?q=1", "max-age=86400", None);

    // `query = "drop"` drops the query.
    let r = send(&mut conn, "GET", "/nq/page?secret=1&b=2", &[]);
    assert_pool_redirect(&r, 307, &targets, "/nq/page", "no-store", None);
    let r = once(proxy.port, "POST", "/nq/form?x=1", &[], b"a=b");
    assert_pool_redirect(&r, 307, &targets, "/nq/form", "no-store", None);

    // A base URL with a path: one `/` between it and the request path; the
    // metrics label is the target as configured.
    let r = send(&mut conn, "GET", "/sub/x/y?z=1", &[]);
    assert_eq!(r.status, 307, "{r:?}");
    assert_eq!(
        r.header("location"),
        Some(format!("{}/mirror/sub/x/y?z=1", base(&a)).as_str()),
        "{r:?}"
    );
    expect_metric(
        proxy.admin_port,
        &format!(
            "pingora_redirect_pool_selections_total{{pool=\"sub\",target=\"{}/mirror/\"}}",
            base(&a)
        ),
        Some(1.0),
    );

    // A pool without `health_check` counts every target as healthy.
    for t in targets {
        assert_eq!(metric(proxy.admin_port, &up_series("p", t)), Some(1.0));
    }

    // A pool rule answers from the configuration: no target was contacted.
    for t in targets {
        assert!(t.requests().is_empty(), "target {} was contacted", t.name);
    }
}

// ---------------------------------------------------------------------------
// 2. Random

#[test]
fn random_pool_rule_follows_weights() {
    let light = Backend::start("light");
    let heavy = Backend::start("heavy");
    let proxy = Proxy::start(&format!(
        r#"
[pools.r]
targets = [{}, {}]
selection = "random"

[[redirect]]
id = "rand"
prefix = "/"
pool = "r"
"#,
        weighted(&light, 1),
        weighted(&heavy, 3)
    ));
    let targets = [&light, &heavy];
    let mut conn = proxy.connect();
    let mut heavy_count = 0;
    for i in 0..1000 {
        let path = format!("/r/{i}?n={i}");
        let r = send(&mut conn, "GET", &path, &[]);
        if assert_pool_redirect(&r, 307, &targets, &path, "no-store", None) == 1 {
            heavy_count += 1;
        }
    }
    // Expected share 3/4. Tolerance ±5 points: the binomial standard
    // deviation over 1,000 draws is sqrt(1000 * 0.75 * 0.25) ≈ 13.7 draws
    // (1.37 points), so ±50 draws is about 3.6 sigma (false failure < 0.03 %).
    assert!(
        (700..=800).contains(&heavy_count),
        "heavy target got {heavy_count} of 1000 (expected 750 ± 50)"
    );
    expect_metric(
        proxy.admin_port,
        &selections_series("r", &heavy),
        Some(heavy_count as f64),
    );
    expect_metric(
        proxy.admin_port,
        &selections_series("r", &light),
        Some((1000 - heavy_count) as f64),
    );
}

// ---------------------------------------------------------------------------
// 3. Hash: sticky, consistent across processes, minimal movement

/// The three hash pools (one per key kind) over `targets`, with one rule each.
fn hash_config(targets: &[&Backend]) -> String {
    let list: Vec<String> = targets.iter().map(|b| format!("\"{}\"", base(b))).collect();
    let list = list.join(", ");
    let mut s = String::new();
    for (pool, key, prefix) in [
        ("hip", "client_ip", "/ip"),
        ("huser", "header:X-User", "/user"),
        ("hcookie", "cookie:session", "/cookie"),
    ] {
        s.push_str(&format!(
            "[pools.{pool}]\ntargets = [{list}]\nselection = \"hash\"\nhash_key = \"{key}\"\n\n\
             [[redirect]]\nid = \"{pool}\"\nprefix = \"{prefix}\"\npool = \"{pool}\"\n\n"
        ));
    }
    s
}

/// The request for key `k` of one key kind: path and headers.
fn hash_request(kind: usize, k: usize) -> (String, Vec<(&'static str, String)>) {
    match kind {
        0 => (
            format!("/ip/k{k}"),
            vec![(
                "X-Forwarded-For",
                format!("10.{}.{}.{}", k / 65536, (k / 256) % 256, k % 256),
            )],
        ),
        1 => (format!("/user/k{k}"), vec![("X-User", format!("user-{k}"))]),
        _ => (
            format!("/cookie/k{k}"),
            vec![("Cookie", format!("theme=dark; session=s-{k}; lang=en"))],
        ),
    }
}

/// The target index `conn` gets for key `k` of `kind`.
fn hash_pick(conn: &mut Conn, targets: &[&Backend], kind: usize, k: usize) -> usize {
    let (path, headers) = hash_request(kind, k);
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let r = send(conn, "GET", &path, &headers);
    assert_pool_redirect(&r, 307, targets, &path, "no-store", None)
}

#[test]
fn hash_pools_are_sticky_consistent_across_processes_and_move_keys_only_to_a_new_target() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let c = Backend::start("c");
    let d = Backend::start("d");
    let three = [&a, &b, &c];
    let four = [&a, &b, &c, &d];
    // X-Forwarded-For is believed from 127.0.0.1 only.
    let trusted = "trusted_proxies = [\"127.0.0.1/32\"]";
    let config3 = hash_config(&three);
    let first = Proxy::start_with(trusted, &config3);
    let second = Proxy::start_with(trusted, &config3);
    let grown = Proxy::start_with(trusted, &hash_config(&four));
    let mut c1 = first.connect();
    let mut c2 = second.connect();
    let mut c4 = grown.connect();

    for (kind, name) in ["client_ip", "header:X-User", "cookie:session"]
        .iter()
        .enumerate()
    {
        // The same key gets the same target 100 times in a row.
        let want = hash_pick(&mut c1, &three, kind, 7);
        for n in 0..100 {
            assert_eq!(
                hash_pick(&mut c1, &three, kind, 7),
                want,
                "{name}: request {n} of the same key moved"
            );
        }

        let mut moved = 0;
        let mut used = [0usize; 3];
        for k in 0..1000 {
            let old = hash_pick(&mut c1, &three, kind, k);
            used[old] += 1;
            // A second process from the same configuration agrees.
            if k < 200 {
                assert_eq!(
                    hash_pick(&mut c2, &three, kind, k),
                    old,
                    "{name}: key {k} differs between two processes"
                );
            }
            // With a fourth target, a key either stays or moves to it.
            let new = hash_pick(&mut c4, &four, kind, k);
            if new != old {
                assert_eq!(
                    new, 3,
                    "{name}: key {k} moved from {} to {}, not to the new target",
                    old, new
                );
                moved += 1;
            }
        }
        assert!(
            used.iter().all(|&u| u > 0),
            "{name}: the keys do not spread over the targets: {used:?}"
        );
        // About 1/4 is expected to move (250); at most 40 %, and the new
        // target must get some keys at all (at least 10 %).
        assert!(
            (100..=400).contains(&moved),
            "{name}: {moved} of 1000 keys moved"
        );
    }
    drop((c1, c2, c4));
    // Different client IPs without trusted X-Forwarded-For: every key is the
    // connection's address, so one target for all.
    let plain = Proxy::start(&config3);
    let mut cp = plain.connect();
    let want = hash_pick(&mut cp, &three, 0, 1);
    for k in 2..50 {
        assert_eq!(
            hash_pick(&mut cp, &three, 0, k),
            want,
            "X-Forwarded-For from an untrusted peer was believed"
        );
    }
}

// ---------------------------------------------------------------------------
// 4. Health checks

fn health_config(a: &Backend, b: &Backend, c: &Backend, check: &str) -> String {
    format!(
        r#"
[pools.p]
targets = ["{}", "{}", "{}"]
selection = "round_robin"
health_check = {check}

[[redirect]]
id = "dl"
prefix = "/dl"
pool = "p"
retry_after = 45

[[redirect]]
id = "bare"
prefix = "/bare"
pool = "p"
"#,
        base(a),
        base(b),
        base(c)
    )
}

/// 200 requests, none naming target `excluded`; every other target is used.
fn never_names(conn: &mut Conn, targets: &[&Backend], excluded: usize, tag: &str) {
    let mut used = vec![0usize; targets.len()];
    for i in 0..200 {
        let path = format!("/dl/{tag}/{i}?i={i}");
        let r = send(conn, "GET", &path, &[]);
        let t = assert_pool_redirect(&r, 307, targets, &path, "no-store", Some("45"));
        assert_ne!(t, excluded, "{tag}: request {i} named the unhealthy target");
        used[t] += 1;
    }
    for (i, n) in used.iter().enumerate() {
        if i != excluded {
            assert!(*n > 0, "{tag}: healthy target {i} never chosen: {used:?}");
        }
    }
}

/// Polls until a request names target `want` (deadline [`HEALTH_DEADLINE`]).
fn until_chosen(conn: &mut Conn, targets: &[&Backend], want: usize, tag: &str) {
    let mut n = 0;
    let got = poll_until(HEALTH_DEADLINE, || {
        // Round robin over three: a healthy target is named within 3.
        (0..4).find_map(|_| {
            n += 1;
            let path = format!("/dl/{tag}/{n}");
            let r = send(conn, "GET", &path, &[]);
            let t = assert_pool_redirect(&r, 307, targets, &path, "no-store", Some("45"));
            (t == want).then_some(())
        })
    });
    assert!(got.is_some(), "{tag}: the target never came back");
}

#[test]
fn tcp_health_check_takes_a_stopped_target_out_and_back() {
    let mut a = Backend::start("a");
    let mut b = Backend::start("b");
    let mut c = Backend::start("c");
    let proxy = Proxy::start(&health_config(
        &a,
        &b,
        &c,
        r#"{ type = "tcp", interval = "1s" }"#,
    ));
    let port = proxy.admin_port;
    for t in [&a, &b, &c] {
        wait_metric(port, &up_series("p", t), 1.0);
    }
    let mut conn = proxy.connect();
    until_chosen(&mut conn, &[&a, &b, &c], 1, "warm");

    b.stop();
    wait_metric(port, &up_series("p", &b), 0.0);
    never_names(&mut conn, &[&a, &b, &c], 1, "b-down");
    assert_eq!(metric(port, &up_series("p", &a)), Some(1.0));
    assert_eq!(metric(port, &up_series("p", &c)), Some(1.0));

    b.restart();
    wait_metric(port, &up_series("p", &b), 1.0);
    until_chosen(&mut conn, &[&a, &b, &c], 1, "b-back");

    // Every target down: 503 with Retry-After (the rule's, or some number of
    // seconds for a rule without one) and no Location.
    a.stop();
    b.stop();
    c.stop();
    for t in [&a, &b, &c] {
        wait_metric(port, &up_series("p", t), 0.0);
    }
    let r = send(&mut conn, "GET", "/dl/all-down?x=1", &[]);
    assert_unavailable(&r, Some("45"));
    let r = once(proxy.port, "POST", "/dl/all-down", &[], b"a=1");
    assert_unavailable(&r, Some("45"));
    let r = send(&mut conn, "GET", "/bare/all-down", &[]);
    assert_unavailable(&r, None);

    // One comes back: it gets every request.
    c.restart();
    wait_metric(port, &up_series("p", &c), 1.0);
    for i in 0..10 {
        let path = format!("/dl/only-c/{i}");
        let r = send(&mut conn, "GET", &path, &[]);
        assert_eq!(
            assert_pool_redirect(&r, 307, &[&a, &b, &c], &path, "no-store", Some("45")),
            2
        );
    }
}

#[test]
fn http_health_check_takes_a_failing_target_out_and_back() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let c = Backend::start("c");
    let proxy = Proxy::start(&health_config(
        &a,
        &b,
        &c,
        r#"{ type = "http", path = "/healthz", interval = "1s" }"#,
    ));
    let port = proxy.admin_port;
    // The check asks each target for the configured path.
    for t in [&a, &b, &c] {
        let probe = poll_until(HEALTH_DEADLINE, || {
            t.requests().into_iter().find(|r| r.target == "/healthz")
        })
        .unwrap_or_else(|| panic!("no HTTP health check reached {}", t.name));
        assert_eq!(probe.method, "GET");
        wait_metric(port, &up_series("p", t), 1.0);
    }
    let mut conn = proxy.connect();

    b.set_healthy(false);
    wait_metric(port, &up_series("p", &b), 0.0);
    never_names(&mut conn, &[&a, &b, &c], 1, "b-failing");

    b.set_healthy(true);
    wait_metric(port, &up_series("p", &b), 1.0);
    until_chosen(&mut conn, &[&a, &b, &c], 1, "b-passing");

    for t in [&a, &b, &c] {
        t.set_healthy(false);
    }
    for t in [&a, &b, &c] {
        wait_metric(port, &up_series("p", t), 0.0);
    }
    let r = send(&mut conn, "GET", "/dl/all-failing", &[]);
    assert_unavailable(&r, Some("45"));
    let r = send(&mut conn, "GET", "/bare/all-failing", &[]);
    assert_unavailable(&r, None);

    a.set_healthy(true);
    wait_metric(port, &up_series("p", &a), 1.0);
    let r = send(&mut conn, "GET", "/dl/a-again", &[]);
    assert_eq!(
        assert_pool_redirect(
            &r,
            307,
            &[&a, &b, &c],
            "/dl/a-again",
            "no-store",
            Some("45")
        ),
        0
    );
    // Only the health checks reached the targets.
    for t in [&a, &b, &c] {
        assert!(t.traffic().is_empty(), "{} got traffic", t.name);
    }
}

// ---------------------------------------------------------------------------
// 5. Upstream failover

/// Polls fresh requests until one is answered `status`; returns how many
/// answers had status `count_status` on the way (the last one included).
fn poll_status(port: u16, status: u16, count_status: u16, tag: &str) -> usize {
    let mut n = 0;
    let mut counted = 0;
    let mut last = None;
    let got = poll_until(HEALTH_DEADLINE, || {
        n += 1;
        let r = once(port, "GET", &format!("/{tag}/{n}"), &[], b"");
        if r.status == count_status {
            counted += 1;
        }
        let hit = r.status == status;
        last = Some(r);
        hit.then_some(())
    });
    assert!(
        got.is_some(),
        "{tag}: never answered {status}; last {last:?}"
    );
    counted
}

#[test]
fn upstream_failover_redirects_to_the_pool_while_the_backend_is_down() {
    let mut u = Backend::start("u");
    let t = Backend::start("t");
    let proxy = Proxy::start(&format!(
        r#"
[pools.p]
targets = ["{}"]

[upstream]
backends = ["{}"]
health_check = {{ type = "tcp", interval = "1s" }}
failover_pool = "p"
"#,
        base(&t),
        u.addr()
    ));
    let port = proxy.admin_port;
    // Backend up: misses are proxied.
    for i in 0..5 {
        let r = once(proxy.port, "GET", &format!("/page/{i}?q={i}"), &[], b"");
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.body_str(), u.answer());
        assert_eq!(r.header("location"), None);
    }
    assert_eq!(u.traffic().len(), 5);
    expect_metric(port, &outcome_series("failover"), Some(0.0));

    u.stop();
    let before = u.traffic().len();
    let mut failovers = poll_status(proxy.port, 307, 307, "while-down");

    // 307 to the pool target: Cache-Control no-store, Retry-After 60 (no
    // [maintenance] retry_after), the path and query kept.
    let r = once(proxy.port, "GET", "/files/report.pdf?v=2&x=%20y", &[], b"");
    assert_pool_redirect(
        &r,
        307,
        &[&t],
        "/files/report.pdf?v=2&x=%20y",
        "no-store",
        Some("60"),
    );
    let r = once(proxy.port, "POST", "/api/upload?id=4", &[], b"field=1");
    assert_pool_redirect(&r, 307, &[&t], "/api/upload?id=4", "no-store", Some("60"));
    let r = once(proxy.port, "DELETE", "/api/item/9", &[], b"");
    assert_pool_redirect(&r, 307, &[&t], "/api/item/9", "no-store", Some("60"));
    let r = once(proxy.port, "HEAD", "/head/me", &[], b"");
    assert_pool_redirect(&r, 307, &[&t], "/head/me", "no-store", Some("60"));
    failovers += 4;
    let mut conn = proxy.connect();
    for i in 0..20 {
        let path = format!("/keep/{i}?a={i}");
        let r = send(&mut conn, "GET", &path, &[]);
        assert_pool_redirect(&r, 307, &[&t], &path, "no-store", Some("60"));
        failovers += 1;
    }
    drop(conn);
    expect_metric(port, &outcome_series("failover"), Some(failovers as f64));
    // Failover selections count too.
    expect_metric(port, &selections_series("p", &t), Some(failovers as f64));
    expect_metric(
        port,
        &format!(
            "pingora_redirect_upstream_backend_up{{backend=\"{}\"}}",
            u.addr()
        ),
        Some(0.0),
    );
    assert!(t.requests().is_empty(), "the pool target was contacted");

    // Backend back: proxied again.
    u.restart();
    // Until the health check sees it, misses still fail over (and count).
    failovers += poll_status(proxy.port, 200, 307, "after-restart");
    for i in 0..5 {
        let r = once(proxy.port, "GET", &format!("/back/{i}"), &[], b"");
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.body_str(), u.answer());
    }
    assert!(u.traffic().len() >= before + 6);
    expect_metric(port, &outcome_series("failover"), Some(failovers as f64));
}

#[test]
fn failover_takes_maintenance_retry_after_and_answers_503_when_the_pool_is_down() {
    let dead = support::free_port();
    let mut t = Backend::start("t");
    let proxy = Proxy::start(&format!(
        r#"
[pools.p]
targets = ["{}"]
health_check = {{ type = "tcp", interval = "1s" }}

[upstream]
backends = ["127.0.0.1:{dead}"]
health_check = {{ type = "tcp", interval = "1s" }}
failover_pool = "p"

[maintenance]
enabled = false
retry_after = 120
"#,
        base(&t)
    ));
    poll_status(proxy.port, 307, 307, "warm");
    let r = once(proxy.port, "GET", "/x/y?z=1", &[], b"");
    assert_pool_redirect(&r, 307, &[&t], "/x/y?z=1", "no-store", Some("120"));

    // The pool's only target down too: 503 with Retry-After, no Location.
    t.stop();
    wait_metric(proxy.admin_port, &up_series("p", &t), 0.0);
    let r = once(proxy.port, "GET", "/x/y?z=1", &[], b"");
    assert_unavailable(&r, Some("120"));

    t.restart();
    wait_metric(proxy.admin_port, &up_series("p", &t), 1.0);
    let r = once(proxy.port, "GET", "/x/again", &[], b"");
    assert_pool_redirect(&r, 307, &[&t], "/x/again", "no-store", Some("120"));
}

// ---------------------------------------------------------------------------
// 6. Maintenance

#[test]
fn maintenance_redirect_pool_answers_misses_and_rules_still_win() {
    let u = Backend::start("u");
    let t1 = Backend::start("t1");
    let t2 = Backend::start("t2");
    let proxy = Proxy::start(&format!(
        r#"
[pools.p]
targets = ["{}", "{}"]

[upstream]
backends = ["{}"]

[maintenance]
enabled = true
redirect_pool = "p"
retry_after = 300

[[redirect]]
id = "moved"
path = "/moved"
to = "https://new.example.com/moved-here"
status = 301
"#,
        base(&t1),
        base(&t2),
        u.addr()
    ));
    let port = proxy.admin_port;
    let targets = [&t1, &t2];
    let mut conn = proxy.connect();
    let mut used = [0usize; 2];
    for i in 0..10 {
        let path = format!("/shop/cart/{i}?item={i}");
        let r = send(&mut conn, "GET", &path, &[]);
        used[assert_pool_redirect(&r, 307, &targets, &path, "no-store", Some("300"))] += 1;
    }
    assert_eq!(used, [5, 5], "round robin over two targets");
    let r = once(proxy.port, "POST", "/api/order?n=1", &[], b"qty=2");
    assert_pool_redirect(&r, 307, &targets, "/api/order?n=1", "no-store", Some("300"));

    // A rule still answers with its own redirect.
    let r = send(&mut conn, "GET", "/moved?k=v", &[]);
    assert_eq!(r.status, 301, "{r:?}");
    assert_eq!(
        r.header("location"),
        Some("https://new.example.com/moved-here?k=v")
    );
    assert_eq!(r.header("cache-control"), Some("max-age=86400"));
    assert_eq!(r.header("retry-after"), None);

    // `OPTIONS *` is never redirected: under maintenance it gets 503.
    let r = once(proxy.port, "OPTIONS", "*", &[], b"");
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.header("location"), None, "{r:?}");
    assert_eq!(r.header("retry-after"), Some("300"));

    expect_metric(port, &outcome_series("maintenance"), Some(12.0));
    expect_metric(port, &outcome_series("redirect"), Some(1.0));
    expect_metric(port, &outcome_series("proxy"), Some(0.0));
    // Maintenance selections count too.
    let s1 = metric(port, &selections_series("p", &t1)).unwrap_or(0.0);
    let s2 = metric(port, &selections_series("p", &t2)).unwrap_or(0.0);
    assert_eq!(s1 + s2, 11.0, "selections {s1} + {s2}");
    assert!(
        u.traffic().is_empty(),
        "[upstream] got traffic during maintenance"
    );
}

#[test]
fn maintenance_backends_replace_the_upstream() {
    let u = Backend::start("u");
    let m = Backend::start("m");
    let proxy = Proxy::start(&format!(
        r#"
[upstream]
backends = ["{}"]

[maintenance]
enabled = true
backends = ["{}"]

[[redirect]]
id = "moved"
path = "/moved"
to = "https://new.example.com/moved-here"
"#,
        u.addr(),
        m.addr()
    ));
    for i in 0..10 {
        let path = format!("/page/{i}?x={i}");
        let r = once(proxy.port, "GET", &path, &[], b"");
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.body_str(), m.answer());
        assert_eq!(r.header("location"), None);
    }
    let r = once(proxy.port, "GET", "/moved", &[], b"");
    assert_eq!(r.status, 307, "{r:?}");
    assert_eq!(
        r.header("location"),
        Some("https://new.example.com/moved-here")
    );
    let got: Vec<String> = m.traffic().into_iter().map(|r| r.target).collect();
    let want: Vec<String> = (0..10).map(|i| format!("/page/{i}?x={i}")).collect();
    assert_eq!(got, want);
    assert!(
        u.traffic().is_empty(),
        "[upstream] got traffic during maintenance"
    );
    expect_metric(proxy.admin_port, &outcome_series("maintenance"), Some(10.0));
    expect_metric(proxy.admin_port, &outcome_series("proxy"), Some(0.0));
}

#[test]
fn maintenance_disabled_leaves_the_upstream_serving() {
    let u = Backend::start("u");
    let t = Backend::start("t");
    let proxy = Proxy::start(&format!(
        r#"
[pools.p]
targets = ["{}"]

[upstream]
backends = ["{}"]

[maintenance]
enabled = false
redirect_pool = "p"
retry_after = 300
"#,
        base(&t),
        u.addr()
    ));
    for i in 0..10 {
        let r = once(proxy.port, "GET", &format!("/page/{i}"), &[], b"");
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.body_str(), u.answer());
        assert_eq!(r.header("location"), None);
        assert_eq!(r.header("retry-after"), None);
    }
    assert_eq!(u.traffic().len(), 10);
    expect_metric(proxy.admin_port, &outcome_series("proxy"), Some(10.0));
    expect_metric(proxy.admin_port, &outcome_series("maintenance"), Some(0.0));
    assert_eq!(metric(proxy.admin_port, &selections_series("p", &t)), None);
}
