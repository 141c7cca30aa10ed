//! `explain`: what `serve` would do with one request, without any network.
//!
//! The URL is split (not normalised: the path goes to [`RuleSet::decide`]
//! exactly as a client would send it) into scheme, Host, path and query.

use crate::config::{MaintenanceConfig, Scheme};
use crate::rules::{Decision, RequestView, RuleSet};
use serde_json::{json, Value};

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
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    let (scheme, rest) = if lower.starts_with("https://") {
        (Scheme::Https, &url[8..])
    } else if lower.starts_with("http://") {
        (Scheme::Http, &url[7..])
    } else {
        return Err(format!("\"{url}\" is not an http:// or https:// URL"));
    };
    let rest = rest.split('#').next().unwrap_or("");
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let host = rest[..end].to_string();
    let after = &rest[end..];
    let (path, query) = match after.split_once('?') {
        Some((p, q)) => (p, Some(q.to_string())),
        None => (after, None),
    };
    let path = if path.is_empty() { "/" } else { path };
    Ok(UrlParts {
        scheme,
        host,
        path: path.to_string(),
        query,
    })
}

/// The decision for `method url` as JSON (the `explain --format json` object).
///
/// `maintenance` is the `[maintenance]` section: when it is enabled, what no
/// rule answers goes to its pool or backends.
pub fn explain_json(
    set: &RuleSet,
    maintenance: Option<&MaintenanceConfig>,
    method: &str,
    url: &UrlParts,
    now: i64,
) -> Value {
    let req = RequestView {
        method,
        scheme: url.scheme,
        host: Some(&url.host),
        path: url.path.as_bytes(),
        query: url.query.as_deref().map(str::as_bytes),
        client: None,
        now,
    };
    match set.decide(&req) {
        Decision::Redirect(r) => {
            let mut v = json!({
                "outcome": "redirect",
                "rule": r.rule.id(),
                "status": r.status,
                "location": r.location,
            });
            if let Some(src) = r.rule.source() {
                v["source"] = json!(src);
                v["line"] = json!(r.rule.line());
            }
            v
        }
        Decision::Pool(p) => {
            let location = p
                .pool
                .targets
                .first()
                .map(|(base, _, _)| p.location_for(base));
            let mut v = json!({
                "outcome": "redirect",
                "rule": p.rule.id(),
                "status": p.status,
                "pool": p.pool.name,
                "location": location,
            });
            if let Some(src) = p.rule.source() {
                v["source"] = json!(src);
                v["line"] = json!(p.rule.line());
            }
            v
        }
        Decision::NoMatch if maintenance.is_some_and(|m| m.enabled) => {
            let m = maintenance.expect("checked");
            match &m.redirect_pool {
                Some(pool) => {
                    let location = set
                        .pools()
                        .iter()
                        .find(|p| &p.name == pool)
                        .and_then(|p| p.targets.first())
                        .map(|(base, _, _)| {
                            let path =
                                crate::matcher::path::remove_dot_segments(url.path.as_bytes())
                                    .map(|p| p.into_owned())
                                    .unwrap_or_else(|_| b"/".to_vec());
                            let mut out = String::new();
                            crate::location::assemble(
                                &mut out,
                                false,
                                base,
                                None,
                                None,
                                Some(&path),
                                url.query.as_deref().map(str::as_bytes),
                            );
                            out
                        });
                    json!({"outcome": "maintenance", "status": 307, "pool": pool, "location": location})
                }
                None => json!({"outcome": "maintenance", "backends": m.backends}),
            }
        }
        Decision::NoMatch if set.has_upstream() => json!({"outcome": "proxy"}),
        Decision::NoMatch => json!({"outcome": "not_found"}),
        Decision::BadRequest(b) => {
            json!({"outcome": "bad_request", "status": b.status, "reason": b.reason})
        }
    }
}

/// The same decision as one line of text.
pub fn explain_text(v: &Value) -> String {
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    match s("outcome").as_str() {
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
                line.push_str(&format!(
                    ", pool \"{}\": one of its healthy targets",
                    s("pool")
                ));
            }
            line.push(')');
            line
        }
        "proxy" => "proxy: no rule matches; the request goes to an [upstream] backend".into(),
        "not_found" => {
            "not_found: no rule matches and there is no [upstream]; the answer is 404".into()
        }
        "maintenance" if v.get("pool").is_some() => format!(
            "maintenance: no rule matches; redirected 307 to a target of pool \"{}\", e.g. {}",
            s("pool"),
            s("location")
        ),
        "maintenance" => "maintenance: no rule matches; proxied to a [maintenance] backend".into(),
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
        assert!(split_url("ftp://x/").is_err());
        assert!(split_url("/just/a/path").is_err());
    }
}
