//! HTTP/2 requests with bodies that the product answers itself (a redirect,
//! its own 400/404/414/503): every client gets the whole answer and a stream
//! that ends cleanly, whatever the body size, on one connection with many
//! streams and on fresh connections.
//!
//! Three HTTP/2 clients nobody here wrote: curl (which reports a stream that
//! is reset while it still sends as "Stream error in the HTTP/2 framing
//! layer", and no response), h2load (many streams at once, and a connection
//! per request) and reqwest (the same two ways).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::*;

const RULES: &str = r#"
[[redirect]]
id = "old"
path = "/old"
to = "https://new.example/x"
status = 301
"#;

const LOCATION: &str = "https://new.example/x";

/// The body sizes every case sends.
const SIZES: [usize; 4] = [0, 3, 64 * 1024, 1024 * 1024];
const METHODS: [&str; 2] = ["POST", "PUT"];
/// Requests per size and method on each connection pattern.
const REQUESTS: usize = 200;

/// A body of `size` bytes that is not all one value.
fn body_file(dir: &Path, size: usize) -> PathBuf {
    let bytes: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
    let path = dir.join(format!("body-{size}.bin"));
    std::fs::write(&path, bytes).expect("write body file");
    path
}

/// What the proxy answers a `method` request for `path` with a one-byte body
/// over HTTP/1.1: the full response every HTTP/2 client must get too.
fn expected(proxy: &Proxy, method: &str, path: &str) -> RawResponse {
    let mut c = proxy.connect();
    c.send(
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1\r\n\r\nx")
            .as_bytes(),
    );
    c.read_response(false)
}

/// curl, `count` requests, each on its own connection (Debian's curl 7.88
/// cannot reuse a cleartext HTTP/2 connection it opened with prior
/// knowledge: its second request fails whatever the server, so many streams
/// on one connection are left to h2load and reqwest). Each must end with
/// `want`'s status, Location and whole body, and curl must report no error.
fn curl_each_fresh(
    proxy: &Proxy,
    dir: &Path,
    method: &str,
    body: &Path,
    path: &str,
    count: usize,
    want: &RawResponse,
) {
    let location = want.header("location").unwrap_or("");
    let out_file = dir.join("curl-out");
    for i in 1..=count {
        let _ = std::fs::remove_file(&out_file);
        let out = Command::new("curl")
            .args([
                "-sS",
                "--http2-prior-knowledge",
                "--path-as-is",
                "-X",
                method,
            ])
            .arg("--data-binary")
            .arg(format!("@{}", body.display()))
            .args(["--max-time", "30", "-o"])
            .arg(&out_file)
            .args(["-w", "%{http_version} %{http_code} %{redirect_url}"])
            .arg(proxy.url(path))
            .output()
            .expect("run curl (Debian's curl package)");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let what = format!("curl {method} {} to {path}, request {i}", body.display());
        assert!(out.status.success(), "{what}: {}\n{stderr}", out.status);
        assert_eq!(
            stdout.trim_end(),
            format!("2 {} {location}", want.status).trim_end(),
            "{what}"
        );
        let got = std::fs::read(&out_file).expect("curl output");
        assert_eq!(got, want.body, "{what}: body");
    }
}

/// h2load: `count` requests over `clients` connections with up to `streams`
/// concurrent streams each; every one must succeed with a status of `class`
/// (`"3xx"`, `"4xx"`, `"5xx"`).
fn h2load(
    proxy: &Proxy,
    method: &str,
    body: &Path,
    count: usize,
    clients: usize,
    streams: usize,
    class: &str,
) {
    let mut cmd = Command::new("h2load");
    cmd.args(["-n", &count.to_string(), "-c", &clients.to_string()])
        .args(["-m", &streams.to_string(), "-T", "30", "-N", "30"]);
    // h2load cannot map an empty file: an empty body is no `-d`.
    if std::fs::metadata(body).map(|m| m.len()).unwrap_or(0) > 0 {
        cmd.arg("-d").arg(body);
    }
    let out = cmd
        .args(["-H", &format!(":method: {method}")])
        .arg(proxy.url("/old"))
        .output()
        .expect("run h2load (Debian's nghttp2-client package)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let done = format!(
        "requests: {count} total, {count} started, {count} done, {count} succeeded, 0 failed, 0 errored, 0 timeout"
    );
    assert!(
        stdout.lines().any(|l| l == done),
        "h2load {method} {}: not every request succeeded:\n{stdout}",
        body.display()
    );
    let classes = ["2xx", "3xx", "4xx", "5xx"]
        .iter()
        .map(|c| format!("{} {c}", if *c == class { count } else { 0 }))
        .collect::<Vec<_>>()
        .join(", ");
    let want = format!("status codes: {classes}");
    assert!(
        stdout.lines().any(|l| l == want),
        "h2load {method} {}: expected `{want}`:\n{stdout}",
        body.display()
    );
}

fn h2_client(proxy: &Proxy) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .resolve("old.example", proxy.addr())
        .build()
        .expect("h2 client")
}

/// One request; the whole answer or a panic naming the error.
async fn send(
    client: &reqwest::Client,
    method: &str,
    url: &str,
    body: bytes::Bytes,
) -> (u16, Option<String>, Vec<u8>) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let resp = client
        .request(method.clone(), url)
        .body(body.clone())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {url} with {} bytes: {e:?}", body.len()));
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .map(|v| v.to_str().expect("ASCII Location").to_string());
    let got = resp
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("{method} {url} with {} bytes: body: {e:?}", body.len()));
    (status, location, got.to_vec())
}

/// reqwest: `REQUESTS` concurrent requests on one connection, then
/// `REQUESTS` requests each on a fresh connection; all get `want`.
async fn reqwest_both_ways(
    proxy: &Proxy,
    method: &str,
    body: &[u8],
    path: &str,
    want: &RawResponse,
) {
    let url = format!("http://old.example:{}{path}", proxy.port);
    let body = bytes::Bytes::copy_from_slice(body);
    let expect = (
        want.status,
        want.header("location").map(str::to_string),
        want.body.clone(),
    );
    let shared = h2_client(proxy);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..REQUESTS {
        let (c, u, b, m) = (
            shared.clone(),
            url.clone(),
            body.clone(),
            method.to_string(),
        );
        set.spawn(async move { send(&c, &m, &u, b).await });
    }
    while let Some(r) = set.join_next().await {
        let got = r.expect("request task");
        assert_eq!(
            got,
            expect,
            "{method} {path} with {} bytes, one connection",
            body.len()
        );
    }
    for i in 0..REQUESTS {
        let fresh = h2_client(proxy);
        let got = send(&fresh, method, &url, body.clone()).await;
        assert_eq!(
            got,
            expect,
            "{method} {path} with {} bytes, fresh connection {i}",
            body.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_redirects_with_bodies_end_every_stream_cleanly() {
    let proxy = Proxy::start_with("h2c = true", RULES);
    let dir = TempDir::new("h2-bodies");
    for method in METHODS {
        let want = expected(&proxy, method, "/old");
        assert_eq!(want.status, 308, "{method}: a 301 is upgraded for a body");
        assert_eq!(want.header("location"), Some(LOCATION));
        for size in SIZES {
            let file = body_file(&dir.path, size);
            curl_each_fresh(&proxy, &dir.path, method, &file, "/old", 20, &want);
            h2load(&proxy, method, &file, REQUESTS, 1, 100, "3xx");
            h2load(&proxy, method, &file, REQUESTS, REQUESTS, 1, "3xx");
            let body = std::fs::read(&file).expect("body");
            reqwest_both_ways(&proxy, method, &body, "/old", &want).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_own_errors_with_bodies_end_every_stream_cleanly() {
    let proxy = Proxy::start_with("h2c = true", RULES);
    let dir = TempDir::new("h2-errors");
    let long = format!("/{}", "a".repeat(8192));
    let cases: [(&str, u16); 3] = [("/nothing", 404), (&long, 414), ("/../x", 400)];
    for (path, status) in cases {
        let want = expected(&proxy, "POST", path);
        assert_eq!(want.status, status, "{path}");
        for size in [64 * 1024, 1024 * 1024] {
            let file = body_file(&dir.path, size);
            for method in METHODS {
                curl_each_fresh(&proxy, &dir.path, method, &file, path, 20, &want);
            }
        }
    }
    // The dot-segment case cannot go through reqwest, which resolves `..`.
    let want = expected(&proxy, "PUT", "/nothing");
    reqwest_both_ways(&proxy, "PUT", &[7u8; 1024 * 1024], "/nothing", &want).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_pool_unavailable_with_bodies_ends_every_stream_cleanly() {
    let dead = free_port();
    let proxy = Proxy::start_with(
        "h2c = true",
        &format!(
            r#"
[pools.down]
targets = ["http://127.0.0.1:{dead}"]
health_check = {{ type = "tcp", interval = "1s" }}

[[redirect]]
id = "p"
prefix = "/p"
pool = "down"
"#
        ),
    );
    let ready = poll_until(Duration::from_secs(20), || {
        (try_get(proxy.port, "/p/x").ok()?.status == 503).then_some(())
    });
    assert!(ready.is_some(), "the pool's one target never went down");
    let dir = TempDir::new("h2-pool");
    let want = expected(&proxy, "POST", "/p/x");
    assert_eq!(want.status, 503);
    assert_eq!(want.header("retry-after"), Some("60"));
    for size in [64 * 1024, 1024 * 1024] {
        let file = body_file(&dir.path, size);
        curl_each_fresh(&proxy, &dir.path, "POST", &file, "/p/x", 20, &want);
    }
}
