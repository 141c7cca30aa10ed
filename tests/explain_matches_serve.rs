//! `explain` says what `serve` does: a table of requests goes to a running
//! `serve` and to `explain` with the same method, URL, headers and client,
//! and both must give the same outcome, status and Location. The table
//! holds what a second copy of the policy would get wrong: pools hashed on
//! a header, a cookie and the client address (a trusted proxy's
//! `X-Forwarded-For`), the scheme a trusted proxy vouches for, method and
//! scheme conditions, bad requests, proxying, and the maintenance swap to a
//! header-hashed pool.

mod support;

use serde_json::Value;
use std::process::Command;
use support::*;

/// Eight targets per pool, so a wrong key picks another one.
fn targets(prefix: &str) -> String {
    (0..8)
        .map(|i| format!("\"https://{prefix}{i}.example.net\""))
        .collect::<Vec<_>>()
        .join(", ")
}

fn pools() -> String {
    format!(
        r#"
[pools.by_header]
targets = [{}]
selection = "hash"
hash_key = "header:X-User"

[pools.by_cookie]
targets = [{}]
selection = "hash"
hash_key = "cookie:sid"

[pools.by_client]
targets = [{}]
selection = "hash"
"#,
        targets("h"),
        targets("c"),
        targets("ip")
    )
}

const RULES: &str = r#"
[[redirect]]
id = "exact"
path = "/old"
to = "https://new.example/page"
status = 301

[[redirect]]
id = "prefix"
host = "docs.example"
prefix = "/guide"
to = "https://docs.example.net/v2"

[[redirect]]
id = "regex"
regex = '^/item/(?P<id>[0-9]+)$'
to = "/items/${id}"
status = 302

[[redirect]]
id = "only-https"
path = "/secure"
scheme = "https"
to = "https://secure.example/in"

[[redirect]]
id = "only-post"
path = "/form"
methods = ["POST"]
to = "/form-v2"
status = 307

[[redirect]]
id = "user"
prefix = "/u"
pool = "by_header"

[[redirect]]
id = "session"
prefix = "/s"
pool = "by_cookie"

[[redirect]]
id = "client"
prefix = "/c"
pool = "by_client"
"#;

/// One request: method, URL (its host is the Host), header lines.
struct Case {
    method: &'static str,
    url: String,
    headers: Vec<String>,
}

fn case(method: &'static str, url: &str, headers: &[&str]) -> Case {
    Case {
        method,
        url: url.to_string(),
        headers: headers.iter().map(|h| h.to_string()).collect(),
    }
}

/// (outcome, status, Location) as `explain --format json` says.
fn explained(proxy: &Proxy, c: &Case) -> (String, Option<u64>, Option<String>) {
    let mut cmd = Command::new(BIN);
    cmd.arg("explain")
        .arg("-c")
        .arg(&proxy.config_path)
        .args(["--format", "json", "--method", c.method]);
    for h in &c.headers {
        cmd.args(["--header", h]);
    }
    let out = cmd.arg(&c.url).output().expect("run explain");
    assert!(out.status.success(), "explain {}: {out:?}", c.url);
    let v: Value = serde_json::from_slice(&out.stdout).expect("explain prints JSON");
    (
        v["outcome"].as_str().unwrap_or_default().to_string(),
        v["status"].as_u64(),
        v["location"].as_str().map(str::to_string),
    )
}

/// (outcome, status, Location) of what `serve` answered.
fn served(proxy: &Proxy, backend: &Backend, c: &Case) -> (String, Option<u64>, Option<String>) {
    let rest = c.url.split_once("://").expect("absolute URL").1;
    let (host, target) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut req = format!("{} {target} HTTP/1.1\r\nHost: {host}\r\n", c.method);
    for h in &c.headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    if c.method == "POST" {
        req.push_str("Content-Length: 0\r\n");
    }
    req.push_str("Connection: close\r\n\r\n");
    let mut conn = proxy.connect();
    conn.send(req.as_bytes());
    let r = conn.read_response(false);
    let status = u64::from(r.status);
    if r.status == 200 && r.body_str() == backend.answer() {
        return ("proxy".into(), None, None);
    }
    let outcome = match r.status {
        300..=399 => "redirect",
        400 | 414 => "bad_request",
        other => panic!("{}: unexpected {other}: {r:?}", c.url),
    };
    (
        outcome.into(),
        Some(status),
        r.header("location").map(str::to_string),
    )
}

fn compare(proxy: &Proxy, backend: &Backend, cases: &[Case]) {
    for c in cases {
        let e = explained(proxy, c);
        let s = served(proxy, backend, c);
        // The maintenance outcome is serve's redirect to the pool.
        let e_cmp = match e.0.as_str() {
            "maintenance" => ("redirect".to_string(), e.1, e.2.clone()),
            _ => e.clone(),
        };
        assert_eq!(
            e_cmp, s,
            "{} {} {:?}: explain said {e:?}, serve did {s:?}",
            c.method, c.url, c.headers
        );
    }
}

#[test]
fn explain_takes_the_route_serve_takes() {
    let backend = Backend::start("up");
    let proxy = Proxy::start_with(
        "trusted_proxies = [\"127.0.0.1\"]",
        &format!(
            "{}\n[upstream]\nbackends = [\"{}\"]\n{RULES}",
            pools(),
            backend.addr()
        ),
    );
    let mut cases = vec![
        case("GET", "http://a.example/old?x=1", &[]),
        case("POST", "http://a.example/old", &[]),
        case("GET", "http://docs.example/guide/a/b", &[]),
        case("GET", "http://docs.example:8080/guide", &[]),
        case("GET", "http://other.example/guide/a", &[]),
        case("GET", "http://a.example/item/42", &[]),
        case("GET", "http://a.example/item/x", &[]),
        case("GET", "http://a.example/secure", &[]),
        case(
            "GET",
            "http://a.example/secure",
            &["X-Forwarded-Proto: https"],
        ),
        case("GET", "http://a.example/form", &[]),
        case("POST", "http://a.example/form", &[]),
        case("GET", "http://a.example/../etc", &[]),
        case("GET", "http://a.example/%2e%2e/x", &[]),
        case("GET", "http://a..example/old", &[]),
    ];
    for i in 0..12 {
        cases.push(case(
            "GET",
            &format!("http://a.example/u/page?n={i}"),
            &[&format!("X-User: user-{i}")],
        ));
        cases.push(case(
            "GET",
            &format!("http://a.example/s/{i}"),
            &[&format!("Cookie: theme=dark; sid=session-{i}")],
        ));
        cases.push(case(
            "GET",
            &format!("http://a.example/c/{i}"),
            &[&format!("X-Forwarded-For: 198.51.100.{i}")],
        ));
    }
    // Without the header or cookie, the client address is the key.
    cases.push(case("GET", "http://a.example/u/none", &[]));
    cases.push(case(
        "GET",
        "http://a.example/s/none",
        &["X-Forwarded-For: 203.0.113.9"],
    ));
    // The table reaches several targets of each pool: the keys matter.
    let mut locations = std::collections::HashSet::new();
    for c in &cases {
        if let (_, _, Some(l)) = explained(&proxy, c) {
            locations.insert(l.split('/').nth(2).unwrap_or_default().to_string());
        }
    }
    for prefix in ["h", "c", "ip"] {
        let seen = locations
            .iter()
            .filter(|h| h.starts_with(prefix) && h.ends_with(".example.net"))
            .count();
        assert!(seen >= 3, "pool {prefix}: only {seen} targets reached");
    }
    compare(&proxy, &backend, &cases);
}

#[test]
fn explain_takes_the_maintenance_route_serve_takes() {
    let backend = Backend::start("up");
    let proxy = Proxy::start(&format!(
        "{}\n[upstream]\nbackends = [\"{}\"]\n\n[maintenance]\nenabled = true\nredirect_pool = \"by_header\"\nretry_after = 30\n{RULES}",
        pools(),
        backend.addr()
    ));
    let mut cases = vec![
        case("GET", "http://a.example/old", &[]),
        case("GET", "http://a.example/../x", &[]),
    ];
    for i in 0..12 {
        cases.push(case(
            "GET",
            &format!("http://a.example/anything/{i}?q={i}"),
            &[&format!("X-User: user-{i}")],
        ));
    }
    compare(&proxy, &backend, &cases);
}
