//! The conditions of a rule, in one place: what they are ([`Conditions`]),
//! how they are read from a `[[redirect]]` table, how a request is tested
//! against them ([`Conditions::holds`]), how two rules' conditions compare
//! for `duplicate_rule` and `shadowed`, and how they are shown (`Display`).
//!
//! A rule whose conditions do not hold is skipped and the search goes on
//! (docs/configuration.md, "Precedence"). The compiled rule set keeps each
//! distinct [`Conditions`] once and gives a rule its index, so two rules have
//! the same conditions exactly when they have the same index, and a rule
//! without conditions costs nothing to test.
//!
//! The request conditions (`match_headers`, `match_cookies`, `match_query`,
//! `match_client`, `sample`) read the request itself through [`Facts`]; the
//! lint follows redirects without a request, and for it they hold, as time
//! windows do (a chain through a rule that some clients get is a chain).
//! Sampling hashes the rule id and the `sample_key` value with the fixed
//! hash of [`stable_hash`], so a client's side of an A/B split is the same on
//! every instance, after restarts and after reloads.
//!
//! It lives with the configuration model because the conditions are part of
//! a rule as written; testing them needs only the plain [`Facts`] of a
//! request, no rule set. It is longer than most files (about 700 lines
//! before its tests) on purpose: a condition is added here and nowhere
//! else, its reading, matching, comparing and showing side by side.

use super::reader::{Reader, Val};
use crate::request::{hash_key, stable_hash, HashKey, RequestView, Scheme};
use ipnet::IpNet;
use std::fmt;
use std::ops::Range;
use toml::de::DeValue;

/// Request methods as a bit set (0 = any method).
pub mod methods {
    pub const NAMES: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
    ];

    /// The bit of a method name, if it is one of the nine of RFC 9110 and RFC 5789.
    pub fn bit(name: &str) -> Option<u16> {
        NAMES.iter().position(|m| *m == name).map(|i| 1 << i)
    }

    /// Names of the methods in `mask`.
    pub fn names(mask: u16) -> Vec<&'static str> {
        NAMES
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, n)| *n)
            .collect()
    }
}

/// What a `match_headers`, `match_cookies` or `match_query` entry wants.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Want {
    /// `true`: present, with any value.
    Present,
    /// `false`: absent.
    Absent,
    /// Present with exactly this value (one of its values, if repeated).
    Value(String),
}

/// `sample` and `sample_key`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Sample {
    /// The share of clients, in millionths (`sample = 0.5` is 5,000).
    pub per_million: u32,
    pub key: HashKey,
}

/// What must hold of a request for a rule to answer it. The default holds
/// for every request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Conditions {
    /// `methods`, as a bit set of [`methods`]; 0 = any method.
    pub methods: u16,
    /// `scheme`; `None` = either.
    pub scheme: Option<Scheme>,
    /// `active_from`, Unix seconds.
    pub active_from: Option<i64>,
    /// `active_until`, Unix seconds (the rule is active before it).
    pub active_until: Option<i64>,
    /// `match_headers`: lowercase names, sorted.
    pub headers: Vec<(String, Want)>,
    /// `match_cookies`, sorted by name.
    pub cookies: Vec<(String, Want)>,
    /// `match_query`, sorted by name.
    pub query: Vec<(String, Want)>,
    /// `match_client`, sorted.
    pub client: Vec<IpNet>,
    pub sample: Option<Sample>,
}

/// What conditions are tested against.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The method's bit ([`methods::bit`]); 0 for a method not listed there.
    pub method: u16,
    /// `None` when unknown (a rule with a `scheme` then does not hold).
    pub scheme: Option<Scheme>,
    /// Unix seconds; `None` ignores time windows (the lint follows rules
    /// whatever the time).
    pub now: Option<i64>,
    /// The request, for the request conditions; `None` (the lint) lets them
    /// hold.
    pub request: Option<&'a RequestView<'a>>,
}

/// Whether a header field value is `want`: the whole value, or one member of
/// a comma-separated list (a repeated header joined by a proxy), after
/// trimming spaces and tabs.
fn field_has(field: &[u8], want: &[u8]) -> bool {
    let trim = <[u8]>::trim_ascii;
    trim(field) == want
        || (field.contains(&b',') && field.split(|&b| b == b',').any(|m| trim(m) == want))
}

/// `+` as a space, then percent-decoding (HTML forms and `url`'s
/// `form_urlencoded` read a query the same way).
fn form_decode(raw: &[u8]) -> Vec<u8> {
    let spaced: Vec<u8> = raw
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    percent_encoding::percent_decode(&spaced).collect()
}

/// How `want` compares with the values found (`None`: the name is absent).
fn wanted<'v>(
    want: &Want,
    mut values: impl Iterator<Item = &'v [u8]>,
    eq: impl Fn(&[u8], &[u8]) -> bool,
) -> bool {
    match want {
        Want::Present => values.next().is_some(),
        Want::Absent => values.next().is_none(),
        Want::Value(v) => values.any(|found| eq(found, v.as_bytes())),
    }
}

fn header_holds(req: &RequestView<'_>, name: &str, want: &Want) -> bool {
    let fields = req
        .headers
        .into_iter()
        .flat_map(move |h| h.get_all(name).iter())
        .map(|v| v.as_bytes());
    wanted(want, fields, field_has)
}

fn cookie_holds(req: &RequestView<'_>, name: &str, want: &Want) -> bool {
    let values: Vec<String> = req
        .cookies()
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .filter(|c| c.name() == name)
        .map(|c| c.value_trimmed().to_string())
        .collect();
    wanted(want, values.iter().map(String::as_bytes), |a, b| a == b)
}

fn query_holds(req: &RequestView<'_>, name: &str, want: &Want) -> bool {
    let values: Vec<Vec<u8>> = req
        .query
        .into_iter()
        .flat_map(|q| q.split(|&b| b == b'&'))
        .filter(|pair| !pair.is_empty())
        .filter_map(|pair| {
            let (k, v) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            (form_decode(k) == name.as_bytes()).then(|| form_decode(v))
        })
        .collect();
    wanted(want, values.iter().map(Vec::as_slice), |a, b| a == b)
}

fn client_holds(req: &RequestView<'_>, nets: &[IpNet]) -> bool {
    req.client
        .map(|ip| ip.to_canonical())
        .is_some_and(|ip| nets.iter().any(|n| n.contains(&ip)))
}

impl Sample {
    /// Whether the client of `req` is in the sampled share for `rule`.
    pub fn holds(&self, rule: &str, req: &RequestView<'_>) -> bool {
        let key = hash_key(&self.key, req);
        let bucket = stable_hash(&[rule.as_bytes(), &key]) % 1_000_000;
        bucket < u64::from(self.per_million)
    }
}

impl Conditions {
    /// The conditions of a list row: its source URL's scheme, if any.
    pub fn scheme_only(scheme: Option<Scheme>) -> Conditions {
        Conditions {
            scheme,
            ..Conditions::default()
        }
    }

    /// Whether a rule with no condition at all.
    pub fn is_unconditional(&self) -> bool {
        *self == Conditions::default()
    }

    /// Whether the rule has a condition on the request itself (§11 of the
    /// configuration: headers, cookies, query, client, sample).
    pub fn reads_request(&self) -> bool {
        !self.headers.is_empty()
            || !self.cookies.is_empty()
            || !self.query.is_empty()
            || !self.client.is_empty()
            || self.sample.is_some()
    }

    /// Whether the rule has a time window.
    pub fn is_timed(&self) -> bool {
        self.active_from.is_some() || self.active_until.is_some()
    }

    /// Does a request with these facts meet every condition of rule `rule`
    /// (its id keys the sample)?
    pub fn holds(&self, f: &Facts<'_>, rule: &str) -> bool {
        if self.methods != 0 && self.methods & f.method == 0 {
            return false;
        }
        if self.scheme.is_some() && self.scheme != f.scheme {
            return false;
        }
        if let Some(now) = f.now {
            if self.active_from.is_some_and(|t| now < t)
                || self.active_until.is_some_and(|t| now >= t)
            {
                return false;
            }
        }
        match f.request {
            Some(req) if self.reads_request() => {
                self.headers.iter().all(|(n, w)| header_holds(req, n, w))
                    && self.cookies.iter().all(|(n, w)| cookie_holds(req, n, w))
                    && self.query.iter().all(|(n, w)| query_holds(req, n, w))
                    && (self.client.is_empty() || client_holds(req, &self.client))
                    && self.sample.as_ref().is_none_or(|s| s.holds(rule, req))
            }
            _ => true,
        }
    }

    /// Each condition as `explain` shows it, and whether it held.
    pub fn each(&self, f: &Facts<'_>, rule: &str) -> Vec<(String, bool)> {
        let mut out = Vec::new();
        if self.methods != 0 {
            let names = methods::names(self.methods).join(", ");
            out.push((format!("methods {names}"), self.methods & f.method != 0));
        }
        if let Some(s) = self.scheme {
            out.push((format!("scheme {}", s.as_str()), Some(s) == f.scheme));
        }
        let now = f.now.unwrap_or(i64::MIN);
        if let Some(t) = self.active_from {
            out.push((format!("from {}", rfc3339(t)), f.now.is_none() || now >= t));
        }
        if let Some(t) = self.active_until {
            out.push((format!("until {}", rfc3339(t)), f.now.is_none() || now < t));
        }
        let req = f.request;
        let held = |test: &dyn Fn(&RequestView<'_>) -> bool| req.is_none_or(test);
        for (n, w) in &self.headers {
            out.push((want_text("header", n, w), held(&|r| header_holds(r, n, w))));
        }
        for (n, w) in &self.cookies {
            out.push((want_text("cookie", n, w), held(&|r| cookie_holds(r, n, w))));
        }
        for (n, w) in &self.query {
            out.push((want_text("query", n, w), held(&|r| query_holds(r, n, w))));
        }
        if !self.client.is_empty() {
            out.push((
                client_text(&self.client),
                held(&|r| client_holds(r, &self.client)),
            ));
        }
        if let Some(s) = &self.sample {
            out.push((sample_text(s), held(&|r| s.holds(rule, r))));
        }
        out
    }
}

fn want_text(what: &str, name: &str, want: &Want) -> String {
    match want {
        Want::Present => format!("{what} {name} present"),
        Want::Absent => format!("{what} {name} absent"),
        Want::Value(v) => format!("{what} {name} = {v:?}"),
    }
}

fn client_text(nets: &[IpNet]) -> String {
    let nets: Vec<String> = nets.iter().map(IpNet::to_string).collect();
    format!("client in {}", nets.join(", "))
}

fn sample_text(s: &Sample) -> String {
    let whole = s.per_million / 10_000;
    let frac = s.per_million % 10_000;
    let pct = if frac == 0 {
        whole.to_string()
    } else {
        format!("{whole}.{frac:04}")
            .trim_end_matches('0')
            .to_string()
    };
    format!("sample {pct}% by {}", s.key)
}

/// `2026-12-01T00:00:00Z` for Unix seconds (the seconds themselves when out
/// of range).
pub(crate) fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}

/// `methods GET, HEAD; scheme https; from 2026-12-01T00:00:00Z; until …`,
/// or `none`.
impl fmt::Display for Conditions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.methods != 0 {
            parts.push(format!(
                "methods {}",
                methods::names(self.methods).join(", ")
            ));
        }
        if let Some(s) = self.scheme {
            parts.push(format!("scheme {}", s.as_str()));
        }
        if let Some(t) = self.active_from {
            parts.push(format!("from {}", rfc3339(t)));
        }
        if let Some(t) = self.active_until {
            parts.push(format!("until {}", rfc3339(t)));
        }
        for (what, list) in [
            ("header", &self.headers),
            ("cookie", &self.cookies),
            ("query", &self.query),
        ] {
            parts.extend(list.iter().map(|(n, w)| want_text(what, n, w)));
        }
        if !self.client.is_empty() {
            parts.push(client_text(&self.client));
        }
        if let Some(s) = &self.sample {
            parts.push(sample_text(s));
        }
        if parts.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&parts.join("; "))
        }
    }
}

/// Unix seconds of a TOML offset date-time.
pub(super) fn datetime_to_unix(dt: &toml::value::Datetime) -> Option<i64> {
    let (date, t, offset) = (dt.date?, dt.time?, dt.offset?);
    let month = time::Month::try_from(date.month).ok()?;
    let d = time::Date::from_calendar_date(date.year as i32, month, date.day).ok()?;
    let tm = time::Time::from_hms(t.hour, t.minute, t.second.min(59)).ok()?;
    let minutes = match offset {
        toml::value::Offset::Z => 0,
        toml::value::Offset::Custom { minutes } => minutes as i32,
    };
    let off = time::UtcOffset::from_whole_seconds(minutes * 60).ok()?;
    Some(d.with_time(tm).assume_offset(off).unix_timestamp())
}

/// The conditions of one `[[redirect]]` as its keys are read.
#[derive(Default)]
pub(super) struct ConditionsRead {
    pub(super) conditions: Conditions,
    from_span: Option<Range<usize>>,
    /// `sample`, in millionths, once read.
    sample: Option<u32>,
    /// `sample_key` and where it is.
    sample_key: Option<(HashKey, Range<usize>)>,
}

/// `sample` = P as millionths, if P is a number from 0 to 100.
fn per_million(v: &DeValue<'_>) -> Option<u32> {
    let text = match v {
        DeValue::Integer(i) if i.radix() == 10 => i.as_str(),
        DeValue::Float(f) => f.as_str(),
        _ => return None,
    };
    let p: f64 = text.replace('_', "").parse().ok()?;
    (0.0..=100.0)
        .contains(&p)
        .then(|| (p * 10_000.0).round() as u32)
}

impl Reader<'_> {
    /// Reads `key` into `c` when it is a condition key: `None` when it is
    /// not one, else whether its value was good.
    pub(super) fn condition(
        &mut self,
        c: &mut ConditionsRead,
        key: &str,
        val: &Val<'_>,
        rid: Option<&str>,
    ) -> Option<bool> {
        let ok = match key {
            "methods" => match self.strings(val, "methods", rid) {
                Some(list) if !list.is_empty() => {
                    let mut ok = true;
                    for (m, span) in list {
                        match methods::bit(&m.to_ascii_uppercase()) {
                            Some(b) => c.conditions.methods |= b,
                            None => {
                                self.push(
                                    "bad_value",
                                    span,
                                    rid,
                                    format!(
                                        "`methods`: \"{m}\" is not a method; write any of {}",
                                        methods::NAMES.join(", ")
                                    ),
                                );
                                ok = false;
                            }
                        }
                    }
                    ok
                }
                Some(_) => {
                    self.bad(
                        val,
                        rid,
                        "`methods` = [] would never match; omit it to allow every method".into(),
                    );
                    false
                }
                None => false,
            },
            "scheme" => match self.string(val, "scheme", rid).as_deref() {
                Some("http") => {
                    c.conditions.scheme = Some(Scheme::Http);
                    true
                }
                Some("https") => {
                    c.conditions.scheme = Some(Scheme::Https);
                    true
                }
                Some(other) => {
                    self.bad(
                        val,
                        rid,
                        format!("`scheme` = \"{other}\" is not \"http\" or \"https\""),
                    );
                    false
                }
                None => false,
            },
            "active_from" | "active_until" => match self.datetime(val, key, rid) {
                Some(ts) => {
                    if key == "active_from" {
                        c.from_span = Some(val.span());
                        c.conditions.active_from = Some(ts);
                    } else {
                        c.conditions.active_until = Some(ts);
                    }
                    true
                }
                None => false,
            },
            "match_headers" | "match_cookies" | "match_query" => match self.wants(val, key, rid) {
                Some(list) => {
                    let slot = match key {
                        "match_headers" => &mut c.conditions.headers,
                        "match_cookies" => &mut c.conditions.cookies,
                        _ => &mut c.conditions.query,
                    };
                    *slot = list;
                    true
                }
                None => false,
            },
            "match_client" => match self.strings(val, key, rid) {
                Some(list) if !list.is_empty() => {
                    let mut ok = true;
                    for (text, span) in list {
                        let net = text
                            .parse::<IpNet>()
                            .ok()
                            .or_else(|| text.parse::<std::net::IpAddr>().ok().map(IpNet::from));
                        match net {
                            Some(n) => c.conditions.client.push(n.trunc()),
                            None => {
                                self.push(
                                    "bad_value",
                                    span,
                                    rid,
                                    format!("`match_client`: \"{text}\" is not a network (192.0.2.0/24, 2001:db8::/32) or an address"),
                                );
                                ok = false;
                            }
                        }
                    }
                    c.conditions.client.sort();
                    c.conditions.client.dedup();
                    ok
                }
                Some(_) => {
                    self.bad(
                        val,
                        rid,
                        "`match_client` = [] would never match; omit it to allow every client"
                            .into(),
                    );
                    false
                }
                None => false,
            },
            "sample" => match per_million(val.get_ref()) {
                Some(p) => {
                    c.sample = Some(p);
                    true
                }
                None => {
                    self.bad(
                        val,
                        rid,
                        "`sample` must be a percentage of clients from 0 to 100, e.g. 10 or 0.5"
                            .into(),
                    );
                    false
                }
            },
            "sample_key" => match self.string(val, key, rid) {
                Some(text) => match super::routing::parse_hash_key(&text) {
                    Some(k) => {
                        c.sample_key = Some((k, val.span()));
                        true
                    }
                    None => {
                        self.bad(
                            val,
                            rid,
                            format!("`sample_key` = \"{text}\" is not \"client_ip\", \"header:NAME\" or \"cookie:NAME\""),
                        );
                        false
                    }
                },
                None => false,
            },
            _ => return None,
        };
        Some(ok)
    }

    /// A `match_headers` / `match_cookies` / `match_query` table: names to a
    /// string (the value) or a boolean (present / absent), sorted by name.
    fn wants(&mut self, v: &Val<'_>, key: &str, rid: Option<&str>) -> Option<Vec<(String, Want)>> {
        let t = self.table(v, &format!("`{key}`"), rid)?;
        if t.is_empty() {
            self.bad(v, rid, format!("`{key}` = {{}} tests nothing; omit it"));
            return None;
        }
        let mut out = Vec::new();
        let mut ok = true;
        for (k, val) in t.iter() {
            let raw = k.get_ref().to_string();
            let name = match key {
                "match_headers" => raw.to_ascii_lowercase(),
                _ => raw.clone(),
            };
            let good_name = match key {
                "match_query" => !name.is_empty(),
                // Header and cookie names are both RFC 9110 tokens.
                _ => !name.is_empty() && http::HeaderName::from_bytes(name.as_bytes()).is_ok(),
            };
            if !good_name {
                let what = if key == "match_headers" {
                    "a header field name"
                } else if key == "match_cookies" {
                    "a cookie name (an RFC 9110 token)"
                } else {
                    "a query parameter name"
                };
                self.push(
                    "bad_value",
                    k.span(),
                    rid,
                    format!("`{key}`: \"{raw}\" is not {what}"),
                );
                ok = false;
                continue;
            }
            let want = match val.get_ref() {
                DeValue::Boolean(true) => Want::Present,
                DeValue::Boolean(false) => Want::Absent,
                DeValue::String(s) if key == "match_headers" && s.trim_ascii() != s.as_ref() => {
                    self.bad(val, rid, format!("`{key}`: \"{s}\" has spaces around it; a header value is compared after trimming them, so this never matches"));
                    ok = false;
                    continue;
                }
                DeValue::String(s) => Want::Value(s.to_string()),
                other => {
                    self.bad(val, rid, format!("`{key}`.{raw} must be a string (the value), true (present) or false (absent), not a {}", other.type_str()));
                    ok = false;
                    continue;
                }
            };
            out.push((name, want));
        }
        out.sort();
        ok.then_some(out)
    }

    /// Checks the conditions of a whole rule (`whole` is its table) once
    /// every key is read; returns whether they can ever hold.
    pub(super) fn check_conditions(
        &mut self,
        c: &ConditionsRead,
        whole: &Val<'_>,
        rid: Option<&str>,
    ) -> bool {
        if let (Some(from), Some(until)) = (c.conditions.active_from, c.conditions.active_until) {
            if until <= from {
                self.push(
                    "bad_time_window",
                    c.from_span.clone().unwrap_or(whole.span()),
                    rid,
                    "`active_until` is not after `active_from`; the rule could never be active"
                        .into(),
                );
                return false;
            }
        }
        true
    }

    /// Joins `sample` and `sample_key` once every key is read.
    pub(super) fn finish_sample(&mut self, c: &mut ConditionsRead, rid: Option<&str>) -> bool {
        match (c.sample, c.sample_key.take()) {
            (Some(per_million), key) => {
                c.conditions.sample = Some(Sample {
                    per_million,
                    key: key.map_or(HashKey::ClientIp, |(k, _)| k),
                });
                true
            }
            (None, Some((_, span))) => {
                self.push(
                    "bad_value",
                    span,
                    rid,
                    "`sample_key` without `sample` does nothing; add `sample = P` or remove it"
                        .into(),
                );
                false
            }
            (None, None) => true,
        }
    }

    fn datetime(&mut self, v: &Val<'_>, key: &str, rule: Option<&str>) -> Option<i64> {
        let DeValue::Datetime(dt) = v.get_ref() else {
            self.bad(
                v,
                rule,
                format!("`{key}` must be an offset date-time, e.g. {key} = 2026-12-01T00:00:00Z"),
            );
            return None;
        };
        match datetime_to_unix(dt) {
            Some(ts) => Some(ts),
            None => {
                self.bad(
                    v,
                    rule,
                    format!(
                        "`{key}` needs a date, a time and an offset, e.g. 2026-12-01T00:00:00Z"
                    ),
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(method: &str, scheme: Scheme, now: Option<i64>) -> Facts<'static> {
        Facts {
            method: methods::bit(method).unwrap_or(0),
            scheme: Some(scheme),
            now,
            request: None,
        }
    }

    #[test]
    fn every_condition_must_hold() {
        let c = Conditions {
            methods: methods::bit("GET").unwrap() | methods::bit("HEAD").unwrap(),
            scheme: Some(Scheme::Https),
            active_from: Some(100),
            active_until: Some(200),
            ..Conditions::default()
        };
        let holds = |f: Facts<'_>| c.holds(&f, "r");
        assert!(holds(facts("GET", Scheme::Https, Some(150))));
        assert!(!holds(facts("POST", Scheme::Https, Some(150))));
        assert!(!holds(facts("GET", Scheme::Http, Some(150))));
        assert!(!holds(facts("GET", Scheme::Https, Some(200))));
        assert!(!holds(facts("GET", Scheme::Https, Some(99))));
        assert!(
            holds(facts("GET", Scheme::Https, None)),
            "no clock: no window"
        );
        assert!(Conditions::default().holds(&facts("BREW", Scheme::Http, Some(0)), "r"));
        assert_eq!(
            c.to_string(),
            "methods GET, HEAD; scheme https; from 1970-01-01T00:01:40Z; until 1970-01-01T00:03:20Z"
        );
        assert_eq!(Conditions::default().to_string(), "none");
    }

    #[test]
    fn request_conditions_hold_without_a_request_and_show_as_written() {
        let c = Conditions {
            headers: vec![("x-beta".into(), Want::Value("1".into()))],
            cookies: vec![("beta".into(), Want::Present)],
            query: vec![("debug".into(), Want::Absent)],
            client: vec!["192.0.2.0/24".parse().unwrap()],
            sample: Some(Sample {
                per_million: 5_000,
                key: HashKey::Cookie("visitor".into()),
            }),
            ..Conditions::default()
        };
        assert!(c.reads_request());
        // The lint follows rules with no request: they hold.
        assert!(c.holds(&facts("GET", Scheme::Https, Some(0)), "r"));
        assert_eq!(
            c.to_string(),
            "header x-beta = \"1\"; cookie beta present; query debug absent; client in 192.0.2.0/24; sample 0.5% by cookie:visitor"
        );
        let req = RequestView::new("GET", Scheme::Https, None, b"/", Some(b"debug=1"));
        let f = Facts {
            request: Some(&req),
            ..facts("GET", Scheme::Https, Some(0))
        };
        let each: Vec<(String, bool)> = c.each(&f, "r");
        assert_eq!(
            each.iter().map(|(_, held)| *held).collect::<Vec<_>>(),
            [false, false, false, false, false]
        );
        assert!(!c.holds(&f, "r"));
    }

    #[test]
    fn sample_percentages_read_as_millionths() {
        let read = |text: &str| {
            let src = format!("s = {text}");
            let v: toml::de::DeTable = toml::de::DeTable::parse(&src).unwrap().into_inner();
            per_million(v.get("s").unwrap().get_ref())
        };
        assert_eq!(read("0"), Some(0));
        assert_eq!(read("100"), Some(1_000_000));
        assert_eq!(read("30"), Some(300_000));
        assert_eq!(read("0.5"), Some(5_000));
        assert_eq!(read("12.3456"), Some(123_456));
        assert_eq!(read("100.5"), None);
        assert_eq!(read("-1"), None);
        assert_eq!(read("nan"), None);
        assert_eq!(read("inf"), None);
        assert_eq!(read("0x10"), None);
        assert_eq!(read("\"10\""), None);
    }
}
