//! The layout of a compiled rule set and how it is read from outside.
//!
//! A [`RuleSet`] is made of [`Layer`]s. A layer holds its rules in one vector of 56-byte [`Rule`]s whose
//! strings live in one arena; what only some rules carry (a template, a
//! cache policy, headers, a regex's place) sits in `extras`, and each
//! distinct set of conditions once in `conditions`. Exact and prefix rules
//! are found through two hash tables keyed by (tier, case flag, path key)
//! holding the first rule of a chain of rules with that key; hosts map to
//! tiers. [`RuleRef`] is a rule seen from outside: its id, place, label and
//! what the lint needs to follow it.

use crate::config::{Conditions, Defaults, PathKind, Scheme};
use crate::location::{Piece, Target};
use crate::matcher::regex_tier::RegexTier;
use hashbrown::HashTable;
use std::borrow::Cow;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;

/// Hash map with the fast (non-SipHash) hasher the indexes use.
pub(super) type FastMap<K, V> = hashbrown::HashMap<K, V, hashbrown::DefaultHashBuilder>;

pub(super) const NONE: u32 = u32::MAX;

// Rule flags.
pub(super) const QUERY_PRESERVE: u16 = 1;
pub(super) const KEEP_SUFFIX: u16 = 1 << 1;
pub(super) const PRESERVE_METHOD: u16 = 1 << 2;
pub(super) const CASE_INSENSITIVE: u16 = 1 << 3;
pub(super) const ABSOLUTE: u16 = 1 << 4;
pub(super) const POOL: u16 = 1 << 5;
pub(super) const TEMPLATE: u16 = 1 << 6;
/// The first rule of a run of rules told apart by one header (`switch.rs`).
pub(super) const SWITCH: u16 = 1 << 7;
pub(super) const APEX_OK: u16 = 1 << 8;
pub(super) const NEEDS_GROUPS: u16 = 1 << 9;
/// Where the path kind sits in `flags` (0 exact, 1 prefix, 2 regex).
pub(super) const KIND_SHIFT: u16 = 10;

/// A range of the string arena.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Span {
    pub(super) off: u32,
    pub(super) len: u32,
}

/// One compiled rule: 56 bytes, strings in the arena, conditions by index.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rule {
    /// Path key (exact/prefix), lower-cased for case-insensitive rules.
    pub(super) key: Span,
    /// Literal target (encoded), or the pool name for pool rules.
    pub(super) target: Span,
    /// List rows: the source URL as written.
    pub(super) source: Span,
    pub(super) tier: u32,
    /// Next rule with the same tier and key, in file order.
    pub(super) next: u32,
    pub(super) label: u32,
    pub(super) line: u32,
    /// Index into `extras`, or NONE.
    pub(super) extra: u32,
    /// Index into `conditions`: 0 for a rule without conditions.
    pub(super) cond: u32,
    /// Offsets of `?` and `#` in the literal target (u16::MAX: none).
    pub(super) q_at: u16,
    pub(super) f_at: u16,
    pub(super) status: u16,
    /// The flags below, and the path kind in bits 10–11.
    pub(super) flags: u16,
}

/// What only `[[redirect]]` rules carry.
#[derive(Debug)]
pub(crate) struct Extra {
    pub(super) template: Option<Target>,
    pub(super) cache_control: Option<Box<str>>,
    pub(super) retry_after: Option<u32>,
    pub(super) headers: Box<[(Box<str>, Box<str>)]>,
    /// Regex rules: local index in their tier's regex set.
    pub(super) regex_local: u32,
    pub(super) pool: u32,
}

/// Who a rule belongs to: a `[[redirect]]` (its id) or a `[[list]]`.
#[derive(Debug)]
pub(crate) struct Label {
    pub(super) id: Box<str>,
    pub(super) file: Arc<str>,
    /// Column of a `[[redirect]]` table (0 for a list: its rows have none).
    pub(super) column: u32,
    pub(super) list: bool,
    pub(super) metrics_source: bool,
}

#[derive(Default)]
pub(crate) struct Tier {
    pub(super) has_ci: bool,
    /// Longest prefix key in the tier: shorter cuts only are probed.
    pub(super) max_prefix: u32,
    pub(super) has_exact: bool,
    pub(super) has_prefix: bool,
    pub(super) regex: Option<Box<RegexTier>>,
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

/// One compiled part of a rule set: a run of `[[redirect]]` tables that
/// follow each other in the file, or one `[[list]]` (see [`RuleSet`]).
pub(crate) struct Layer {
    pub(super) rules: Vec<Rule>,
    pub(super) arena: String,
    pub(super) labels: Vec<Label>,
    pub(super) extras: Vec<Extra>,
    /// Every distinct set of conditions, once; index 0 holds none.
    pub(super) conditions: Vec<Conditions>,
    pub(super) tiers: Vec<Tier>,
    pub(super) exact_hosts: FastMap<Box<str>, u32>,
    /// Per tier: its host (in the arena) and whether it is a wildcard tier.
    pub(super) tier_hosts: Vec<(Option<Span>, bool)>,
    pub(super) wild_hosts: FastMap<Box<str>, u32>,
    pub(super) exact_index: HashTable<u32>,
    pub(super) prefix_index: HashTable<u32>,
    pub(super) hasher: hashbrown::DefaultHashBuilder,
    pub(super) defaults: Defaults,
    pub(super) pools: Vec<PoolInfo>,
    pub(super) counts: RuleCounts,
    /// Runs of rules told apart by one header's value, and the first rule
    /// of each (flagged [`SWITCH`]) → its index in `switches`.
    pub(super) switches: Vec<super::switch::Switch>,
    pub(super) switch_at: FastMap<u32, u32>,
    /// What the layer was compiled from (`compile.rs`): a reload that finds
    /// the same key keeps the layer.
    pub(super) key: u64,
    /// The warnings its compile gave, said again when it is kept.
    pub(super) problems: Vec<crate::problem::Problem>,
}

/// Where a layer's rules and labels start in the whole set's numbering.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Base {
    pub(super) rules: u32,
    pub(super) labels: u32,
}

/// A rule, as seen from outside: its id, place and metrics label.
#[derive(Clone, Copy)]
pub struct RuleRef<'r> {
    pub(super) set: &'r Layer,
    /// The rule's index in its layer.
    pub(super) index: u32,
    pub(super) at: Base,
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
        self.at.rules + self.index
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
        kind_of(self.rule().flags)
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
        self.at.labels + self.rule().label
    }
    /// Whether metrics for this rule are per source URL.
    pub fn metrics_per_source(&self) -> bool {
        self.set.labels[self.rule().label as usize].metrics_source
    }
    /// The rule's conditions.
    pub fn conditions(&self) -> &'r Conditions {
        &self.set.conditions[self.rule().cond as usize]
    }
    /// `active_until`, if the rule has one.
    pub fn active_until(&self) -> Option<i64> {
        self.conditions().active_until
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
    /// The target as configured (percent-encoded), for a rule that is not
    /// a pool rule and has no `${…}` template.
    pub fn target(&self) -> Option<&'r str> {
        let r = self.rule();
        (r.flags & (POOL | TEMPLATE) == 0).then(|| self.set.span(r.target))
    }
    /// Whether it sends clients to a pool.
    pub fn is_pool(&self) -> bool {
        self.rule().flags & POOL != 0
    }
    /// The host a request it answers has: (`Some(host)` of its tier, or
    /// `None` for a rule without `host`; a stand-in subdomain for
    /// `*.example.com`, since any would do).
    pub(crate) fn source_host(&self) -> Option<Cow<'r, str>> {
        let r = self.rule();
        let t = r.tier as usize;
        let (host, wildcard) = self.set.tier_hosts.get(t).copied().unwrap_or((None, false));
        let host = host.map(|h| &self.set.arena[h.off as usize..(h.off + h.len) as usize])?;
        Some(match wildcard {
            false => Cow::Borrowed(host),
            true if r.flags & APEX_OK != 0 => Cow::Borrowed(host),
            true => Cow::Owned(format!("_.{host}")),
        })
    }
    /// The URL the rule sends its own source to, when it does not depend on
    /// the request (no `${path}`, no regex group, not a pool): scheme (for an
    /// absolute target), host, path. `source_host` fills `${host}`.
    pub(crate) fn fixed_target(&self) -> Option<(Option<Scheme>, Option<String>, Vec<u8>)> {
        let r = self.rule();
        if r.flags & POOL != 0 {
            return None;
        }
        let src_host = self.source_host();
        let text: String = if r.flags & TEMPLATE != 0 {
            let t = self.set.extras[r.extra as usize].template.as_ref()?;
            let mut s = String::new();
            for p in &t.path {
                match p {
                    Piece::Lit(l) => s.push_str(l),
                    Piece::Host => s.push_str(src_host.as_deref()?),
                    Piece::Path | Piece::Group(_) => return None,
                }
            }
            s
        } else {
            self.set.span(r.target).to_string()
        };
        let cut = |s: &str| s[..s.find(['?', '#']).unwrap_or(s.len())].to_string();
        if r.flags & ABSOLUTE == 0 {
            return Some((None, src_host.map(Cow::into_owned), cut(&text).into_bytes()));
        }
        let (scheme, rest) = if let Some(rest) = text.strip_prefix("https://") {
            (Scheme::Https, rest)
        } else {
            (Scheme::Http, text.strip_prefix("http://")?)
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let path = match cut(&rest[end..]) {
            p if p.is_empty() => "/".to_string(),
            p => p,
        };
        Some((
            Some(scheme),
            Some(rest[..end].to_string()),
            path.into_bytes(),
        ))
    }
}

pub(super) fn kind_of(flags: u16) -> PathKind {
    match flags >> KIND_SHIFT {
        0 => PathKind::Exact,
        1 => PathKind::Prefix,
        _ => PathKind::Regex,
    }
}

/// The kind bits of `flags` for a path kind.
pub(super) fn kind_bits(kind: PathKind) -> u16 {
    (match kind {
        PathKind::Exact => 0,
        PathKind::Prefix => 1,
        PathKind::Regex => 2,
    }) << KIND_SHIFT
}

impl Layer {
    pub(super) fn span(&self, s: Span) -> &str {
        &self.arena[s.off as usize..(s.off + s.len) as usize]
    }

    /// The rule at `index` in this layer, numbered from `at`.
    pub(super) fn rule_at(&self, index: u32, at: Base) -> RuleRef<'_> {
        RuleRef {
            set: self,
            index,
            at,
        }
    }

    pub(super) fn hash(&self, tier: u32, ci: bool, key: &str) -> u64 {
        let mut h = self.hasher.build_hasher();
        (tier << 1 | ci as u32).hash(&mut h);
        key.hash(&mut h);
        h.finish()
    }

    pub(super) fn chain(&self, table: &HashTable<u32>, tier: u32, ci: bool, key: &str) -> u32 {
        let h = self.hash(tier, ci, key);
        table
            .find(h, |&i| {
                let r = &self.rules[i as usize];
                r.tier == tier && (r.flags & CASE_INSENSITIVE != 0) == ci && self.span(r.key) == key
            })
            .copied()
            .unwrap_or(NONE)
    }
}

/// A layer in place: where its numbering starts.
#[derive(Clone)]
pub(super) struct Placed {
    pub(super) layer: Arc<Layer>,
    pub(super) at: Base,
}

/// The immutable, compiled rule set: its layers in file order.
///
/// Each list of at least `LAYER_BYTES` is a layer of its own, and so is
/// each run of `[[redirect]]` tables (with the smaller lists among them)
/// between those, so a reload that changes one of them compiles that one
/// alone and shares the others with the running set.
/// A lookup visits the host tiers and path kinds in precedence order and,
/// at each step, the layers in file order: the first rule found is the
/// first in the file of those of its precedence, as with one index.
pub struct RuleSet {
    pub(super) layers: Vec<Placed>,
    pub(super) defaults: Defaults,
    pub(super) pools: Vec<PoolInfo>,
    pub(super) has_upstream: bool,
    pub(super) counts: RuleCounts,
    pub(super) len: u32,
    pub(super) labels: u32,
    /// The problems found between two layers (`cross.rs`), by their keys.
    pub(super) cross: std::collections::HashMap<(u64, u64), Arc<Vec<crate::problem::Problem>>>,
    /// For every rule and scheme, the rule its target reaches (`lint.rs`):
    /// what the lint of the next reload starts from.
    pub(super) edges: std::sync::OnceLock<Arc<Vec<u32>>>,
    /// Until `edges` is recorded: the earlier set whose edges this one's
    /// loops were looked for from (`lint::loops_after`).
    pub(super) lint_base: std::sync::Mutex<Option<Arc<RuleSet>>>,
}

impl RuleSet {
    /// Number of rules by kind.
    pub fn counts(&self) -> RuleCounts {
        self.counts
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The index of the layer that holds rule `index`.
    pub(super) fn layer_of(&self, index: u32) -> usize {
        self.layers.partition_point(|p| p.at.rules <= index) - 1
    }

    /// The layer that holds rule `index`, and the index in it.
    pub(super) fn locate(&self, index: u32) -> (&Placed, u32) {
        let p = &self.layers[self.layer_of(index)];
        (p, index - p.at.rules)
    }

    /// The rule at `index` (file order).
    pub fn rule(&self, index: u32) -> RuleRef<'_> {
        let (p, local) = self.locate(index);
        p.layer.rule_at(local, p.at)
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
        self.labels as usize
    }

    /// Every rule, in file order.
    pub fn rules(&self) -> impl Iterator<Item = RuleRef<'_>> {
        self.layers
            .iter()
            .flat_map(|p| (0..p.layer.rules.len() as u32).map(move |i| p.layer.rule_at(i, p.at)))
    }

    /// How many layers there are, and how many of them (and of their rules)
    /// are shared with `old`.
    pub fn shared_with(&self, old: &RuleSet) -> (usize, usize, usize) {
        let kept: Vec<&Placed> = self
            .layers
            .iter()
            .filter(|p| old.layers.iter().any(|o| Arc::ptr_eq(&o.layer, &p.layer)))
            .collect();
        (
            self.layers.len(),
            kept.len(),
            kept.iter().map(|p| p.layer.rules.len()).sum(),
        )
    }
}
