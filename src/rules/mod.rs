//! The compiled rule set and [`RuleSet::decide`].
//!
//! Compilation turns a checked [`Config`] (and the rows of its bulk lists) into
//! one immutable [`RuleSet`]:
//!
//! * **Host tiers.** Exact hosts and wildcard suffixes map to a tier number in
//!   hash maps; tier 0 holds the rules without a host. A lookup visits the exact
//!   tier, then the wildcard tiers from the longest suffix to the shortest, then
//!   tier 0: a handful of hash probes, whatever the number of rules.
//! * **Exact and prefix paths.** One hash table per kind, keyed by
//!   `(tier, case flag, path key)`, holding the first rule of a chain of rules
//!   with that key in file order (they differ by their conditions). A prefix
//!   lookup probes the key cut at each `/` from the longest to the shortest. The
//!   keys live in one string arena, so a million rules cost one allocation
//!   each for the arena and the table, not several per rule.
//! * **Regex rules** go through [`RegexTier`]: one Aho-Corasick pass selects
//!   the candidates, which run in file order.
//!
//! [`RuleSet::decide`] is pure: a [`RequestView`] in, a [`Decision`] out, with
//! no I/O and no clock of its own. `explain`, the tests, the benchmarks and the
//! proxy call the same function.

pub mod lint;

use crate::config::list::{self, ListRow};
use crate::config::{
    Config, Defaults, HostPattern, ListMetrics, PathKind, QueryMode, RedirectRule, Scheme,
};
use crate::location::{self, NoGroups, Piece, Target, Vars};
use crate::matcher::host::{normalize_host, HostError};
use crate::matcher::path::{key as path_key, key_offset_to_path, lower_key, remove_dot_segments};
use crate::matcher::regex_tier::{run, RegexTier, RegexTierBuilder};
use crate::problem::Problem;
use hashbrown::HashTable;
use std::borrow::Cow;
use std::collections::HashMap;

/// Hash map with the fast (non-SipHash) hasher the indexes use.
type FastMap<K, V> = hashbrown::HashMap<K, V, hashbrown::DefaultHashBuilder>;
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;

const NONE: u32 = u32::MAX;
/// Longest path (as received, without the query) that is served: longer is 414.
pub const MAX_PATH: usize = 8192;

// Rule flags.
const QUERY_PRESERVE: u16 = 1;
const KEEP_SUFFIX: u16 = 1 << 1;
const PRESERVE_METHOD: u16 = 1 << 2;
const CASE_INSENSITIVE: u16 = 1 << 3;
const ABSOLUTE: u16 = 1 << 4;
const POOL: u16 = 1 << 5;
const TEMPLATE: u16 = 1 << 6;
const TIMED: u16 = 1 << 7;
const APEX_OK: u16 = 1 << 8;
const NEEDS_GROUPS: u16 = 1 << 9;

/// A range of the string arena.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Span {
    off: u32,
    len: u32,
}

/// One compiled rule: 56 bytes, strings in the arena.
#[derive(Debug, Clone, Copy)]
struct Rule {
    /// Path key (exact/prefix), lower-cased for case-insensitive rules.
    key: Span,
    /// Literal target (encoded), or the pool name for pool rules.
    target: Span,
    /// List rows: the source URL as written.
    source: Span,
    tier: u32,
    /// Next rule with the same tier and key, in file order.
    next: u32,
    label: u32,
    line: u32,
    /// Index into `extras`, or NONE.
    extra: u32,
    /// Offsets of `?` and `#` in the literal target (u16::MAX: none).
    q_at: u16,
    f_at: u16,
    status: u16,
    methods: u16,
    flags: u16,
    kind: u8,
    /// 0 any, 1 http, 2 https.
    scheme: u8,
}

/// What only `[[redirect]]` rules carry.
#[derive(Debug)]
struct Extra {
    template: Option<Target>,
    active_from: i64,
    active_until: i64,
    cache_control: Option<Box<str>>,
    retry_after: Option<u32>,
    headers: Box<[(Box<str>, Box<str>)]>,
    /// Regex rules: local index in their tier's regex set.
    regex_local: u32,
    pool: u32,
}

/// Who a rule belongs to: a `[[redirect]]` (its id) or a `[[list]]`.
#[derive(Debug)]
struct Label {
    id: Box<str>,
    file: Arc<str>,
    /// Column of a `[[redirect]]` table (0 for a list: its rows have none).
    column: u32,
    list: bool,
    metrics_source: bool,
}

#[derive(Default)]
struct Tier {
    has_ci: bool,
    /// Longest prefix key in the tier: shorter cuts only are probed.
    max_prefix: u32,
    has_exact: bool,
    has_prefix: bool,
    regex: Option<Box<RegexTier>>,
}

/// A pool as the rule set knows it (selection comes with the proxy).
#[derive(Debug, Clone)]
pub struct PoolInfo {
    pub name: String,
    /// `(base URL normalised, weight, URL as configured)`.
    pub targets: Vec<(String, u32, String)>,
}

/// Counts of loaded rules by kind (`pingora_redirect_rules{kind}`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuleCounts {
    pub exact: usize,
    pub prefix: usize,
    pub regex: usize,
}

impl RuleCounts {
    pub fn total(&self) -> usize {
        self.exact + self.prefix + self.regex
    }
}

/// The immutable, compiled rule set.
pub struct RuleSet {
    rules: Vec<Rule>,
    arena: String,
    labels: Vec<Label>,
    extras: Vec<Extra>,
    tiers: Vec<Tier>,
    exact_hosts: FastMap<Box<str>, u32>,
    wild_hosts: FastMap<Box<str>, u32>,
    exact_index: HashTable<u32>,
    prefix_index: HashTable<u32>,
    hasher: hashbrown::DefaultHashBuilder,
    defaults: Defaults,
    pools: Vec<PoolInfo>,
    has_upstream: bool,
    counts: RuleCounts,
}

/// The request as `decide` sees it: no Pingora types.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    pub method: &'a str,
    pub scheme: Scheme,
    /// The raw authority / Host value, if the request has one.
    pub host: Option<&'a str>,
    /// The raw path, without the query.
    pub path: &'a [u8],
    /// The raw query, without `?` (`None` when there is no `?`).
    pub query: Option<&'a [u8]>,
    pub client: Option<IpAddr>,
    /// Unix seconds, for time windows.
    pub now: i64,
}

/// A rule, as seen from outside: its id, place and metrics label.
#[derive(Clone, Copy)]
pub struct RuleRef<'r> {
    set: &'r RuleSet,
    index: u32,
}

impl std::fmt::Debug for RuleRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleRef")
            .field("id", &self.id())
            .field("line", &self.line())
            .finish()
    }
}

impl<'r> RuleRef<'r> {
    fn rule(&self) -> &'r Rule {
        &self.set.rules[self.index as usize]
    }
    /// Position of the rule in the set (file order).
    pub fn index(&self) -> u32 {
        self.index
    }
    /// The `[[redirect]]` id or the list id.
    pub fn id(&self) -> &'r str {
        &self.set.labels[self.rule().label as usize].id
    }
    /// For a list row: the source URL as written.
    pub fn source(&self) -> Option<&'r str> {
        let r = self.rule();
        self.set.labels[r.label as usize]
            .list
            .then(|| self.set.span(r.source))
    }
    /// The file the rule was written in (the CSV file for list rows).
    pub fn file(&self) -> &'r str {
        &self.set.labels[self.rule().label as usize].file
    }
    pub fn line(&self) -> u32 {
        self.rule().line
    }
    /// The column of a `[[redirect]]` rule's table; `None` for a list row.
    pub fn column(&self) -> Option<u32> {
        let c = self.set.labels[self.rule().label as usize].column;
        (c > 0).then_some(c)
    }
    pub fn kind(&self) -> PathKind {
        kind_of(self.rule().kind)
    }
    /// The metrics label: the rule id, the list id, or `list:source` for
    /// lists with `metrics = "source"`.
    pub fn metric_label(&self) -> Cow<'r, str> {
        let l = &self.set.labels[self.rule().label as usize];
        if l.list && l.metrics_source {
            Cow::Owned(format!("{}:{}", l.id, self.set.span(self.rule().source)))
        } else {
            Cow::Borrowed(&l.id)
        }
    }
    /// Index of the rule's label (one per `[[redirect]]` or `[[list]]`), for
    /// per-label caches such as metric handles.
    pub fn label_index(&self) -> u32 {
        self.rule().label
    }
    /// Whether metrics for this rule are per source URL.
    pub fn metrics_per_source(&self) -> bool {
        self.set.labels[self.rule().label as usize].metrics_source
    }
    /// `active_until`, if the rule has one.
    pub fn active_until(&self) -> Option<i64> {
        let r = self.rule();
        (r.flags & TIMED != 0)
            .then(|| self.set.extras[r.extra as usize].active_until)
            .filter(|t| *t != i64::MAX)
    }
    /// The configured status (before any method-preserving upgrade).
    pub fn status(&self) -> u16 {
        self.rule().status
    }
    /// Whether a 301/302 of this rule becomes 308/307 for methods other
    /// than GET and HEAD.
    pub fn preserves_method(&self) -> bool {
        self.rule().flags & PRESERVE_METHOD != 0
    }
    /// `file:line` of the rule.
    pub fn place(&self) -> String {
        format!("{}:{}", self.file(), self.line())
    }
}

fn kind_of(k: u8) -> PathKind {
    match k {
        0 => PathKind::Exact,
        1 => PathKind::Prefix,
        _ => PathKind::Regex,
    }
}

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
    method: u16,
    scheme: u8,
    /// None: ignore time windows (lint).
    now: Option<i64>,
}

/// A match: the rule and, for prefix rules, where the suffix starts in the key.
struct Hit {
    rule: u32,
    suffix_at: Option<usize>,
    groups: Vec<Option<(usize, usize)>>,
}

fn scheme_code(s: Scheme) -> u8 {
    match s {
        Scheme::Http => 1,
        Scheme::Https => 2,
    }
}

impl RuleSet {
    fn span(&self, s: Span) -> &str {
        &self.arena[s.off as usize..(s.off + s.len) as usize]
    }

    /// Number of rules by kind.
    pub fn counts(&self) -> RuleCounts {
        self.counts
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rule at `index` (file order).
    pub fn rule(&self, index: u32) -> RuleRef<'_> {
        RuleRef { set: self, index }
    }

    /// Whether requests no rule answers are proxied (there is an `[upstream]`).
    pub fn has_upstream(&self) -> bool {
        self.has_upstream
    }

    /// The `[defaults]` in force.
    pub fn defaults(&self) -> &Defaults {
        &self.defaults
    }

    /// The pools, by index.
    pub fn pools(&self) -> &[PoolInfo] {
        &self.pools
    }

    /// Number of distinct labels (rule and list ids).
    pub fn label_count(&self) -> usize {
        self.labels.len()
    }

    fn hash(&self, tier: u32, ci: bool, key: &str) -> u64 {
        let mut h = self.hasher.build_hasher();
        (tier << 1 | ci as u32).hash(&mut h);
        key.hash(&mut h);
        h.finish()
    }

    fn chain(&self, table: &HashTable<u32>, tier: u32, ci: bool, key: &str) -> u32 {
        let h = self.hash(tier, ci, key);
        table
            .find(h, |&i| {
                let r = &self.rules[i as usize];
                r.tier == tier && (r.flags & CASE_INSENSITIVE != 0) == ci && self.span(r.key) == key
            })
            .copied()
            .unwrap_or(NONE)
    }

    fn holds(&self, r: &Rule, req: &Prepared<'_>, apex_mode: bool) -> bool {
        if r.methods != 0 && r.methods & req.method == 0 {
            return false;
        }
        if r.scheme != 0 && r.scheme != req.scheme {
            return false;
        }
        if apex_mode && r.flags & APEX_OK == 0 {
            return false;
        }
        if r.flags & TIMED != 0 {
            if let Some(now) = req.now {
                let e = &self.extras[r.extra as usize];
                if now < e.active_from || now >= e.active_until {
                    return false;
                }
            }
        }
        true
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
            let r = &self.rules[i as usize];
            *take = r.next;
            if self.holds(r, req, apex_mode) {
                return Some(i);
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
        // Regex, in file order among the candidates.
        if let Some(rt) = &t.regex {
            rt.candidates(key, scratch);
            for &local in scratch.iter() {
                let idx = rt.rule(local);
                let r = &self.rules[idx as usize];
                if !self.holds(r, req, apex_mode) {
                    continue;
                }
                let re = rt.regex(local);
                if r.flags & NEEDS_GROUPS != 0 {
                    let mut groups = Vec::new();
                    if run(re, key.as_bytes(), Some(&mut groups)) {
                        return Some(Hit { groups, ..hit(idx) });
                    }
                } else if run(re, key.as_bytes(), None) {
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

    /// Decides what to do with one request (SPEC §4, §6).
    pub fn decide<'r>(&'r self, req: &RequestView<'_>) -> Decision<'r> {
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
            method: crate::config::methods::bit(req.method).unwrap_or(0),
            scheme: scheme_code(req.scheme),
            now: Some(req.now),
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
        let mut location = String::with_capacity(r.target.len as usize + path.len() + 8);
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
    fn follow(
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
            method: crate::config::methods::bit(method).unwrap_or(0),
            scheme: scheme.map_or(0, scheme_code),
            now: None,
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

/// A configuration and its compiled rule set, with every problem found.
pub struct Loaded {
    pub config: Config,
    /// `None` when the configuration has errors.
    pub rules: Option<RuleSet>,
    pub problems: Vec<Problem>,
}

impl Loaded {
    pub fn errors(&self) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(|p| p.is_error())
    }
    pub fn warnings(&self) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(|p| !p.is_error())
    }
    pub fn ok(&self) -> bool {
        self.rules.is_some()
    }
}

/// Reads, checks, compiles and lints the configuration at `path` and every
/// list it names. `now` (Unix seconds) is used for the `expired` warning.
///
/// Every phase runs whatever the one before it found, so one run reports
/// every problem: the configuration reader keeps what it could read and
/// drops what it reported (a rule with a bad key, an unknown pool…), the
/// compiler compiles the rest and reads every list, and the lint reads the
/// rules that compiled. Only a TOML syntax error leaves nothing to go on.
///
/// `Err` is an I/O problem with the configuration file itself.
pub fn load(path: &std::path::Path, now: i64) -> Result<Loaded, Problem> {
    let (config, mut problems) = crate::config::load_file(path)?;
    let (set, more) = compile(&config);
    problems.extend(more);
    problems.extend(lint::lint(&set, now));
    let ok = !problems.iter().any(Problem::is_error);
    Ok(Loaded {
        config,
        rules: ok.then_some(set),
        problems,
    })
}

/// One rule to add, from a `[[redirect]]` or a list row.
struct NewRule<'a> {
    label: u32,
    line: u32,
    column: u32,
    source: &'a str,
    host: &'a HostPattern,
    kind: PathKind,
    path: &'a str,
    to: Option<&'a str>,
    pool: Option<&'a str>,
    status: u16,
    query: QueryMode,
    keep_suffix: bool,
    /// List rows: the target is a literal URL (no variables).
    literal_target: bool,
    preserve_method: bool,
    methods: u16,
    scheme: Option<Scheme>,
    case_insensitive: bool,
    active_from: Option<i64>,
    active_until: Option<i64>,
    cache_control: Option<&'a str>,
    retry_after: Option<u32>,
    headers: &'a [(String, String)],
    /// Rule id for problems (the list id for rows).
    id: &'a str,
    file: &'a str,
}

/// What makes two regex rules duplicates: tier, pattern, flags, scheme,
/// methods and time window.
type RegexSignature = (u32, String, u16, u8, u16, i64, i64);

struct Compiler {
    set: RuleSet,
    problems: Vec<Problem>,
    regex: Vec<Option<RegexTierBuilder>>,
    regex_ci: Vec<bool>,
    regex_seen: HashMap<RegexSignature, u32>,
    /// (tier, pattern, case flag) → the first such regex rule without conditions.
    regex_unconditional: HashMap<(u32, String, u16), u32>,
    shadow_reports: usize,
    shadow_more: usize,
}

/// Most `shadowed` warnings reported one by one; the rest are counted.
const MAX_REPORTS: usize = 1000;

/// Compiles a checked configuration, reading its lists.
pub fn compile(cfg: &Config) -> (RuleSet, Vec<Problem>) {
    let mut c = Compiler {
        set: RuleSet {
            rules: Vec::new(),
            arena: String::new(),
            labels: Vec::new(),
            extras: Vec::new(),
            tiers: vec![Tier::default()],
            exact_hosts: FastMap::default(),
            wild_hosts: FastMap::default(),
            exact_index: HashTable::new(),
            prefix_index: HashTable::new(),
            hasher: hashbrown::DefaultHashBuilder::default(),
            defaults: cfg.defaults.clone(),
            pools: cfg
                .pools
                .values()
                .map(|p| PoolInfo {
                    name: p.name.clone(),
                    targets: p
                        .targets
                        .iter()
                        .map(|t| (location::pool_base(&t.url), t.weight, t.url.clone()))
                        .collect(),
                })
                .collect(),
            has_upstream: cfg.upstream.is_some(),
            counts: RuleCounts::default(),
        },
        problems: Vec::new(),
        regex: vec![None],
        regex_ci: vec![false],
        regex_seen: HashMap::new(),
        regex_unconditional: HashMap::new(),
        shadow_reports: 0,
        shadow_more: 0,
    };
    enum Entry<'a> {
        R(&'a RedirectRule),
        L(&'a crate::config::ListSpec),
    }
    let mut entries: Vec<(usize, Entry<'_>)> = cfg
        .redirects
        .iter()
        .map(|r| (r.order, Entry::R(r)))
        .collect();
    entries.extend(cfg.lists.iter().map(|l| (l.order, Entry::L(l))));
    entries.sort_by_key(|(o, _)| *o);
    for (_, e) in entries {
        match e {
            Entry::R(r) => c.add_redirect(cfg, r),
            Entry::L(l) => c.add_list(cfg, l),
        }
    }
    if c.shadow_more > 0 {
        c.problems.push(Problem::warning(
            "shadowed",
            format!(
                "{} more rules are shadowed (only the first {MAX_REPORTS} are listed)",
                c.shadow_more
            ),
        ));
    }
    let mut set = c.set;
    for (i, b) in c.regex.into_iter().enumerate() {
        if let Some(b) = b {
            set.tiers[i].regex = Some(Box::new(b.build(c.regex_ci[i])));
        }
    }
    set.arena.shrink_to_fit();
    set.rules.shrink_to_fit();
    (set, c.problems)
}

impl Compiler {
    fn push_str(&mut self, s: &str) -> Span {
        let off = self.set.arena.len() as u32;
        self.set.arena.push_str(s);
        Span {
            off,
            len: s.len() as u32,
        }
    }

    /// Records a problem of the rule being added, at its place. Whatever is
    /// wrong with one row of a list is that row's `bad_list_row`, the message
    /// saying what (a bad target, a source path above the root, …); two rows
    /// that clash stay `duplicate_rule`.
    fn problem(&mut self, p: Problem, n: &NewRule<'_>) {
        let p = if n.literal_target && p.is_error() && p.code != "duplicate_rule" {
            let what = match p.code {
                "bad_target" => format!("target \"{}\"", n.to.unwrap_or_default()),
                _ => format!("source \"{}\"", n.source),
            };
            Problem::error("bad_list_row", format!("{what}: {}", p.message))
        } else {
            p
        };
        self.problems.push(
            p.at(n.file, n.line, (n.column > 0).then_some(n.column))
                .rule(Some(n.id)),
        );
    }

    fn label(
        &mut self,
        id: &str,
        file: &str,
        column: u32,
        list: bool,
        metrics_source: bool,
    ) -> u32 {
        self.set.labels.push(Label {
            id: id.into(),
            file: file.into(),
            column,
            list,
            metrics_source,
        });
        self.set.labels.len() as u32 - 1
    }

    fn tier(&mut self, host: &HostPattern) -> u32 {
        let (map, name) = match host {
            HostPattern::Any => return 0,
            HostPattern::Exact(h) => (&mut self.set.exact_hosts, h),
            HostPattern::Subdomains(s) | HostPattern::ApexAndSubdomains(s) => {
                (&mut self.set.wild_hosts, s)
            }
        };
        if let Some(&t) = map.get(name.as_str()) {
            return t;
        }
        let t = self.set.tiers.len() as u32;
        map.insert(name.as_str().into(), t);
        self.set.tiers.push(Tier::default());
        self.regex.push(None);
        self.regex_ci.push(false);
        t
    }

    /// Makes room for `n` more rules before a list is added.
    fn reserve(&mut self, n: usize) {
        let set = &mut self.set;
        set.rules.reserve(n);
        set.arena.reserve(n * 64);
        let rules = &set.rules;
        let arena = &set.arena;
        let hasher = &set.hasher;
        let rehash = |&i: &u32| {
            let r = &rules[i as usize];
            let mut h = hasher.build_hasher();
            (r.tier << 1 | u32::from(r.flags & CASE_INSENSITIVE != 0)).hash(&mut h);
            arena[r.key.off as usize..(r.key.off + r.key.len) as usize].hash(&mut h);
            h.finish()
        };
        set.exact_index.reserve(n, rehash);
        set.prefix_index.reserve(n / 4, rehash);
    }

    fn add_redirect(&mut self, cfg: &Config, r: &RedirectRule) {
        let file = r.place.file.to_string();
        let label = self.label(&r.id, &file, r.place.column, false, false);
        let d = &cfg.defaults;
        self.add(NewRule {
            label,
            line: r.place.line,
            column: r.place.column,
            source: "",
            host: &r.host,
            kind: r.kind,
            path: &r.path,
            to: r.to.as_deref(),
            pool: r.pool.as_deref(),
            status: r.status.unwrap_or(d.status),
            query: r.query.unwrap_or(d.query),
            keep_suffix: r.keep_suffix,
            literal_target: false,
            preserve_method: r.preserve_method.unwrap_or(d.preserve_method),
            methods: r.methods,
            scheme: r.scheme,
            case_insensitive: r.case_insensitive,
            active_from: r.active_from,
            active_until: r.active_until,
            cache_control: r.cache_control.as_deref(),
            retry_after: r.retry_after,
            headers: &r.headers,
            id: &r.id,
            file: &file,
        });
    }

    fn add_list(&mut self, cfg: &Config, l: &crate::config::ListSpec) {
        let file = l.file.display().to_string();
        let label = self.label(&l.id, &file, 0, true, l.metrics == ListMetrics::Source);
        let preserve_method = cfg.defaults.preserve_method;
        let reserve = std::cell::Cell::new(0usize);
        let result = list::read_with_hint(
            &l.file,
            &l.id,
            |n| reserve.set(n),
            |row: ListRow<'_>| {
                if reserve.get() > 0 {
                    self.reserve(reserve.replace(0));
                }
                self.add(NewRule {
                    label,
                    line: row.line,
                    column: 0,
                    source: row.source,
                    host: &row.host,
                    kind: if row.subpath {
                        PathKind::Prefix
                    } else {
                        PathKind::Exact
                    },
                    path: row.path,
                    to: Some(row.target),
                    pool: None,
                    status: row.status,
                    query: if row.preserve_query {
                        QueryMode::Preserve
                    } else {
                        QueryMode::Drop
                    },
                    keep_suffix: row.preserve_suffix,
                    literal_target: true,
                    preserve_method,
                    methods: 0,
                    scheme: row.scheme,
                    case_insensitive: false,
                    active_from: None,
                    active_until: None,
                    cache_control: None,
                    retry_after: None,
                    headers: &[],
                    id: &l.id,
                    file: &file,
                });
            },
        );
        if let Err(problems) = result {
            self.problems.extend(problems.into_iter().map(|p| {
                let p = if p.file.is_none() {
                    p.in_file(&file)
                } else {
                    p
                };
                p.rule(Some(&l.id))
            }));
        }
    }

    fn add(&mut self, n: NewRule<'_>) {
        let tier = self.tier(n.host);
        let mut flags = 0u16;
        if n.query == QueryMode::Preserve {
            flags |= QUERY_PRESERVE;
        }
        if n.keep_suffix && n.kind == PathKind::Prefix {
            flags |= KEEP_SUFFIX;
        }
        if n.preserve_method {
            flags |= PRESERVE_METHOD;
        }
        if n.case_insensitive {
            flags |= CASE_INSENSITIVE;
        }
        if matches!(n.host, HostPattern::ApexAndSubdomains(_)) {
            flags |= APEX_OK;
        }
        let timed = n.active_from.is_some() || n.active_until.is_some();
        if timed {
            flags |= TIMED;
        }
        let has_host = !matches!(n.host, HostPattern::Any);

        // The regex first: its groups decide which `${…}` are valid.
        let regex = if n.kind == PathKind::Regex {
            match crate::matcher::regex_tier::compile_regex(n.path, n.case_insensitive) {
                Ok(re) => Some(re),
                Err(e) => {
                    let msg = format!("the regex does not compile: {e}");
                    self.problem(Problem::error("bad_regex", msg), &n);
                    return;
                }
            }
        } else {
            None
        };

        // Target.
        let mut target = Span::default();
        let (mut q_at, mut f_at) = (u16::MAX, u16::MAX);
        let mut template = None;
        let mut pool_index = NONE;
        if let Some(pool) = n.pool {
            flags |= POOL | ABSOLUTE;
            pool_index = self
                .set
                .pools
                .iter()
                .position(|p| p.name == pool)
                .map_or(NONE, |i| i as u32);
            if pool_index == NONE {
                self.problem(
                    Problem::error("unknown_pool", format!("pool \"{pool}\" is not defined")),
                    &n,
                );
                return;
            }
            target = self.push_str(pool);
        } else if let Some(to) = n.to {
            if n.literal_target && to.contains("${") {
                self.problem(
                    Problem::error("bad_target", "a list target is a literal URL; variables such as `${path}` belong in `[[redirect]]` rules"),
                    &n,
                );
                return;
            }
            let groups: &dyn location::Groups = match &regex {
                Some(re) => re,
                None => &NoGroups,
            };
            match location::parse_target(to, has_host, groups) {
                Ok(t) => {
                    if t.absolute {
                        flags |= ABSOLUTE;
                    }
                    match t.literal() {
                        Some((p, q, f)) => {
                            let mut s = p;
                            if let Some(q) = q {
                                q_at = s.len() as u16;
                                s.push('?');
                                s.push_str(&q);
                            }
                            if let Some(f) = f {
                                f_at = s.len() as u16;
                                s.push('#');
                                s.push_str(&f);
                            }
                            target = self.push_str(&s);
                        }
                        None => {
                            flags |= TEMPLATE;
                            let uses_groups =
                                [Some(&t.path), t.query.as_ref(), t.fragment.as_ref()]
                                    .into_iter()
                                    .flatten()
                                    .flatten()
                                    .any(|p| matches!(p, Piece::Group(_)));
                            if uses_groups {
                                flags |= NEEDS_GROUPS;
                            }
                            template = Some(t);
                        }
                    }
                }
                Err(e) => {
                    self.problem(Problem::error(e.code, e.message), &n);
                    return;
                }
            }
        }

        // Path key.
        let mut key = Span::default();
        if n.kind != PathKind::Regex {
            let raw = n.path.as_bytes();
            let resolved = match remove_dot_segments(raw) {
                Ok(p) => p,
                Err(_) => {
                    self.problem(
                        Problem::error(
                            "bad_value",
                            format!("path \"{}\" climbs above the root with `..`", n.path),
                        ),
                        &n,
                    );
                    return;
                }
            };
            let k = path_key(&resolved);
            let mut k: &str = &k;
            if n.kind == PathKind::Prefix && k.len() > 1 {
                k = k.strip_suffix('/').unwrap_or(k);
            }
            if n.kind == PathKind::Prefix && k == "/" {
                k = "";
            }
            let k = if n.case_insensitive {
                lower_key(k)
            } else {
                Cow::Borrowed(k)
            };
            key = self.push_str(&k);
        }

        let needs_extra = template.is_some()
            || timed
            || n.cache_control.is_some()
            || n.retry_after.is_some()
            || !n.headers.is_empty()
            || regex.is_some()
            || pool_index != NONE;
        let index = self.set.rules.len() as u32;
        let extra = if needs_extra {
            self.set.extras.push(Extra {
                template,
                active_from: n.active_from.unwrap_or(i64::MIN),
                active_until: n.active_until.unwrap_or(i64::MAX),
                cache_control: n.cache_control.map(Into::into),
                retry_after: n.retry_after,
                headers: n
                    .headers
                    .iter()
                    .map(|(k, v)| (k.as_str().into(), v.as_str().into()))
                    .collect(),
                regex_local: NONE,
                pool: pool_index,
            });
            self.set.extras.len() as u32 - 1
        } else {
            NONE
        };
        let source = if n.source.is_empty() {
            Span::default()
        } else {
            self.push_str(n.source)
        };
        let rule = Rule {
            key,
            target,
            source,
            tier,
            next: NONE,
            label: n.label,
            line: n.line,
            extra,
            q_at,
            f_at,
            status: n.status,
            methods: n.methods,
            flags,
            kind: match n.kind {
                PathKind::Exact => 0,
                PathKind::Prefix => 1,
                PathKind::Regex => 2,
            },
            scheme: n.scheme.map_or(0, scheme_code),
        };

        match n.kind {
            PathKind::Regex => {
                let re = regex.expect("regex rules have a regex");
                let sig = (
                    tier,
                    n.path.to_string(),
                    flags & (CASE_INSENSITIVE | APEX_OK),
                    rule.scheme,
                    rule.methods,
                    n.active_from.unwrap_or(i64::MIN),
                    n.active_until.unwrap_or(i64::MAX),
                );
                if let Some(&first) = self.regex_seen.get(&sig) {
                    let place = self.set.rule(first).place();
                    self.problem(
                        Problem::error("duplicate_rule", format!("the same host, regex and conditions as the rule at {place}; remove one or add a condition")),
                        &n,
                    );
                    return;
                }
                let unconditional = rule.methods == 0 && rule.scheme == 0 && !timed;
                let plain = (tier, n.path.to_string(), flags & CASE_INSENSITIVE);
                match self.regex_unconditional.get(&plain) {
                    Some(&by) if self.set.rules[by as usize].flags & APEX_OK >= flags & APEX_OK => {
                        self.report_shadowed(by, &n)
                    }
                    _ if unconditional => {
                        self.regex_unconditional.insert(plain, index);
                    }
                    _ => {}
                }
                self.regex_seen.insert(sig, index);
                self.set.rules.push(rule);
                if n.case_insensitive {
                    self.regex_ci[tier as usize] = true;
                }
                let local = self.regex[tier as usize]
                    .get_or_insert_with(Default::default)
                    .add(index, re, n.path);
                if extra != NONE {
                    self.set.extras[extra as usize].regex_local = local;
                }
                self.set.counts.regex += 1;
            }
            PathKind::Exact | PathKind::Prefix => {
                if n.case_insensitive {
                    self.set.tiers[tier as usize].has_ci = true;
                }
                if !self.insert_indexed(rule, index, &n) {
                    return;
                }
                let t = &mut self.set.tiers[tier as usize];
                if n.kind == PathKind::Exact {
                    t.has_exact = true;
                    self.set.counts.exact += 1;
                } else {
                    t.has_prefix = true;
                    t.max_prefix = t.max_prefix.max(key.len);
                    self.set.counts.prefix += 1;
                }
            }
        }
    }

    fn report_shadowed(&mut self, by: u32, n: &NewRule<'_>) {
        if self.shadow_reports < MAX_REPORTS {
            self.shadow_reports += 1;
            let by = self.set.rule(by);
            let msg = format!(
                "can never match: rule \"{}\" at {} has the same host and path and no condition, so it always wins; move this rule before it or remove it",
                by.id(),
                by.place()
            );
            self.problem(Problem::warning("shadowed", msg), n);
        } else {
            self.shadow_more += 1;
        }
    }

    /// Adds an exact or prefix rule to its index, at the end of its chain.
    fn insert_indexed(&mut self, rule: Rule, index: u32, n: &NewRule<'_>) -> bool {
        let ci = rule.flags & CASE_INSENSITIVE != 0;
        let set = &self.set;
        let key = set.span(rule.key);
        let h = set.hash(rule.tier, ci, key);
        let table = if rule.kind == 0 {
            &set.exact_index
        } else {
            &set.prefix_index
        };
        let head = table
            .find(h, |&i| {
                let r = &set.rules[i as usize];
                r.tier == rule.tier
                    && (r.flags & CASE_INSENSITIVE != 0) == ci
                    && set.span(r.key) == key
            })
            .copied();
        let same_conditions = |a: &Rule, b: &Rule, set: &RuleSet| {
            let window = |r: &Rule| {
                if r.flags & TIMED != 0 {
                    let e = &set.extras[r.extra as usize];
                    (e.active_from, e.active_until)
                } else {
                    (i64::MIN, i64::MAX)
                }
            };
            a.methods == b.methods
                && a.scheme == b.scheme
                && (a.flags & APEX_OK) == (b.flags & APEX_OK)
                && window(a) == window(b)
        };
        let unconditional = |a: &Rule| a.methods == 0 && a.scheme == 0 && a.flags & TIMED == 0;
        match head {
            None => {
                self.set.rules.push(rule);
                let mut table = std::mem::take(if rule.kind == 0 {
                    &mut self.set.exact_index
                } else {
                    &mut self.set.prefix_index
                });
                {
                    let set = &self.set;
                    table.insert_unique(h, index, |&i| {
                        let r = &set.rules[i as usize];
                        set.hash(r.tier, r.flags & CASE_INSENSITIVE != 0, set.span(r.key))
                    });
                }
                if rule.kind == 0 {
                    self.set.exact_index = table;
                } else {
                    self.set.prefix_index = table;
                }
                true
            }
            Some(head) => {
                let mut cur = head;
                let mut shadow_by = None;
                loop {
                    let r = self.set.rules[cur as usize];
                    if same_conditions(&r, &rule, &self.set) {
                        let place = self.set.rule(cur).place();
                        let what = if n.source.is_empty() {
                            String::new()
                        } else {
                            format!(" (source {})", n.source)
                        };
                        self.problem(
                            Problem::error(
                                "duplicate_rule",
                                format!("the same host, {} path and conditions as the rule at {place}{what}; remove one or add a condition", kind_of(rule.kind).as_str()),
                            ),
                            n,
                        );
                        return false;
                    }
                    if shadow_by.is_none()
                        && unconditional(&r)
                        && (r.flags & APEX_OK) >= (rule.flags & APEX_OK)
                    {
                        shadow_by = Some(cur);
                    }
                    if r.next == NONE {
                        break;
                    }
                    cur = r.next;
                }
                self.set.rules.push(rule);
                self.set.rules[cur as usize].next = index;
                if let Some(by) = shadow_by {
                    self.report_shadowed(by, n);
                }
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn set(src: &str) -> RuleSet {
        let (cfg, p) = crate::config::parse(src, Path::new("t.toml"));
        assert!(p.iter().all(|p| !p.is_error()), "{p:?}");
        let (set, p) = compile(&cfg);
        assert!(p.iter().all(|p| !p.is_error()), "{p:?}");
        set
    }

    fn get<'a>(method: &'a str, host: &'a str, path: &'a str) -> RequestView<'a> {
        let (p, q) = match path.split_once('?') {
            Some((p, q)) => (p, Some(q.as_bytes())),
            None => (path, None),
        };
        RequestView {
            method,
            scheme: Scheme::Https,
            host: Some(host),
            path: p.as_bytes(),
            query: q,
            client: None,
            now: 1_800_000_000,
        }
    }

    #[test]
    fn rule_struct_stays_small() {
        assert!(
            std::mem::size_of::<Rule>() <= 56,
            "{}",
            std::mem::size_of::<Rule>()
        );
    }

    #[test]
    fn prefix_keeps_suffix_and_query() {
        let s = set("[[redirect]]\nid = \"docs\"\nprefix = \"/docs\"\nto = \"https://new.example/documentation\"\nstatus = 308\n");
        match s.decide(&get("GET", "a.example", "/docs/a/b?x=1")) {
            Decision::Redirect(r) => {
                assert_eq!(r.location, "https://new.example/documentation/a/b?x=1");
                assert_eq!(r.status, 308);
                assert_eq!(r.rule.id(), "docs");
                assert_eq!(r.cache_control, "max-age=86400");
            }
            d => panic!("{d:?}"),
        }
        assert!(matches!(
            s.decide(&get("GET", "a.example", "/docsx")),
            Decision::NoMatch
        ));
    }

    fn codes(src: &str) -> Vec<(&'static str, Option<String>)> {
        let (cfg, mut p) = crate::config::parse(src, Path::new("t.toml"));
        if !p.iter().any(|p| p.is_error()) {
            let (set, more) = compile(&cfg);
            p.extend(more);
            p.extend(lint::lint(&set, 0));
        }
        p.into_iter().map(|p| (p.code, p.rule)).collect()
    }

    #[test]
    fn loop_through_a_scheme_condition_is_found() {
        let p = codes(
            "[[redirect]]\nid = \"a\"\npath = \"/a\"\nto = \"/b\"\n\n[[redirect]]\nid = \"b\"\npath = \"/b\"\nscheme = \"http\"\nto = \"/a\"\n",
        );
        assert_eq!(p, vec![("loop", Some("a".to_string()))]);
    }

    #[test]
    fn http_to_https_pair_is_not_a_loop_but_a_bounce_back_is() {
        let ok = codes("[[redirect]]\nid = \"up\"\nhost = \"x.example\"\nscheme = \"http\"\nprefix = \"/\"\nto = \"https://x.example\"\n");
        assert!(ok.is_empty(), "{ok:?}");
        let bad = codes(
            "[[redirect]]\nid = \"up\"\nhost = \"x.example\"\nscheme = \"http\"\nprefix = \"/\"\nto = \"https://x.example\"\n\n[[redirect]]\nid = \"down\"\nhost = \"x.example\"\nscheme = \"https\"\nprefix = \"/\"\nto = \"http://x.example\"\n",
        );
        assert_eq!(bad, vec![("loop", Some("up".to_string()))]);
    }

    #[test]
    fn path_variable_does_not_add_the_suffix_twice() {
        let s = set(
            "[[redirect]]\nid = \"p\"\nprefix = \"/pv\"\nto = \"https://n.example/x${path}\"\n",
        );
        match s.decide(&get("GET", "a.example", "/pv/1")) {
            Decision::Redirect(r) => assert_eq!(r.location, "https://n.example/x/pv/1"),
            d => panic!("{d:?}"),
        }
        let p = codes("[[redirect]]\nid = \"p\"\nprefix = \"/pv\"\nkeep_suffix = true\nto = \"https://n.example/x${path}\"\n");
        assert_eq!(p, vec![("bad_value", Some("p".to_string()))]);
    }

    #[test]
    fn keep_suffix_on_a_pool_rule_is_refused() {
        let p = codes(
            "[pools.b]\ntargets = [\"https://b.example\"]\n\n[[redirect]]\nid = \"p\"\nprefix = \"/d\"\nkeep_suffix = false\npool = \"b\"\n",
        );
        assert_eq!(p, vec![("bad_value", Some("p".to_string()))]);
    }
}
