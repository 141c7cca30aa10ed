//! Table-driven tests of `RuleSet::decide` (docs/configuration.md: matching,
//! bulk lists, the Location).
//!
//! The cases live in `tests/cases/decide.toml`. Each `[[case]]` has:
//!
//! * `name`: the behaviour it states, in snake_case, unique;
//! * `config`: a configuration fragment (TOML text);
//! * `files` (optional): extra files, by name, written next to the
//!   configuration in a fresh temporary directory (used for `[[list]]` CSVs);
//! * `request`: `method` (default `GET`), `scheme` (default `https`), `host`
//!   (absent: the request has no Host), `path` (raw), `query` (raw, without
//!   `?`; absent: no `?` at all), `now` (Unix seconds, default 1_800_000_000),
//!   `pad_path_to` (append `a` bytes to the path up to this length),
//!   `headers` (`[["Name", "value"], …]`, in order, a name may repeat; the
//!   raw `\xHH` notation works in values), `client` (the client address).
//!   In `path` and `query`, `\xHH` stands for the raw byte HH and `\\` for one
//!   backslash; any other `\` is literal.
//! * `expect`: `outcome` = `redirect` | `pool` | `no_match` | `bad_request`.
//!   For `redirect` and `pool`: `rule`, `status`, `location`, `cache_control`
//!   are required; `retry_after` absent means none, `headers` absent means no
//!   extra headers, `source` absent means the rule is not a list row. For
//!   `pool`: `pool` (its name) is required and `location` is the Location for
//!   the pool's first target. For `bad_request`: `status`.

mod support;

use pingora_redirect::{compile, read_sources, Decision, RequestView, Scheme, Sources};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use support::TempDir;

const DEFAULT_NOW: i64 = 1_800_000_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    case: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    config: String,
    #[serde(default)]
    files: BTreeMap<String, String>,
    request: Req,
    expect: Expect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Req {
    method: Option<String>,
    scheme: Option<String>,
    host: Option<String>,
    path: String,
    query: Option<String>,
    now: Option<i64>,
    pad_path_to: Option<usize>,
    #[serde(default)]
    headers: Vec<(String, String)>,
    client: Option<std::net::IpAddr>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    outcome: String,
    rule: Option<String>,
    source: Option<String>,
    status: Option<u16>,
    location: Option<String>,
    cache_control: Option<String>,
    retry_after: Option<u32>,
    headers: Option<BTreeMap<String, String>>,
    pool: Option<String>,
}

/// `\xHH` → byte HH, `\\` → `\`, any other `\` literal.
fn raw_bytes(s: &str) -> Result<Vec<u8>, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') {
            let hex = s
                .get(i + 2..i + 4)
                .ok_or_else(|| format!("`\\x` needs two hex digits in {s:?}"))?;
            let v = u8::from_str_radix(hex, 16)
                .map_err(|_| format!("`\\x{hex}` is not a hex byte in {s:?}"))?;
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn load_table() -> Table {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases/decide.toml");
    let text = std::fs::read_to_string(&path).expect("read tests/cases/decide.toml");
    toml::from_str(&text).unwrap_or_else(|e| panic!("tests/cases/decide.toml: {e}"))
}

fn check_case(case: &Case, index: usize) -> Result<(), String> {
    // The configuration, next to its files when it has any.
    let dir = (!case.files.is_empty()).then(|| TempDir::new(&index.to_string()));
    let cfg_path = match &dir {
        Some(d) => {
            for (name, text) in &case.files {
                std::fs::write(d.path.join(name), text)
                    .map_err(|e| format!("cannot write fixture {name}: {e}"))?;
            }
            d.path.join("config.toml")
        }
        None => PathBuf::from("config.toml"),
    };
    let sources = match &dir {
        Some(_) => {
            std::fs::write(&cfg_path, &case.config)
                .map_err(|e| format!("cannot write the configuration: {e}"))?;
            read_sources(&cfg_path).map_err(|e| e.to_string())?
        }
        None => Sources::from_text(&case.config, &cfg_path, |l| std::fs::read(&l.file)),
    };
    let errors: Vec<String> = sources
        .problems
        .iter()
        .filter(|p| p.is_error())
        .map(|p| p.to_string())
        .collect();
    if !errors.is_empty() {
        return Err(format!("the configuration does not parse: {errors:#?}"));
    }
    let (set, problems) = compile(&sources);
    let errors: Vec<String> = problems
        .iter()
        .filter(|p| p.is_error())
        .map(|p| p.to_string())
        .collect();
    if !errors.is_empty() {
        return Err(format!("the configuration does not compile: {errors:#?}"));
    }

    let r = &case.request;
    let method = r.method.clone().unwrap_or_else(|| "GET".into());
    let scheme = match r.scheme.as_deref().unwrap_or("https") {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => return Err(format!("request scheme {other:?} is not http or https")),
    };
    let mut path = raw_bytes(&r.path)?;
    if let Some(n) = r.pad_path_to {
        while path.len() < n {
            path.push(b'a');
        }
    }
    let query = r.query.as_deref().map(raw_bytes).transpose()?;
    let mut headers = http::HeaderMap::new();
    for (name, value) in &r.headers {
        let name = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| format!("header name {name:?}: {e}"))?;
        let value = http::HeaderValue::from_bytes(&raw_bytes(value)?)
            .map_err(|e| format!("header value {value:?}: {e}"))?;
        headers.append(name, value);
    }
    let view = RequestView::new(&method, scheme, r.host.as_deref(), &path, query.as_deref())
        .from_client(r.client)
        .with_headers(&headers)
        .at(r.now.unwrap_or(DEFAULT_NOW));
    let decision = set.decide(&view);

    let e = &case.expect;
    let need = |what: &str, present: bool| -> Result<(), String> {
        if !present {
            Err(format!(
                "the case must give expect.{what} for outcome {:?}",
                e.outcome
            ))
        } else {
            Ok(())
        }
    };
    let mut diffs = Vec::new();
    let mut cmp = |what: &str, want: String, got: String| {
        if want != got {
            diffs.push(format!("{what}: expected {want}, got {got}"));
        }
    };
    match (e.outcome.as_str(), &decision) {
        ("redirect", Decision::Redirect(d)) => {
            need("rule", e.rule.is_some())?;
            need("status", e.status.is_some())?;
            need("location", e.location.is_some())?;
            need("cache_control", e.cache_control.is_some())?;
            if e.pool.is_some() {
                return Err("expect.pool is only for outcome \"pool\"".into());
            }
            cmp(
                "rule",
                format!("{:?}", e.rule),
                format!("{:?}", Some(d.rule.id())),
            );
            cmp(
                "source",
                format!("{:?}", e.source.as_deref()),
                format!("{:?}", d.rule.source()),
            );
            cmp(
                "status",
                format!("{:?}", e.status),
                format!("{:?}", Some(d.status)),
            );
            cmp(
                "location",
                format!("{:?}", e.location.as_deref()),
                format!("{:?}", Some(d.location.as_str())),
            );
            cmp(
                "cache_control",
                format!("{:?}", e.cache_control.as_deref()),
                format!("{:?}", Some(d.cache_control)),
            );
            cmp(
                "retry_after",
                format!("{:?}", e.retry_after),
                format!("{:?}", d.retry_after),
            );
            let got: BTreeMap<String, String> = d
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            cmp(
                "headers",
                format!("{:?}", e.headers.clone().unwrap_or_default()),
                format!("{got:?}"),
            );
        }
        ("pool", Decision::Pool(p)) => {
            need("rule", e.rule.is_some())?;
            need("status", e.status.is_some())?;
            need("location", e.location.is_some())?;
            need("cache_control", e.cache_control.is_some())?;
            need("pool", e.pool.is_some())?;
            let first = p
                .pool
                .targets
                .first()
                .ok_or_else(|| format!("pool {:?} has no target", p.pool.name))?;
            let location = p.location_for(&first.0);
            cmp(
                "rule",
                format!("{:?}", e.rule),
                format!("{:?}", Some(p.rule.id())),
            );
            cmp(
                "source",
                format!("{:?}", e.source.as_deref()),
                format!("{:?}", p.rule.source()),
            );
            cmp(
                "pool",
                format!("{:?}", e.pool),
                format!("{:?}", Some(&p.pool.name)),
            );
            cmp(
                "status",
                format!("{:?}", e.status),
                format!("{:?}", Some(p.status)),
            );
            cmp(
                "location",
                format!("{:?}", e.location),
                format!("{:?}", Some(location)),
            );
            cmp(
                "cache_control",
                format!("{:?}", e.cache_control.as_deref()),
                format!("{:?}", Some(p.cache_control)),
            );
            cmp(
                "retry_after",
                format!("{:?}", e.retry_after),
                format!("{:?}", p.retry_after),
            );
            let got: BTreeMap<String, String> = p
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            cmp(
                "headers",
                format!("{:?}", e.headers.clone().unwrap_or_default()),
                format!("{got:?}"),
            );
        }
        ("no_match", Decision::NoMatch) => {
            if e.rule.is_some() || e.status.is_some() || e.location.is_some() || e.pool.is_some() {
                return Err("outcome \"no_match\" takes no other expect field".into());
            }
        }
        ("bad_request", Decision::BadRequest(b)) => {
            need("status", e.status.is_some())?;
            if e.rule.is_some() || e.location.is_some() || e.pool.is_some() {
                return Err("outcome \"bad_request\" takes only expect.status".into());
            }
            cmp(
                "status",
                format!("{:?}", e.status),
                format!("{:?}", Some(b.status)),
            );
        }
        ("redirect" | "pool" | "no_match" | "bad_request", other) => {
            return Err(format!("expected outcome {:?}, got {other:?}", e.outcome));
        }
        (other, _) => return Err(format!("unknown expect.outcome {other:?}")),
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(diffs.join("\n    "))
    }
}

#[test]
fn decide_table() {
    let table = load_table();
    let mut names = BTreeSet::new();
    let mut failures = Vec::new();
    for (i, case) in table.case.iter().enumerate() {
        let well_named = !case.name.is_empty()
            && case
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !well_named {
            failures.push(format!(
                "case #{i} {:?}: the name must be snake_case",
                case.name
            ));
        }
        if !names.insert(case.name.as_str()) {
            failures.push(format!("case #{i} {:?}: the name is not unique", case.name));
        }
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check_case(case, i)))
            .unwrap_or_else(|p| {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                Err(format!("panicked: {msg}"))
            });
        if let Err(msg) = result {
            failures.push(format!("case {:?} (#{i}):\n    {msg}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} decide cases failed:\n\n{}\n",
        failures.len(),
        table.case.len(),
        failures.join("\n\n")
    );
}

#[test]
fn decide_table_is_large_enough() {
    let n = load_table().case.len();
    assert!(
        n >= 80,
        "tests/cases/decide.toml has {n} cases; keep at least 80"
    );
}

#[test]
fn raw_byte_notation_decodes() {
    assert_eq!(raw_bytes(r"/a\x0d\x0A\\b\c").unwrap(), b"/a\r\n\\b\\c");
    assert!(raw_bytes(r"/a\xZZ").is_err());
}
