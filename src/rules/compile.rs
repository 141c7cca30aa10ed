//! Compiling a configuration into a [`RuleSet`]: pure, from
//! [`Sources`] (the model and the bytes of its lists) to the set, with
//! every problem found on the way.
//!
//! Rules are added in file order, `[[redirect]]` tables and list rows alike.
//! `duplicate_rule` and `shadowed` are found here, where the chains of rules
//! that share a host tier and a path key are built: two rules are duplicates
//! when they also share their conditions (one index for equal conditions),
//! and an earlier rule without conditions shadows a later one.

use super::set::*;
use crate::config::list::{self, ListRow};
use crate::config::{
    Conditions, Config, HostPattern, ListMetrics, ListSpec, PathKind, QueryMode, RedirectRule,
    Scheme, Sources,
};
use crate::location::{self, NoGroups, Piece};
use crate::matcher::path::{key as path_key, lower_key, remove_dot_segments};
use crate::matcher::regex_tier::RegexTierBuilder;
use crate::problem::Problem;
use hashbrown::HashTable;
use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};

/// One rule to add, from a `[[redirect]]` or a list row.
pub(super) struct NewRule<'a> {
    pub(super) label: u32,
    pub(super) line: u32,
    pub(super) column: u32,
    pub(super) source: &'a str,
    pub(super) host: &'a HostPattern,
    pub(super) kind: PathKind,
    pub(super) path: &'a str,
    pub(super) to: Option<&'a str>,
    pub(super) pool: Option<&'a str>,
    pub(super) status: u16,
    pub(super) query: QueryMode,
    pub(super) keep_suffix: bool,
    /// List rows: the target is a literal URL (no variables).
    pub(super) literal_target: bool,
    pub(super) preserve_method: bool,
    pub(super) conditions: &'a Conditions,
    pub(super) case_insensitive: bool,
    pub(super) cache_control: Option<&'a str>,
    pub(super) retry_after: Option<u32>,
    pub(super) headers: &'a [(String, String)],
    /// Rule id for problems (the list id for rows).
    pub(super) id: &'a str,
    pub(super) file: &'a str,
}

/// What makes two regex rules duplicates: tier, pattern, flags and
/// conditions (by index).
type RegexSignature = (u32, String, u16, u32);

pub(super) struct Compiler {
    pub(super) set: Layer,
    pub(super) problems: Vec<Problem>,
    pub(super) regex: Vec<Option<RegexTierBuilder>>,
    pub(super) regex_seen: HashMap<RegexSignature, u32>,
    /// (tier, pattern, case flag) → the first such regex rule without conditions.
    pub(super) regex_unconditional: HashMap<(u32, String, u16), u32>,
    /// Each distinct set of conditions → its index in the set.
    pub(super) condition_index: HashMap<Conditions, u32>,
    pub(super) shadow_reports: usize,
    pub(super) shadow_more: usize,
}

/// Most `shadowed` warnings reported one by one; the rest are counted.
pub(super) const MAX_REPORTS: usize = 1000;

/// One entry of the file: a `[[redirect]]` table or a `[[list]]` with its
/// bytes.
#[derive(Clone, Copy)]
enum Entry<'a> {
    R(&'a RedirectRule),
    L(&'a ListSpec, &'a Result<Vec<u8>, Problem>),
}

/// What one layer is compiled from, and its key.
struct Part<'a> {
    entries: Vec<Entry<'a>>,
    key: u64,
}

fn hasher() -> &'static hashbrown::DefaultHashBuilder {
    static HASHER: std::sync::OnceLock<hashbrown::DefaultHashBuilder> = std::sync::OnceLock::new();
    HASHER.get_or_init(Default::default)
}

/// A list file of at least this many bytes (about 12,000 rows) is a layer
/// of its own; a smaller one is compiled with the `[[redirect]]` tables
/// around it, so that many small lists do not make many layers (a lookup
/// visits every layer).
pub(crate) const LAYER_BYTES: u64 = 1 << 20;

/// What identifies a list's bytes without them: their digest and length.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub(crate) struct ListBytes {
    pub(crate) digest: u64,
    pub(crate) len: u64,
}

/// The layers of a configuration, in file order: each list of at least
/// `layer_bytes` alone; the `[[redirect]]` tables and smaller lists
/// between them together. A layer's key digests all it is compiled from:
/// the tables' text with their places (which problems and `explain`
/// name), the small lists' entries and bytes (`lists`, one per list), the
/// names of the pools; for a list alone its id, file, `metrics` and bytes,
/// but not the place of its `[[list]]` table, so an edit above it keeps
/// it; for every layer the `[defaults]` its rules read (all of them for
/// tables; `preserve_method` and the two cache policies for list rows).
fn parts<'a>(sources: &'a Sources, lists: &[ListBytes], layer_bytes: u64) -> Vec<Part<'a>> {
    let cfg = &sources.config;
    let mut entries: Vec<(usize, Entry<'a>, ListBytes)> = cfg
        .redirects
        .iter()
        .map(|r| (r.order, Entry::R(r), ListBytes::default()))
        .collect();
    entries.extend(
        cfg.lists
            .iter()
            .zip(&sources.lists)
            .enumerate()
            .map(|(i, (l, data))| {
                let bytes = lists.get(i).copied().unwrap_or_default();
                (l.order, Entry::L(l, data), bytes)
            }),
    );
    entries.sort_by_key(|(o, _, _)| *o);
    let d = &cfg.defaults;
    let row_defaults = (
        d.preserve_method,
        &d.permanent_cache_control,
        &d.temporary_cache_control,
    );
    let all_defaults = format!("{d:?}");
    let pool_names: Vec<&String> = cfg.pools.keys().collect();
    let mut parts: Vec<Part<'a>> = Vec::new();
    let mut run: Vec<(Entry<'a>, ListBytes)> = Vec::new();
    let close_run = |run: &mut Vec<(Entry<'a>, ListBytes)>, parts: &mut Vec<Part<'a>>| {
        if run.is_empty() {
            return;
        }
        let text: Vec<String> = run
            .iter()
            .map(|(e, bytes)| match e {
                Entry::R(r) => format!(
                    "{:?}",
                    RedirectRule {
                        order: 0,
                        ..(*r).clone()
                    }
                ),
                Entry::L(l, _) => format!("list {:?} {:?} {:?} {bytes:?}", l.id, l.file, l.metrics),
            })
            .collect();
        let key = hasher().hash_one(("run", text, &all_defaults, &pool_names));
        parts.push(Part {
            entries: run.drain(..).map(|(e, _)| e).collect(),
            key,
        });
    };
    for (_, e, bytes) in entries {
        match e {
            Entry::L(l, _) if bytes.len >= layer_bytes => {
                close_run(&mut run, &mut parts);
                let key = hasher().hash_one((
                    "list",
                    &l.id,
                    &l.file,
                    format!("{:?}", l.metrics),
                    bytes,
                    row_defaults,
                ));
                parts.push(Part {
                    entries: vec![e],
                    key,
                });
            }
            _ => run.push((e, bytes)),
        }
    }
    close_run(&mut run, &mut parts);
    parts
}

/// The digest and length of each list's bytes in `sources`.
pub(super) fn list_bytes(sources: &Sources) -> Vec<ListBytes> {
    sources
        .lists
        .iter()
        .map(|l| match l {
            Ok(bytes) => ListBytes {
                digest: crate::load::list_digest(bytes),
                len: bytes.len() as u64,
            },
            Err(p) => ListBytes {
                digest: hasher().hash_one(p.to_string()),
                len: 0,
            },
        })
        .collect()
}

/// Compiles a configuration and its lists into a rule set, with every
/// problem found (rules that do not compile are left out). Pure: the lists
/// are in `sources` already.
pub fn compile(sources: &Sources) -> (RuleSet, Vec<Problem>) {
    compile_reusing(sources, &list_bytes(sources), None, LAYER_BYTES)
}

/// [`compile`], keeping every layer of `old` whose key is unchanged (and
/// the problems found between two kept layers): only what changed is
/// compiled. `lists` identifies each list's bytes
/// ([`crate::load::list_digest`] and length); a list whose layer is kept
/// need not have its bytes in `sources`. Lists of `layer_bytes` or more
/// are layers of their own ([`LAYER_BYTES`]).
pub(crate) fn compile_reusing(
    sources: &Sources,
    lists: &[ListBytes],
    old: Option<&RuleSet>,
    layer_bytes: u64,
) -> (RuleSet, Vec<Problem>) {
    let cfg = &sources.config;
    let pools: Vec<PoolInfo> = cfg
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
        .collect();
    let mut problems = Vec::new();
    let mut layers: Vec<Placed> = Vec::new();
    let mut at = Base::default();
    let mut counts = RuleCounts::default();
    for part in parts(sources, lists, layer_bytes) {
        let kept = old.and_then(|o| {
            o.layers
                .iter()
                .find(|p| p.layer.key == part.key)
                .map(|p| p.layer.clone())
        });
        let layer = match kept {
            Some(layer) => layer,
            None => std::sync::Arc::new(compile_layer(cfg, &pools, &part)),
        };
        problems.extend(layer.problems.iter().cloned());
        counts.exact += layer.counts.exact;
        counts.prefix += layer.counts.prefix;
        counts.regex += layer.counts.regex;
        let next = Base {
            rules: at.rules + layer.rules.len() as u32,
            labels: at.labels + layer.labels.len() as u32,
        };
        layers.push(Placed { layer, at });
        at = next;
    }
    let mut cross = HashMap::new();
    for (j, b) in layers.iter().enumerate() {
        for a in &layers[..j] {
            let key = (a.layer.key, b.layer.key);
            let found = old
                .and_then(|o| o.cross.get(&key))
                .cloned()
                .unwrap_or_else(|| std::sync::Arc::new(super::cross::cross(&a.layer, &b.layer)));
            problems.extend(found.iter().cloned());
            cross.insert(key, found);
        }
    }
    let set = RuleSet {
        layers,
        defaults: cfg.defaults.clone(),
        pools,
        has_upstream: cfg.upstream.is_some(),
        counts,
        len: at.rules,
        labels: at.labels,
        cross,
        edges: Default::default(),
        lint_base: Default::default(),
    };
    (set, problems)
}

/// The lists (indices in `sources.config.lists`) whose layer `old` does not
/// have: what [`compile_reusing`] needs the bytes of.
pub(crate) fn lists_to_compile(
    sources: &Sources,
    bytes: &[ListBytes],
    old: &RuleSet,
) -> Vec<usize> {
    let lists = &sources.config.lists;
    parts(sources, bytes, LAYER_BYTES)
        .into_iter()
        .filter(|part| !old.layers.iter().any(|p| p.layer.key == part.key))
        .flat_map(|part| part.entries)
        .filter_map(|e| match e {
            Entry::L(l, _) => lists.iter().position(|x| std::ptr::eq(x, l)),
            Entry::R(_) => None,
        })
        .collect()
}

/// Compiles one layer.
fn compile_layer(cfg: &Config, pools: &[PoolInfo], part: &Part<'_>) -> Layer {
    let redirects = part.entries.iter().any(|e| matches!(e, Entry::R(_)));
    let mut c = Compiler {
        set: Layer {
            rules: Vec::new(),
            arena: String::new(),
            labels: Vec::new(),
            extras: Vec::new(),
            conditions: vec![Conditions::default()],
            tiers: vec![Tier::default()],
            tier_hosts: vec![(None, false)],
            exact_hosts: FastMap::default(),
            wild_hosts: FastMap::default(),
            exact_index: HashTable::new(),
            prefix_index: HashTable::new(),
            hasher: hashbrown::DefaultHashBuilder::default(),
            defaults: cfg.defaults.clone(),
            // List rows are never pool rules.
            pools: if redirects {
                pools.to_vec()
            } else {
                Vec::new()
            },
            counts: RuleCounts::default(),
            switches: Vec::new(),
            switch_at: FastMap::default(),
            key: part.key,
            problems: Vec::new(),
        },
        problems: Vec::new(),
        regex: vec![None],
        regex_seen: HashMap::new(),
        regex_unconditional: HashMap::new(),
        condition_index: HashMap::from([(Conditions::default(), 0)]),
        shadow_reports: 0,
        shadow_more: 0,
    };
    for e in &part.entries {
        match *e {
            Entry::R(r) => c.add_redirect(cfg, r),
            Entry::L(l, data) => c.add_list(cfg, l, data),
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
    c.find_switches();
    let mut set = c.set;
    for (i, b) in c.regex.into_iter().enumerate() {
        if let Some(b) = b {
            set.tiers[i].regex = Some(Box::new(b.build()));
        }
    }
    set.arena.shrink_to_fit();
    set.rules.shrink_to_fit();
    set.problems = c.problems;
    set
}

impl Compiler {
    /// The index of `c` in the set's conditions, added when new.
    fn condition(&mut self, c: &Conditions) -> u32 {
        if let Some(&i) = self.condition_index.get(c) {
            return i;
        }
        let i = self.set.conditions.len() as u32;
        self.set.conditions.push(c.clone());
        self.condition_index.insert(c.clone(), i);
        i
    }

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
    pub(super) fn problem(&mut self, p: Problem, n: &NewRule<'_>) {
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
        let wildcard = !matches!(host, HostPattern::Exact(_));
        let at = self.push_str(name);
        self.set.tier_hosts.push((Some(at), wildcard));
        self.set.tiers.push(Tier::default());
        self.regex.push(None);
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
            conditions: &r.conditions,
            case_insensitive: r.case_insensitive,
            cache_control: r.cache_control.as_deref(),
            retry_after: r.retry_after,
            headers: &r.headers,
            id: &r.id,
            file: &file,
        });
    }

    fn add_list(&mut self, cfg: &Config, l: &ListSpec, data: &Result<Vec<u8>, Problem>) {
        let file = l.file.display().to_string();
        let label = self.label(&l.id, &file, 0, true, l.metrics == ListMetrics::Source);
        let data = match data {
            Ok(d) => d,
            Err(p) => {
                self.problems.push(p.clone());
                return;
            }
        };
        let preserve_method = cfg.defaults.preserve_method;
        // A row's only condition is its source URL's scheme.
        let by_scheme = [
            Conditions::default(),
            Conditions::scheme_only(Some(Scheme::Http)),
            Conditions::scheme_only(Some(Scheme::Https)),
        ];
        self.reserve(list::row_bound(data));
        let result = list::parse(data, &file, |row: ListRow<'_>| {
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
                conditions: &by_scheme[match row.scheme {
                    None => 0,
                    Some(Scheme::Http) => 1,
                    Some(Scheme::Https) => 2,
                }],
                case_insensitive: false,
                cache_control: None,
                retry_after: None,
                headers: &[],
                id: &l.id,
                file: &file,
            });
        });
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
        crate::pace::point();
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
        flags |= kind_bits(n.kind);
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

        // Path key (a regex rule keeps its pattern there, for `cross.rs`).
        let key;
        if n.kind == PathKind::Regex {
            key = self.push_str(n.path);
        } else {
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

        // A redirect that depends on the request beyond its URL must not be
        // reused for another client: it names what it varies on and is not
        // stored unless the rule says how (docs/configuration.md, "Conditions").
        let conditional = n.conditions.reads_request();
        let mut vary: Vec<&str> = n
            .conditions
            .headers
            .iter()
            .map(|(h, _)| h.as_str())
            .collect();
        if !n.conditions.cookies.is_empty() {
            vary.push("cookie");
        }
        let cache_control = match n.cache_control {
            None if conditional => Some("no-store"),
            c => c,
        };
        let needs_extra = template.is_some()
            || cache_control.is_some()
            || !vary.is_empty()
            || n.retry_after.is_some()
            || !n.headers.is_empty()
            || regex.is_some()
            || pool_index != NONE;
        let index = self.set.rules.len() as u32;
        let extra = if needs_extra {
            self.set.extras.push(Extra {
                template,
                cache_control: cache_control.map(Into::into),
                retry_after: n.retry_after,
                headers: n
                    .headers
                    .iter()
                    .map(|(k, v)| (k.as_str().into(), v.as_str().into()))
                    .chain((!vary.is_empty()).then(|| ("Vary".into(), vary.join(", ").into())))
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
        let cond = self.condition(n.conditions);
        let rule = Rule {
            key,
            target,
            source,
            tier,
            next: NONE,
            label: n.label,
            line: n.line,
            extra,
            cond,
            q_at,
            f_at,
            status: n.status,
            flags,
        };

        match n.kind {
            PathKind::Regex => {
                let re = regex.expect("regex rules have a regex");
                if !self.check_regex_chain(&rule, index, &n) {
                    return;
                }
                self.set.rules.push(rule);
                let local = self.regex[tier as usize]
                    .get_or_insert_with(Default::default)
                    .add(index, re, n.path, n.case_insensitive);
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
}
