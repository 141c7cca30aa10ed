//! Integration tests of the front proxy (`pingora-redirect serve`, docs/operations.md,
//! `[server]` and `[upstream]`, the response and bad requests, the
//! admin endpoint), run against the built binary over loopback sockets:
//! byte-exact HTTP/1.1, cleartext HTTP/2, a real client following redirects,
//! upstream load balancing with health checks, and start-up failures.

mod support;

use std::time::{Duration, Instant};
use support::{Backend, Conn, Proxy, RawResponse, POLL};

// ---------------------------------------------------------------------------
// HTTP/1.1, byte-exact

/// Rules for the raw HTTP/1.1 tests.
const RULES: &str = r#"
[[redirect]]
id = "docs"
host = "old.example.com"
prefix = "/docs"
to = "https://new.example.com/documentation"
status = 301

[[redirect]]
id = "search"
host = "old.example.com"
path = "/search"
to = "https://new.example.com/find?a=1&b=2"
status = 307

[[redirect]]
id = "legacy"
path = "/legacy"
to = "https://www.example.com/new"
status = 302

[[redirect]]
id = "other"
path = "/other"
to = "https://never.example.com/answered-other"

[[redirect]]
id = "everything"
host = "catch.example"
prefix = "/"
to = "https://catch.example.net"
status = 308
"#;

/// The link as the HTML body must carry it.
fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Asserts a complete redirect answer over HTTP/1.1: status, exactly one
/// Location, the content type, the cache policy, the framing, the HTML link
/// and the keep-alive decision.
fn assert_redirect(
    r: &RawResponse,
    status: u16,
    location: &str,
    cache_control: &str,
    connection: &str,
) {
    assert_eq!(r.version, "HTTP/1.1", "{r:?}");
    assert_eq!(r.status, status, "{r:?}");
    assert_eq!(r.all("location"), vec![location], "{r:?}");
    assert_eq!(
        r.header("content-type"),
        Some("text/html; charset=utf-8"),
        "{r:?}"
    );
    assert_eq!(r.header("cache-control"), Some(cache_control), "{r:?}");
    assert_eq!(r.header("connection"), Some(connection), "{r:?}");
    assert_eq!(r.header("retry-after"), None, "{r:?}");
    assert_body_links(r, location);
}

/// The body is a short HTML page whose link is the escaped Location, framed
/// by an exact Content-Length.
fn assert_body_links(r: &RawResponse, location: &str) {
    let body = r.body_str();
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str()),
        "{r:?}"
    );
    assert!(body.starts_with("<!DOCTYPE html>"), "{body}");
    assert!(
        body.contains(&format!("<a href=\"{}\">", html_escape(location))),
        "body does not link {location}: {body}"
    );
    if location.contains('&') {
        assert!(!body.contains(location), "unescaped link in {body}");
    }
    let link = html_escape(location).len();
    assert!(
        r.body.len() < 512 + 2 * link,
        "body is not short: {} bytes for a {link}-byte link",
        r.body.len()
    );
}

#[test]
fn http1_get_redirect_is_framed_byte_exact_and_keeps_the_connection() {
    let proxy = Proxy::start(RULES);
    let mut c = proxy.connect();

    c.send(b"GET /docs/guide/intro?lang=en HTTP/1.1\r\nHost: old.example.com\r\nUser-Agent: raw\r\n\r\n");
    let r = c.read_response(false);
    assert_eq!(r.reason, "Moved Permanently");
    assert_redirect(
        &r,
        301,
        "https://new.example.com/documentation/guide/intro?lang=en",
        "max-age=86400",
        "keep-alive",
    );

    // Same connection: a temporary redirect whose target has a query, joined
    // with `&` and HTML-escaped in the body.
    c.send(b"GET /search?q=v HTTP/1.1\r\nHost: old.example.com\r\n\r\n");
    let r = c.read_response(false);
    assert_redirect(
        &r,
        307,
        "https://new.example.com/find?a=1&b=2&q=v",
        "no-store",
        "keep-alive",
    );

    // Host is compared lower-cased, without the port or a trailing dot.
    c.send(b"GET /docs HTTP/1.1\r\nHost: OLD.Example.COM.:8080\r\n\r\n");
    let r = c.read_response(false);
    assert_redirect(
        &r,
        301,
        "https://new.example.com/documentation",
        "max-age=86400",
        "keep-alive",
    );
}

#[test]
fn http1_pipelined_head_then_get_are_answered_in_order() {
    let proxy = Proxy::start(RULES);
    let mut c = proxy.connect();
    c.send(
        b"HEAD /docs/a?x=1 HTTP/1.1\r\nHost: old.example.com\r\n\r\n\
          GET /docs/a?x=1 HTTP/1.1\r\nHost: old.example.com\r\n\r\n\
          GET /legacy HTTP/1.1\r\nHost: old.example.com\r\n\r\n",
    );
    let location = "https://new.example.com/documentation/a?x=1";

    // HEAD: the same headers, no body bytes (the parser reads the next
    // status line right after the head, so a stray body would fail it).
    let head = c.read_response(true);
    assert_eq!(head.status, 301, "{head:?}");
    assert_eq!(head.all("location"), vec![location]);
    assert_eq!(
        head.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(head.header("cache-control"), Some("max-age=86400"));
    assert_eq!(head.header("connection"), Some("keep-alive"));

    let get = c.read_response(false);
    assert_redirect(&get, 301, location, "max-age=86400", "keep-alive");
    assert_eq!(
        head.header("content-length"),
        get.header("content-length"),
        "HEAD and GET must announce the same length"
    );

    let third = c.read_response(false);
    assert_redirect(
        &third,
        302,
        "https://www.example.com/new",
        "no-store",
        "keep-alive",
    );
}

#[test]
fn http1_request_body_is_never_read_as_a_request() {
    let proxy = Proxy::start(RULES);
    let embedded = b"GET /other HTTP/1.1\r\nHost: old.example.com\r\n\r\n";

    // A small body with Content-Length: drained, the connection is kept, and
    // the next request on it gets its own answer; `/other` never does.
    let mut c = proxy.connect();
    let mut req = format!(
        "POST /docs/form HTTP/1.1\r\nHost: old.example.com\r\nContent-Length: {}\r\n\r\n",
        embedded.len()
    )
    .into_bytes();
    req.extend_from_slice(embedded);
    c.send(&req);
    let r = c.read_response(false);
    // 301 + POST → 308 (preserve_method).
    assert_redirect(
        &r,
        308,
        "https://new.example.com/documentation/form",
        "max-age=86400",
        "keep-alive",
    );
    c.send(b"GET /docs/next HTTP/1.1\r\nHost: old.example.com\r\n\r\n");
    let r = c.read_response(false);
    assert_redirect(
        &r,
        301,
        "https://new.example.com/documentation/next",
        "max-age=86400",
        "keep-alive",
    );

    // The same with the next request pipelined behind the body in one write.
    let mut c = proxy.connect();
    req.extend_from_slice(b"GET /docs/after HTTP/1.1\r\nHost: old.example.com\r\n\r\n");
    c.send(&req);
    let r = c.read_response(false);
    assert_eq!(r.status, 308, "{r:?}");
    assert_eq!(
        r.all("location"),
        vec!["https://new.example.com/documentation/form"]
    );
    let r = c.read_response(false);
    assert_eq!(r.status, 301, "{r:?}");
    assert_eq!(
        r.all("location"),
        vec!["https://new.example.com/documentation/after"]
    );

    // A chunked (unsized) body: answered with `Connection: close`, then the
    // connection ends without a second response.
    let mut c = proxy.connect();
    let mut req = format!(
        "POST /docs/form HTTP/1.1\r\nHost: old.example.com\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        embedded.len()
    )
    .into_bytes();
    req.extend_from_slice(embedded);
    req.extend_from_slice(b"\r\n0\r\n\r\n");
    c.send(&req);
    let r = c.read_response(false);
    assert_redirect(
        &r,
        308,
        "https://new.example.com/documentation/form",
        "max-age=86400",
        "close",
    );
    c.expect_closed();
}

/// A body too large to drain is answered with `Connection: close`; the
/// proxy then goes on reading what the client sends until it is done (the
/// lingering close), so the client's writes do not fail on a reset and the
/// answer is not lost.
#[test]
fn http1_a_body_answered_with_close_is_read_to_its_end_not_reset() {
    let proxy = Proxy::start(RULES);
    const BODY: usize = 512 * 1024;
    for round in 0..3 {
        let mut c = proxy.connect();
        let mut writer = c.stream.try_clone().expect("clone the socket");
        let sent = std::thread::spawn(move || {
            use std::io::Write;
            let head = format!(
                "POST /docs/upload HTTP/1.1\r\nHost: old.example.com\r\nContent-Length: {BODY}\r\n\r\n"
            );
            writer.write_all(head.as_bytes())?;
            let chunk = [b'x'; 16 * 1024];
            for _ in 0..BODY / chunk.len() {
                writer.write_all(&chunk)?;
            }
            writer.flush()
        });
        let r = c.read_response(false);
        assert_redirect(
            &r,
            308,
            "https://new.example.com/documentation/upload",
            "max-age=86400",
            "close",
        );
        let written = sent.join().expect("the writer thread");
        assert!(
            written.is_ok(),
            "round {round}: the client could not send its whole body: {written:?}"
        );
        c.expect_closed();
    }
}

/// Sends one request on a fresh connection and reads its answer.
fn one(proxy: &Proxy, req: &[u8]) -> (RawResponse, Conn) {
    let mut c = proxy.connect();
    c.send(req);
    let r = c.read_response(false);
    (r, c)
}

/// Asserts a 400/414 that closes the connection, with `reason` (when given)
/// in a plain-text body.
fn assert_rejected(proxy: &Proxy, req: &[u8], status: u16, reason: Option<&str>) {
    let (r, mut c) = one(proxy, req);
    let shown = String::from_utf8_lossy(&req[..req.len().min(200)]).into_owned();
    assert_eq!(r.status, status, "{shown:?} → {r:?}");
    assert_eq!(r.header("location"), None, "{shown:?} → {r:?}");
    assert_eq!(r.header("connection"), Some("close"), "{shown:?} → {r:?}");
    if let Some(reason) = reason {
        assert_eq!(
            r.header("content-type"),
            Some("text/plain; charset=utf-8"),
            "{shown:?} → {r:?}"
        );
        assert!(
            r.body_str().contains(reason),
            "{shown:?}: body {:?} does not give the reason {reason:?}",
            r.body_str()
        );
    }
    c.expect_closed();
}

#[test]
fn http1_bad_requests_are_rejected_and_the_process_keeps_serving() {
    let proxy = Proxy::start(RULES);

    // HTTP/1.1 without Host.
    assert_rejected(&proxy, b"GET /docs HTTP/1.1\r\n\r\n", 400, Some("Host"));
    // Two Host headers.
    assert_rejected(
        &proxy,
        b"GET /docs HTTP/1.1\r\nHost: old.example.com\r\nHost: old.example.com\r\n\r\n",
        400,
        None,
    );
    // Malformed Host: userinfo, two ports, and the other forbidden forms.
    assert_rejected(
        &proxy,
        b"GET /docs HTTP/1.1\r\nHost: a@b\r\n\r\n",
        400,
        None,
    );
    for host in [
        "a:1:2",
        "old.example.com:80:81",
        "a/b",
        "a\\b",
        "a#b",
        "a?b",
        "a b",
        "[::1",
    ] {
        let req = format!("GET /docs HTTP/1.1\r\nHost: {host}\r\n\r\n");
        assert_rejected(&proxy, req.as_bytes(), 400, Some("Host"));
    }
    // Dot segments climbing above the root, also percent-encoded.
    for path in ["/%2e%2e/x", "/../x", "/docs/%2E%2E/%2e%2e/x"] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: old.example.com\r\n\r\n");
        assert_rejected(&proxy, req.as_bytes(), 400, Some(".."));
    }
    // A path of 9000 bytes: 414; one of exactly 8192 is still served.
    let long = format!("/docs/{}", "a".repeat(9000 - 6));
    let req = format!("GET {long} HTTP/1.1\r\nHost: old.example.com\r\n\r\n");
    assert_rejected(&proxy, req.as_bytes(), 414, Some("8192"));
    let limit = format!("/docs/{}", "b".repeat(8192 - 6));
    let req = format!("GET {limit}?q=1 HTTP/1.1\r\nHost: old.example.com\r\n\r\n");
    let (r, _) = one(&proxy, req.as_bytes());
    assert_redirect(
        &r,
        301,
        &format!(
            "https://new.example.com/documentation/{}?q=1",
            "b".repeat(8186)
        ),
        "max-age=86400",
        "keep-alive",
    );

    // Absolute-form: the authority names the rule's host.
    let (r, _) = one(
        &proxy,
        b"GET http://old.example.com/docs/x?y=1 HTTP/1.1\r\nHost: old.example.com\r\n\r\n",
    );
    assert_redirect(
        &r,
        301,
        "https://new.example.com/documentation/x?y=1",
        "max-age=86400",
        "keep-alive",
    );

    // Absolute-form without any Host (HTTP/1.0): the authority is the host.
    let (r, _) = one(
        &proxy,
        b"GET http://old.example.com/docs/abs HTTP/1.0\r\n\r\n",
    );
    assert_eq!(r.status, 301, "{r:?}");
    assert_eq!(
        r.all("location"),
        vec!["https://new.example.com/documentation/abs"]
    );
    // An empty port is no port (RFC 3986 §3.2.3).
    let (r, _) = one(
        &proxy,
        b"GET /docs/e HTTP/1.1\r\nHost: old.example.com:\r\n\r\n",
    );
    assert_eq!(r.status, 301, "{r:?}");

    // HTTP/1.0 without Host: served, host-less rules only.
    let (r, mut c) = one(&proxy, b"GET /legacy HTTP/1.0\r\n\r\n");
    assert_eq!(r.status, 302, "{r:?}");
    assert_eq!(r.all("location"), vec!["https://www.example.com/new"]);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_body_links(&r, "https://www.example.com/new");
    c.expect_closed();
    let (r, _) = one(&proxy, b"GET /docs/x HTTP/1.0\r\n\r\n");
    assert_eq!(
        r.status, 404,
        "a host rule matched a request without a host: {r:?}"
    );
    assert_eq!(r.header("location"), None);

    // `OPTIONS *` is never redirected, even under a `prefix = "/"` rule of
    // its host; without an upstream it gets the 404.
    let (r, _) = one(&proxy, b"OPTIONS * HTTP/1.1\r\nHost: catch.example\r\n\r\n");
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(r.header("location"), None, "{r:?}");
    // … while a path on that host is.
    let (r, _) = one(
        &proxy,
        b"OPTIONS /x HTTP/1.1\r\nHost: catch.example\r\n\r\n",
    );
    assert_eq!(r.status, 308, "{r:?}");
    assert_eq!(r.all("location"), vec!["https://catch.example.net/x"]);

    // Still serving after all of that.
    let (r, _) = one(
        &proxy,
        b"GET /docs/still HTTP/1.1\r\nHost: old.example.com\r\n\r\n",
    );
    assert_redirect(
        &r,
        301,
        "https://new.example.com/documentation/still",
        "max-age=86400",
        "keep-alive",
    );
    assert_eq!(
        support::try_get(proxy.admin_port, "/healthz")
            .expect("healthz")
            .status,
        200
    );
}

// ---------------------------------------------------------------------------
// HTTP/2 cleartext

fn h2_client(proxy: &Proxy) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .redirect(reqwest::redirect::Policy::none())
        .resolve("old.example.com", proxy.addr())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("h2 client")
}

#[tokio::test]
async fn h2c_redirects_with_prior_knowledge() {
    let proxy = Proxy::start_with("h2c = true", RULES);
    let client = h2_client(&proxy);
    let base = format!("http://old.example.com:{}", proxy.port);
    let location = "https://new.example.com/documentation/a/b?c=d";

    let resp = client
        .get(format!("{base}/docs/a/b?c=d"))
        .send()
        .await
        .expect("h2 GET");
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status().as_u16(), 301);
    let h = resp.headers().clone();
    let locations: Vec<_> = h.get_all("location").iter().collect();
    assert_eq!(locations, vec![location]);
    assert_eq!(h["cache-control"], "max-age=86400");
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    let body = resp.bytes().await.expect("h2 body");
    assert_eq!(h["content-length"], body.len().to_string().as_str());
    let body = String::from_utf8_lossy(&body);
    assert!(body.starts_with("<!DOCTYPE html>"), "{body}");
    assert!(body.contains(&format!("<a href=\"{location}\">")), "{body}");

    // HEAD: no body and no stream error.
    let resp = client
        .head(format!("{base}/docs/a/b?c=d"))
        .send()
        .await
        .expect("h2 HEAD");
    assert_eq!(resp.status().as_u16(), 301);
    assert_eq!(resp.headers()["location"], location);
    let body = resp.bytes().await.expect("h2 HEAD body ends cleanly");
    assert!(
        body.is_empty(),
        "HEAD over h2 sent {} body bytes",
        body.len()
    );

    // POSTs with a body over h2: the 307 rule stays 307, the 301 rule
    // answers 308 (preserve_method).
    let resp = client
        .post(format!("{base}/search?q=1"))
        .body("field=value")
        .send()
        .await
        .expect("h2 POST");
    assert_eq!(resp.status().as_u16(), 307);
    assert_eq!(
        resp.headers()["location"],
        "https://new.example.com/find?a=1&b=2&q=1"
    );
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let resp = client
        .post(format!("{base}/docs/p"))
        .body("field=value")
        .send()
        .await
        .expect("h2 POST");
    assert_eq!(resp.status().as_u16(), 308);
    assert_eq!(
        resp.headers()["location"],
        "https://new.example.com/documentation/p"
    );

    // Still serving after the request bodies (h2 multiplexes them on the
    // one pooled connection).
    let resp = client
        .get(format!("{base}/docs"))
        .send()
        .await
        .expect("h2 GET after POST");
    assert_eq!(resp.status().as_u16(), 301);
    assert_eq!(
        resp.headers()["location"],
        "https://new.example.com/documentation"
    );
}

// ---------------------------------------------------------------------------
// A client following redirects keeps the method and the body

#[tokio::test]
async fn following_client_posts_the_body_to_the_target() {
    let backend = Backend::start("landing");
    let bp = backend.port;
    let proxy = Proxy::start(&format!(
        r#"
[[redirect]]
id = "r307"
path = "/r307"
to = "http://127.0.0.1:{bp}/landing/307"
status = 307

[[redirect]]
id = "r308"
path = "/r308"
to = "http://127.0.0.1:{bp}/landing/308"
status = 308

[[redirect]]
id = "r301"
path = "/r301"
to = "http://127.0.0.1:{bp}/landing/301"
status = 301
"#
    ));
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");

    for (code, query) in [("307", "?k=v&x=1"), ("308", ""), ("301", "?only=1")] {
        let body = format!("payload for {code}: \u{2713} & more\r\nGET /x HTTP/1.1\r\n");
        let resp = client
            .post(proxy.url(&format!("/r{code}{query}")))
            .header("content-type", "text/plain")
            .body(body.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST /r{code}: {e}"));
        assert_eq!(resp.status().as_u16(), 200, "/r{code}");
        assert_eq!(
            resp.url().as_str(),
            format!("http://127.0.0.1:{bp}/landing/{code}{query}")
        );
        assert_eq!(resp.text().await.expect("text"), backend.answer());

        let got = backend.requests();
        let last = got.last().expect("the backend got the request");
        assert_eq!(last.method, "POST", "/r{code}: {last:?}");
        assert_eq!(last.target, format!("/landing/{code}{query}"));
        assert_eq!(last.body, body.as_bytes(), "/r{code}: body changed");
    }
    let got = backend.requests();
    assert_eq!(got.len(), 3, "{got:?}");
}

// ---------------------------------------------------------------------------
// Upstream

/// One GET through the proxy; `Ok((status, body))` or the client error.
async fn fetch(client: &reqwest::Client, url: &str) -> Result<(u16, String), reqwest::Error> {
    let resp = client.get(url).send().await?;
    let status = resp.status().as_u16();
    let body = resp.text().await?;
    Ok((status, body))
}

fn plain_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// Round robin over two backends, then one stops, then it comes back.
async fn upstream_scenario(health_check: &str) {
    let mut a = Backend::start("a");
    let b = Backend::start("b");
    let proxy = Proxy::start(&format!(
        r#"
[upstream]
backends = ["{}", "{}"]
selection = "round_robin"
health_check = {health_check}

[[redirect]]
id = "moved"
path = "/moved"
to = "https://new.example.com/moved-here"
"#,
        a.addr(),
        b.addr()
    ));
    let client = plain_client();

    // A redirect never reaches a backend.
    let (status, _) = fetch(&client, &proxy.url("/moved")).await.expect("/moved");
    assert_eq!(status, 307);

    // Misses alternate between the two backends.
    let mut seen = Vec::new();
    for i in 0..10 {
        let (status, body) = fetch(&client, &proxy.url(&format!("/miss/{i}?n={i}")))
            .await
            .expect("miss");
        assert_eq!(status, 200, "miss {i}: {body}");
        seen.push(body);
    }
    for w in seen.windows(2) {
        assert_ne!(w[0], w[1], "round robin did not alternate: {seen:?}");
    }
    assert_eq!(
        seen.iter().filter(|s| **s == a.answer()).count(),
        5,
        "{seen:?}"
    );
    assert_eq!(
        seen.iter().filter(|s| **s == b.answer()).count(),
        5,
        "{seen:?}"
    );
    let traffic: Vec<_> = a.traffic().into_iter().chain(b.traffic()).collect();
    assert_eq!(traffic.len(), 10, "{traffic:?}");
    assert!(traffic.iter().all(|r| r.target != "/moved"));

    // The backend sees the original method, path, query, headers and body.
    let resp = client
        .post(proxy.url("/api/items?x=1&y=%20z"))
        .header("x-test", "kept")
        .body("the body \u{2713}")
        .send()
        .await
        .expect("POST through the proxy");
    assert_eq!(resp.status().as_u16(), 200);
    let answered = resp.text().await.expect("text");
    let owner = if answered == a.answer() { &a } else { &b };
    assert_eq!(answered, owner.answer());
    let r = owner.traffic().pop().expect("recorded");
    assert_eq!(r.method, "POST");
    assert_eq!(r.target, "/api/items?x=1&y=%20z");
    assert_eq!(r.body, "the body \u{2713}".as_bytes());
    assert_eq!(r.header("x-test"), Some("kept"));
    assert_eq!(
        r.header("host"),
        Some(format!("127.0.0.1:{}", proxy.port).as_str())
    );

    let up = |backend: &Backend| {
        support::metric(
            proxy.admin_port,
            &format!(
                "pingora_redirect_upstream_backend_up{{backend=\"{}\"}}",
                backend.addr()
            ),
        )
    };
    assert_eq!(up(&a), Some(1.0));
    assert_eq!(up(&b), Some(1.0));

    // Stop `a`: once the health check has noticed, every request goes to `b`.
    a.stop();
    let end = Instant::now() + Duration::from_secs(20);
    let mut streak = 0;
    let mut last = String::new();
    for i in 0..2000 {
        match fetch(&client, &proxy.url(&format!("/after-stop/{i}"))).await {
            Ok((200, body)) if body == b.answer() => streak += 1,
            other => {
                streak = 0;
                last = format!("{other:?}");
            }
        }
        if streak >= 4 || Instant::now() >= end {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    assert!(
        streak >= 4,
        "requests kept failing after a backend stopped (last: {last})"
    );
    assert!(
        support::poll_until(Duration::from_secs(20), || (up(&a) == Some(0.0))
            .then_some(()))
        .is_some(),
        "the health check did not mark the stopped backend down"
    );
    assert_eq!(up(&b), Some(1.0));
    for i in 0..20 {
        let (status, body) = fetch(&client, &proxy.url(&format!("/only-b/{i}")))
            .await
            .unwrap_or_else(|e| panic!("request {i} with one backend down: {e}"));
        assert_eq!(status, 200, "request {i} with one backend down: {body}");
        assert_eq!(body, b.answer(), "request {i} with one backend down");
    }

    // Restart `a`: it gets traffic again.
    let before = a.traffic().len();
    a.restart();
    let end = Instant::now() + Duration::from_secs(20);
    let mut back = false;
    for i in 0..2000 {
        if let Ok((200, body)) = fetch(&client, &proxy.url(&format!("/after-restart/{i}"))).await {
            if body == a.answer() {
                back = true;
                break;
            }
        }
        if Instant::now() >= end {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    assert!(back, "the restarted backend got no traffic");
    assert!(
        support::poll_until(Duration::from_secs(20), || (up(&a) == Some(1.0))
            .then_some(()))
        .is_some(),
        "the health check did not mark the restarted backend up"
    );
    assert!(a.traffic().len() > before);
    // And both share the load again.
    let mut seen = Vec::new();
    for i in 0..6 {
        let (status, body) = fetch(&client, &proxy.url(&format!("/both/{i}")))
            .await
            .expect("both");
        assert_eq!(status, 200);
        seen.push(body);
    }
    assert!(
        seen.contains(&a.answer()) && seen.contains(&b.answer()),
        "{seen:?}"
    );
}

#[tokio::test]
async fn upstream_round_robin_with_tcp_health_checks_fails_over_and_back() {
    upstream_scenario(r#"{ type = "tcp", interval = "1s" }"#).await;
}

#[tokio::test]
async fn upstream_round_robin_with_http_health_checks_fails_over_and_back() {
    let probe = Backend::start("probe");
    // The HTTP check asks each backend for the configured path.
    let proxy = Proxy::start(&format!(
        r#"
[upstream]
backends = ["{}"]
health_check = {{ type = "http", path = "/healthz", interval = "1s" }}
"#,
        probe.addr()
    ));
    let checked = support::poll_until(Duration::from_secs(10), || {
        probe
            .requests()
            .into_iter()
            .find(|r| r.target == "/healthz")
    })
    .expect("no HTTP health check reached the backend");
    assert_eq!(checked.method, "GET");
    drop(proxy);

    upstream_scenario(r#"{ type = "http", path = "/healthz", interval = "1s" }"#).await;
}

/// Polls until `want` consecutive misses are answered by `backend`
/// (deadline 20 s); returns whether that happened.
async fn until_streak(
    client: &reqwest::Client,
    proxy: &Proxy,
    backend: &Backend,
    want: usize,
) -> bool {
    let end = Instant::now() + Duration::from_secs(20);
    let mut streak = 0;
    for i in 0..2000 {
        match fetch(client, &proxy.url(&format!("/streak/{i}"))).await {
            Ok((200, body)) if body == backend.answer() => streak += 1,
            _ => streak = 0,
        }
        if streak >= want || Instant::now() >= end {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    streak >= want
}

#[tokio::test]
async fn upstream_http_health_check_takes_a_failing_backend_out_and_back() {
    // `a` keeps answering traffic but fails its health check: only the
    // check can take it out of the rotation.
    let a = Backend::start("a");
    let b = Backend::start("b");
    let proxy = Proxy::start(&format!(
        r#"
[upstream]
backends = ["{}", "{}"]
selection = "round_robin"
health_check = {{ type = "http", path = "/healthz", interval = "1s" }}
"#,
        a.addr(),
        b.addr()
    ));
    let client = plain_client();
    let (status, _) = fetch(&client, &proxy.url("/warm")).await.expect("GET");
    assert_eq!(status, 200);

    a.set_healthy(false);
    assert!(
        until_streak(&client, &proxy, &b, 6).await,
        "a backend failing its HTTP health check kept getting traffic"
    );
    let before = a.traffic().len();
    for i in 0..20 {
        let (status, body) = fetch(&client, &proxy.url(&format!("/checked/{i}")))
            .await
            .expect("GET");
        assert_eq!(
            (status, body.as_str()),
            (200, b.answer().as_str()),
            "request {i}"
        );
    }
    assert_eq!(
        a.traffic().len(),
        before,
        "the unhealthy backend got traffic"
    );

    a.set_healthy(true);
    assert!(
        until_streak(&client, &proxy, &a, 1).await,
        "a backend passing its health check again got no traffic"
    );
}

#[tokio::test]
async fn no_upstream_answers_404_with_a_short_body() {
    let proxy = Proxy::start(RULES);
    let client = plain_client();
    let resp = client
        .get(proxy.url("/nothing/here?x=1"))
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status().as_u16(), 404);
    assert!(resp.headers().get("location").is_none());
    assert_eq!(resp.headers()["content-type"], "text/plain; charset=utf-8");
    let body = resp.text().await.expect("text");
    assert!(
        !body.is_empty() && body.len() < 200,
        "404 body is not short: {body:?}"
    );
    assert!(body.starts_with("404"), "{body:?}");
}

#[tokio::test]
async fn all_backends_down_answers_502() {
    let dead1 = support::free_port();
    let dead2 = support::free_port();
    let proxy = Proxy::start(&format!(
        r#"
[upstream]
backends = ["127.0.0.1:{dead1}", "127.0.0.1:{dead2}"]
selection = "round_robin"
health_check = {{ type = "tcp", interval = "1s" }}
"#
    ));
    let client = plain_client();
    for i in 0..6 {
        let (status, body) = fetch(&client, &proxy.url(&format!("/down/{i}")))
            .await
            .expect("GET");
        assert_eq!(status, 502, "request {i}: {body}");
    }
    // Redirects still work with every backend down.
    let proxy2 = Proxy::start(&format!(
        r#"
[upstream]
backends = ["127.0.0.1:{dead1}"]
health_check = {{ type = "tcp", interval = "1s" }}

[[redirect]]
id = "up"
path = "/up"
to = "https://new.example.com/is-up"
"#
    ));
    let (status, _) = fetch(&client, &proxy2.url("/up")).await.expect("GET /up");
    assert_eq!(status, 307);
    let (status, _) = fetch(&client, &proxy2.url("/down"))
        .await
        .expect("GET /down");
    assert_eq!(status, 502);
}

// ---------------------------------------------------------------------------
// A backend that speaks HTTP/1.0

/// A backend that answers every request as HTTP/1.0 and closes: `/cl` with a
/// `Content-Length` and hop-by-hop fields of its own, anything else with a
/// body that ends with the connection (as Python's `http.server` does).
struct Http10Backend {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Http10Backend {
    fn start() -> Http10Backend {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind backend");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                let Ok((mut c, _)) = listener.accept() else {
                    std::thread::sleep(POLL);
                    continue;
                };
                c.set_nonblocking(false).ok();
                c.set_read_timeout(Some(Duration::from_secs(5))).ok();
                let mut head = Vec::new();
                let mut chunk = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match c.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&chunk[..n]),
                    }
                }
                let answer: &[u8] = if head.starts_with(b"GET /cl ") {
                    b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive, X-Hop\r\nKeep-Alive: timeout=5\r\nX-Hop: 1\r\nX-End: kept\r\n\r\nhello"
                } else {
                    b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nclose-delimited body"
                };
                let _ = c.write_all(answer);
            }
        });
        Http10Backend {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Http10Backend {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one response of any framing from `c`: `Content-Length`, chunked,
/// or until the connection closes. Returns the head lines (status line
/// first), the decoded body, and whether the connection was closed.
fn read_any_framing(c: &mut std::net::TcpStream) -> (Vec<String>, Vec<u8>, bool) {
    use std::io::Read;
    let mut buf = Vec::new();
    let mut closed = false;
    let mut chunk = [0u8; 4096];
    let mut fill = |buf: &mut Vec<u8>, closed: &mut bool| match c.read(&mut chunk) {
        Ok(0) => *closed = true,
        Ok(n) => buf.extend_from_slice(&chunk[..n]),
        Err(e) => panic!(
            "reading a response: {e}; got {:?}",
            String::from_utf8_lossy(buf)
        ),
    };
    let end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        assert!(
            !closed,
            "closed before a head: {:?}",
            String::from_utf8_lossy(&buf)
        );
        fill(&mut buf, &mut closed);
    };
    let head: Vec<String> = String::from_utf8(buf[..end].to_vec())
        .expect("ASCII head")
        .split("\r\n")
        .map(str::to_string)
        .collect();
    let mut rest = buf[end + 4..].to_vec();
    let field = |name: &str| {
        head.iter().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    let body = if let Some(len) = field("content-length") {
        let len: usize = len.parse().expect("numeric Content-Length");
        while rest.len() < len {
            assert!(!closed, "closed inside the body");
            fill(&mut rest, &mut closed);
        }
        rest.truncate(len);
        rest
    } else if field("transfer-encoding").as_deref() == Some("chunked") {
        let mut body = Vec::new();
        loop {
            let Some(p) = rest.windows(2).position(|w| w == b"\r\n") else {
                assert!(!closed, "closed inside a chunk size");
                fill(&mut rest, &mut closed);
                continue;
            };
            let size = usize::from_str_radix(std::str::from_utf8(&rest[..p]).expect("hex"), 16)
                .expect("chunk size");
            while rest.len() < p + 2 + size + 2 {
                assert!(!closed, "closed inside a chunk");
                fill(&mut rest, &mut closed);
            }
            body.extend_from_slice(&rest[p + 2..p + 2 + size]);
            rest.drain(..p + 2 + size + 2);
            if size == 0 {
                break body;
            }
        }
    } else {
        while !closed {
            fill(&mut rest, &mut closed);
        }
        rest
    };
    (head, body, closed)
}

fn has_field(head: &[String], name: &str) -> bool {
    head.iter().any(|l| {
        l.split_once(':')
            .is_some_and(|(n, _)| n.eq_ignore_ascii_case(name))
    })
}

#[test]
fn http10_backend_answers_reach_clients_as_http11_with_sound_framing() {
    use std::io::Write;
    let backend = Http10Backend::start();
    let proxy = Proxy::start(&format!(
        "[upstream]\nbackends = [\"127.0.0.1:{}\"]\n",
        backend.port
    ));
    let mut c = std::net::TcpStream::connect(proxy.addr()).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");

    // With a length: our version, the backend's hop-by-hop fields gone, and
    // the client connection kept.
    c.write_all(b"GET /cl HTTP/1.1\r\nHost: a.example\r\n\r\n")
        .expect("write");
    let (head, body, closed) = read_any_framing(&mut c);
    assert_eq!(head[0], "HTTP/1.1 200 OK", "{head:?}");
    assert_eq!(body, b"hello");
    assert!(!closed);
    assert!(
        head.contains(&"Connection: keep-alive".to_string()),
        "{head:?}"
    );
    assert!(head.contains(&"X-End: kept".to_string()), "{head:?}");
    for hop in ["keep-alive", "x-hop"] {
        assert!(!has_field(&head, hop), "{hop} reached the client: {head:?}");
    }

    // Without a length, on the same connection: chunked for HTTP/1.1, and
    // the connection is still kept.
    c.write_all(b"GET /nocl HTTP/1.1\r\nHost: a.example\r\n\r\n")
        .expect("write");
    let (head, body, closed) = read_any_framing(&mut c);
    assert_eq!(head[0], "HTTP/1.1 200 OK", "{head:?}");
    assert!(
        head.contains(&"Transfer-Encoding: chunked".to_string()),
        "{head:?}"
    );
    assert_eq!(body, b"close-delimited body");
    assert!(!closed);
    c.write_all(b"GET /cl HTTP/1.1\r\nHost: a.example\r\n\r\n")
        .expect("write");
    let (head, body, _) = read_any_framing(&mut c);
    assert_eq!(head[0], "HTTP/1.1 200 OK", "{head:?}");
    assert_eq!(body, b"hello");

    // An HTTP/1.0 client cannot read chunks: the body ends with the
    // connection, as HTTP/1.0 frames it.
    let mut old = std::net::TcpStream::connect(proxy.addr()).expect("connect");
    old.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    old.write_all(b"GET /nocl HTTP/1.0\r\nHost: a.example\r\n\r\n")
        .expect("write");
    let (head, body, closed) = read_any_framing(&mut old);
    assert_eq!(head[0], "HTTP/1.1 200 OK", "{head:?}");
    assert!(!has_field(&head, "transfer-encoding"), "{head:?}");
    assert!(!has_field(&head, "content-length"), "{head:?}");
    assert!(head.contains(&"Connection: close".to_string()), "{head:?}");
    assert_eq!(body, b"close-delimited body");
    assert!(closed);
}

// ---------------------------------------------------------------------------
// Admin

#[tokio::test]
async fn admin_endpoints() {
    let proxy = Proxy::start(RULES);
    let client = plain_client();
    for (path, status) in [("/healthz", 200), ("/readyz", 200), ("/metrics", 200)] {
        let resp = client.get(proxy.admin_url(path)).send().await.expect(path);
        assert_eq!(resp.status().as_u16(), status, "{path}");
        let ct = resp.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .to_string();
        assert!(ct.starts_with("text/plain"), "{path}: {ct}");
        let body = resp.text().await.expect("text");
        if path == "/metrics" {
            for line in body
                .lines()
                .filter(|l| !l.starts_with('#') && !l.is_empty())
            {
                let (_, value) = line.rsplit_once(' ').expect("`name value` lines");
                assert!(value.parse::<f64>().is_ok(), "not a sample line: {line:?}");
            }
        }
    }
    for path in ["/", "/metricsx", "/healthz/extra", "/docs"] {
        let resp = client.get(proxy.admin_url(path)).send().await.expect(path);
        assert_eq!(resp.status().as_u16(), 404, "{path}");
    }
    // The admin listener does not answer redirects, and traffic does not
    // answer admin paths.
    let (status, _) = fetch(&client, &proxy.url("/healthz")).await.expect("GET");
    assert_eq!(status, 404);

    // The series of docs/metrics.md after a clean start and a little traffic.
    let m = |series: &str| support::metric(proxy.admin_port, series);
    let wait =
        |series: &str, want: f64| support::expect_metric(proxy.admin_port, series, Some(want));
    assert_eq!(
        m("pingora_redirect_config_last_reload_successful"),
        Some(1.0)
    );
    assert_eq!(m(r#"pingora_redirect_rules{kind="exact"}"#), Some(3.0));
    assert_eq!(m(r#"pingora_redirect_rules{kind="prefix"}"#), Some(2.0));
    assert_eq!(m(r#"pingora_redirect_rules{kind="regex"}"#), Some(0.0));
    assert_eq!(
        m(r#"pingora_redirect_hits_total{rule="legacy",status="302"}"#),
        None,
        "a rule's series exists before its first hit"
    );
    let (status, _) = fetch(&client, &proxy.url("/legacy")).await.expect("GET");
    assert_eq!(status, 302);
    let (status, _) = fetch(&client, &proxy.url("/legacy?again=1"))
        .await
        .expect("GET");
    assert_eq!(status, 302);
    wait(
        r#"pingora_redirect_hits_total{rule="legacy",status="302"}"#,
        2.0,
    );
    wait(
        r#"pingora_redirect_requests_total{outcome="redirect"}"#,
        2.0,
    );
    // `/healthz` on the traffic port above was a not_found.
    wait(
        r#"pingora_redirect_requests_total{outcome="not_found"}"#,
        1.0,
    );
    let (r, _) = one(
        &proxy,
        b"GET /%2e%2e/x HTTP/1.1\r\nHost: old.example.com\r\n\r\n",
    );
    assert_eq!(r.status, 400);
    wait(
        r#"pingora_redirect_requests_total{outcome="bad_request"}"#,
        1.0,
    );
}

// ---------------------------------------------------------------------------
// Start-up failures

#[test]
fn serve_with_a_broken_configuration_exits_before_listening() {
    let port = support::free_port();
    let admin = support::free_port();
    let dir = support::TempDir::new("broken-server");
    let server = support::server_section(&dir.path, port, admin, "");
    let server_lines = server.lines().count();
    // The bad status sits on this line of the file.
    let bad_line = server_lines + 6;
    let config = format!(
        "{server}\n[[redirect]]\nid = \"ok\"\npath = \"/a\"\nto = \"https://new.example.com/a\"\nstatus = 999\n"
    );
    assert_eq!(
        config.lines().nth(bad_line - 1),
        Some("status = 999"),
        "test setup"
    );
    let (status, stderr, path) = support::serve_expecting_exit(Some(&config));
    assert!(!status.success(), "exit {status}; stderr:\n{stderr}");
    assert_eq!(status.code(), Some(1), "stderr:\n{stderr}");
    assert!(
        stderr.contains(&format!("{path}:{bad_line}")),
        "stderr does not name {path}:{bad_line}:\n{stderr}"
    );
    assert!(stderr.contains("bad_value"), "{stderr}");
    for p in [port, admin] {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", p)).is_err(),
            "port {p} is listening"
        );
    }

    // A TOML syntax error: the line (and column) of the problem.
    let config = format!("{server}\n[[redirect]]\nid = \"x\"\npath = \"/a\nto = 1\n");
    let (status, stderr, path) = support::serve_expecting_exit(Some(&config));
    assert_eq!(status.code(), Some(1), "stderr:\n{stderr}");
    assert!(
        stderr.contains(&format!("{path}:{}", server_lines + 4)),
        "stderr does not name {path}:{}:\n{stderr}",
        server_lines + 4
    );
    assert!(stderr.contains("parse"), "{stderr}");
}

#[test]
fn serve_with_a_missing_configuration_exits_2() {
    let (status, stderr, path) = support::serve_expecting_exit(None);
    assert_eq!(status.code(), Some(2), "stderr:\n{stderr}");
    assert!(
        stderr.contains(&path),
        "stderr does not name {path}:\n{stderr}"
    );
}

#[test]
fn sigint_stops_the_proxy_promptly() {
    let mut proxy = Proxy::start(RULES);
    let started = Instant::now();
    proxy.stop().expect("an exit status");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "SIGINT took {:?}",
        started.elapsed()
    );
    assert!(
        std::net::TcpStream::connect(proxy.addr()).is_err(),
        "still listening after exit"
    );
}
