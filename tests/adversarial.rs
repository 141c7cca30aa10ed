//! Adversarial suite against the real binary (`pingora-redirect serve`): the
//! attack classes of open redirects, header injection, host spoofing and
//! request smuggling (docs/security.md), sent byte for byte over raw HTTP/1.1
//! sockets and over cleartext HTTP/2.
//!
//! Every response goes through one shared checker. For each 3xx it asserts
//! the Location safety invariants (docs/security.md) on the raw `Location` bytes, resolves the
//! Location against the request URL and asserts that the resulting host is
//! one the configuration names, and checks the HTML body for escaping. Each
//! case then asserts its exact outcome: the status and the full Location;
//! what the upstream backend received; or the exact 400/414 and the closed
//! connection.

mod support;

use std::time::Duration;
use support::{Backend, Conn, Proxy, RawResponse};

// ---------------------------------------------------------------------------
// The shared checker

/// Hosts that the configuration below names: the rule hosts (a relative
/// Location resolves to the request host), the targets and the pool target.
const CONFIG_HOSTS: [&str; 5] = [
    "old.example",
    "new.example",
    "paths.example",
    "regex.example",
    "backup.example",
];

/// The `${host}` rule's pattern `*.shop.example`: one or more labels below it.
const WILDCARD_SUFFIX: &str = ".shop.example";

/// Asserts the Location safety invariants (docs/security.md) on one raw
/// `Location` value:
/// - no byte below 0x21 (control bytes, space), no 0x7f, no `\`, no byte
///   ≥ 0x80;
/// - a relative Location starts with exactly one `/` (not `//`, not `/\`);
///   anything else is an absolute `https` URL (every target here is one);
/// - resolved against `request_url` by the WHATWG rules (`url::Url::join`,
///   as a browser would), the Location has no userinfo and its host is one
///   the configuration names, or, for the `${host}` rule, the normalised
///   request host when it matches the configured pattern. An absolute
///   Location has no port (none is configured).
fn check_location(raw: &[u8], request_url: &str) {
    let shown = String::from_utf8_lossy(raw);
    for &b in raw {
        assert!(
            b >= 0x21 && b != 0x7f && b != b'\\' && b < 0x80,
            "byte 0x{b:02x} in Location {shown:?} (request {request_url})"
        );
    }
    let location = std::str::from_utf8(raw).expect("ASCII");
    let relative = location.starts_with('/');
    if relative {
        assert!(
            !location.starts_with("//"),
            "protocol-relative Location {location:?} (request {request_url})"
        );
    } else {
        assert!(
            location.starts_with("https://"),
            "Location {location:?} is neither a path nor an https URL (request {request_url})"
        );
    }
    let base =
        url::Url::parse(request_url).unwrap_or_else(|e| panic!("request URL {request_url:?}: {e}"));
    let resolved = base
        .join(location)
        .unwrap_or_else(|e| panic!("Location {location:?} does not resolve: {e}"));
    assert!(
        matches!(resolved.scheme(), "http" | "https"),
        "{location:?} resolves to {resolved}"
    );
    assert_eq!(
        resolved.username(),
        "",
        "{location:?} resolves to {resolved}"
    );
    assert_eq!(
        resolved.password(),
        None,
        "{location:?} resolves to {resolved}"
    );
    if !relative {
        assert_eq!(resolved.port(), None, "{location:?} resolves to {resolved}");
    }
    let host = resolved
        .host_str()
        .unwrap_or_else(|| panic!("{location:?} resolves to {resolved}, without a host"));
    let configured = CONFIG_HOSTS.contains(&host);
    let wildcard = Some(host) == base.host_str()
        && host
            .strip_suffix(WILDCARD_SUFFIX)
            .is_some_and(|label| !label.is_empty() && !label.ends_with('.'));
    assert!(
        configured || wildcard,
        "Location {location:?} of {request_url} resolves to host {host:?}, which the configuration does not name"
    );
}

/// Undoes the HTML escaping of one attribute value or text: every `&` must
/// start one of the entities, and `<`, `>` and `"` must not appear raw.
fn html_unescape(s: &str) -> String {
    assert!(
        !s.contains(['<', '>', '"']),
        "raw <, > or \" in the link {s:?}"
    );
    const ENTITIES: [(&str, char); 6] = [
        ("&amp;", '&'),
        ("&lt;", '<'),
        ("&gt;", '>'),
        ("&quot;", '"'),
        ("&#39;", '\''),
        ("&#x27;", '\''),
    ];
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let (entity, c) = ENTITIES
            .iter()
            .find(|(e, _)| tail.starts_with(e))
            .unwrap_or_else(|| panic!("unescaped & in the link {s:?}"));
        out.push(*c);
        rest = &tail[entity.len()..];
    }
    out.push_str(rest);
    out
}

/// The body of a redirect: no `<script`, and one link whose `href` and text
/// are exactly the escaped Location.
fn check_html_body(body: &[u8], location: &str) {
    let text = std::str::from_utf8(body).expect("the HTML body is UTF-8");
    assert!(
        !text.to_ascii_lowercase().contains("<script"),
        "<script in the body: {text}"
    );
    let after_href = text
        .split_once("<a href=\"")
        .unwrap_or_else(|| panic!("no link in the body: {text}"))
        .1;
    let (href, after) = after_href
        .split_once("\">")
        .unwrap_or_else(|| panic!("unterminated href in the body: {text}"));
    assert_eq!(html_unescape(href), location, "href in {text}");
    let (shown, _) = after
        .split_once("</a>")
        .unwrap_or_else(|| panic!("unterminated link in the body: {text}"));
    assert_eq!(html_unescape(shown), location, "link text in {text}");
    assert_eq!(
        text.matches("<a ").count(),
        1,
        "more than one link in the body: {text}"
    );
}

/// Response header names any answer here may carry: the product's, Pingora's
/// and the test backend's. Anything else is an injected header.
const KNOWN_HEADERS: [&str; 9] = [
    "location",
    "content-type",
    "content-length",
    "cache-control",
    "connection",
    "date",
    "server",
    "retry-after",
    "x-backend",
];

/// The shared check of every HTTP/1.1 response: the head uses CRLF line
/// ends only (no bare CR or LF a lenient client might split on), carries no
/// header but the known ones, and every 3xx passes the Location checker and
/// the HTML body check.
fn check_response(r: &RawResponse, head: &[u8], request_url: &str, head_only: bool) {
    for (i, &b) in head.iter().enumerate() {
        if b == b'\r' {
            assert_eq!(
                head.get(i + 1),
                Some(&b'\n'),
                "bare CR in the response head {:?}",
                String::from_utf8_lossy(head)
            );
        }
        if b == b'\n' {
            assert_eq!(
                i.checked_sub(1).map(|p| head[p]),
                Some(b'\r'),
                "bare LF in the response head {:?}",
                String::from_utf8_lossy(head)
            );
        }
    }
    for (name, _) in &r.headers {
        assert!(
            KNOWN_HEADERS.contains(&name.to_ascii_lowercase().as_str()),
            "unexpected header {name:?} in {r:?} (request {request_url})"
        );
    }
    if (300..400).contains(&r.status) {
        let raw: Vec<&[u8]> = head
            .split(|b| *b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .filter_map(|l| {
                let colon = l.iter().position(|b| *b == b':')?;
                l[..colon]
                    .eq_ignore_ascii_case(b"location")
                    .then_some(&l[colon + 1..])
            })
            .collect();
        assert_eq!(raw.len(), 1, "not exactly one Location in {r:?}");
        let value = raw[0].strip_prefix(b" ").unwrap_or(raw[0]);
        check_location(value, request_url);
        assert_eq!(
            r.header("content-type"),
            Some("text/html; charset=utf-8"),
            "{r:?}"
        );
        if head_only {
            assert!(r.body.is_empty(), "{r:?}");
        } else {
            check_html_body(&r.body, std::str::from_utf8(value).expect("ASCII"));
        }
    }
}

/// The shared check of every HTTP/2 response (reqwest hands over exact
/// header bytes).
fn check_h2_response(status: u16, headers: &reqwest::header::HeaderMap, body: &[u8], url: &str) {
    for name in headers.keys() {
        assert!(
            KNOWN_HEADERS.contains(&name.as_str()),
            "unexpected header {name} in {headers:?} (request {url})"
        );
    }
    if (300..400).contains(&status) {
        let all: Vec<_> = headers.get_all("location").iter().collect();
        assert_eq!(all.len(), 1, "not exactly one Location in {headers:?}");
        check_location(all[0].as_bytes(), url);
        assert_eq!(
            headers.get("content-type").map(|v| v.as_bytes()),
            Some(&b"text/html; charset=utf-8"[..]),
            "{headers:?}"
        );
        check_html_body(body, all[0].to_str().expect("ASCII"));
    }
}

/// The checkers refuse what they must (no binary involved): a checker that
/// passed everything would make every case below vacuous.
#[test]
fn checkers_refuse_unsafe_locations_and_bodies() {
    let url = "http://old.example/p/x";
    let refused: [(&[u8], &str); 17] = [
        (b"//evil.example/", url),
        (b"///evil.example/", url),
        (b"/\\evil.example", url),
        (b"\\\\evil.example", url),
        (b"https://evil.example/", url),
        (b"https://new.example@evil.example/", url),
        (b"https://new.example.evil.example/", url),
        (b"https://new.example:8443/", url),
        (b"http://new.example/", url),
        (b"javascript:alert(1)", url),
        (b"evil.example", url),
        (b"/a\tb", url),
        (b"/a b", url),
        (b"/a\r\nSet-Cookie: x=1", url),
        (b"/a\x7fb", url),
        (b"/caf\xc3\xa9", url),
        (b"/x", "http://evil.example/"),
    ];
    for (location, url) in refused {
        let caught = std::panic::catch_unwind(|| check_location(location, url));
        assert!(
            caught.is_err(),
            "the checker accepted {:?} for {url}",
            String::from_utf8_lossy(location)
        );
    }
    // `${host}`: a host of the pattern only when it is the request host.
    let other = std::panic::catch_unwind(|| {
        check_location(b"https://a.shop.example/x", "http://b.shop.example/w")
    });
    assert!(other.is_err());
    let apex = std::panic::catch_unwind(|| {
        check_location(b"https://shop.example/x", "http://shop.example/w")
    });
    assert!(apex.is_err());
    check_location(b"https://a.shop.example/x", "http://a.shop.example/w");
    check_location(b"https://new.example/base//evil.example", url);
    check_location(b"/local//evil.example", url);

    let link = "https://new.example/a&b";
    for body in [
        "<a href=\"https://new.example/a&b\">https://new.example/a&amp;b</a>",
        "<a href=\"https://new.example/a&amp;b\">https://new.example/a&b</a>",
        "<a href=\"https://new.example/a&amp;b\">x</a>",
        "<a href=\"https://new.example/a&amp;b\">https://new.example/a&amp;b</a><script>",
    ] {
        let caught = std::panic::catch_unwind(|| check_html_body(body.as_bytes(), link));
        assert!(caught.is_err(), "the body checker accepted {body:?}");
    }
    check_html_body(
        b"<a href=\"https://new.example/a&amp;b\">https://new.example/a&amp;b</a>",
        link,
    );
}

// ---------------------------------------------------------------------------
// Requests and the wrapper every HTTP/1.1 case goes through

/// Bytes outside 0x21..=0x7e (and `\`) percent-encoded, so a raw target can
/// be written into a URL.
fn printable(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if (0x21..0x7f).contains(&b) && b != b'\\' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A request host as the product normalises it: lower case, no port, one
/// trailing dot removed.
fn normalise_host(raw: &str) -> String {
    let raw = raw.trim_matches([' ', '\t', '\r']).to_ascii_lowercase();
    let host = if raw.starts_with('[') {
        raw.split_inclusive(']')
            .next()
            .unwrap_or_default()
            .to_string()
    } else {
        raw.split(':').next().unwrap_or_default().to_string()
    };
    host.strip_suffix('.').map(str::to_string).unwrap_or(host)
}

/// The URL a raw HTTP/1.1 request asks for: an absolute-form target as it
/// is, else `http://` + its (normalised) Host + its target.
fn request_url(request: &[u8]) -> String {
    let line_end = request
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(request.len());
    let line = &request[..line_end];
    let target = match (
        line.iter().position(|b| *b == b' '),
        line.iter().rposition(|b| *b == b' '),
    ) {
        (Some(first), Some(last)) if last > first => &line[first + 1..last],
        _ => b"/",
    };
    let lower = target.to_ascii_lowercase();
    if lower.starts_with(b"http://") || lower.starts_with(b"https://") {
        return printable(target);
    }
    let host = request[line_end..]
        .split(|b| *b == b'\n')
        .filter_map(|l| l.split_first_chunk::<5>())
        .find(|(name, _)| name.eq_ignore_ascii_case(b"host:"))
        .map(|(_, v)| normalise_host(&String::from_utf8_lossy(v)))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "no-host.invalid".to_string());
    format!("http://{host}{}", printable(target))
}

/// Reads the answer to `request` on `c` and runs the shared checks on it.
fn read_checked(c: &mut Conn, request: &[u8]) -> RawResponse {
    let head_only = request.starts_with(b"HEAD ");
    let (r, head) = c.read_response_and_head(head_only);
    check_response(&r, &head, &request_url(request), head_only);
    r
}

/// `METHOD target HTTP/1.1` with raw header lines (each ending in CRLF).
fn request(method: &str, target: &[u8], headers: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(target.len() + headers.len() + 32);
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    out.extend_from_slice(headers);
    out.extend_from_slice(b"\r\n");
    out
}

/// `GET target` for `Host: old.example`.
fn get(target: &[u8]) -> Vec<u8> {
    request("GET", target, b"Host: old.example\r\n")
}

/// `GET target` for `Host: host` (raw bytes).
fn get_on(host: &[u8], target: &[u8]) -> Vec<u8> {
    let mut headers = b"Host: ".to_vec();
    headers.extend_from_slice(host);
    headers.extend_from_slice(b"\r\n");
    request("GET", target, &headers)
}

/// What one case must get.
enum Expect {
    /// This status and exactly this Location; the connection stays usable.
    Redirect(u16, String),
    /// No redirect: the upstream backend answered, having received exactly
    /// this request target.
    Proxied(String),
    /// Pingora's own 400, sent before any product code runs; the connection
    /// is closed.
    PingoraRejects,
    /// The product's 400 or 414 with this text in its reason; the
    /// connection is closed.
    Rejected(u16, &'static str),
}

fn redirect(status: u16, location: impl Into<String>) -> Expect {
    Expect::Redirect(status, location.into())
}

fn proxied(target: impl Into<String>) -> Expect {
    Expect::Proxied(target.into())
}

struct Case {
    name: &'static str,
    request: Vec<u8>,
    expect: Expect,
}

fn case(name: &'static str, request: Vec<u8>, expect: Expect) -> Case {
    Case {
        name,
        request,
        expect,
    }
}

/// The start of a request, for messages.
fn shown(request: &[u8]) -> String {
    String::from_utf8_lossy(&request[..request.len().min(160)]).into_owned()
}

/// Asserts Pingora's own 400: no product header, an empty body, closed.
fn assert_pingora_400(r: &RawResponse, ctx: &str) {
    assert_eq!(r.status, 400, "{ctx}");
    assert_eq!(r.header("server"), Some("Pingora"), "{ctx}");
    assert_eq!(r.header("content-length"), Some("0"), "{ctx}");
    assert_eq!(
        r.header("cache-control"),
        Some("private, no-store"),
        "{ctx}"
    );
    assert_eq!(r.header("connection"), Some("close"), "{ctx}");
    assert_eq!(r.header("location"), None, "{ctx}");
}

/// Asserts the product's 400/414 with `reason` in its plain-text body.
fn assert_rejected(r: &RawResponse, status: u16, reason: &str, ctx: &str) {
    assert_eq!(r.status, status, "{ctx}");
    assert_eq!(r.header("location"), None, "{ctx}");
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; charset=utf-8"),
        "{ctx}"
    );
    assert_eq!(r.header("connection"), Some("close"), "{ctx}");
    assert!(
        r.body_str().contains(reason),
        "{ctx}: the body does not give the reason {reason:?}"
    );
}

/// The next request on a kept connection gets its own, right answer: nothing
/// of the previous request was left over to be read as a request.
fn assert_in_step(c: &mut Conn, ctx: &str) {
    let next = b"GET /p/next HTTP/1.1\r\nHost: old.example\r\n\r\n";
    c.send(next);
    let r = read_checked(c, next);
    assert_eq!(r.status, 301, "{ctx}: the next request got {r:?}");
    assert_eq!(
        r.all("location"),
        vec!["https://new.example/base/next"],
        "{ctx}: the next request got {r:?}"
    );
}

/// Runs one case on a fresh connection and asserts its exact outcome.
fn run_case(proxy: &Proxy, backend: &Backend, case: &Case) {
    let before = backend.traffic().len();
    let mut c = proxy.connect();
    c.send(&case.request);
    let r = read_checked(&mut c, &case.request);
    let ctx = format!("case {}: {:?} → {r:?}", case.name, shown(&case.request));
    match &case.expect {
        Expect::Redirect(status, location) => {
            assert_eq!(r.status, *status, "{ctx}");
            assert_eq!(r.all("location"), vec![location.as_str()], "{ctx}");
            assert_eq!(
                backend.traffic().len(),
                before,
                "{ctx}: the backend was reached"
            );
            if case.request.windows(10).any(|w| w == b"HTTP/1.0\r\n") {
                assert_eq!(r.header("connection"), Some("close"), "{ctx}");
                c.expect_closed();
            } else {
                assert_eq!(r.header("connection"), Some("keep-alive"), "{ctx}");
                assert_in_step(&mut c, &ctx);
            }
        }
        Expect::Proxied(target) => {
            assert_eq!(r.status, 200, "{ctx}");
            assert_eq!(r.header("location"), None, "{ctx}");
            assert_eq!(r.body_str(), backend.answer(), "{ctx}");
            let traffic = backend.traffic();
            assert_eq!(traffic.len(), before + 1, "{ctx}: {traffic:?}");
            assert_eq!(traffic[before].target, *target, "{ctx}");
        }
        Expect::PingoraRejects => {
            assert_pingora_400(&r, &ctx);
            c.expect_closed();
            assert_eq!(backend.traffic().len(), before, "{ctx}");
        }
        Expect::Rejected(status, reason) => {
            assert_rejected(&r, *status, reason, &ctx);
            c.expect_closed();
            assert_eq!(backend.traffic().len(), before, "{ctx}");
        }
    }
}

/// Runs a table of cases on one proxy.
fn run_table(proxy: &Proxy, backend: &Backend, cases: &[Case]) {
    let mut names = std::collections::HashSet::new();
    for case in cases {
        assert!(names.insert(case.name), "duplicate case name {}", case.name);
        run_case(proxy, backend, case);
    }
}

// ---------------------------------------------------------------------------
// The configuration under attack

/// Rules that copy request bytes into the Location, each an attack surface.
const RULES: &str = r#"
[pools.backup]
targets = ["https://backup.example"]

# A prefix whose target glues the suffix on: /p/<rest> → /base/<rest>.
[[redirect]]
id = "glue"
host = "old.example"
prefix = "/p"
to = "https://new.example/base"
status = 301
query = "preserve"

# A relative target keeping the suffix.
[[redirect]]
id = "rel"
host = "old.example"
prefix = "/r"
to = "/local"
status = 302
keep_suffix = true

# A relative target that is nothing but a capture.
[[redirect]]
id = "relre"
host = "old.example"
regex = "^/rr/(.*)$"
to = "/${1}"
status = 302

# The request host in the target's host part.
[[redirect]]
id = "wild"
host = "*.shop.example"
prefix = "/w"
to = "https://${host}/x"
status = 307

# The whole request path in the target.
[[redirect]]
id = "pathvar"
host = "old.example"
prefix = "/v"
to = "https://paths.example/archive${path}"
keep_suffix = false
status = 308

# Regex captures in the target's path.
[[redirect]]
id = "re"
host = "old.example"
regex = "^/re/(?P<a>[^/]+)/(.*)$"
to = "https://regex.example/r/${a}/${2}"
status = 302

# A pool: the target's base URL + the request path.
[[redirect]]
id = "pooled"
host = "old.example"
prefix = "/pool"
pool = "backup"

# Only for https requests (there is no TLS here: never).
[[redirect]]
id = "secure"
host = "old.example"
path = "/s"
scheme = "https"
to = "https://new.example/secure-only"
"#;

/// A recording upstream for what no rule answers, and the proxy in front.
fn start(server_extra: &str) -> (Backend, Proxy) {
    let backend = Backend::start("up");
    let proxy = Proxy::start_with(
        server_extra,
        &format!("[upstream]\nbackends = [\"{}\"]\n{RULES}", backend.addr()),
    );
    (backend, proxy)
}

// ---------------------------------------------------------------------------
// Path tricks

#[test]
fn h1_protocol_relative_and_backslash_targets() {
    let (backend, proxy) = start("");
    let cases = [
        case(
            "root_double_slash",
            get(b"//evil.example"),
            proxied("//evil.example"),
        ),
        case(
            "root_double_slash_with_a_rule_path",
            get(b"//evil.example/p/x"),
            proxied("//evil.example/p/x"),
        ),
        case(
            "root_slash_backslash",
            get(b"/\\evil.example"),
            proxied("/\\evil.example"),
        ),
        case(
            "root_slash_backslash_slash",
            get(b"/\\/evil"),
            proxied("/\\/evil"),
        ),
        case(
            "glue_then_double_slash",
            get(b"/p//evil.example"),
            redirect(301, "https://new.example/base//evil.example"),
        ),
        case(
            "glue_then_backslash",
            get(b"/p/\\evil"),
            redirect(301, "https://new.example/base/%5Cevil"),
        ),
        case(
            "glue_then_two_backslashes",
            get(b"/p/\\\\evil.example"),
            redirect(301, "https://new.example/base/%5C%5Cevil.example"),
        ),
        case(
            "backslash_glued_to_the_prefix_is_not_below_it",
            get(b"/p\\evil.example"),
            proxied("/p\\evil.example"),
        ),
        case(
            "relative_rule_double_slash_suffix",
            get(b"/r//evil.example"),
            redirect(302, "/local//evil.example"),
        ),
        case(
            "relative_rule_backslash_suffix",
            get(b"/r/\\evil"),
            redirect(302, "/local/%5Cevil"),
        ),
        case(
            "relative_capture_double_slash",
            get(b"/rr//evil.example"),
            redirect(302, "/evil.example"),
        ),
        case(
            "relative_capture_triple_slash",
            get(b"/rr///evil.example"),
            redirect(302, "/evil.example"),
        ),
        case(
            "relative_capture_backslash",
            get(b"/rr/\\evil.example"),
            redirect(302, "/%5Cevil.example"),
        ),
        case(
            "relative_capture_backslash_slash",
            get(b"/rr/\\/evil.example"),
            redirect(302, "/%5C/evil.example"),
        ),
        case(
            "relative_capture_raw_tab_between_slashes",
            get(b"/rr/\t/evil.example"),
            redirect(302, "/%09/evil.example"),
        ),
        case(
            "relative_capture_dot_then_backslash",
            get(b"/rr/./\\evil.example"),
            redirect(302, "/%5Cevil.example"),
        ),
        case("relative_capture_empty", get(b"/rr/"), redirect(302, "/")),
        case(
            "relative_rule_query_double_slash",
            get(b"/r?//evil.example"),
            redirect(302, "/local?//evil.example"),
        ),
        case(
            "path_variable_double_slash",
            get(b"/v//evil.example"),
            redirect(308, "https://paths.example/archive/v//evil.example"),
        ),
        case(
            "path_variable_backslash",
            get(b"/v/\\evil.example"),
            redirect(308, "https://paths.example/archive/v/%5Cevil.example"),
        ),
        case(
            "regex_capture_backslash",
            get(b"/re/\\/evil.example?q"),
            redirect(302, "https://regex.example/r/%5C/evil.example?q"),
        ),
        case(
            "pool_double_slash",
            get(b"/pool//evil.example"),
            redirect(307, "https://backup.example/pool//evil.example"),
        ),
        case(
            "pool_backslash",
            get(b"/pool/\\evil.example"),
            redirect(307, "https://backup.example/pool/%5Cevil.example"),
        ),
        case(
            "wildcard_host_double_slash",
            get_on(b"a.shop.example", b"/w//evil.example"),
            redirect(307, "https://a.shop.example/x//evil.example"),
        ),
        case(
            "wildcard_host_backslash",
            get_on(b"a.shop.example", b"/w/\\evil.example"),
            redirect(307, "https://a.shop.example/x/%5Cevil.example"),
        ),
    ];
    run_table(&proxy, &backend, &cases);
}

#[test]
fn h1_encoded_slashes_and_backslashes_are_copied_byte_for_byte() {
    let (backend, proxy) = start("");
    let cases = [
        case(
            "glue_encoded_slashes",
            get(b"/p/%2f%2Fevil.example"),
            redirect(301, "https://new.example/base/%2f%2Fevil.example"),
        ),
        case(
            "glue_encoded_backslashes",
            get(b"/p/%5c%5Cevil.example"),
            redirect(301, "https://new.example/base/%5c%5Cevil.example"),
        ),
        case(
            "glue_double_encoded",
            get(b"/p/%252f%252F%255c%255Cevil.example"),
            redirect(
                301,
                "https://new.example/base/%252f%252F%255c%255Cevil.example",
            ),
        ),
        case(
            "encoded_slash_at_the_prefix_boundary_is_not_below_it",
            get(b"/p%2f%2fevil.example"),
            proxied("/p%2f%2fevil.example"),
        ),
        case(
            "relative_rule_encoded_slashes",
            get(b"/r/%2F%2Fevil.example"),
            redirect(302, "/local/%2F%2Fevil.example"),
        ),
        case(
            "relative_capture_encoded_slashes",
            get(b"/rr/%2f%2fevil.example"),
            redirect(302, "/%2f%2fevil.example"),
        ),
        case(
            "relative_capture_encoded_backslashes",
            get(b"/rr/%5c%5cevil.example"),
            redirect(302, "/%5c%5cevil.example"),
        ),
        case(
            "relative_capture_double_encoded",
            get(b"/rr/%252f%252fevil.example"),
            redirect(302, "/%252f%252fevil.example"),
        ),
        case(
            "relative_capture_encoded_backslash_then_slash",
            get(b"/rr/%5C/evil.example"),
            redirect(302, "/%5C/evil.example"),
        ),
        case(
            "path_variable_encoded",
            get(b"/v/%2f%5c%252f?x=%2f%2f"),
            redirect(308, "https://paths.example/archive/v/%2f%5c%252f?x=%2f%2f"),
        ),
        case(
            "regex_capture_encoded",
            get(b"/re/%2f%2f/%5cevil.example"),
            redirect(302, "https://regex.example/r/%2f%2f/%5cevil.example"),
        ),
        case(
            "pool_encoded",
            get(b"/pool/%2f%2fevil.example"),
            redirect(307, "https://backup.example/pool/%2f%2fevil.example"),
        ),
        case(
            "wildcard_encoded",
            get_on(b"a.shop.example", b"/w/%2F%2Fevil.example%5C"),
            redirect(307, "https://a.shop.example/x/%2F%2Fevil.example%5C"),
        ),
        case(
            "query_encoded",
            get(b"/p/x?next=%2f%2fevil.example%5c&u=%252f"),
            redirect(
                301,
                "https://new.example/base/x?next=%2f%2fevil.example%5c&u=%252f",
            ),
        ),
        case(
            "broken_escapes_are_encoded",
            get(b"/p/%zz/%2/%"),
            redirect(301, "https://new.example/base/%25zz/%252/%25"),
        ),
    ];
    run_table(&proxy, &backend, &cases);
}

#[test]
fn h1_control_bytes_raw_and_encoded() {
    let (backend, proxy) = start("");
    let cases = [
        case(
            "raw_tab",
            get(b"/p/a\tb"),
            redirect(301, "https://new.example/base/a%09b"),
        ),
        case(
            "raw_cr",
            get(b"/p/a\rb"),
            redirect(301, "https://new.example/base/a%0Db"),
        ),
        case("raw_lf", get(b"/p/a\nb"), Expect::PingoraRejects),
        case(
            "raw_crlf_then_a_header",
            b"GET /p/a\r\nLocation: https://evil.example/ HTTP/1.1\r\nHost: old.example\r\n\r\n"
                .to_vec(),
            Expect::PingoraRejects,
        ),
        case(
            "raw_nul",
            get(b"/p/a\0b"),
            redirect(301, "https://new.example/base/a%00b"),
        ),
        case(
            "raw_soh_and_del",
            get(b"/p/a\x01b\x7f"),
            redirect(301, "https://new.example/base/a%01b%7F"),
        ),
        case(
            "raw_space",
            get(b"/p/a b"),
            redirect(301, "https://new.example/base/a%20b"),
        ),
        case(
            "raw_tab_in_the_query",
            get(b"/p/x?q=a\tb"),
            redirect(301, "https://new.example/base/x?q=a%09b"),
        ),
        case(
            "raw_cr_in_the_query",
            get(b"/p/x?q=\r"),
            redirect(301, "https://new.example/base/x?q=%0D"),
        ),
        case(
            "raw_nul_in_the_query",
            get(b"/p/x?q=\0"),
            redirect(301, "https://new.example/base/x?q=%00"),
        ),
        case(
            "encoded_tab",
            get(b"/p/%09x"),
            redirect(301, "https://new.example/base/%09x"),
        ),
        case(
            "encoded_crlf_set_cookie",
            get(b"/p/%0d%0aSet-Cookie:%20evil=1"),
            redirect(301, "https://new.example/base/%0d%0aSet-Cookie:%20evil=1"),
        ),
        case(
            "encoded_nul",
            get(b"/p/%00"),
            redirect(301, "https://new.example/base/%00"),
        ),
        case(
            "encoded_crlf_in_the_query",
            get(b"/p/x?q=%0D%0AX-Injected:%201"),
            redirect(301, "https://new.example/base/x?q=%0D%0AX-Injected:%201"),
        ),
        case(
            "relative_capture_encoded_crlf_then_double_slash",
            get(b"/rr/%0d%0a//evil.example"),
            redirect(302, "/%0d%0a//evil.example"),
        ),
        case(
            "relative_capture_encoded_tab_between_slashes",
            get(b"/rr/%09/evil.example"),
            redirect(302, "/%09/evil.example"),
        ),
        case(
            "pool_encoded_lf_then_a_header",
            get(b"/pool/x%0aX-Injected:%201"),
            redirect(307, "https://backup.example/pool/x%0aX-Injected:%201"),
        ),
        case(
            "wildcard_raw_tab_between_slashes",
            get_on(b"a.shop.example", b"/w/\t/evil.example"),
            redirect(307, "https://a.shop.example/x/%09/evil.example"),
        ),
    ];
    run_table(&proxy, &backend, &cases);
}

#[test]
fn h1_non_ascii_and_overlong_utf8() {
    let (backend, proxy) = start("");
    let cases = [
        case(
            "raw_invalid_utf8",
            get(b"/p/\x80\xff"),
            Expect::PingoraRejects,
        ),
        case(
            "raw_overlong_solidus",
            get(b"/p/\xc0\xaf"),
            Expect::PingoraRejects,
        ),
        case(
            "encoded_overlong_solidus",
            get(b"/p/%c0%af"),
            redirect(301, "https://new.example/base/%c0%af"),
        ),
        case(
            "raw_fullwidth_solidus",
            get(b"/p/\xef\xbc\x8fevil.example"),
            redirect(301, "https://new.example/base/%EF%BC%8Fevil.example"),
        ),
        case(
            "encoded_fullwidth_solidus",
            get(b"/p/%ef%bc%8fevil.example"),
            redirect(301, "https://new.example/base/%ef%bc%8fevil.example"),
        ),
        case(
            "raw_fullwidth_reverse_solidus",
            get(b"/p/\xef\xbc\xbcevil.example"),
            redirect(301, "https://new.example/base/%EF%BC%BCevil.example"),
        ),
        case(
            "raw_utf8_letter",
            get(b"/p/caf\xc3\xa9"),
            redirect(301, "https://new.example/base/caf%C3%A9"),
        ),
        case(
            "relative_capture_raw_fullwidth_solidi",
            get(b"/rr/\xef\xbc\x8f\xef\xbc\x8fevil.example"),
            redirect(302, "/%EF%BC%8F%EF%BC%8Fevil.example"),
        ),
        case(
            "relative_capture_encoded_truncation_vector",
            get(b"/rr/%C4%8D%C4%8Aevil.example"),
            redirect(302, "/%C4%8D%C4%8Aevil.example"),
        ),
        case(
            "raw_truncation_vector",
            get(b"/p/\xc4\x8d\xc4\x8aX-Injected:1"),
            redirect(301, "https://new.example/base/%C4%8D%C4%8AX-Injected:1"),
        ),
        case(
            "raw_fullwidth_solidus_in_the_query",
            get(b"/p/x?q=\xef\xbc\x8f"),
            redirect(301, "https://new.example/base/x?q=%EF%BC%8F"),
        ),
        case(
            "raw_invalid_utf8_in_the_query",
            get(b"/p/x?q=\xff"),
            Expect::PingoraRejects,
        ),
        case(
            "wildcard_raw_fullwidth_solidus",
            get_on(b"a.shop.example", b"/w/\xef\xbc\x8fevil.example"),
            redirect(307, "https://a.shop.example/x/%EF%BC%8Fevil.example"),
        ),
        case(
            "pool_raw_utf8",
            get(b"/pool/\xc3\xa9"),
            redirect(307, "https://backup.example/pool/%C3%A9"),
        ),
        case(
            "path_variable_raw_utf8",
            get(b"/v/\xef\xbc\x8f"),
            redirect(308, "https://paths.example/archive/v/%EF%BC%8F"),
        ),
    ];
    run_table(&proxy, &backend, &cases);
}

#[test]
fn h1_dot_segments() {
    let (backend, proxy) = start("");
    let cases = [
        // Resolved before matching: out of the prefix, so no rule applies.
        case("raw_out_of_the_prefix", get(b"/p/../x"), proxied("/p/../x")),
        case(
            "encoded_out_of_the_prefix",
            get(b"/p/%2e%2e/x"),
            proxied("/p/%2e%2e/x"),
        ),
        case(
            "half_encoded_out_of_the_prefix",
            get(b"/p/.%2e/"),
            proxied("/p/.%2e/"),
        ),
        case(
            "other_half_encoded_out_of_the_prefix",
            get(b"/p/%2E./x"),
            proxied("/p/%2E./x"),
        ),
        case(
            "pool_back_to_the_root",
            get(b"/pool/.."),
            proxied("/pool/.."),
        ),
        case(
            "relative_capture_encoded_out",
            get(b"/rr/%2e%2e/x"),
            proxied("/rr/%2e%2e/x"),
        ),
        case(
            "path_variable_encoded_out",
            get(b"/v/a/%2e%2e/%2E%2E/b"),
            proxied("/v/a/%2e%2e/%2E%2E/b"),
        ),
        // Resolved inside the prefix: the suffix holds no dot segment.
        case(
            "inside_the_prefix",
            get(b"/p/a/../b"),
            redirect(301, "https://new.example/base/b"),
        ),
        case(
            "single_dots",
            get(b"/p/./a/%2E/b"),
            redirect(301, "https://new.example/base/a/b"),
        ),
        case(
            "back_to_the_prefix",
            get(b"/p/a/%2e%2e"),
            redirect(301, "https://new.example/base/"),
        ),
        case(
            "path_variable_resolved",
            get(b"/v/a/../b"),
            redirect(308, "https://paths.example/archive/v/b"),
        ),
        // Not dot segments: copied as they are.
        case(
            "dots_with_encoded_slashes",
            get(b"/p/..%2f..%2fadmin"),
            redirect(301, "https://new.example/base/..%2f..%2fadmin"),
        ),
        case(
            "three_dots",
            get(b"/p/.../x"),
            redirect(301, "https://new.example/base/.../x"),
        ),
        case(
            "regex_dots_with_an_encoded_slash",
            get(b"/re/..%2f/x"),
            redirect(302, "https://regex.example/r/..%2f/x"),
        ),
        // Climbing above the root.
        case(
            "raw_above_the_root",
            get(b"/p/../../x"),
            Expect::Rejected(400, ".."),
        ),
        case(
            "encoded_above_the_root",
            get(b"/p/%2e%2e/%2E%2E/x"),
            Expect::Rejected(400, ".."),
        ),
        case(
            "half_encoded_above_the_root",
            get(b"/.%2e/evil.example"),
            Expect::Rejected(400, ".."),
        ),
        case(
            "relative_capture_above_the_root",
            get(b"/rr/x/%2e%2e/%2e%2e/%2e%2e"),
            Expect::Rejected(400, ".."),
        ),
        case(
            "above_the_root_on_a_wildcard_host",
            get_on(b"a.shop.example", b"/w/../../evil.example"),
            Expect::Rejected(400, ".."),
        ),
    ];
    run_table(&proxy, &backend, &cases);
}

#[test]
fn h1_userinfo_and_port_tricks_against_the_glued_suffix() {
    let (backend, proxy) = start("");
    let cases = [
        // Not below the prefix on a segment boundary: no rule applies.
        case(
            "userinfo_glued",
            get(b"/p@evil.example"),
            proxied("/p@evil.example"),
        ),
        case(
            "port_and_userinfo_glued",
            get(b"/p:443@evil.example"),
            proxied("/p:443@evil.example"),
        ),
        case(
            "host_extension_glued",
            get(b"/p.evil.example"),
            proxied("/p.evil.example"),
        ),
        case(
            "encoded_at_glued",
            get(b"/p%40evil.example"),
            proxied("/p%40evil.example"),
        ),
        case("port_glued", get(b"/p:1337"), proxied("/p:1337")),
        case(
            "path_variable_userinfo_glued",
            get(b"/v@evil.example"),
            proxied("/v@evil.example"),
        ),
        case(
            "wildcard_userinfo_glued",
            get_on(b"a.shop.example", b"/w@evil.example"),
            proxied("/w@evil.example"),
        ),
        // Below the prefix: the host stays the configured one.
        case(
            "userinfo_after_the_boundary",
            get(b"/p/@evil.example"),
            redirect(301, "https://new.example/base/@evil.example"),
        ),
        case(
            "port_and_userinfo_after_the_boundary",
            get(b"/p/:443@evil.example"),
            redirect(301, "https://new.example/base/:443@evil.example"),
        ),
        case(
            "userinfo_in_the_query",
            get(b"/p?@evil.example"),
            redirect(301, "https://new.example/base?@evil.example"),
        ),
        case(
            "userinfo_in_a_fragment",
            get(b"/p#@evil.example"),
            redirect(301, "https://new.example/base"),
        ),
        case(
            "relative_capture_userinfo",
            get(b"/rr/@evil.example"),
            redirect(302, "/@evil.example"),
        ),
        case(
            "relative_capture_whole_url",
            get(b"/rr/https://user@evil.example"),
            redirect(302, "/https://user@evil.example"),
        ),
        case(
            "relative_capture_javascript_scheme",
            get(b"/rr/javascript:alert(1)"),
            redirect(302, "/javascript:alert(1)"),
        ),
        case(
            "pool_userinfo",
            get(b"/pool@evil.example"),
            proxied("/pool@evil.example"),
        ),
    ];
    run_table(&proxy, &backend, &cases);
}

#[test]
fn h1_header_injection_and_duplicate_location_attempts() {
    let (backend, proxy) = start("");
    let cases = [
        case(
            "encoded_crlf_location",
            get(b"/p/%0d%0aLocation:%20https://evil.example/"),
            redirect(
                301,
                "https://new.example/base/%0d%0aLocation:%20https://evil.example/",
            ),
        ),
        case(
            "encoded_lf_location",
            get(b"/p/%0aLocation:%20https://evil.example/"),
            redirect(
                301,
                "https://new.example/base/%0aLocation:%20https://evil.example/",
            ),
        ),
        case(
            "encoded_crlf_location_in_the_query",
            get(b"/r/x?%0d%0aLocation:%20//evil.example"),
            redirect(302, "/local/x?%0d%0aLocation:%20//evil.example"),
        ),
        case(
            "relative_capture_encoded_crlf_location",
            get(b"/rr/%0D%0ALocation:%20//evil.example"),
            redirect(302, "/%0D%0ALocation:%20//evil.example"),
        ),
        case(
            "pool_encoded_crlf_location",
            get(b"/pool/%0d%0aLocation:%20https://evil.example"),
            redirect(
                307,
                "https://backup.example/pool/%0d%0aLocation:%20https://evil.example",
            ),
        ),
        case(
            "wildcard_encoded_crlf_location",
            get_on(
                b"a.shop.example",
                b"/w/%0d%0aLocation:%20https://evil.example",
            ),
            redirect(
                307,
                "https://a.shop.example/x/%0d%0aLocation:%20https://evil.example",
            ),
        ),
        case(
            "raw_cr_location",
            get(b"/p/\rLocation:%20https://evil.example/"),
            redirect(
                301,
                "https://new.example/base/%0DLocation:%20https://evil.example/",
            ),
        ),
        case(
            "raw_crlf_location",
            b"GET /p/\r\nLocation: https://evil.example/ HTTP/1.1\r\nHost: old.example\r\n\r\n"
                .to_vec(),
            Expect::PingoraRejects,
        ),
        case(
            "truncation_vector_location",
            get(b"/p/%C4%8D%C4%8ALocation:%20https://evil.example"),
            redirect(
                301,
                "https://new.example/base/%C4%8D%C4%8ALocation:%20https://evil.example",
            ),
        ),
        case(
            "encoded_response_splitting",
            get(b"/p/%0d%0a%0d%0aHTTP/1.1%20200%20OK"),
            redirect(
                301,
                "https://new.example/base/%0d%0a%0d%0aHTTP/1.1%20200%20OK",
            ),
        ),
    ];
    run_table(&proxy, &backend, &cases);
}

#[test]
fn h1_html_in_the_path_is_escaped_in_the_body() {
    let (backend, proxy) = start("");
    let cases = [
        case(
            "encoded_script",
            get(b"/p/%3Cscript%3Ealert(1)%3C/script%3E"),
            redirect(
                301,
                "https://new.example/base/%3Cscript%3Ealert(1)%3C/script%3E",
            ),
        ),
        case(
            "encoded_script_breaking_out_of_the_attribute",
            get(b"/p/x?q=%22%3E%3Cscript%3Ealert(1)%3C/script%3E"),
            redirect(
                301,
                "https://new.example/base/x?q=%22%3E%3Cscript%3Ealert(1)%3C/script%3E",
            ),
        ),
        case(
            "raw_script",
            get(b"/p/<script>alert(1)</script>"),
            Expect::PingoraRejects,
        ),
        case(
            "raw_quotes",
            get(b"/p/a\"onmouseover=\"alert(1)"),
            redirect(301, "https://new.example/base/a%22onmouseover=%22alert(1)"),
        ),
        case(
            "raw_apostrophe_and_ampersand",
            get(b"/p/a'b&c=d?e=1&f='"),
            redirect(301, "https://new.example/base/a'b&c=d?e=1&f='"),
        ),
        case(
            "entities_are_escaped_again",
            get(b"/p/&lt;script&gt;?a=1&amp;b=2"),
            redirect(301, "https://new.example/base/&lt;script&gt;?a=1&amp;b=2"),
        ),
        case(
            "head_has_no_body",
            request("HEAD", b"/p/%3Cscript%3E&x", b"Host: old.example\r\n"),
            redirect(301, "https://new.example/base/%3Cscript%3E&x"),
        ),
        case(
            "relative_capture_script",
            get(b"/rr/%3Cscript%3E"),
            redirect(302, "/%3Cscript%3E"),
        ),
    ];
    run_table(&proxy, &backend, &cases);
}

// ---------------------------------------------------------------------------
// Host, absolute-form and forwarded headers

#[test]
fn h1_host_spoofing_and_malformed_host() {
    let (backend, proxy) = start("");
    let w = b"/w/y".as_slice();
    let cases = [
        case(
            "userinfo",
            get_on(b"evil.example@shop.example", w),
            Expect::PingoraRejects,
        ),
        case(
            "userinfo_the_other_way",
            get_on(b"a.shop.example@evil.example", w),
            Expect::PingoraRejects,
        ),
        case(
            "two_ports",
            get_on(b"a.shop.example:80:81", w),
            Expect::Rejected(400, "port"),
        ),
        case(
            "space_before_the_port",
            get_on(b"a.shop.example :80", w),
            Expect::Rejected(400, "malformed Host"),
        ),
        case(
            "inner_space",
            get_on(b"a.shop .example", w),
            Expect::Rejected(400, "malformed Host"),
        ),
        case(
            "path",
            get_on(b"a.shop.example/evil.example", w),
            Expect::Rejected(400, "malformed Host"),
        ),
        case(
            "backslash",
            get_on(b"a.shop.example\\evil.example", w),
            Expect::Rejected(400, "malformed Host"),
        ),
        case(
            "hash",
            get_on(b"evil.example#.shop.example", w),
            Expect::Rejected(400, "malformed Host"),
        ),
        case(
            "question_mark",
            get_on(b"evil.example?.shop.example", w),
            Expect::Rejected(400, "malformed Host"),
        ),
        case(
            "percent_encoded",
            get_on(b"%61.shop.example", w),
            Expect::Rejected(400, "malformed Host"),
        ),
        case(
            "empty_label",
            get_on(b"a..shop.example", w),
            Expect::Rejected(400, "empty label"),
        ),
        case(
            "raw_utf8",
            get_on(b"\xc3\xa4.shop.example", w),
            Expect::Rejected(400, "Host"),
        ),
        case("empty", get_on(b"", w), Expect::Rejected(400, "empty Host")),
        case(
            "no_space_and_no_value",
            b"GET /w/y HTTP/1.1\r\nHost:\r\n\r\n".to_vec(),
            Expect::Rejected(400, "empty Host"),
        ),
        case(
            "missing",
            b"GET /w/y HTTP/1.1\r\n\r\n".to_vec(),
            Expect::Rejected(400, "Host"),
        ),
        case(
            "duplicate_same",
            b"GET /p/y HTTP/1.1\r\nHost: old.example\r\nHost: old.example\r\n\r\n".to_vec(),
            Expect::PingoraRejects,
        ),
        case(
            "duplicate_different",
            b"GET /w/y HTTP/1.1\r\nHost: a.shop.example\r\nHost: evil.example\r\n\r\n".to_vec(),
            Expect::PingoraRejects,
        ),
        case(
            "space_before_the_colon",
            b"GET /w/y HTTP/1.1\r\nHost : a.shop.example\r\n\r\n".to_vec(),
            Expect::PingoraRejects,
        ),
        case(
            "folded_onto_a_second_line",
            b"GET /w/y HTTP/1.1\r\nHost: a.shop.example\r\n evil.example\r\n\r\n".to_vec(),
            Expect::PingoraRejects,
        ),
        // Hosts that do not match `*.shop.example`: never redirected to.
        case("attacker_host", get_on(b"evil.example", w), proxied("/w/y")),
        case(
            "pattern_as_the_end_of_a_label",
            get_on(b"evilshop.example", w),
            proxied("/w/y"),
        ),
        case(
            "pattern_then_the_attacker_domain",
            get_on(b"a.shop.example.evil.example", w),
            proxied("/w/y"),
        ),
        case(
            "apex_of_the_pattern",
            get_on(b"shop.example", w),
            proxied("/w/y"),
        ),
        case("ipv6", get_on(b"[::1]", w), proxied("/w/y")),
        case(
            "http10_without_host_matches_no_host_rule",
            b"GET /w/y HTTP/1.0\r\n\r\n".to_vec(),
            proxied("/w/y"),
        ),
        case(
            "attacker_host_on_the_glue_rule",
            get_on(b"evil.example", b"/p/x"),
            proxied("/p/x"),
        ),
        // Hosts that match: normalised before they are copied.
        case(
            "upper_case_port_and_trailing_dot",
            get_on(b"A.Shop.Example.:8080", w),
            redirect(307, "https://a.shop.example/x/y"),
        ),
        case(
            "trailing_tab_is_whitespace",
            get_on(b"a.shop.example\t", w),
            redirect(307, "https://a.shop.example/x/y"),
        ),
        case(
            "punycode",
            get_on(b"XN--BCHER-KVA.shop.example", w),
            redirect(307, "https://xn--bcher-kva.shop.example/x/y"),
        ),
        case(
            "deep_subdomain",
            get_on(b"a.b.shop.example", w),
            redirect(307, "https://a.b.shop.example/x/y"),
        ),
    ];
    run_table(&proxy, &backend, &cases);
}

#[test]
fn h1_absolute_form_targets() {
    let (backend, proxy) = start("");
    let cases = [
        case(
            "other_authority_than_host",
            b"GET http://evil.example/p/x HTTP/1.1\r\nHost: old.example\r\n\r\n".to_vec(),
            Expect::PingoraRejects,
        ),
        case(
            "matching_authority_other_host",
            b"GET http://a.shop.example/w/z HTTP/1.1\r\nHost: evil.example\r\n\r\n".to_vec(),
            Expect::PingoraRejects,
        ),
        case(
            "userinfo_in_the_authority",
            b"GET http://old.example@evil.example/p/x HTTP/1.1\r\nHost: old.example\r\n\r\n"
                .to_vec(),
            Expect::PingoraRejects,
        ),
        case(
            "port_only_in_the_authority",
            b"GET http://old.example:80/p/x HTTP/1.1\r\nHost: old.example\r\n\r\n".to_vec(),
            Expect::PingoraRejects,
        ),
        case(
            "matching_authority",
            b"GET http://old.example/p/x HTTP/1.1\r\nHost: old.example\r\n\r\n".to_vec(),
            redirect(301, "https://new.example/base/x"),
        ),
        case(
            "matching_wildcard_authority",
            b"GET http://a.shop.example/w/z HTTP/1.1\r\nHost: a.shop.example\r\n\r\n".to_vec(),
            redirect(307, "https://a.shop.example/x/z"),
        ),
        case(
            "matching_authority_double_slash_suffix",
            b"GET http://old.example/p//evil.example HTTP/1.1\r\nHost: old.example\r\n\r\n"
                .to_vec(),
            redirect(301, "https://new.example/base//evil.example"),
        ),
        case(
            "matching_authority_protocol_relative_path",
            b"GET http://old.example//evil.example HTTP/1.1\r\nHost: old.example\r\n\r\n".to_vec(),
            proxied("http://old.example//evil.example"),
        ),
        case(
            "attacker_authority_and_host_agree",
            b"GET http://evil.example/w/z HTTP/1.1\r\nHost: evil.example\r\n\r\n".to_vec(),
            proxied("http://evil.example/w/z"),
        ),
        case(
            "https_scheme_is_not_believed",
            b"GET https://old.example/s HTTP/1.1\r\nHost: old.example\r\n\r\n".to_vec(),
            proxied("https://old.example/s"),
        ),
        case(
            "http10_without_host",
            b"GET http://a.shop.example/w/z HTTP/1.0\r\n\r\n".to_vec(),
            redirect(307, "https://a.shop.example/x/z"),
        ),
        case(
            "origin_form_that_looks_like_an_authority",
            get(b"//old.example/p/x"),
            proxied("//old.example/p/x"),
        ),
    ];
    run_table(&proxy, &backend, &cases);
}

#[test]
fn h1_forwarded_headers_from_an_untrusted_peer_change_nothing() {
    let (backend, proxy) = start("");
    let all_forwarded: &[u8] = b"X-Forwarded-Host: evil.example\r\n\
        X-Forwarded-Proto: https\r\n\
        X-Forwarded-Port: 8443\r\n\
        X-Forwarded-Prefix: //evil.example\r\n\
        X-Forwarded-For: 10.0.0.1\r\n\
        Forwarded: for=10.0.0.1;host=evil.example;proto=https\r\n\
        X-Original-URL: //evil.example/\r\n\
        X-Rewrite-URL: //evil.example/\r\n";
    let with = |host: &[u8], target: &[u8], extra: &[u8]| {
        let mut headers = b"Host: ".to_vec();
        headers.extend_from_slice(host);
        headers.extend_from_slice(b"\r\n");
        headers.extend_from_slice(extra);
        request("GET", target, &headers)
    };
    let cases = [
        case(
            "x_forwarded_proto_does_not_make_the_request_https",
            with(b"old.example", b"/s", b"X-Forwarded-Proto: https\r\n"),
            proxied("/s"),
        ),
        case(
            "forwarded_proto_does_not_make_the_request_https",
            with(b"old.example", b"/s", b"Forwarded: proto=https\r\n"),
            proxied("/s"),
        ),
        case(
            "all_of_them_on_the_wildcard_rule",
            with(b"a.shop.example", b"/w/q", all_forwarded),
            redirect(307, "https://a.shop.example/x/q"),
        ),
        case(
            "all_of_them_on_the_glue_rule",
            with(b"old.example", b"/p/q", all_forwarded),
            redirect(301, "https://new.example/base/q"),
        ),
        case(
            "all_of_them_on_the_relative_rule",
            with(b"old.example", b"/r/q", all_forwarded),
            redirect(302, "/local/q"),
        ),
        case(
            "all_of_them_on_the_pool_rule",
            with(b"old.example", b"/pool/q", all_forwarded),
            redirect(307, "https://backup.example/pool/q"),
        ),
        case(
            "x_forwarded_host_does_not_select_a_host_rule",
            with(
                b"evil.example",
                b"/w/q",
                b"X-Forwarded-Host: a.shop.example\r\n",
            ),
            proxied("/w/q"),
        ),
        case(
            "forwarded_host_does_not_select_a_host_rule",
            with(b"evil.example", b"/p/q", b"Forwarded: host=old.example\r\n"),
            proxied("/p/q"),
        ),
        case(
            "x_original_url_does_not_select_a_path_rule",
            with(b"old.example", b"/nothing", b"X-Original-URL: /p/x\r\n"),
            proxied("/nothing"),
        ),
    ];
    run_table(&proxy, &backend, &cases);
}

// ---------------------------------------------------------------------------
// Long paths

#[test]
fn h1_long_paths() {
    let (backend, proxy) = start("");
    let a = |n: usize| "a".repeat(n);
    let path = |prefix: &str, total: usize| format!("{prefix}{}", a(total - prefix.len()));
    let cases = [
        case(
            "path_of_8192_bytes",
            get(path("/p/", 8192).as_bytes()),
            redirect(301, format!("https://new.example/base/{}", a(8189))),
        ),
        case(
            "path_of_8192_bytes_and_a_longer_query",
            get(format!("{}?q={}", path("/p/", 8192), "b".repeat(9000)).as_bytes()),
            redirect(
                301,
                format!(
                    "https://new.example/base/{}?q={}",
                    a(8189),
                    "b".repeat(9000)
                ),
            ),
        ),
        case(
            "path_of_8193_bytes",
            get(path("/p/", 8193).as_bytes()),
            Expect::Rejected(414, "8192"),
        ),
        case(
            "unmatched_path_of_8193_bytes_is_not_proxied",
            get(path("/x/", 8193).as_bytes()),
            Expect::Rejected(414, "8192"),
        ),
        case(
            "path_of_60_kib",
            get(path("/p/", 60 * 1024).as_bytes()),
            Expect::Rejected(414, "8192"),
        ),
        case(
            "path_of_200_kib",
            get(path("/p/", 200 * 1024).as_bytes()),
            Expect::PingoraRejects,
        ),
        case(
            "query_of_200_kib",
            get(format!("/p/x?{}", "q".repeat(200 * 1024)).as_bytes()),
            Expect::PingoraRejects,
        ),
    ];
    run_table(&proxy, &backend, &cases);
}

// ---------------------------------------------------------------------------
// Request bodies and framing

/// A request hidden in a body: it would go to the upstream if it were ever
/// read as one.
const SMUGGLED: &[u8] = b"GET /smuggled HTTP/1.1\r\nHost: old.example\r\n\r\n";

/// `POST target` for old.example with raw extra header lines and a body.
fn post(target: &[u8], headers: &[u8], body: &[u8]) -> Vec<u8> {
    let mut all = b"Host: old.example\r\n".to_vec();
    all.extend_from_slice(headers);
    let mut out = request("POST", target, &all);
    out.extend_from_slice(body);
    out
}

/// `Content-Length: N` header line.
fn cl(n: usize) -> Vec<u8> {
    format!("Content-Length: {n}\r\n").into_bytes()
}

/// A real request to send after a body, and its answer.
const REAL: &[u8] = b"GET /p/real HTTP/1.1\r\nHost: old.example\r\n\r\n";

fn assert_real(c: &mut Conn, ctx: &str) {
    let r = read_checked(c, REAL);
    assert_eq!(r.status, 301, "{ctx}: {r:?}");
    assert_eq!(
        r.all("location"),
        vec!["https://new.example/base/real"],
        "{ctx}"
    );
    assert_eq!(r.header("connection"), Some("keep-alive"), "{ctx}");
}

/// Asserts the redirect of `POST /p/form` (308: the 301 rule keeps the
/// method) and the connection decision.
fn assert_form_redirect(r: &RawResponse, connection: &str, ctx: &str) {
    assert_eq!(r.status, 308, "{ctx}: {r:?}");
    assert_eq!(
        r.all("location"),
        vec!["https://new.example/base/form"],
        "{ctx}"
    );
    assert_eq!(r.header("connection"), Some(connection), "{ctx}: {r:?}");
}

/// No request the upstream received was ever the hidden one.
fn assert_nothing_smuggled(backend: &Backend) {
    let traffic = backend.traffic();
    assert!(
        traffic.iter().all(|r| !r.target.contains("smuggled")),
        "a request body was read as a request: {traffic:?}"
    );
}

#[test]
fn h1_request_body_holding_a_second_request() {
    let (backend, proxy) = start("");

    // A redirect drains the small body and keeps the connection: the next
    // real request gets its own answer, and the hidden one none.
    let req = post(b"/p/form", &cl(SMUGGLED.len()), SMUGGLED);
    let mut c = proxy.connect();
    c.send(&req);
    assert_form_redirect(&read_checked(&mut c, &req), "keep-alive", "redirect");
    c.send(REAL);
    assert_real(&mut c, "redirect, then a real request");

    // The same in one write, the real request pipelined behind the body.
    let mut c = proxy.connect();
    c.send(&[req.as_slice(), REAL].concat());
    assert_form_redirect(&read_checked(&mut c, &req), "keep-alive", "pipelined");
    assert_real(&mut c, "pipelined real request");

    // A GET with a body is no different.
    let get_body = request(
        "GET",
        b"/p/with-body",
        &[b"Host: old.example\r\n".as_slice(), &cl(SMUGGLED.len())].concat(),
    );
    let mut c = proxy.connect();
    c.send(&[get_body.as_slice(), SMUGGLED, REAL].concat());
    let r = read_checked(&mut c, &get_body);
    assert_eq!(r.status, 301, "{r:?}");
    assert_eq!(
        r.all("location"),
        vec!["https://new.example/base/with-body"]
    );
    assert_real(&mut c, "after a GET with a body");

    // Proxied: the upstream gets the body as a body, once; then the next
    // request on the same connection is answered in order.
    let before = backend.traffic().len();
    let to_upstream = post(b"/form", &cl(SMUGGLED.len()), SMUGGLED);
    let mut c = proxy.connect();
    c.send(&[to_upstream.as_slice(), REAL].concat());
    let r = read_checked(&mut c, &to_upstream);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), backend.answer());
    assert_real(&mut c, "after a proxied body");
    let traffic = backend.traffic();
    assert_eq!(traffic.len(), before + 1, "{traffic:?}");
    assert_eq!(traffic[before].method, "POST");
    assert_eq!(traffic[before].target, "/form");
    assert_eq!(traffic[before].body, SMUGGLED);

    // A body over the drain bound, ending with the hidden request: answered
    // with `Connection: close`, and nothing follows.
    let big = [vec![b'x'; 100_000 - SMUGGLED.len()].as_slice(), SMUGGLED].concat();
    let req = post(b"/p/form", &cl(big.len()), &big);
    let mut c = proxy.connect();
    c.send(&req);
    assert_form_redirect(&read_checked(&mut c, &req), "close", "large body");
    c.expect_closed();

    // A client waiting for `100 Continue` that sends the body anyway.
    let req = post(
        b"/p/form",
        &[b"Expect: 100-continue\r\n".as_slice(), &cl(SMUGGLED.len())].concat(),
        SMUGGLED,
    );
    let mut c = proxy.connect();
    c.send(&req);
    assert_form_redirect(&read_checked(&mut c, &req), "close", "Expect");
    c.expect_closed();

    // A chunked body holding the hidden request, to a redirect and upstream.
    let chunked = [
        format!("{:x}\r\n", SMUGGLED.len()).as_bytes(),
        SMUGGLED,
        b"\r\n0\r\n\r\n",
    ]
    .concat();
    let req = post(b"/p/form", b"Transfer-Encoding: chunked\r\n", &chunked);
    let mut c = proxy.connect();
    c.send(&req);
    assert_form_redirect(&read_checked(&mut c, &req), "close", "chunked");
    c.expect_closed();
    let before = backend.traffic().len();
    let req = post(b"/form", b"Transfer-Encoding: chunked\r\n", &chunked);
    let mut c = proxy.connect();
    c.send(&[req.as_slice(), REAL].concat());
    let r = read_checked(&mut c, &req);
    assert_eq!(r.status, 200, "{r:?}");
    assert_real(&mut c, "after a proxied chunked body");
    let traffic = backend.traffic();
    assert_eq!(traffic.len(), before + 1, "{traffic:?}");
    assert_eq!(traffic[before].body, SMUGGLED);

    assert_nothing_smuggled(&backend);
}

#[test]
fn h1_content_length_and_transfer_encoding_conflicts() {
    let (backend, proxy) = start("");
    // `0` ends the chunked body at once; with Content-Length believed
    // instead, the hidden request would be body.
    let zero_then_smuggled = [b"0\r\n\r\n".as_slice(), SMUGGLED].concat();

    // CL + TE to a redirect: answered, closed, nothing else.
    let req = post(
        b"/p/form",
        &[
            cl(zero_then_smuggled.len()).as_slice(),
            b"Transfer-Encoding: chunked\r\n",
        ]
        .concat(),
        &zero_then_smuggled,
    );
    let mut c = proxy.connect();
    c.send(&req);
    assert_form_redirect(&read_checked(&mut c, &req), "close", "CL+TE redirect");
    c.expect_closed();

    // CL + TE upstream: chunked wins, Content-Length is not forwarded, the
    // connection closes after the answer.
    let before = backend.traffic().len();
    let req = post(
        b"/form",
        &[
            cl(zero_then_smuggled.len()).as_slice(),
            b"Transfer-Encoding: chunked\r\n",
        ]
        .concat(),
        &zero_then_smuggled,
    );
    let mut c = proxy.connect();
    c.send(&req);
    let r = read_checked(&mut c, &req);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("connection"), Some("close"), "{r:?}");
    c.expect_closed();
    let traffic = backend.traffic();
    assert_eq!(traffic.len(), before + 1, "{traffic:?}");
    let got = &traffic[before];
    assert_eq!(got.target, "/form");
    assert_eq!(got.header("transfer-encoding"), Some("chunked"), "{got:?}");
    assert_eq!(got.header("content-length"), None, "{got:?}");
    assert!(got.body.is_empty(), "{got:?}");

    // TE before CL, with a chunk holding the hidden request: chunked wins.
    let before = backend.traffic().len();
    let chunked = [
        format!("{:x}\r\n", SMUGGLED.len()).as_bytes(),
        SMUGGLED,
        b"\r\n0\r\n\r\n",
    ]
    .concat();
    let req = post(
        b"/form",
        b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n",
        &chunked,
    );
    let mut c = proxy.connect();
    c.send(&req);
    let r = read_checked(&mut c, &req);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("connection"), Some("close"), "{r:?}");
    c.expect_closed();
    let traffic = backend.traffic();
    assert_eq!(traffic.len(), before + 1, "{traffic:?}");
    assert_eq!(traffic[before].body, SMUGGLED);
    assert_eq!(traffic[before].header("content-length"), None);

    // Framing Pingora refuses before any product code runs.
    let refused: [(&str, Vec<u8>); 8] = [
        (
            "conflicting_content_lengths",
            post(
                b"/p/form",
                &[b"Content-Length: 0\r\n".as_slice(), &cl(SMUGGLED.len())].concat(),
                SMUGGLED,
            ),
        ),
        (
            "conflicting_content_lengths_upstream",
            post(
                b"/form",
                &[b"Content-Length: 0\r\n".as_slice(), &cl(SMUGGLED.len())].concat(),
                SMUGGLED,
            ),
        ),
        (
            "signed_content_length",
            post(
                b"/form",
                format!("Content-Length: +{}\r\n", SMUGGLED.len()).as_bytes(),
                SMUGGLED,
            ),
        ),
        (
            "chunked_not_last",
            post(
                b"/form",
                b"Transfer-Encoding: chunked, identity\r\n",
                &zero_then_smuggled,
            ),
        ),
        (
            "unknown_transfer_coding",
            post(b"/form", b"Transfer-Encoding: xchunked\r\n", SMUGGLED),
        ),
        (
            "space_before_the_colon",
            post(
                b"/form",
                b"Transfer-Encoding : chunked\r\n",
                &zero_then_smuggled,
            ),
        ),
        (
            "http10_with_transfer_encoding",
            [
                b"POST /form HTTP/1.0\r\nHost: old.example\r\nTransfer-Encoding: chunked\r\n\r\n"
                    .as_slice(),
                &zero_then_smuggled,
            ]
            .concat(),
        ),
        (
            "conflicting_content_lengths_in_one_line",
            post(b"/form", b"Content-Length: 0, 47\r\n", SMUGGLED),
        ),
    ];
    for (name, req) in &refused {
        let before = backend.traffic().len();
        let mut c = proxy.connect();
        c.send(req);
        let r = read_checked(&mut c, req);
        assert_pingora_400(&r, &format!("{name}: {:?} → {r:?}", shown(req)));
        c.expect_closed();
        assert_eq!(backend.traffic().len(), before, "{name}");
    }

    // A repeated identical Content-Length, to a redirect. On two lines the
    // product reads the first, drains the body and keeps the connection; in
    // one comma-joined line it cannot size the body and closes instead.
    let len = SMUGGLED.len();
    let repeated = [
        (
            format!("Content-Length: {len}\r\nContent-Length: {len}\r\n"),
            "keep-alive",
        ),
        (format!("Content-Length: {len}, {len}\r\n"), "close"),
    ];
    for (headers, connection) in &repeated {
        let req = post(b"/p/form", headers.as_bytes(), SMUGGLED);
        let mut c = proxy.connect();
        c.send(&[req.as_slice(), REAL].concat());
        assert_form_redirect(&read_checked(&mut c, &req), connection, headers);
        if *connection == "close" {
            c.expect_closed();
        } else {
            assert_real(&mut c, headers);
        }
    }

    assert_nothing_smuggled(&backend);
}

/// A repeated identical Content-Length to the upstream (RFC 9110 §8.6: a
/// recipient either rejects it or replaces it with one valid value before
/// forwarding; it must never forward the repeated value). The safe outcomes
/// are exactly two: a 400 before the upstream is reached, or the upstream
/// receives one request with a single `Content-Length` and the body as a body.
fn repeated_content_length_upstream(name: &str, headers: &str) {
    let (backend, proxy) = start("");
    let req = post(b"/form", headers.as_bytes(), SMUGGLED);
    let mut c = proxy.connect();
    c.send(&[req.as_slice(), REAL].concat());
    let r = read_checked(&mut c, &req);
    let traffic = backend.traffic();
    match r.status {
        400 => {
            assert_eq!(r.header("connection"), Some("close"), "{name}: {r:?}");
            c.expect_closed();
            assert!(traffic.is_empty(), "{name}: {traffic:?}");
        }
        200 => {
            assert_eq!(traffic.len(), 1, "{name}: {traffic:?}");
            let lengths: Vec<&str> = traffic[0]
                .headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                .map(|(_, v)| v.as_str())
                .collect();
            assert_eq!(
                lengths,
                vec![SMUGGLED.len().to_string().as_str()],
                "{name}: the upstream got {:?}",
                traffic[0]
            );
            assert_eq!(traffic[0].body, SMUGGLED, "{name}");
            if r.header("connection") == Some("keep-alive") {
                assert_real(&mut c, name);
            }
        }
        other => panic!("{name}: {headers:?} upstream answered {other}: {r:?}"),
    }
    assert_nothing_smuggled(&backend);
}

#[test]
fn h1_repeated_content_length_lines_upstream() {
    repeated_content_length_upstream(
        "two lines",
        &format!(
            "Content-Length: {0}\r\nContent-Length: {0}\r\n",
            SMUGGLED.len()
        ),
    );
}

#[test]
fn h1_repeated_content_length_in_one_line_upstream() {
    repeated_content_length_upstream(
        "one line",
        &format!("Content-Length: {0}, {0}\r\n", SMUGGLED.len()),
    );
}

// ---------------------------------------------------------------------------
// HTTP/2 cleartext

fn h2_client(proxy: &Proxy) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10));
    for host in ["old.example", "a.shop.example", "evil.example"] {
        b = b.resolve(host, proxy.addr());
    }
    b.build().expect("h2 client")
}

/// One h2 request through the shared checker: (status, Location, body).
async fn h2(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    headers: &[(&str, &str)],
) -> (u16, Option<String>, Vec<u8>) {
    let mut req = client.request(method.clone(), url);
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let resp = req.send().await.unwrap_or_else(|e| panic!("h2 {url}: {e}"));
    assert_eq!(resp.version(), reqwest::Version::HTTP_2, "{url}");
    let status = resp.status().as_u16();
    let h = resp.headers().clone();
    let body = resp.bytes().await.expect("h2 body").to_vec();
    if method == reqwest::Method::HEAD {
        assert!(body.is_empty(), "HEAD {url} has a body");
        if (300..400).contains(&status) {
            let all: Vec<_> = h.get_all("location").iter().collect();
            assert_eq!(all.len(), 1, "{h:?}");
            check_location(all[0].as_bytes(), url);
        }
    } else {
        check_h2_response(status, &h, &body, url);
    }
    let location = h
        .get("location")
        .map(|v| v.to_str().expect("ASCII").to_string());
    (status, location, body)
}

#[tokio::test]
async fn h2c_path_tricks_and_authority_spoofing() {
    let (backend, proxy) = start("h2c = true");
    let client = h2_client(&proxy);
    let port = proxy.port;
    let get = reqwest::Method::GET;

    let redirects: [(&str, &str, u16, &str); 12] = [
        (
            "old.example",
            "/p//evil.example",
            301,
            "https://new.example/base//evil.example",
        ),
        (
            "old.example",
            "/p/%2f%2Fevil.example",
            301,
            "https://new.example/base/%2f%2Fevil.example",
        ),
        (
            "old.example",
            "/p/%5c%5Cevil.example",
            301,
            "https://new.example/base/%5c%5Cevil.example",
        ),
        (
            "old.example",
            "/p/%252f%255c",
            301,
            "https://new.example/base/%252f%255c",
        ),
        (
            "old.example",
            "/p/%0d%0aLocation:%20https://evil.example/",
            301,
            "https://new.example/base/%0d%0aLocation:%20https://evil.example/",
        ),
        (
            "old.example",
            "/p/%ef%bc%8f%c0%af",
            301,
            "https://new.example/base/%ef%bc%8f%c0%af",
        ),
        (
            "old.example",
            "/p/%3Cscript%3Ealert(1)%3C/script%3E?q=%22%3E",
            301,
            "https://new.example/base/%3Cscript%3Ealert(1)%3C/script%3E?q=%22%3E",
        ),
        ("old.example", "/rr//evil.example", 302, "/evil.example"),
        (
            "old.example",
            "/rr/%5cevil.example",
            302,
            "/%5cevil.example",
        ),
        (
            "old.example",
            "/pool//evil.example",
            307,
            "https://backup.example/pool//evil.example",
        ),
        (
            "a.shop.example",
            "/w//evil.example",
            307,
            "https://a.shop.example/x//evil.example",
        ),
        (
            "old.example",
            "/p/@evil.example",
            301,
            "https://new.example/base/@evil.example",
        ),
    ];
    for (host, path, status, location) in redirects {
        let url = format!("http://{host}:{port}{path}");
        let got = h2(&client, get.clone(), &url, &[]).await;
        assert_eq!((got.0, got.1.as_deref()), (status, Some(location)), "{url}");
    }

    // HEAD: the same Location, no body.
    let url = format!("http://old.example:{port}/p/a&b%0d%0a");
    let got = h2(&client, reqwest::Method::HEAD, &url, &[]).await;
    assert_eq!(
        (got.0, got.1.as_deref()),
        (301, Some("https://new.example/base/a&b%0d%0a"))
    );

    // Forwarded headers from an untrusted peer change nothing.
    let url = format!("http://a.shop.example:{port}/w/q");
    let got = h2(
        &client,
        get.clone(),
        &url,
        &[
            ("x-forwarded-host", "evil.example"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-prefix", "//evil.example"),
            ("forwarded", "host=evil.example;proto=https"),
        ],
    )
    .await;
    assert_eq!(
        (got.0, got.1.as_deref()),
        (307, Some("https://a.shop.example/x/q"))
    );

    // The path bound holds over h2 too. (Dot segments cannot be tested
    // here: the client resolves them, encoded ones too, before sending.)
    let url = format!("http://old.example:{port}/p/{}", "a".repeat(8190));
    let got = h2(&client, get.clone(), &url, &[]).await;
    assert_eq!((got.0, got.1.as_deref()), (414, None));

    // `:authority` spoofing. A Host that disagrees with `:authority` makes
    // the request malformed (RFC 9113 §8.3.1): refused before any product
    // code runs, whichever of the two names a rule host, and never proxied.
    let before = backend.traffic().len();
    for (authority, host) in [
        ("evil.example", "a.shop.example"),
        ("a.shop.example", "evil.example"),
        ("old.example", "evil.example"),
    ] {
        let url = format!("http://{authority}:{port}/w/q");
        let got = h2(&client, get.clone(), &url, &[("host", host)]).await;
        assert_eq!((got.0, got.1.as_deref()), (400, None), "{url} Host {host}");
        assert!(got.2.is_empty(), "{url} Host {host}: {:?}", got.2);
    }
    assert_eq!(backend.traffic().len(), before);
    // An attacker `:authority` alone is never redirected to: proxied.
    for path in ["/w/q", "/p/x"] {
        let url = format!("http://evil.example:{port}{path}");
        let got = h2(&client, get.clone(), &url, &[]).await;
        assert_eq!((got.0, got.1.as_deref()), (200, None), "{url}");
        assert_eq!(got.2, backend.answer().as_bytes(), "{url}");
        let traffic = backend.traffic();
        assert_eq!(traffic.last().map(|r| r.target.as_str()), Some(path));
    }
    assert_eq!(backend.traffic().len(), before + 2);

    assert_nothing_smuggled(&backend);
}

/// With `h2c = true` the listener must still answer a complete HTTP/1.0
/// request shorter than the 24-byte HTTP/2 preface, not wait for more bytes.
#[test]
fn h2c_listener_answers_a_short_http10_request() {
    let (backend, proxy) = start("h2c = true");
    let req = b"GET /p HTTP/1.0\r\n\r\n";
    assert!(req.len() < 24);
    let mut c = proxy.connect();
    c.send(req);
    let mut first = [0u8; 1];
    match c.stream.peek(&mut first) {
        Ok(n) if n > 0 => {}
        other => panic!(
            "no answer to the complete {}-byte request {:?} within {:?} ({other:?}): \
             the listener is still waiting for an HTTP/2 preface",
            req.len(),
            String::from_utf8_lossy(req),
            support::IO_TIMEOUT
        ),
    }
    let r = read_checked(&mut c, req);
    // No Host: only host-less rules apply, and there are none here.
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body_str(), backend.answer());
    let traffic = backend.traffic();
    assert_eq!(traffic.len(), 1, "{traffic:?}");
    assert_eq!(traffic[0].target, "/p");
}
