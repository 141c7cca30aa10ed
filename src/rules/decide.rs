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
use std::cell::{Cell, RefCell};

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
    /// Where the rules of the layer being looked at start (for the trace).
    trace_base: Cell<u32>,
}

/// A match: the rule and, for prefix rules, where the suffix starts in the key.
struct Hit {
    rule: u32,
    suffix_at: Option<usize>,
    groups: Vec<Option<(usize, usize)>>,
}

impl Hit {
    fn of(rule: u32) -> Hit {
        Hit {
            rule,
            suffix_at: None,
            groups: Vec::new(),
        }
    }
}

impl Layer {
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
            trace
                .borrow_mut()
                .push((req.trace_base.get() + index, held));
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

    /// The lower-cased key, computed once when a tier of `tier`'s kind needs it.
    fn want_lc(&self, tier: u32, req: &mut Prepared<'_>) {
        if self.tiers[tier as usize].has_ci && req.key_lc.is_none() {
            req.key_lc = Some(match &req.key {
                Cow::Borrowed(k) => lower_key(k),
                Cow::Owned(k) => Cow::Owned(lower_key(k).into_owned()),
            });
        }
    }

    /// The first exact rule of `tier` that answers.
    fn exact_in(&self, tier: u32, apex_mode: bool, req: &Prepared<'_>) -> Option<u32> {
        let t = &self.tiers[tier as usize];
        if !t.has_exact {
            return None;
        }
        let a = self.chain(&self.exact_index, tier, false, &req.key);
        let b = match (t.has_ci, req.key_lc.as_deref()) {
            (true, Some(lc)) => self.chain(&self.exact_index, tier, true, lc),
            _ => NONE,
        };
        self.first_of(a, b, req, apex_mode)
    }

    /// The first prefix rule of `tier` with the key cut at `end` that answers.
    fn prefix_at(&self, tier: u32, apex_mode: bool, req: &Prepared<'_>, end: usize) -> Option<u32> {
        let t = &self.tiers[tier as usize];
        if !t.has_prefix || end > t.max_prefix as usize {
            return None;
        }
        let a = self.chain(&self.prefix_index, tier, false, &req.key[..end]);
        let b = match (t.has_ci, req.key_lc.as_deref()) {
            (true, Some(lc)) => self.chain(&self.prefix_index, tier, true, &lc[..end]),
            _ => NONE,
        };
        self.first_of(a, b, req, apex_mode)
    }

    /// The first regex rule of `tier` (file order) that matches and answers.
    fn regex_in(
        &self,
        tier: u32,
        apex_mode: bool,
        req: &Prepared<'_>,
        scratch: &mut Vec<u32>,
    ) -> Option<Hit> {
        let rt = self.tiers[tier as usize].regex.as_ref()?;
        let key: &str = &req.key;
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
                    return Some(Hit {
                        groups,
                        ..Hit::of(idx)
                    });
                }
            } else if matched || run(re, key.as_bytes(), None) {
                return Some(Hit::of(idx));
            }
        }
        None
    }

    fn match_tier(
        &self,
        tier: u32,
        apex_mode: bool,
        req: &mut Prepared<'_>,
        scratch: &mut Vec<u32>,
    ) -> Option<Hit> {
        self.want_lc(tier, req);
        let req = &*req;
        if let Some(r) = self.exact_in(tier, apex_mode, req) {
            return Some(Hit::of(r));
        }
        let t = &self.tiers[tier as usize];
        if t.has_prefix {
            for end in cuts(&req.key, t.max_prefix as usize) {
                if let Some(r) = self.prefix_at(tier, apex_mode, req, end) {
                    return Some(Hit {
                        suffix_at: Some(end),
                        ..Hit::of(r)
                    });
                }
            }
        }
        self.regex_in(tier, apex_mode, req, scratch)
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

    fn render<'r>(
        &'r self,
        hit: Hit,
        p: &Prepared<'_>,
        req: &RequestView<'_>,
        at: Base,
    ) -> Decision<'r> {
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
        let rule = self.rule_at(hit.rule, at);
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
}

/// The ends of the cuts of `key` a prefix lookup probes, from the longest:
/// the whole key, then at each `/` from the end, down to the empty key;
/// none longer than `max`.
fn cuts(key: &str, max: usize) -> impl Iterator<Item = usize> + '_ {
    let bytes = key.as_bytes();
    let mut end = Some(bytes.len());
    std::iter::from_fn(move || loop {
        let e = end?;
        end = (e > 0).then(|| bytes[..e].iter().rposition(|b| *b == b'/').unwrap_or(0));
        if e <= max {
            return Some(e);
        }
    })
}

impl RuleSet {
    /// The precedence steps of the layers: the host tiers in order and, in
    /// each, exact, the prefix cuts, regex; at each step the layers in file
    /// order. The first rule found, and its layer.
    fn lookup(&self, req: &mut Prepared<'_>) -> Option<(usize, Hit)> {
        if let [only] = self.layers.as_slice() {
            req.trace_base.set(only.at.rules);
            return only.layer.lookup(req).map(|h| (0, h));
        }
        let mut scratch = Vec::new();
        let mut tiers: Vec<(usize, u32)> = Vec::with_capacity(self.layers.len());
        let find = |tiers: &mut Vec<(usize, u32)>, pick: &dyn Fn(&Layer) -> Option<u32>| {
            tiers.clear();
            for (i, p) in self.layers.iter().enumerate() {
                if let Some(t) = pick(&p.layer) {
                    tiers.push((i, t));
                }
            }
        };
        if let Some(host) = req.host.clone() {
            let host: &str = &host;
            find(&mut tiers, &|l| l.exact_hosts.get(host).copied());
            if let Some(h) = self.match_step(&tiers, false, req, &mut scratch) {
                return Some(h);
            }
            if self.layers.iter().any(|p| !p.layer.wild_hosts.is_empty()) {
                find(&mut tiers, &|l| l.wild_hosts.get(host).copied());
                if let Some(h) = self.match_step(&tiers, true, req, &mut scratch) {
                    return Some(h);
                }
                let mut rest = host;
                while let Some(i) = rest.find('.') {
                    rest = &rest[i + 1..];
                    find(&mut tiers, &|l| l.wild_hosts.get(rest).copied());
                    if let Some(h) = self.match_step(&tiers, false, req, &mut scratch) {
                        return Some(h);
                    }
                }
            }
        }
        find(&mut tiers, &|_| Some(0));
        self.match_step(&tiers, false, req, &mut scratch)
    }

    /// One host step over the layers that have it (`tiers`: layer, tier).
    fn match_step(
        &self,
        tiers: &[(usize, u32)],
        apex_mode: bool,
        req: &mut Prepared<'_>,
        scratch: &mut Vec<u32>,
    ) -> Option<(usize, Hit)> {
        for &(i, t) in tiers {
            self.layers[i].layer.want_lc(t, req);
        }
        let req = &*req;
        let enter = |i: usize| {
            let p = &self.layers[i];
            req.trace_base.set(p.at.rules);
            &p.layer
        };
        for &(i, t) in tiers {
            if let Some(r) = enter(i).exact_in(t, apex_mode, req) {
                return Some((i, Hit::of(r)));
            }
        }
        let tier = |i: usize, t: u32| &self.layers[i].layer.tiers[t as usize];
        let max = tiers
            .iter()
            .filter(|&&(i, t)| tier(i, t).has_prefix)
            .map(|&(i, t)| tier(i, t).max_prefix as usize)
            .max();
        if let Some(max) = max {
            for end in cuts(&req.key, max) {
                for &(i, t) in tiers {
                    if let Some(r) = enter(i).prefix_at(t, apex_mode, req, end) {
                        return Some((
                            i,
                            Hit {
                                suffix_at: Some(end),
                                ..Hit::of(r)
                            },
                        ));
                    }
                }
            }
        }
        for &(i, t) in tiers {
            if let Some(h) = enter(i).regex_in(t, apex_mode, req, scratch) {
                return Some((i, h));
            }
        }
        None
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
            .map(|(index, held)| (self.rule(index), held))
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
            trace_base: Cell::new(0),
        };
        // `key` borrows from `path`, which lives in `prepared`: compute it owned
        // only when the path needs rewriting.
        let key = match &prepared.path {
            Cow::Borrowed(p) => path_key(p),
            Cow::Owned(p) => Cow::Owned(path_key(p).into_owned()),
        };
        prepared.key = key;
        let Some((i, hit)) = self.lookup(&mut prepared) else {
            return Decision::NoMatch;
        };
        let p = &self.layers[i];
        match p.layer.render(hit, &prepared, req, p.at) {
            // A kept layer knows its pools by name: the set's are current.
            Decision::Pool(mut d) => {
                if let Some(fresh) = self.pools.iter().find(|x| x.name == d.pool.name) {
                    d.pool = fresh;
                }
                Decision::Pool(d)
            }
            d => d,
        }
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
            trace_base: Cell::new(0),
        };
        self.lookup(&mut p)
            .map(|(i, h)| self.layers[i].at.rules + h.rule)
    }
}

fn bad_host(e: HostError) -> Decision<'static> {
    Decision::BadRequest(BadRequest {
        status: 400,
        reason: e.to_string(),
    })
}
