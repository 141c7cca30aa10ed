//! The fuzz cases of pingora-redirect and the invariants they assert.
//!
//! Each `*_case` takes the fuzzer's bytes, drives one entry point of the
//! library and panics when a Location safety invariant (or a place
//! invariant of a reported problem) does not hold, so libFuzzer records the
//! input. The same functions replay the kept regressions in
//! `tests/fuzz_regressions.rs`, which includes this file by path: it uses no
//! crate but `pingora_redirect` and `url`.

use pingora_redirect::internals::remove_dot_segments;
use pingora_redirect::internals::{self as location, Vars};
use pingora_redirect::Problem;
use pingora_redirect::{compile, Decision, RequestView, RuleSet};
use pingora_redirect::{Scheme, Sources};
use std::path::Path;
use std::sync::OnceLock;

/// Checks one `Location` value against the safety invariants.
///
/// `request_url` is the URL the client asked for (relative Locations resolve
/// against it); `allowed` says whether an absolute Location's host is one the
/// configuration names.
pub fn check_location(location: &str, request_url: &str, allowed: &dyn Fn(&str) -> bool) {
    for (i, b) in location.bytes().enumerate() {
        assert!(
            b > b' ' && b != 0x7f && b != b'\\' && b < 0x80,
            "Location {location:?} has the forbidden byte {b:#04x} at {i}"
        );
    }
    let base = url::Url::parse(request_url).expect("request URL");
    let resolved = base
        .join(location)
        .unwrap_or_else(|e| panic!("Location {location:?} does not resolve: {e}"));
    if location.starts_with('/') {
        assert!(
            !location.starts_with("//") && !location.starts_with("/\\"),
            "relative Location {location:?} starts with // or /\\"
        );
        assert_eq!(
            resolved.host_str(),
            base.host_str(),
            "relative Location {location:?} leaves the request's host"
        );
    } else {
        assert!(
            location.starts_with("http://") || location.starts_with("https://"),
            "Location {location:?} is neither a path nor an http(s) URL"
        );
        let host = resolved
            .host_str()
            .unwrap_or_else(|| panic!("Location {location:?} has no host"));
        // The host as written must be the host a WHATWG parser sees: no
        // userinfo, backslash or encoding trick moves it.
        let written = location
            .split_once("://")
            .map(|(_, r)| r)
            .unwrap_or("")
            .split(['/', '?', '#'])
            .next()
            .unwrap_or("");
        let written_host = match written.rsplit_once(':') {
            Some((h, port)) if !h.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => written,
        };
        assert!(
            !written.contains('@'),
            "Location {location:?} carries userinfo"
        );
        assert_eq!(
            written_host.to_ascii_lowercase(),
            host,
            "Location {location:?}: the written host and the parsed host differ"
        );
        // `a.example.` and `a.example` name one host.
        assert!(
            allowed(host.strip_suffix('.').unwrap_or(host)),
            "Location {location:?} sends the client to {host}, which the configuration does not name"
        );
    }
}

/// Checks that a problem's place lies inside the text it was found in.
fn check_place(p: &Problem, src: &str) {
    let lines: Vec<&str> = src.split('\n').collect();
    if let Some(line) = p.line {
        assert!(
            line >= 1 && line as usize <= lines.len(),
            "problem {p:?} points at line {line} of a {}-line text",
            lines.len()
        );
        if let Some(col) = p.column {
            let len = lines[line as usize - 1].chars().count();
            assert!(
                col >= 1 && col as usize <= len + 1,
                "problem {p:?} points at column {col} of a {len}-character line"
            );
        }
    } else {
        assert!(p.column.is_none(), "problem {p:?} has a column and no line");
    }
    assert!(!p.message.is_empty(), "problem {p:?} has no message");
}

/// A little reader over the fuzzer's bytes.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }

    /// A field of up to 254 bytes; 255 as its length means "absent".
    fn field(&mut self) -> Option<&'a [u8]> {
        let n = self.byte();
        if n == 255 {
            return None;
        }
        let n = (n as usize).min(self.0.len());
        let (f, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(f)
    }

    fn rest(self) -> &'a [u8] {
        self.0
    }
}

const METHODS: [&str; 6] = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"];

/// Requests the configuration fuzzer asks every rule set it compiles.
/// (method, Host, path, query)
type Probe = (
    &'static str,
    Option<&'static str>,
    &'static [u8],
    Option<&'static [u8]>,
);

const PROBES: [Probe; 8] = [
    ("GET", Some("a.example"), b"/", None),
    ("GET", Some("x.a.example"), b"/a/b", Some(b"q=1")),
    ("POST", Some("a.example:8080"), b"/a//evil.example", None),
    (
        "GET",
        None,
        b"/docs/%2f%2fevil.example/..%2f",
        Some(b"x=%0d%0a"),
    ),
    (
        "GET",
        Some("b.example"),
        b"/\\evil.example/\xff\x00\t",
        Some(b"a b"),
    ),
    ("PUT", Some("A.EXAMPLE."), b"/old/x/../y", Some(b"")),
    ("GET", Some("a.example"), b"/p@evil.example", None),
    ("GET", Some("z.b.example"), b"/%ef%bc%8f/\xef\xbc\x8f", None),
];

/// The URL a request was for. A host a WHATWG parser refuses (`a.0xe` is an
/// IPv4 address to it, and a bad one) stands for itself as `request.invalid`:
/// relative Locations must stay on it, whatever it is.
fn request_url(scheme: Scheme, host: Option<&str>) -> String {
    let url = format!(
        "{}://{}/",
        scheme.as_str(),
        host.unwrap_or("request.invalid")
    );
    match url::Url::parse(&url) {
        Ok(_) => url,
        Err(_) => format!("{}://request.invalid/", scheme.as_str()),
    }
}

/// The normalised request host, as `${host}` would expand it.
fn normal_host(host: Option<&str>) -> Option<String> {
    match host.map(pingora_redirect::internals::normalize_host) {
        Some(Ok(Some(h))) => Some(h.into_owned()),
        _ => None,
    }
}

/// Checks every answer of `set` to one request.
fn check_decision(
    set: &RuleSet,
    req: &RequestView<'_>,
    allowed: &dyn Fn(&str, &RequestView<'_>) -> bool,
) {
    let url = request_url(req.scheme, normal_host(req.host).as_deref());
    match set.decide(req) {
        Decision::Redirect(r) => {
            assert!(
                matches!(r.status, 301 | 302 | 303 | 307 | 308),
                "status {}",
                r.status
            );
            if !matches!(req.method, "GET" | "HEAD") {
                assert!(
                    !matches!(r.status, 301 | 302) || !preserves_method(set, r.rule.index()),
                    "a {} got a {} from rule {}",
                    req.method,
                    r.status,
                    r.rule.id()
                );
            }
            check_location(&r.location, &url, &|h| allowed(h, req));
            for (name, value) in r.headers {
                assert!(
                    !name.eq_ignore_ascii_case("location"),
                    "an extra Location header"
                );
                assert!(
                    value.bytes().all(|b| b >= 0x20 && b != 0x7f),
                    "header {name} holds a control byte"
                );
            }
        }
        Decision::Pool(p) => {
            for (base, _, _) in &p.pool.targets {
                check_location(&p.location_for(base), &url, &|h| allowed(h, req));
            }
        }
        Decision::NoMatch => {}
        Decision::BadRequest(b) => {
            assert!(matches!(b.status, 400 | 414), "bad request {}", b.status);
            assert!(!b.reason.is_empty());
            if b.status == 414 {
                assert!(req.path.len() > 8192);
            }
        }
    }
}

/// Rules are compiled with `preserve_method = true` unless they say otherwise;
/// the fuzzed configurations may turn it off, which the status check allows.
fn preserves_method(set: &RuleSet, index: u32) -> bool {
    set.rule(index).preserves_method()
}

/// Fuzzes the configuration parser and compiler with whole TOML files.
///
/// Every problem must point inside the file; a configuration that compiles
/// must answer the probe requests with Locations that satisfy §6, on hosts the
/// file names (or the request's own host, through `${host}`).
pub fn config_case(data: &[u8]) {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    // Checks the places of `problems` in the file; true when one is an error.
    let failed = |problems: &[Problem]| {
        for p in problems {
            if p.file.as_deref() == Some("fuzz.toml") {
                check_place(p, src);
            }
        }
        problems
            .iter()
            .any(|p| p.severity == pingora_redirect::Severity::Error)
    };
    // Lists are not read: a `[[list]]` is an `io` problem, as a missing file.
    let sources = Sources::from_text(src, Path::new("fuzz.toml"), |_| {
        Err(std::io::ErrorKind::NotFound.into())
    });
    if failed(&sources.problems) {
        return;
    }
    let (set, problems) = compile(&sources);
    if failed(&problems) {
        return;
    }
    let lower = src.to_ascii_lowercase();
    let uses_host_var = src.contains("${host}");
    for (method, host, path, query) in PROBES {
        for scheme in [Scheme::Http, Scheme::Https] {
            let req = RequestView::new(method, scheme, host, path, query).at(1_800_000_000);
            let request_host = normal_host(host);
            // With `${host}`, the Location's host is the file's template
            // with the request host in it (`${host}.mirror.example`).
            let from_template = |h: &str| {
                uses_host_var
                    && request_host.as_deref().is_some_and(|rh| {
                        h.contains(rh) && lower.contains(&h.replacen(rh, "${host}", 1))
                    })
            };
            check_decision(&set, &req, &|h, _| {
                lower.contains(h) || from_template(h) || idna_form_named(&lower, h)
            });
        }
    }
}

/// A host the file names in Unicode reaches the Location in its ASCII form.
fn idna_form_named(lower_src: &str, host: &str) -> bool {
    host.split('.').any(|l| l.starts_with("xn--")) && {
        let (unicode, _) = idna_to_unicode(host);
        lower_src.contains(&unicode)
    }
}

fn idna_to_unicode(host: &str) -> (String, bool) {
    let u = url::Url::parse(&format!("http://{host}/")).ok();
    match u.and_then(|u| u.host_str().map(str::to_string)) {
        Some(h) => (h, true),
        None => (host.to_string(), false),
    }
}

/// Fuzzes the Cloudflare CSV list parser.
///
/// Every good row's source and target are text of the file, found on the line
/// the row reports; every problem points inside the file.
pub fn list_case(data: &[u8]) {
    let lines: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
    let mut rows = 0usize;
    let result = location::list::parse(data, "fuzz.csv", |row| {
        rows += 1;
        let line = row.line as usize;
        assert!(
            line >= 1 && line <= lines.len(),
            "row at line {line} of {}",
            lines.len()
        );
        assert!(
            matches!(row.status, 301 | 302 | 303 | 307 | 308),
            "status {}",
            row.status
        );
        assert!(!row.target.is_empty() && !row.source.is_empty());
        // Quoted fields may span lines; an unquoted row is on its line.
        let text = lines[line - 1];
        if !text.contains(&b'"') {
            let hay = String::from_utf8_lossy(text);
            assert!(
                hay.contains(row.source.trim()),
                "row at line {line} has source {:?}, not on that line {hay:?}",
                row.source
            );
        }
        assert!(
            row.path.starts_with('/'),
            "row path {:?} does not start with /",
            row.path
        );
        assert!(
            !row.path.bytes().any(|b| b < 0x20 || b == 0x7f),
            "row path {:?} holds a control byte",
            row.path
        );
    });
    match result {
        Ok(n) => assert_eq!(n, rows),
        Err(problems) => {
            assert!(!problems.is_empty());
            for p in &problems {
                assert_eq!(p.code, "bad_list_row");
                if let Some(line) = p.line {
                    assert!(
                        line >= 1 && line as usize <= lines.len(),
                        "problem at line {line} of {}",
                        lines.len()
                    );
                }
            }
        }
    }
}

/// The rule set the request fuzzers run against: every kind of target that
/// copies request bytes into a Location.
pub const DECIDE_RULES: &str = r#"
[pools.backup]
targets = ["https://backup1.example.net", { url = "https://backup2.example.net:8443/base", weight = 2 }]

[[redirect]]
id = "exact"
host = "old.example"
path = "/a"
to = "https://new.example/a?x=1#frag"

[[redirect]]
id = "glue"
prefix = "/p"
to = "https://new.example/base"
status = 301

[[redirect]]
id = "glue_slash"
prefix = "/q/"
to = "https://new.example/q"
status = 302

[[redirect]]
id = "relative"
prefix = "/r"
to = "/local"

[[redirect]]
id = "relative_root"
prefix = "/root"
to = "/"

[[redirect]]
id = "host_var"
host = "*.shop.example"
prefix = "/s"
to = "https://${host}/x"

[[redirect]]
id = "apex_var"
host = ".wild.example"
prefix = "/"
to = "http://${host}:8080${path}"
keep_suffix = false

[[redirect]]
id = "path_var"
prefix = "/v"
to = "https://new.example/v2${path}"
keep_suffix = false

[[redirect]]
id = "regex"
regex = "^/re/(?P<a>[^/]*)/(.*)$"
to = "https://new.example/${a}?z=${2}#${1}"

[[redirect]]
id = "regex_rel"
regex = "^/rr(.*)$"
to = "/${1}"

[[redirect]]
id = "insensitive"
prefix = "/CI"
case_insensitive = true
to = "https://ci.example"

[[redirect]]
id = "pool"
prefix = "/pool"
pool = "backup"

[[redirect]]
id = "drop"
prefix = "/d"
to = "/dd?keep=1"
query = "drop"
"#;

const DECIDE_HOSTS: [&str; 4] = [
    "new.example",
    "ci.example",
    "backup1.example.net",
    "backup2.example.net",
];

fn decide_set() -> &'static RuleSet {
    static SET: OnceLock<RuleSet> = OnceLock::new();
    SET.get_or_init(|| {
        let sources =
            Sources::from_text(DECIDE_RULES, Path::new("decide.toml"), |_| Ok(Vec::new()));
        assert!(sources.problems.is_empty(), "{:?}", sources.problems);
        let (set, problems) = compile(&sources);
        assert!(
            problems
                .iter()
                .all(|p| p.severity != pingora_redirect::Severity::Error),
            "{problems:?}"
        );
        set
    })
}

/// Fuzzes host and path normalisation and `decide()` with hostile requests.
///
/// Input: a flags byte (method, scheme), the host (a field), the query (a
/// field), then the path (the rest).
pub fn decide_case(data: &[u8]) {
    let mut input = Input(data);
    let flags = input.byte();
    let host = input.field().map(String::from_utf8_lossy);
    let query = input.field();
    let path = input.rest();
    let scheme = if flags & 8 == 0 {
        Scheme::Http
    } else {
        Scheme::Https
    };
    let method = METHODS[(flags & 7) as usize % METHODS.len()];
    let req = RequestView::new(method, scheme, host.as_deref(), path, query).at(1_800_000_000);
    let set = decide_set();
    if path.first() != Some(&b'/')
        && path.len() <= 8192
        && !(req.method == "OPTIONS" && path == b"*")
    {
        assert!(
            matches!(set.decide(&req), Decision::BadRequest(ref b) if b.status == 400),
            "a target that is not an absolute path was not refused"
        );
    }
    check_decision(set, &req, &|h, req| {
        DECIDE_HOSTS.contains(&h)
            || normal_host(req.host).as_deref() == Some(h)
                && (h.ends_with(".shop.example")
                    || h == "wild.example"
                    || h.ends_with(".wild.example"))
    });
    // Normalisation is idempotent, and a path it accepts never climbs.
    if let Ok(once) = remove_dot_segments(path) {
        let twice = remove_dot_segments(&once).expect("a resolved path resolves again");
        assert_eq!(&*once, &*twice, "remove_dot_segments is not idempotent");
    }
    // The same request gets the same answer.
    let a = format!("{:?}", set.decide(&req));
    let b = format!("{:?}", set.decide(&req));
    assert_eq!(a, b, "decide is not deterministic");
}

/// `to` without its `${…}` variables (what the configuration itself says):
/// `${path}` stands for the `/` every request path starts with.
fn strip_variables(to: &str) -> String {
    let mut out = String::with_capacity(to.len());
    let mut rest = to;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        if rest[i..].starts_with("${path}") {
            out.push('/');
        }
        match rest[i..].find('}') {
            Some(j) => rest = &rest[i + j + 1..],
            None => {
                rest = &rest[i..];
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

struct TwoGroups;

impl location::Groups for TwoGroups {
    fn index(&self, name: &str) -> Option<usize> {
        match name {
            "1" | "a" => Some(1),
            "2" | "b" => Some(2),
            _ => None,
        }
    }
}

/// Fuzzes the Location builder: a `to` from the configuration, expanded with
/// hostile request bytes, joined with a hostile suffix and query.
///
/// Input: the `to` (a field), the request path's group cut points (two
/// bytes), the suffix (a field), the query (a field), then the path (rest).
pub fn location_case(data: &[u8]) {
    let mut input = Input(data);
    let Some(to) = input.field() else { return };
    let Ok(to) = std::str::from_utf8(to) else {
        return;
    };
    let cut = (input.byte() as usize, input.byte() as usize);
    let suffix = input.field();
    let query = input.field();
    let raw_path = input.rest();
    let Ok(target) = location::parse_target(to, true, &TwoGroups) else {
        // A `to` the loader refuses never reaches a Location; pool bases too.
        assert!(location::check_pool_base(to).is_err());
        return;
    };
    // `decide` answers 400 to a target that is not an absolute path.
    if raw_path.first() != Some(&b'/') {
        return;
    }
    let Ok(path) = remove_dot_segments(raw_path) else {
        return;
    };
    let n = path.len();
    let (a, b) = (cut.0.min(n), cut.1.min(n));
    let groups = [
        Some((0, n)),
        Some((a.min(b), a.max(b))),
        (a < b).then_some((b, n)),
    ];
    let host = "tenant.shop.example";
    let vars = Vars {
        host: Some(host),
        path: &path,
        groups: &groups,
    };
    let mut out = String::new();
    target.render(&mut out, &vars, suffix, query);
    // The host the configuration names: the `to` with `${host}` filled in.
    let configured = url::Url::parse(&strip_variables(&to.replace("${host}", host)))
        .ok()
        .and_then(|u| u.host_str().map(str::to_string));
    // `a.example.` and `a.example` name one host; the loader writes the latter.
    let configured = configured.map(|h| h.trim_end_matches('.').to_string());
    check_location(&out, "https://request.invalid/", &|h| {
        configured.as_deref() == Some(h)
    });
    // A pool base built from the same `to`, when it is one, keeps its host.
    if location::check_pool_base(to).is_ok() {
        let base = location::pool_base(to);
        let mut out = String::new();
        location::assemble(&mut out, false, &base, None, None, Some(&path), query);
        check_location(&out, "https://request.invalid/", &|h| {
            configured.as_deref() == Some(h)
        });
    }
}
