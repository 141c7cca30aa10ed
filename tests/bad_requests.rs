//! `requests_total{outcome="bad_request"}` counts every 4xx the product
//! sends, whoever in the process writes it: the plugin's own 400 and 414,
//! the guard's 408, and the 400 and 405 that Pingora writes before any hook
//! runs (over HTTP/1.1 and h2c). Each case must move the count by exactly
//! one; answers that are not 4xx must not move it.

mod support;

use std::time::Duration;
use support::*;

const SERIES: &str = r#"pingora_redirect_requests_total{outcome="bad_request"}"#;

const RULES: &str = r#"
[[redirect]]
id = "old"
path = "/old"
to = "https://new.example/x"
"#;

/// The count every case so far should have made: a stray or late count in
/// one case shows in every check after it.
struct Tally<'p> {
    proxy: &'p Proxy,
    want: f64,
}

impl<'p> Tally<'p> {
    fn new(proxy: &'p Proxy) -> Tally<'p> {
        let mut t = Tally { proxy, want: 0.0 };
        t.add(0.0);
        t
    }

    /// The count (absent before the first one) reaches `want + by`.
    fn add(&mut self, by: f64) {
        self.want += by;
        let mut last = None;
        let reached = poll_until(Duration::from_secs(10), || {
            last = metric(self.proxy.admin_port, SERIES);
            (last.unwrap_or(0.0) == self.want).then_some(())
        });
        assert!(
            reached.is_some(),
            "{SERIES} is {last:?}, expected {}",
            self.want
        );
    }

    /// Sends `request` on a fresh connection, expects `status`, then the
    /// count moved by `by`.
    fn h1(&mut self, what: &str, request: &[u8], status: u16, by: f64) {
        let mut c = self.proxy.connect();
        c.send(request);
        let r = c.read_response(false);
        assert_eq!(r.status, status, "{what}: {r:?}");
        self.add(by);
    }
}

#[test]
fn every_4xx_over_http1_counts_once_as_bad_request() {
    let proxy = Proxy::start_with("header_timeout = \"300ms\"", RULES);
    let mut tally = Tally::new(&proxy);
    let pingora_400: [(&str, &[u8]); 6] = [
        (
            "userinfo in Host",
            b"GET /old HTTP/1.1\r\nHost: a@example.com\r\n\r\n",
        ),
        (
            "two Host headers",
            b"GET /old HTTP/1.1\r\nHost: a.example\r\nHost: a.example\r\n\r\n",
        ),
        ("a request line that is not one", b"NOT A REQUEST\r\n\r\n"),
        (
            "a space before a header's colon",
            b"GET /old HTTP/1.1\r\nHost : a.example\r\n\r\n",
        ),
        (
            "two different lengths",
            b"POST /old HTTP/1.1\r\nHost: a.example\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx",
        ),
        (
            "an absolute form that disagrees with Host",
            b"GET http://b.example/old HTTP/1.1\r\nHost: a.example\r\n\r\n",
        ),
    ];
    for (what, req) in pingora_400 {
        tally.h1(what, req, 400, 1.0);
    }
    tally.h1(
        "CONNECT",
        b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n",
        405,
        1.0,
    );
    // The product's own answers.
    tally.h1(
        "a path above the root",
        b"GET /../x HTTP/1.1\r\nHost: a.example\r\n\r\n",
        400,
        1.0,
    );
    tally.h1(
        "a malformed Host",
        b"GET /old HTTP/1.1\r\nHost: a.example:1:2\r\n\r\n",
        400,
        1.0,
    );
    let long = format!(
        "GET /{} HTTP/1.1\r\nHost: a.example\r\n\r\n",
        "a".repeat(8192)
    );
    tally.h1("a path over 8192 bytes", long.as_bytes(), 414, 1.0);
    // Not 4xx: not counted.
    tally.h1(
        "a redirect",
        b"GET /old HTTP/1.1\r\nHost: a.example\r\n\r\n",
        307,
        0.0,
    );
    tally.h1(
        "no rule and no upstream",
        b"GET /nothing HTTP/1.1\r\nHost: a.example\r\n\r\n",
        404,
        0.0,
    );

    // A bad request pipelined after a good one: the good one is answered,
    // then Pingora refuses the next; one bad request.
    let mut c = proxy.connect();
    c.send(b"GET /old HTTP/1.1\r\nHost: a.example\r\n\r\nNOT A REQUEST\r\n\r\n");
    assert_eq!(c.read_response(false).status, 307);
    assert_eq!(c.read_response(false).status, 400);
    tally.add(1.0);

    // A head that stops arriving: the guard's 408.
    let mut c = proxy.connect();
    c.send(b"GET /old HTTP/1.1\r\nHost: a.ex");
    let r = c.read_response(false);
    assert_eq!(r.status, 408, "{r:?}");
    tally.add(1.0);
    // One more redirect at the end: any late count of a case above shows.
    tally.h1(
        "a redirect",
        b"GET /old HTTP/1.1\r\nHost: a.example\r\n\r\n",
        307,
        0.0,
    );
}

/// One h2c request with exactly these pseudo-header parts, through the h2
/// crate (which sends an `:authority` as given, userinfo included).
async fn h2_status(proxy: &Proxy, authority: &str, path: &str, host: Option<&str>) -> u16 {
    let tcp = tokio::net::TcpStream::connect(proxy.addr())
        .await
        .expect("connect");
    let (client, conn) = h2::client::handshake(tcp).await.expect("h2 handshake");
    tokio::spawn(conn);
    let mut client = client.ready().await.expect("h2 ready");
    let uri: http::Uri = format!("http://{authority}{path}").parse().expect("uri");
    let mut req = http::Request::builder().method("GET").uri(uri);
    if let Some(h) = host {
        req = req.header("host", h);
    }
    let (resp, _) = client
        .send_request(req.body(()).expect("request"), true)
        .expect("send");
    let resp = tokio::time::timeout(Duration::from_secs(10), resp)
        .await
        .expect("an answer in time")
        .expect("a response, not a reset");
    resp.status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_4xx_over_h2c_counts_once_as_bad_request() {
    let proxy = Proxy::start_with("h2c = true", RULES);
    let mut tally = Tally::new(&proxy);
    // (what, :authority, :path, Host, status, count moves by)
    type Case<'a> = (&'a str, &'a str, &'a str, Option<&'a str>, u16, f64);
    let cases: [Case<'_>; 5] = [
        (
            "userinfo in :authority",
            "u@a.example",
            "/old",
            None,
            400,
            1.0,
        ),
        (
            ":authority and Host disagree",
            "a.example",
            "/old",
            Some("b.example"),
            400,
            1.0,
        ),
        (
            "a path above the root",
            "a.example",
            "/../x",
            None,
            400,
            1.0,
        ),
        ("a redirect", "a.example", "/old", None, 307, 0.0),
        ("no rule", "a.example", "/nothing", None, 404, 0.0),
    ];
    for (what, authority, path, host, status, by) in cases {
        assert_eq!(
            h2_status(&proxy, authority, path, host).await,
            status,
            "{what}"
        );
        tally.add(by);
    }
}
