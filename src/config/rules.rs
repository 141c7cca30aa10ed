//! The rules: `[[redirect]]` tables and `[[list]]` entries, and the checks
//! across them (ids unique, pools that exist).

use super::conditions::ConditionsRead;
use super::model::{Config, ListMetrics, ListSpec, PathKind, Place, RedirectRule};
use super::reader::{valid_id, Reader, Val};
use crate::matcher::host::{parse_host_pattern, HostPattern};
use crate::problem::Problem;
use std::ops::Range;

const REDIRECT_KEYS: &[&str] = &[
    "id",
    "host",
    "path",
    "prefix",
    "regex",
    "to",
    "pool",
    "status",
    "query",
    "keep_suffix",
    "preserve_method",
    "methods",
    "scheme",
    "case_insensitive",
    "active_from",
    "active_until",
    "match_headers",
    "match_cookies",
    "match_query",
    "match_client",
    "sample",
    "sample_key",
    "cache_control",
    "retry_after",
    "headers",
];
const LIST_KEYS: &[&str] = &["id", "file", "format", "metrics"];

/// The `id` of a table, if it is a string (checked where it is read).
fn table_id(t: &toml::de::DeTable<'_>) -> Option<String> {
    t.get("id")
        .and_then(|i| i.get_ref().as_str())
        .map(str::to_string)
}

impl Reader<'_> {
    pub(super) fn list(&mut self, v: &Val<'_>) -> Option<ListSpec> {
        let t = self.table(v, "a `[[list]]`", None)?;
        let id = table_id(t);
        let rid = id.as_deref();
        let mut file = None;
        let mut metrics = ListMetrics::List;
        let mut ok = true;
        for (k, val) in t.iter() {
            match k.get_ref().as_ref() {
                "id" => {
                    if !self.check_id(val) {
                        ok = false;
                    }
                }
                "file" => file = self.string(val, "file", rid),
                "format" => {
                    if let Some(f) = self.string(val, "format", rid) {
                        if f != "cloudflare" {
                            self.bad(val, rid, format!("list `format` = \"{f}\" is not known; the one format is \"cloudflare\""));
                            ok = false;
                        }
                    }
                }
                "metrics" => match self.string(val, "metrics", rid).as_deref() {
                    Some("list") => metrics = ListMetrics::List,
                    Some("source") => metrics = ListMetrics::Source,
                    Some(other) => {
                        self.bad(
                            val,
                            rid,
                            format!("list `metrics` = \"{other}\" is not \"list\" or \"source\""),
                        );
                        ok = false;
                    }
                    None => ok = false,
                },
                _ => self.unknown(k, LIST_KEYS, rid, "a `[[list]]`"),
            }
        }
        let Some(id) = id else {
            self.bad(
                v,
                None,
                "a `[[list]]` needs an `id`, e.g. id = \"legacy\"".into(),
            );
            return None;
        };
        let Some(file_raw) = file else {
            self.bad(
                v,
                Some(&id),
                "a `[[list]]` needs `file`, the CSV path relative to this configuration".into(),
            );
            return None;
        };
        if !ok {
            return None;
        }
        let path = self.base.join(&file_raw);
        Some(ListSpec {
            id,
            file: path,
            file_raw,
            metrics,
            place: self.place(&v.span()),
            order: v.span().start,
        })
    }

    pub(super) fn check_id(&mut self, v: &Val<'_>) -> bool {
        match v.get_ref().as_str() {
            Some(s) if valid_id(s) => true,
            Some(s) => {
                self.bad(
                    v,
                    Some(s),
                    format!("id \"{s}\" may use only A-Z a-z 0-9 _ . : - (it is a metrics label)"),
                );
                false
            }
            None => {
                self.bad(v, None, "`id` must be a string".into());
                false
            }
        }
    }

    pub(super) fn redirect(&mut self, v: &Val<'_>) -> Option<RedirectRule> {
        let t = self.table(v, "a `[[redirect]]`", None)?;
        let id = table_id(t);
        let rid = id.as_deref();
        let mut ok = true;
        let mut rule = RedirectRule {
            id: String::new(),
            host: HostPattern::Any,
            kind: PathKind::Prefix,
            path: String::new(),
            to: None,
            pool: None,
            status: None,
            query: None,
            keep_suffix: true,
            preserve_method: None,
            conditions: Default::default(),
            case_insensitive: false,
            cache_control: None,
            retry_after: None,
            headers: Vec::new(),
            place: self.place(&v.span()),
            order: v.span().start,
        };
        let mut paths: Vec<(PathKind, String, Range<usize>)> = Vec::new();
        let mut conditions = ConditionsRead::default();
        let mut to_span = None;
        let mut keep_suffix_span = None;
        for (k, val) in t.iter() {
            let key = k.get_ref().as_ref();
            if let Some(good) = self.condition(&mut conditions, key, val, rid) {
                ok &= good;
                continue;
            }
            match key {
                "id" => ok &= self.check_id(val),
                "host" => match self.string(val, "host", rid) {
                    Some(h) => match parse_host_pattern(&h) {
                        Ok(p) => rule.host = p,
                        Err(e) => {
                            self.bad(val, rid, format!("`host` = \"{h}\": {e}"));
                            ok = false;
                        }
                    },
                    None => ok = false,
                },
                "path" | "prefix" | "regex" => {
                    let kind = match key {
                        "path" => PathKind::Exact,
                        "prefix" => PathKind::Prefix,
                        _ => PathKind::Regex,
                    };
                    match self.string(val, key, rid) {
                        Some(p) => {
                            if kind != PathKind::Regex {
                                if let Err(e) = check_rule_path(&p) {
                                    self.bad(val, rid, format!("`{key}` = \"{p}\": {e}"));
                                    ok = false;
                                }
                            }
                            paths.push((kind, p, val.span()));
                        }
                        None => ok = false,
                    }
                }
                "to" => {
                    to_span = Some(val.span());
                    rule.to = self.string(val, "to", rid);
                    ok &= rule.to.is_some();
                }
                "pool" => match self.string(val, "pool", rid) {
                    Some(p) => {
                        self.pool_refs.push((p.clone(), val.span(), id.clone()));
                        rule.pool = Some(p);
                    }
                    None => ok = false,
                },
                "status" => match self.status(val, rid) {
                    Some(s) => rule.status = Some(s),
                    None => ok = false,
                },
                "query" => match self.query_mode(val, rid) {
                    Some(q) => rule.query = Some(q),
                    None => ok = false,
                },
                "keep_suffix" => {
                    keep_suffix_span = Some(val.span());
                    match self.boolean(val, key, rid) {
                        Some(b) => rule.keep_suffix = b,
                        None => ok = false,
                    }
                }
                "preserve_method" => match self.boolean(val, key, rid) {
                    Some(b) => rule.preserve_method = Some(b),
                    None => ok = false,
                },
                "case_insensitive" => match self.boolean(val, key, rid) {
                    Some(b) => rule.case_insensitive = b,
                    None => ok = false,
                },
                "cache_control" => match self.header_text(val, key, rid) {
                    Some(s) => rule.cache_control = Some(s),
                    None => ok = false,
                },
                "retry_after" => match self.retry_after(val, rid) {
                    Some(s) => rule.retry_after = Some(s),
                    None => ok = false,
                },
                "headers" => match self.headers(val, rid) {
                    Some(h) => rule.headers = h,
                    None => ok = false,
                },
                _ => self.unknown(k, REDIRECT_KEYS, rid, "a `[[redirect]]`"),
            }
        }
        let Some(id) = id else {
            self.bad(v, None, "a `[[redirect]]` needs an `id`, e.g. id = \"docs\" (it names the rule in logs and metrics)".into());
            return None;
        };
        rule.id = id;
        let rid = Some(rule.id.as_str());
        match paths.len() {
            1 => {
                let (kind, p, _) = paths.pop().expect("one path");
                rule.kind = kind;
                rule.path = p;
            }
            0 => {
                self.bad(
                    v,
                    rid,
                    "a `[[redirect]]` needs one of `path` (exact), `prefix` or `regex`".into(),
                );
                return None;
            }
            _ => {
                self.push(
                    "bad_value",
                    paths[1].2.clone(),
                    rid,
                    "a `[[redirect]]` takes exactly one of `path`, `prefix`, `regex`".into(),
                );
                return None;
            }
        }
        match (&rule.to, &rule.pool) {
            (None, None) => {
                self.bad(
                    v,
                    rid,
                    "a `[[redirect]]` needs `to` (the target URL) or `pool` (a [pools.*] name)"
                        .into(),
                );
                return None;
            }
            (Some(_), Some(_)) => {
                self.push(
                    "bad_value",
                    to_span.unwrap_or(v.span()),
                    rid,
                    "a `[[redirect]]` takes `to` or `pool`, not both".into(),
                );
                return None;
            }
            _ => {}
        }
        if let Some(span) = keep_suffix_span {
            let uses_path = rule.to.as_deref().is_some_and(|t| t.contains("${path}"));
            let problem = if rule.kind != PathKind::Prefix {
                Some("`keep_suffix` applies to `prefix` rules only")
            } else if rule.pool.is_some() {
                Some("a pool rule always keeps the whole request path; remove `keep_suffix`")
            } else if uses_path && rule.keep_suffix {
                Some("`${path}` already holds the whole path; with `keep_suffix = true` the suffix would be added twice")
            } else {
                None
            };
            if let Some(msg) = problem {
                self.push("bad_value", span, rid, msg.into());
                ok = false;
            }
        } else if rule.to.as_deref().is_some_and(|t| t.contains("${path}")) {
            // `${path}` holds the whole path: by default do not add the suffix again.
            rule.keep_suffix = false;
        }
        ok &= self.check_conditions(&conditions, v, rid);
        ok &= self.finish_sample(&mut conditions, rid);
        rule.conditions = conditions.conditions;
        ok.then_some(rule)
    }

    pub(super) fn headers(
        &mut self,
        v: &Val<'_>,
        rule: Option<&str>,
    ) -> Option<Vec<(String, String)>> {
        let t = self.table(v, "`headers`", rule)?;
        let mut out = Vec::new();
        for (k, val) in t.iter() {
            let name = k.get_ref().to_string();
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                self.push(
                    "bad_value",
                    k.span(),
                    rule,
                    format!("header name \"{name}\" is not a valid field name"),
                );
                return None;
            }
            const RESERVED: &[&str] = &[
                "location",
                "content-length",
                "content-type",
                "transfer-encoding",
                "connection",
                "cache-control",
                "retry-after",
                "strict-transport-security",
            ];
            if RESERVED.contains(&name.to_ascii_lowercase().as_str()) {
                self.push(
                    "bad_value",
                    k.span(),
                    rule,
                    format!("header \"{name}\" is set by the redirect itself; use `to`, `cache_control` or `retry_after` (and [tls] hsts for Strict-Transport-Security)"),
                );
                return None;
            }
            out.push((name, self.header_text(val, "headers", rule)?));
        }
        Some(out)
    }

    pub(super) fn cross_check(&mut self, cfg: &mut Config) {
        // Pool references: every name must exist.
        for (name, span, rule) in std::mem::take(&mut self.pool_refs) {
            if !self.pool_names.contains(&name) {
                let known: Vec<&str> = cfg.pools.keys().map(String::as_str).collect();
                let hint = if known.is_empty() {
                    "there is no [pools.*] section; add one".to_string()
                } else {
                    format!("the pools are: {}", known.join(", "))
                };
                self.push(
                    "unknown_pool",
                    span,
                    rule.as_deref(),
                    format!("pool \"{name}\" is not defined; {hint}"),
                );
            }
        }
        // A rule whose pool is missing or broken has been reported (here or
        // at the pool) and stays out of the compile.
        cfg.redirects
            .retain(|r| r.pool.as_ref().is_none_or(|p| cfg.pools.contains_key(p)));
        // Ids are unique across rules and lists.
        let mut seen: std::collections::HashMap<&str, &Place> = std::collections::HashMap::new();
        let mut dups = Vec::new();
        let ids = cfg
            .redirects
            .iter()
            .map(|r| (&r.id, &r.place))
            .chain(cfg.lists.iter().map(|l| (&l.id, &l.place)));
        for (id, place) in ids {
            if let Some(first) = seen.get(id.as_str()) {
                dups.push(
                    Problem::error(
                        "duplicate_id",
                        format!(
                            "id \"{id}\" is already used at line {}; ids must be unique",
                            first.line
                        ),
                    )
                    .at(&place.file, place.line, Some(place.column))
                    .rule(Some(id)),
                );
            } else {
                seen.insert(id, place);
            }
        }
        self.problems.extend(dups);
    }
}

/// Checks an exact or prefix path as written in a rule.
pub fn check_rule_path(p: &str) -> Result<(), String> {
    if !p.starts_with('/') {
        return Err("a path must start with `/`".into());
    }
    if p.contains('?') || p.contains('#') {
        return Err(
            "a path holds no query or fragment; the query never takes part in matching".into(),
        );
    }
    if p.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err("a path holds no control characters".into());
    }
    Ok(())
}
