//! Property tests of the Location safety invariants (docs/security.md): for any raw
//! path bytes, query bytes and Host value, against a handful of rule shapes,
//! `decide` never panics, a refusal is only 400 or 414, and every Location
//!
//! * holds no byte < 0x21, no 0x7f, no byte ≥ 0x80 and no raw `\`;
//! * if relative, starts with exactly one `/` (never `//` or `/\`);
//! * resolves (with the `url` crate, against `https://request.example/`) to
//!   the configured scheme and host: `request.example` for relative targets,
//!   the target's host for absolute ones, and for `${host}` the normalised
//!   request host, which must fall under the rule's host pattern.

use pingora_redirect::{compile, Decision, RequestView, RuleSet, Scheme, Sources};
use proptest::prelude::*;
use std::path::Path;
use std::sync::OnceLock;

const BASE: &str = "https://request.example/";

/// Where a shape's Locations must point.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// A relative target: the request's own origin.
    Relative,
    /// An absolute target: this scheme and host, no port.
    Absolute(&'static str, &'static str),
    /// `https://${host}…` on a rule with `host = ".<suffix>"`.
    HostVar(&'static str),
    /// A pool: the Location for the first target is on this host.
    Pool(&'static str),
}

struct Shape {
    name: &'static str,
    config: &'static str,
    expect: Expect,
}

const SHAPES: &[Shape] = &[
    Shape {
        name: "relative_root",
        config: "[[redirect]]\nid = \"s\"\nprefix = \"/\"\nto = \"/\"\n",
        expect: Expect::Relative,
    },
    Shape {
        name: "relative_new",
        config: "[[redirect]]\nid = \"s\"\nprefix = \"/\"\nto = \"/new\"\n",
        expect: Expect::Relative,
    },
    Shape {
        name: "absolute_base",
        config: "[[redirect]]\nid = \"s\"\nprefix = \"/\"\nto = \"https://new.example/base\"\nstatus = 301\n",
        expect: Expect::Absolute("https", "new.example"),
    },
    Shape {
        name: "absolute_http_with_query_and_fragment",
        config: "[[redirect]]\nid = \"s\"\nprefix = \"/\"\nto = \"http://new.example/b/?k=v#frag\"\n",
        expect: Expect::Absolute("http", "new.example"),
    },
    Shape {
        name: "host_variable_in_host",
        config: "[[redirect]]\nid = \"s\"\nhost = \".example.com\"\nprefix = \"/\"\nto = \"https://${host}/x\"\n",
        expect: Expect::HostVar("example.com"),
    },
    Shape {
        name: "host_variable_alone",
        config: "[[redirect]]\nid = \"s\"\nhost = \".example.com\"\nprefix = \"/\"\nscheme = \"http\"\nto = \"https://${host}\"\n\n[[redirect]]\nid = \"t\"\nhost = \".example.com\"\nprefix = \"/\"\nscheme = \"https\"\nto = \"https://${host}\"\n",
        expect: Expect::HostVar("example.com"),
    },
    Shape {
        name: "prefix_keep_suffix",
        config: "[[redirect]]\nid = \"s\"\nprefix = \"/docs\"\nto = \"https://new.example/documentation\"\n",
        expect: Expect::Absolute("https", "new.example"),
    },
    Shape {
        name: "relative_prefix_keep_suffix",
        config: "[[redirect]]\nid = \"s\"\nprefix = \"/docs/\"\nto = \"/\"\n",
        expect: Expect::Relative,
    },
    Shape {
        name: "regex_groups_relative",
        config: "[[redirect]]\nid = \"s\"\nregex = '^/r/(.*)$'\nto = \"/${1}\"\n\n[[redirect]]\nid = \"t\"\nregex = '^/(?P<first>[^/]*)/?(.*)$'\nto = \"/out/${first}/${2}?g=${2}#${first}\"\n",
        expect: Expect::Relative,
    },
    Shape {
        name: "regex_groups_absolute",
        config: "[[redirect]]\nid = \"s\"\nregex = '^/(.*?)/?(?P<rest>.*)$'\nto = \"https://new.example/g/${1}/${rest}?a=${rest}\"\n",
        expect: Expect::Absolute("https", "new.example"),
    },
    Shape {
        name: "path_variable",
        config: "[[redirect]]\nid = \"s\"\nprefix = \"/\"\nkeep_suffix = false\nto = \"https://new.example${path}\"\n",
        expect: Expect::Absolute("https", "new.example"),
    },
    Shape {
        name: "path_variable_relative",
        config: "[[redirect]]\nid = \"s\"\nprefix = \"/\"\nkeep_suffix = false\nto = \"/${path}\"\n",
        expect: Expect::Relative,
    },
    Shape {
        name: "pool",
        config: "[pools.backup]\ntargets = [\"https://backup1.example.net\", \"https://backup2.example.net/base/\"]\n\n[[redirect]]\nid = \"s\"\nprefix = \"/\"\npool = \"backup\"\n",
        expect: Expect::Pool("backup1.example.net"),
    },
];

fn sets() -> &'static [(&'static Shape, RuleSet)] {
    static SETS: OnceLock<Vec<(&'static Shape, RuleSet)>> = OnceLock::new();
    SETS.get_or_init(|| {
        SHAPES
            .iter()
            .map(|s| {
                let sources =
                    Sources::from_text(s.config, Path::new("props.toml"), |_| Ok(Vec::new()));
                let p = &sources.problems;
                assert!(p.iter().all(|p| !p.is_error()), "{}: {p:?}", s.name);
                let (set, p) = compile(&sources);
                assert!(p.iter().all(|p| !p.is_error()), "{}: {p:?}", s.name);
                (s, set)
            })
            .collect()
    })
}

/// Pieces hostile paths and queries are made of.
fn token() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => any::<u8>().prop_map(|b| vec![b]),
        3 => Just(b"/".to_vec()),
        1 => Just(b"//".to_vec()),
        1 => Just(b"\\".to_vec()),
        1 => Just(b".".to_vec()),
        1 => Just(b"..".to_vec()),
        1 => Just(b"%2e".to_vec()),
        1 => Just(b"%2E%2e".to_vec()),
        1 => Just(b"%2F".to_vec()),
        1 => Just(b"%2f%2f".to_vec()),
        1 => Just(b"%5C".to_vec()),
        1 => Just(b"%5c".to_vec()),
        1 => Just(b"%0d%0a".to_vec()),
        1 => Just(b"\r\n".to_vec()),
        1 => Just(b"\t".to_vec()),
        1 => Just(b"\0".to_vec()),
        1 => Just(b" ".to_vec()),
        1 => Just(b"%".to_vec()),
        1 => Just(b"%09".to_vec()),
        1 => Just(b"%41".to_vec()),
        1 => Just(b"?".to_vec()),
        1 => Just(b"#".to_vec()),
        1 => Just(b"@".to_vec()),
        1 => Just(b":".to_vec()),
        1 => Just(b"&".to_vec()),
        1 => Just(b"=".to_vec()),
        1 => Just(b"docs".to_vec()),
        1 => Just(b"r".to_vec()),
        1 => Just(b"evil.example".to_vec()),
        1 => Just("é".as_bytes().to_vec()),
        1 => Just(b"\x80\xff".to_vec()),
        1 => Just(b"\x7f".to_vec()),
        1 => Just(b"${host}".to_vec()),
    ]
}

fn tokens(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(token(), 0..max).prop_map(|v| v.concat())
}

fn raw_path() -> impl Strategy<Value = Vec<u8>> {
    let start = prop_oneof![
        Just(&b"/"[..]),
        Just(&b"/docs"[..]),
        Just(&b"/docs/"[..]),
        Just(&b"/r/"[..]),
        Just(&b"/r//"[..]),
        Just(&b"/r/\\"[..]),
        Just(&b"//"[..]),
        Just(&b"/\\"[..]),
        Just(&b"/./"[..]),
        Just(&b"/a/../"[..]),
        Just(&b""[..]),
    ];
    (start, tokens(24)).prop_map(|(s, t)| [s, &t[..]].concat())
}

fn raw_query() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop::option::weighted(0.7, tokens(12))
}

fn host() -> impl Strategy<Value = Option<String>> {
    let dns = (
        prop::collection::vec("[a-zA-Z0-9]{1,8}", 0..3),
        prop_oneof![
            Just("example.com"),
            Just("EXAMPLE.com"),
            Just("example.com."),
            Just("notexample.com"),
            Just("other.example"),
            Just("com"),
        ],
        prop::option::of(0u32..70000),
    )
        .prop_map(|(labels, suffix, port)| {
            let mut h = labels.join(".");
            if !h.is_empty() {
                h.push('.');
            }
            h.push_str(suffix);
            if let Some(p) = port {
                h.push_str(&format!(":{p}"));
            }
            h
        });
    prop_oneof![
        1 => Just(None),
        6 => dns.prop_map(Some),
        2 => any::<String>().prop_map(Some),
        2 => prop_oneof![
            Just("example.com@evil.example"),
            Just("evil.example#.example.com"),
            Just("evil.example/.example.com"),
            Just("evil.example\\.example.com"),
            Just("evil.example?.example.com"),
            Just("a.example.com:80:81"),
            Just("a.example.com evil"),
            Just("a.example.com\r\nx: y"),
            Just("[::1]:8080"),
            Just("[::1"),
            Just("192.0.2.1:80"),
            Just(".example.com"),
            Just("example.com.."),
            Just("a..example.com"),
            Just(""),
            Just(":80"),
            Just("xn--bcher-kva.example.com"),
        ]
        .prop_map(|s| Some(s.to_string())),
    ]
}

fn method() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("GET"),
        Just("HEAD"),
        Just("POST"),
        Just("PUT"),
        Just("OPTIONS"),
        Just("BREW"),
    ]
}

/// The request host as matching normalises it (for hosts the library accepted).
fn normalised(raw: &str) -> String {
    let h = raw.to_ascii_lowercase();
    let h = if h.starts_with('[') {
        h[..h.find(']').map_or(h.len(), |i| i + 1)].to_string()
    } else {
        h.split_once(':')
            .map_or(h.clone(), |(name, _)| name.to_string())
    };
    h.strip_suffix('.').map(str::to_string).unwrap_or(h)
}

fn check_location(
    loc: &str,
    expect: Expect,
    req_host: Option<&str>,
    what: &str,
) -> Result<(), TestCaseError> {
    for (i, b) in loc.bytes().enumerate() {
        prop_assert!(
            b >= 0x21 && b != 0x7f && b < 0x80 && b != b'\\',
            "{what}: byte {b:#04x} at {i} in Location {loc:?}"
        );
    }
    let base = url::Url::parse(BASE).expect("base");
    let resolved = base.join(loc).map_err(|e| {
        TestCaseError::fail(format!("{what}: Location {loc:?} does not parse: {e}"))
    })?;
    let relative = !(loc.starts_with("http://") || loc.starts_with("https://"));
    let (scheme, host): (&str, String) = match expect {
        Expect::Relative => {
            prop_assert!(
                relative,
                "{what}: expected a relative Location, got {loc:?}"
            );
            prop_assert!(
                loc.starts_with('/') && !loc.starts_with("//") && !loc.starts_with("/\\"),
                "{what}: relative Location must start with exactly one `/`: {loc:?}"
            );
            ("https", "request.example".to_string())
        }
        Expect::Absolute(s, h) => (s, h.to_string()),
        Expect::Pool(h) => ("https", h.to_string()),
        Expect::HostVar(suffix) => {
            let raw = req_host.ok_or_else(|| {
                TestCaseError::fail(format!(
                    "{what}: ${{host}} rule answered without a Host: {loc:?}"
                ))
            })?;
            let n = normalised(raw);
            prop_assert!(
                n == suffix || n.ends_with(&format!(".{suffix}")),
                "{what}: host {raw:?} (normalised {n:?}) is not under .{suffix}, yet Location is {loc:?}"
            );
            ("https", n)
        }
    };
    prop_assert!(
        !relative || matches!(expect, Expect::Relative),
        "{what}: unexpected relative Location {loc:?}"
    );
    prop_assert_eq!(resolved.scheme(), scheme, "{}: scheme of {:?}", what, loc);
    prop_assert_eq!(
        resolved.host_str(),
        Some(host.as_str()),
        "{}: host of {:?}",
        what,
        loc
    );
    prop_assert_eq!(resolved.port(), None, "{}: port of {:?}", what, loc);
    prop_assert!(
        resolved.username().is_empty() && resolved.password().is_none(),
        "{what}: userinfo in {loc:?}"
    );
    Ok(())
}

fn run_all(
    method: &str,
    scheme: Scheme,
    host: Option<&str>,
    path: &[u8],
    query: Option<&[u8]>,
) -> Result<(), TestCaseError> {
    let req = RequestView::new(method, scheme, host, path, query).at(1_800_000_000);
    for (shape, set) in sets() {
        let what = format!(
            "shape {} with {method} host={host:?} path={:?} query={:?}",
            shape.name,
            String::from_utf8_lossy(path),
            query.map(String::from_utf8_lossy)
        );
        match set.decide(&req) {
            Decision::Redirect(r) => {
                prop_assert!(
                    !matches!(shape.expect, Expect::Pool(_)),
                    "{what}: a pool rule answered a plain redirect"
                );
                prop_assert!(
                    matches!(r.status, 301 | 302 | 303 | 307 | 308),
                    "{what}: status {}",
                    r.status
                );
                check_location(&r.location, shape.expect, host, &what)?;
            }
            Decision::Pool(p) => {
                prop_assert!(
                    matches!(shape.expect, Expect::Pool(_)),
                    "{what}: unexpected pool decision"
                );
                for (base, _, _) in &p.pool.targets {
                    let loc = p.location_for(base);
                    let expect = if Some(base) == p.pool.targets.first().map(|t| &t.0) {
                        shape.expect
                    } else {
                        Expect::Pool("backup2.example.net")
                    };
                    check_location(&loc, expect, host, &what)?;
                }
            }
            Decision::BadRequest(b) => {
                prop_assert!(
                    b.status == 400 || b.status == 414,
                    "{what}: bad request status {}",
                    b.status
                );
            }
            Decision::NoMatch => {}
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn every_location_is_safe_and_points_where_configured(
        method in method(),
        https in any::<bool>(),
        host in host(),
        path in raw_path(),
        query in raw_query(),
    ) {
        let scheme = if https { Scheme::Https } else { Scheme::Http };
        run_all(method, scheme, host.as_deref(), &path, query.as_deref())?;
    }

    #[test]
    fn arbitrary_bytes_never_break_the_invariants(
        host in prop::option::of(any::<String>()),
        path in prop::collection::vec(any::<u8>(), 0..64),
        query in prop::option::of(prop::collection::vec(any::<u8>(), 0..32)),
    ) {
        run_all("GET", Scheme::Https, host.as_deref(), &path, query.as_deref())?;
    }

    #[test]
    fn long_paths_are_414_or_served(
        len in 8100usize..8300,
        fill in prop_oneof![Just(b'a'), Just(b'/'), Just(b'.'), Just(b'%')],
    ) {
        let mut path = vec![b'/'];
        path.resize(len, fill);
        for (shape, set) in sets() {
            let req = RequestView::new("GET", Scheme::Https, Some("a.example.com"), &path, None);
            match set.decide(&req) {
                Decision::BadRequest(b) if len > 8192 => prop_assert_eq!(b.status, 414, "{}", shape.name),
                Decision::BadRequest(b) => prop_assert_eq!(b.status, 400, "{}", shape.name),
                _ => prop_assert!(len <= 8192, "{}: a path of {} bytes must be 414", shape.name, len),
            }
        }
    }
}

#[test]
fn every_shape_redirects_a_plain_request() {
    // Guards the properties against shapes that never fire.
    for (shape, set) in sets() {
        let path: &[u8] = if shape.name.starts_with("regex") {
            b"/r/docs/x"
        } else {
            b"/docs/x"
        };
        let req = RequestView::new(
            "GET",
            Scheme::Https,
            Some("www.example.com"),
            path,
            Some(b"q=1"),
        );
        match set.decide(&req) {
            Decision::Redirect(r) => {
                check_location(&r.location, shape.expect, req.host, shape.name).unwrap()
            }
            Decision::Pool(p) => {
                let loc = p.location_for(&p.pool.targets[0].0);
                check_location(&loc, shape.expect, req.host, shape.name).unwrap()
            }
            other => panic!("shape {} did not redirect: {other:?}", shape.name),
        }
    }
}

#[test]
fn normalised_matches_spec_examples() {
    assert_eq!(normalised("WWW.Example.COM.:8080"), "www.example.com");
    assert_eq!(normalised("example.com"), "example.com");
    assert_eq!(normalised("[::1]:80"), "[::1]");
}
