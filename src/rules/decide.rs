//! [`RuleSet::decide`]: one request in, one [`Decision`] out.
//!
//! Pure: no I/O, no clock of its own, no Pingora type. The request is
//! normalised once (host, dot segments, the comparison key), then the host
//! tiers are visited in precedence order: the exact host, the wildcard
//! suffixes from the longest to the shortest, then the rules without a host.
//! Inside a tier: the exact path, the longest prefix cut at a `/`, then the
//! regex rules in file order among those the tier's one-scan union says
//! match. A
//! rule whose conditions do not hold is skipped and the search goes on.

use super::set::*;
use super::switch::Switch;
use crate::config::{methods, Facts, Scheme};
use crate::location::{self, Vars};
use crate::matcher::host::{normalize_host, HostError};
use crate::matcher::path::{key as path_key, key_offset_to_path, lower_key, remove_dot_segments};
use crate::matcher::regex_tier::run;
use crate::request::RequestView;
use std::borrow::Cow;
use std::cell::RefCell;

/// Longest path (as received, without the query) that is served: longer is 414.
pub const MAX_PATH: usize = 8192;

/// A redirect answered from a rule's `to`.
#[derive(Debug)]
pub struct Redirect<'r> {
    pub rule: RuleRef<'r>,
    pub status: u16,
    pub location: String,
    pub cache_control: &'r str,
    pub retry_after: Option<u32>,
    pub headers: &'r [(Box<str>, Box<str>)],
}

/// A redirect to one target of a pool, to be chosen by the caller.
#[derive(Debug)]
pub struct PoolRedirect<'r> {
    pub rule: RuleRef<'r>,
    pub pool: &'r PoolInfo,
    pub status: u16,
    /// The dot-resolved request path, to append to the target.
    pub path: Cow<'r, [u8]>,
    /// The query to keep, if any.
    pub query: Option<Vec<u8>>,
    pub cache_control: &'r str,
    pub retry_after: Option<u32>,
    pub headers: &'r [(Box<str>, Box<str>)],
}

impl PoolRedirect<'_> {
    /// The Location for target `base` (normalised, without trailing `/`).
    pub fn location_for(&self, base: &str) -> String {
        let mut out = String::with_capacity(base.len() + self.path.len() + 16);
        location::assemble(
            &mut out,
            false,
            base,
            None,
            None,
            Some(&self.path),
            self.query.as_deref(),
        );
        out
    }
}

/// A request refused before any rule is looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRequest {
    /// 400 or 414.
    pub status: u16,
    pub reason: String,
}

/// What to do with a request.
#[derive(Debug)]
pub enum Decision<'r> {
    Redirect(Redirect<'r>),
    Pool(PoolRedirect<'r>),
    /// No rule matched: proxy it (with `[upstream]`) or answer 404.
    NoMatch,
    BadRequest(BadRequest),
}

impl Decision<'_> {
    /// The `pingora_redirect_requests_total{outcome}` of this decision, given
    /// whether there is an upstream.
    pub fn outcome(&self, has_upstream: bool) -> &'static str {
        match self {
            Decision::Redirect(_) | Decision::Pool(_) => "redirect",
            Decision::NoMatch if has_upstream => "proxy",
            Decision::NoMatch => "not_found",
            Decision::BadRequest(_) => "bad_request",
        }
    }
}

/// The request normalised once for all tiers.
struct Prepared<'a> {
    host: Option<Cow<'a, str>>,
    path: Cow<'a, [u8]>,
    key: Cow<'a, str>,
    key_lc: Option<Cow<'a, str>>,
    /// What the rules' conditions are tested against.
    facts: Facts<'a>,
    /// For `explain`: every rule whose host and path matched, and whether
    /// its conditions held.
    trace: Option<&'a RefCell<Vec<(u32, bool)>>>,
}

/// A match: the rule and, for prefix rules, where the suffix starts in the key.
struct Hit {
    rule: u32,
    suffix_at: Option<usize>,
    groups: Vec<Option<(usize, usize)>>,
}

impl RuleSet {
    /// Whether rule `index` answers `req` (its apex flag and conditions).
    fn check(&self, index: u32, req: &Prepared<'_>, apex_mode: bool) -> bool {
        let r = &self.rules[index as usize];
        if apex_mode && r.flags & APEX_OK == 0 {
            return false;
        }
        r.cond == 0
            || self.conditions[r.cond as usize].holds(&req.facts, &self.labels[r.label as usize].id)
    }

    /// [`check`](Self::check), and the trace for `explain`.
    fn holds(&self, index: u32, req: &Prepared<'_>, apex_mode: bool) -> bool {
        let held = self.check(index, req, apex_mode);
        if let Some(trace) = req.trace {
            trace.borrow_mut().push((index, held));
        }
        held
    }

    /// The first rule of two chains (case-sensitive and -insensitive) whose
    /// conditions hold, in file order.
    fn first_of(&self, mut a: u32, mut b: u32, req: &Prepared<'_>, apex_mode: bool) -> Option<u32> {
        while a != NONE || b != NONE {
            let take = if b == NONE || (a != NONE && a < b) {
                &mut a
            } else {
                &mut b
            };
            let i = *take;
            if self.rules[i as usize].flags & SWITCH != 0 {
                let sw = &self.switches[self.switch_at[&i] as usize];
                match self.switch_pick(sw, req, apex_mode) {
                    // The first rule of the run that holds: tested below
                    // when its turn comes (the other chain may come first).
                    Some(pick) if pick != i => {
                        *take = pick;
                        continue;
                    }
                    Some(_) => {}
                    None => {
                        *take = sw.after;
                        continue;
                    }
                }
            }
            *take = self.rules[i as usize].next;
            if self.holds(i, req, apex_mode) {
                return Some(i);
            }
        }
        None
    }

    /// The first rule of a header run (`switch.rs`) that holds for `req`:
    /// only the rules that the request's values of the header name are
    /// checked. Without a request (the lint) the run's first rule.
    fn switch_pick(&self, sw: &Switch, req: &Prepared<'_>, apex_mode: bool) -> Option<u32> {
        let Some(view) = req.facts.request else {
            return sw.by_value.values().min().copied();
        };
        let mut best: Option<u32> = None;
        let mut consider = |value: &[u8]| {
            if let Some(&c) = sw.by_value.get(value.trim_ascii()) {
                if best.is_none_or(|b| c < b) && self.check(c, req, apex_mode) {
                    best = Some(c);
                }
            }
        };
        for field in view.headers.into_iter().flat_map(|h| h.get_all(&sw.header)) {
            let field = field.as_bytes();
            consider(field);
            if field.contains(&b',') {
                field.split(|&b| b == b',').for_each(&mut consider);
            }
        }
        best
    }

    fn match_tier(
        &self,
        tier: u32,
        apex_mode: bool,
        req: &mut Prepared<'_>,
        scratch: &mut Vec<u32>,
    ) -> Option<Hit> {
        let t = &self.tiers[tier as usize];
        if t.has_ci && req.key_lc.is_none() {
            req.key_lc = Some(match &req.key {
                Cow::Borrowed(k) => lower_key(k),
                Cow::Owned(k) => Cow::Owned(lower_key(k).into_owned()),
            });
        }
        let key: &str = &req.key;
        let lc: Option<&str> = if t.has_ci {
            req.key_lc.as_deref()
        } else {
            None
        };
        let hit = |rule| Hit {
            rule,
            suffix_at: None,
            groups: Vec::new(),
        };
        // Exact.
        if t.has_exact {
            let a = self.chain(&self.exact_index, tier, false, key);
            let b = lc.map_or(NONE, |lc| self.chain(&self.exact_index, tier, true, lc));
            if let Some(r) = self.first_of(a, b, req, apex_mode) {
                return Some(hit(r));
            }
        }
        // Longest prefix, cut at each '/' from the end.
        if t.has_prefix {
            let bytes = key.as_bytes();
            let mut end = bytes.len();
            loop {
                if end > t.max_prefix as usize {
                    end = bytes[..end].iter().rposition(|b| *b == b'/').unwrap_or(0);
                    continue;
                }
                let a = self.chain(&self.prefix_index, tier, false, &key[..end]);
                let b = lc.map_or(NONE, |lc| {
                    self.chain(&self.prefix_index, tier, true, &lc[..end])
                });
                if let Some(r) = self.first_of(a, b, req, apex_mode) {
                    return Some(Hit {
                        suffix_at: Some(end),
                        ..hit(r)
                    });
                }
                if end == 0 {
                    break;
                }
                end = bytes[..end].iter().rposition(|b| *b == b'/').unwrap_or(0);
            }
        }
        // Regex: the patterns that match, in file order, from one scan.
        if let Some(rt) = &t.regex {
            let matched = rt.candidates(key, scratch);
            for &local in scratch.iter() {
                let idx = rt.rule(local);
                let r = &self.rules[idx as usize];
                if !self.holds(idx, req, apex_mode) {
                    continue;
                }
                let re = rt.regex(local);
                if r.flags & NEEDS_GROUPS != 0 {
                    let mut groups = Vec::new();
                    if run(re, key.as_bytes(), Some(&mut groups)) {
                        return Some(Hit { groups, ..hit(idx) });
                    }
                } else if matched || run(re, key.as_bytes(), None) {
                    return Some(hit(idx));
                }
            }
        }
        None
    }

    /// Visits the host tiers in precedence order until one matches.
    fn lookup(&self, req: &mut Prepared<'_>) -> Option<Hit> {
        let mut scratch = Vec::new();
        if let Some(host) = req.host.clone() {
            let host: &str = &host;
            if let Some(&t) = self.exact_hosts.get(host) {
                if let Some(h) = self.match_tier(t, false, req, &mut scratch) {
                    return Some(h);
                }
            }
            if !self.wild_hosts.is_empty() {
                if let Some(&t) = self.wild_hosts.get(host) {
                    if let Some(h) = self.match_tier(t, true, req, &mut scratch) {
                        return Some(h);
                    }
                }
                let mut rest = host;
                while let Some(i) = rest.find('.') {
                    rest = &rest[i + 1..];
                    if let Some(&t) = self.wild_hosts.get(rest) {
                        if let Some(h) = self.match_tier(t, false, req, &mut scratch) {
                            return Some(h);
                        }
                    }
                }
            }
        }
        self.match_tier(0, false, req, &mut scratch)
    }

    /// Decides what to do with one request (docs/configuration.md, "Matching"
    /// and "The Location").
    pub fn decide<'r>(&'r self, req: &RequestView<'_>) -> Decision<'r> {
        self.decide_traced(req, None)
    }

    /// The rules `decide` tried for `req`, in order (their host and path
    /// matched), and whether each one's conditions held: the last that held
    /// answered.
    pub fn considered<'r>(&'r self, req: &RequestView<'_>) -> Vec<(RuleRef<'r>, bool)> {
        let trace = RefCell::new(Vec::new());
        self.decide_traced(req, Some(&trace));
        trace
            .into_inner()
            .into_iter()
            .map(|(index, held)| (RuleRef { set: self, index }, held))
            .collect()
    }

    fn decide_traced<'r>(
        &'r self,
        req: &RequestView<'_>,
        trace: Option<&RefCell<Vec<(u32, bool)>>>,
    ) -> Decision<'r> {
        if req.path.len() > MAX_PATH {
            return Decision::BadRequest(BadRequest {
                status: 414,
                reason: format!("the path is longer than {MAX_PATH} bytes"),
            });
        }
        if req.method == "OPTIONS" && req.path == b"*" {
            return Decision::NoMatch;
        }
        if req.path.first() != Some(&b'/') {
            // Only `OPTIONS *` has a target that is not an absolute path, and
            // `${path}` after a target's host must start a new path segment.
            return Decision::BadRequest(BadRequest {
                status: 400,
                reason: "the request target is not an absolute path".into(),
            });
        }
        let host = match req.host.map(normalize_host) {
            None => None,
            Some(Ok(h)) => h,
            Some(Err(e)) => return bad_host(e),
        };
        let path = match remove_dot_segments(req.path) {
            Ok(p) => p,
            Err(_) => {
                return Decision::BadRequest(BadRequest {
                    status: 400,
                    reason: "the path climbs above the root with `..`".into(),
                })
            }
        };
        let mut prepared = Prepared {
            host,
            key: Cow::Borrowed(""),
            path,
            key_lc: None,
            facts: Facts {
                method: methods::bit(req.method).unwrap_or(0),
                scheme: Some(req.scheme),
                now: Some(req.now),
                request: Some(req),
            },
            trace,
        };
        // `key` borrows from `path`, which lives in `prepared`: compute it owned
        // only when the path needs rewriting.
        let key = match &prepared.path {
            Cow::Borrowed(p) => path_key(p),
            Cow::Owned(p) => Cow::Owned(path_key(p).into_owned()),
        };
        prepared.key = key;
        let Some(hit) = self.lookup(&mut prepared) else {
            return Decision::NoMatch;
        };
        self.render(hit, &prepared, req)
    }

    fn render<'r>(&'r self, hit: Hit, p: &Prepared<'_>, req: &RequestView<'_>) -> Decision<'r> {
        let r = &self.rules[hit.rule as usize];
        let mut status = r.status;
        let safe = matches!(req.method, "GET" | "HEAD");
        if r.flags & PRESERVE_METHOD != 0 && !safe {
            status = match status {
                301 => 308,
                302 => 307,
                s => s,
            };
        }
        let extra = (r.extra != NONE).then(|| &self.extras[r.extra as usize]);
        let cache_control: &str = match extra.and_then(|e| e.cache_control.as_deref()) {
            Some(c) => c,
            None if matches!(status, 301 | 308) => &self.defaults.permanent_cache_control,
            None => &self.defaults.temporary_cache_control,
        };
        let retry_after = extra.and_then(|e| e.retry_after);
        let headers: &[(Box<str>, Box<str>)] = extra.map_or(&[], |e| &e.headers);
        let query = if r.flags & QUERY_PRESERVE != 0 {
            req.query
        } else {
            None
        };
        let rule = RuleRef {
            set: self,
            index: hit.rule,
        };
        let path: &[u8] = &p.path;
        // Key offsets → path offsets (they differ only where escapes were decoded).
        let to_path = |k: usize| {
            if matches!(p.key, Cow::Borrowed(_)) {
                k
            } else {
                key_offset_to_path(path, k)
            }
        };
        if r.flags & POOL != 0 {
            let pool = &self.pools[extra.map_or(0, |e| e.pool) as usize];
            return Decision::Pool(PoolRedirect {
                rule,
                pool,
                status,
                path: Cow::Owned(path.to_vec()),
                query: query.filter(|q| !q.is_empty()).map(<[u8]>::to_vec),
                cache_control,
                retry_after,
                headers,
            });
        }
        let suffix = match hit.suffix_at {
            Some(k) if r.flags & KEEP_SUFFIX != 0 => Some(&path[to_path(k)..]),
            _ => None,
        };
        // Room for the target (a template's expansion too), the path and the query.
        let capacity = (r.target.len as usize).max(48) + path.len() + query.map_or(0, <[u8]>::len);
        let mut location = String::with_capacity(capacity + 8);
        let relative = r.flags & ABSOLUTE == 0;
        if let Some(t) = extra.and_then(|e| e.template.as_ref()) {
            let groups: Vec<Option<(usize, usize)>> = hit
                .groups
                .iter()
                .map(|g| g.map(|(s, e)| (to_path(s), to_path(e))))
                .collect();
            let vars = Vars {
                host: p.host.as_deref(),
                path,
                groups: &groups,
            };
            t.render(&mut location, &vars, suffix, query);
        } else {
            let t = self.span(r.target);
            let (q_at, f_at) = (r.q_at as usize, r.f_at as usize);
            let path_end = q_at.min(f_at).min(t.len());
            let tq = (q_at < t.len()).then(|| &t[q_at + 1..f_at.min(t.len())]);
            let tf = (f_at < t.len()).then(|| &t[f_at + 1..]);
            location::assemble(
                &mut location,
                relative,
                &t[..path_end],
                tq,
                tf,
                suffix,
                query,
            );
        }
        Decision::Redirect(Redirect {
            rule,
            status,
            location,
            cache_control,
            retry_after,
            headers,
        })
    }

    /// The rule that would answer a GET of `url` (absolute, or relative to the
    /// given scheme and host), ignoring time windows; for lint.
    pub(super) fn follow(
        &self,
        method: &str,
        scheme: Option<Scheme>,
        host: Option<&str>,
        path: &[u8],
    ) -> Option<u32> {
        let host = match host.map(normalize_host) {
            Some(Ok(h)) => h,
            _ => None,
        };
        let path = remove_dot_segments(path).ok()?;
        let key = Cow::Owned(path_key(&path).into_owned());
        let mut p = Prepared {
            host,
            path,
            key,
            key_lc: None,
            facts: Facts {
                method: methods::bit(method).unwrap_or(0),
                scheme,
                now: None,
                request: None,
            },
            trace: None,
        };
        self.lookup(&mut p).map(|h| h.rule)
    }
}

fn bad_host(e: HostError) -> Decision<'static> {
    Decision::BadRequest(BadRequest {
        status: 400,
        reason: e.to_string(),
    })
}
