//! `explain`: what `serve` would do with one request, without any network.
//!
//! The request is built from the command line (method, URL, `--header`,
//! `--client`) into the same [`RequestView`] `serve` builds from a
//! connection, with the same trusted-proxy reading of its client and scheme,
//! and goes through the same [`route`]: the answer is what a freshly started
//! `serve` (every backend and pool target healthy) would send. The URL is
//! split by `http::Uri` and not normalised: the path reaches the rules
//! exactly as a client would send it.

use crate::config::{methods, Facts};
use crate::request::{forwarded, RequestView, Scheme};
use crate::route::{route, Action, Outcome, Reply};
use crate::rules::RuleRef;
use crate::snapshot::Snapshot;
use http::HeaderMap;
use serde_json::{json, Value};
use std::net::IpAddr;

/// A URL split into the parts of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlParts {
    pub scheme: Scheme,
    pub host: String,
    pub path: String,
    pub query: Option<String>,
}

/// Splits `http(s)://host[:port]/path?query#fragment`.
pub fn split_url(url: &str) -> Result<UrlParts, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("\"{url}\" is not a URL: {e}"))?;
    let scheme = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
        Some("https") => Scheme::Https,
        Some("http") => Scheme::Http,
        _ => return Err(format!("\"{url}\" is not an http:// or https:// URL")),
    };
    let host = uri
        .authority()
        .map(|a| a.as_str().to_string())
        .ok_or_else(|| format!("\"{url}\" has no host"))?;
    Ok(UrlParts {
        scheme,
        host,
        path: uri.path().to_string(),
        query: uri.query().map(str::to_string),
    })
}

/// One request to explain.
pub struct Question {
    pub method: String,
    pub url: UrlParts,
    pub headers: HeaderMap,
    /// The peer address (`--client`, default 127.0.0.1).
    pub client: IpAddr,
}

/// The rule fields of an answer: its id, and for a list row the source URL
/// as written and its line.
fn rule_fields(v: &mut Value, rule: &RuleRef<'_>) {
    v["rule"] = json!(rule.id());
    if let Some(src) = rule.source() {
        v["source"] = json!(src);
        v["line"] = json!(rule.line());
    }
}

fn redirect_json(outcome: Outcome, r: &Reply<'_>) -> Value {
    let mut v = json!({"outcome": outcome.as_str()});
    if let Some(rule) = &r.rule {
        rule_fields(&mut v, rule);
    }
    v["status"] = json!(r.status);
    if let Some((pool, _)) = r.pool {
        v["pool"] = json!(pool);
    }
    v["location"] = json!(r.location);
    v
}

/// What `serve` does with `q`, as the `explain --format json` object.
pub fn explain_json(snap: &Snapshot, q: &Question, now: i64) -> Value {
    let (mut scheme, client) = forwarded(
        Some(q.client),
        &q.headers,
        &snap.trusted_proxies,
        q.url.scheme,
    );
    // An https URL arrived over TLS: no proxy's header changes that.
    if q.url.scheme == Scheme::Https {
        scheme = Scheme::Https;
    }
    let view = RequestView::new(
        &q.method,
        scheme,
        Some(&q.url.host),
        q.url.path.as_bytes(),
        q.url.query.as_deref().map(str::as_bytes),
    )
    .from_client(client)
    .with_headers(&q.headers)
    .at(now);
    let routed = route(snap, &view);
    let mut v = answer_json(snap, &routed);
    // The rules whose host and path matched but whose conditions did not
    // hold, and the conditions of the rule that answered: why this request
    // got (or did not get) a redirect.
    let facts = Facts {
        method: methods::bit(&q.method).unwrap_or(0),
        scheme: Some(scheme),
        now: Some(now),
        request: Some(&view),
    };
    let conditions = |rule: &RuleRef<'_>| -> Value {
        rule.conditions()
            .each(&facts, rule.id())
            .into_iter()
            .map(|(condition, held)| json!({"condition": condition, "held": held}))
            .collect()
    };
    let considered = snap.rules.considered(&view);
    let skipped: Vec<Value> = considered
        .iter()
        .filter(|(_, held)| !held)
        .map(|(rule, _)| json!({"rule": rule.id(), "conditions": conditions(rule)}))
        .collect();
    if let Some((rule, true)) = considered.last() {
        let c = conditions(rule);
        if c.as_array().is_some_and(|a| !a.is_empty()) && v.get("rule") == Some(&json!(rule.id())) {
            v["conditions"] = c;
        }
    }
    if !skipped.is_empty() {
        v["skipped"] = Value::Array(skipped);
    }
    v
}

fn answer_json(snap: &Snapshot, routed: &crate::route::Routed<'_>) -> Value {
    let outcome = routed.outcome;
    let maintenance_backends = || {
        snap.config
            .maintenance
            .as_ref()
            .map(|m| m.backends.clone())
            .unwrap_or_default()
    };
    match &routed.action {
        Action::Redirect(r) => redirect_json(outcome, r),
        Action::Unavailable {
            retry_after,
            rule,
            pool,
        } => {
            let mut v = json!({"outcome": outcome.as_str()});
            if let Some(rule) = rule {
                rule_fields(&mut v, rule);
            }
            v["status"] = json!(503);
            v["pool"] = json!(pool);
            v["retry_after"] = json!(retry_after);
            v
        }
        Action::Bad { status, reason } => {
            json!({"outcome": "bad_request", "status": status, "reason": reason})
        }
        Action::Proxy(_) | Action::NoBackend(_) if outcome == Outcome::Maintenance => {
            json!({"outcome": "maintenance", "backends": maintenance_backends()})
        }
        Action::Proxy(_) => json!({"outcome": "proxy"}),
        Action::NoBackend(reason) => {
            json!({"outcome": outcome.as_str(), "status": 502, "reason": reason})
        }
        Action::NotFound => json!({"outcome": "not_found"}),
    }
}

/// The same answer as text: one line, then a line for each condition of the
/// answering rule and for each rule skipped because a condition failed.
pub fn explain_text(v: &Value) -> String {
    let mut text = answer_text(v);
    let held = |c: &Value| {
        if c["held"] == json!(true) {
            "held"
        } else {
            "failed"
        }
    };
    for c in v["conditions"].as_array().into_iter().flatten() {
        text.push_str(&format!(
            "\n  condition {}: {}",
            c["condition"].as_str().unwrap_or(""),
            held(c)
        ));
    }
    for s in v["skipped"].as_array().into_iter().flatten() {
        let parts: Vec<String> = s["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| format!("{}: {}", c["condition"].as_str().unwrap_or(""), held(c)))
            .collect();
        text.push_str(&format!(
            "\n  skipped rule \"{}\": {}",
            s["rule"].as_str().unwrap_or(""),
            parts.join("; ")
        ));
    }
    text
}

fn answer_text(v: &Value) -> String {
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    match s("outcome").as_str() {
        "redirect" | "failover" if v["status"] == json!(503) => format!(
            "{} 503: pool \"{}\" has no healthy target (Retry-After: {})",
            s("outcome"),
            s("pool"),
            v["retry_after"]
        ),
        "redirect" => {
            let mut line = format!(
                "redirect {} {} (rule \"{}\"",
                v["status"],
                s("location"),
                s("rule")
            );
            if v.get("source").is_some() {
                line.push_str(&format!(", source \"{}\", line {}", s("source"), v["line"]));
            }
            if v.get("pool").is_some() {
                line.push_str(&format!(", pool \"{}\"", s("pool")));
            }
            line.push(')');
            line
        }
        "failover" => format!(
            "failover: no healthy [upstream] backend; redirected {} to {} (pool \"{}\")",
            v["status"],
            s("location"),
            s("pool")
        ),
        "proxy" if v.get("status").is_some() => format!("proxy 502: {}", s("reason")),
        "proxy" => "proxy: no rule matches; the request goes to an [upstream] backend".into(),
        "not_found" => {
            "not_found: no rule matches and there is no [upstream]; the answer is 404".into()
        }
        "maintenance" if v["status"] == json!(503) => format!(
            "maintenance: no rule matches; 503, pool \"{}\" has no healthy target",
            s("pool")
        ),
        "maintenance" if v.get("pool").is_some() => format!(
            "maintenance: no rule matches; redirected 307 to {} (pool \"{}\")",
            s("location"),
            s("pool")
        ),
        "maintenance" => "maintenance: no rule matches; proxied to a [maintenance] backend".into(),
        "https_redirect" => format!(
            "https_redirect {} {}: no rule matches, and a [[certificate]] covers this host ([tls] redirect_http)",
            v["status"],
            s("location")
        ),
        _ => format!("bad_request {}: {}", v["status"], s("reason")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_urls() {
        let u = split_url("HTTPS://Old.Example:8443/a/b?x=1#f").unwrap();
        assert_eq!(
            u,
            UrlParts {
                scheme: Scheme::Https,
                host: "Old.Example:8443".into(),
                path: "/a/b".into(),
                query: Some("x=1".into())
            }
        );
        let u = split_url("http://h?q").unwrap();
        assert_eq!((u.path.as_str(), u.query.as_deref()), ("/", Some("q")));
        let u = split_url("https://h/../x/%2e%2e").unwrap();
        assert_eq!(u.path, "/../x/%2e%2e", "the path is not normalised");
        assert!(split_url("ftp://x/").is_err());
        assert!(split_url("/just/a/path").is_err());
        assert!(split_url("old.example/old").is_err());
    }
}
