//! All regex rules of one host tier, matched in one pass.
//!
//! The patterns of a tier are compiled together into one lazy DFA
//! (`regex-automata`'s `hybrid` engine, without capture groups, reporting
//! every pattern that matches). A lookup scans the path key once with it and
//! learns exactly which patterns match, whatever the patterns look like: ten
//! thousand that share a literal, or that have none, cost one scan. Only the
//! first matching pattern whose rule's conditions hold runs alone, and only
//! when its groups are needed for the Location. The DFA is built lazily, state
//! by state as keys need them, in a cache of bounded size per tier and
//! thread; docs/benchmarks.md gives the memory and the times.

use regex_automata::hybrid::dfa::{Cache, OverlappingState, DFA};
use regex_automata::meta::{self, Regex};
use regex_automata::nfa::thompson::{self, WhichCaptures};
use regex_automata::util::pool::Pool;
use regex_automata::util::syntax;
use regex_automata::{Input, MatchKind, PatternID};
use std::panic::{RefUnwindSafe, UnwindSafe};
use std::sync::Arc;

/// Compiles one rule's regex, as matched against a path key.
///
/// Keys are ASCII (every other byte is percent-encoded), so Unicode classes
/// would only add states: the ASCII classes match exactly the same keys. The
/// lazy DFA is off: each regex runs over one short key, where the one-pass DFA
/// or the backtracker win and a lazy DFA's cache would cost memory per rule.
pub fn compile_regex(pattern: &str, case_insensitive: bool) -> Result<Regex, String> {
    let syntax = syntax::Config::new()
        .unicode(false)
        .utf8(false)
        .case_insensitive(case_insensitive);
    // Parse first for the readable error (with its position) of regex-syntax.
    if let Err(e) = regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .case_insensitive(case_insensitive)
        .build()
        .parse(pattern)
    {
        let text = e.to_string();
        let last = text
            .lines()
            .rfind(|l| !l.trim().is_empty())
            .unwrap_or("invalid")
            .trim();
        return Err(last.trim_start_matches("error: ").to_string());
    }
    Regex::builder()
        .syntax(syntax)
        .configure(
            meta::Config::new()
                .hybrid(false)
                .dfa(false)
                .nfa_size_limit(Some(1 << 20)),
        )
        .build(pattern)
        .map_err(|e| e.to_string())
}

/// Runs `re` over `key`; with `groups`, fills the byte ranges of every group.
pub fn run(re: &Regex, key: &[u8], groups: Option<&mut Vec<Option<(usize, usize)>>>) -> bool {
    let Some(groups) = groups else {
        return re.is_match(key);
    };
    let n = re.group_info().slot_len();
    let mut buf = [None; 32];
    let mut heap;
    let slots: &mut [Option<regex_automata::util::primitives::NonMaxUsize>] = if n <= buf.len() {
        &mut buf[..n]
    } else {
        heap = vec![None; n];
        &mut heap
    };
    if re.search_slots(&Input::new(key), slots).is_none() {
        return false;
    }
    groups.clear();
    groups.extend(
        slots
            .chunks(2)
            .map(|p| match (p[0], p.get(1).copied().flatten()) {
                (Some(s), Some(e)) => Some((s.get(), e.get())),
                _ => None,
            }),
    );
    true
}

/// The index of group `name` (a number or a name) of `re`.
pub fn group_index(re: &Regex, name: &str) -> Option<usize> {
    let info = re.group_info();
    if let Ok(n) = name.parse::<usize>() {
        return (n < info.group_len(PatternID::ZERO)).then_some(n);
    }
    info.to_index(PatternID::ZERO, name)
}

/// Largest union automaton (NFA) of one tier: past it, the tier's regexes
/// are tried one by one.
const UNION_NFA_LIMIT: usize = 256 << 20;
/// Memory of the lazy DFA's cache of states, per tier and per thread that
/// searches it. When it fills, it is cleared and refilled: searches stay
/// correct, only slower.
const UNION_CACHE: usize = 16 << 20;

type CacheFn = Box<dyn Fn() -> Cache + Send + Sync + UnwindSafe + RefUnwindSafe>;

/// Collects the regexes of one tier; [`RegexTierBuilder::build`] compiles
/// their union.
#[derive(Default)]
pub struct RegexTierBuilder {
    rules: Vec<u32>,
    regexes: Vec<Regex>,
    /// Each pattern as the union reads it (`(?i:…)` when case-insensitive).
    patterns: Vec<String>,
}

/// The union of a tier's patterns: one lazy DFA that reports, in one scan
/// of the key, every pattern that matches.
struct Union {
    dfa: Arc<DFA>,
    caches: Pool<Cache, CacheFn>,
}

/// The compiled regex rules of one tier.
pub struct RegexTier {
    /// Rule index of each pattern, in file order.
    rules: Vec<u32>,
    /// Each pattern alone, for its capture groups.
    regexes: Vec<Regex>,
    /// `None` when the union could not be built: every pattern is then a
    /// candidate, tried one by one.
    union: Option<Union>,
}

impl RegexTierBuilder {
    /// Adds the regex of rule `rule`; returns its local index.
    pub fn add(&mut self, rule: u32, regex: Regex, pattern: &str, case_insensitive: bool) -> u32 {
        let local = self.rules.len() as u32;
        self.rules.push(rule);
        self.regexes.push(regex);
        self.patterns.push(if case_insensitive {
            format!("(?i:{pattern})")
        } else {
            pattern.to_string()
        });
        local
    }

    pub fn build(self) -> RegexTier {
        let union = DFA::builder()
            .syntax(syntax::Config::new().unicode(false).utf8(false))
            .thompson(
                thompson::Config::new()
                    .which_captures(WhichCaptures::None)
                    .nfa_size_limit(Some(UNION_NFA_LIMIT)),
            )
            .configure(
                DFA::config()
                    .match_kind(MatchKind::All)
                    .cache_capacity(UNION_CACHE)
                    .skip_cache_capacity_check(true),
            )
            .build_many(&self.patterns)
            .ok()
            .map(|dfa| {
                let dfa = Arc::new(dfa);
                let for_pool = dfa.clone();
                let create: CacheFn = Box::new(move || for_pool.create_cache());
                Union {
                    dfa,
                    caches: Pool::new(create),
                }
            });
        RegexTier {
            rules: self.rules,
            regexes: self.regexes,
            union,
        }
    }
}

impl RegexTier {
    /// Local indices of the patterns that match `key`, in file order, found
    /// in one scan of the key. Returns `false` when they are only
    /// candidates (the union could not be built): each must then be run.
    pub fn candidates(&self, key: &str, out: &mut Vec<u32>) -> bool {
        out.clear();
        let Some(u) = &self.union else {
            out.extend(0..self.rules.len() as u32);
            return false;
        };
        let mut cache = u.caches.get();
        let input = Input::new(key);
        let mut state = OverlappingState::start();
        loop {
            if u.dfa
                .try_search_overlapping_fwd(&mut cache, &input, &mut state)
                .is_err()
            {
                // Only quit bytes make a lazy DFA give up, and it has none;
                // should it ever, every pattern is tried.
                out.clear();
                out.extend(0..self.rules.len() as u32);
                return false;
            }
            match state.get_match() {
                Some(m) => out.push(m.pattern().as_u32()),
                None => break,
            }
        }
        out.sort_unstable();
        out.dedup();
        true
    }

    /// The rule index of local pattern `local`.
    pub fn rule(&self, local: u32) -> u32 {
        self.rules[local as usize]
    }

    pub fn regex(&self, local: u32) -> &Regex {
        &self.regexes[local as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_with_groups_and_reports_syntax_errors() {
        let re = compile_regex(r"^/b/(?P<id>\d+)/(x)?$", false).unwrap();
        let mut g = Vec::new();
        assert!(run(&re, b"/b/42/", Some(&mut g)));
        assert_eq!(g, vec![Some((0, 6)), Some((3, 5)), None]);
        assert_eq!(group_index(&re, "id"), Some(1));
        assert_eq!(group_index(&re, "2"), Some(2));
        assert_eq!(group_index(&re, "3"), None);
        assert!(!run(&re, b"/b/x/", None));
        let e = compile_regex("^/(a", false).unwrap_err();
        assert!(e.contains("unclosed group"), "{e}");
        assert!(compile_regex("^/A$", true).unwrap().is_match(b"/a"));
    }

    #[test]
    fn one_scan_finds_every_matching_pattern_in_file_order() {
        let mut b = RegexTierBuilder::default();
        let patterns = [
            (r"^/b/(\d+)$", false),
            (r"^/a/(\d+)$", false),
            (r"^[/a-z0-9]+$", false),
            (r"^/A/1$", true),
            (r"\d$", false),
            (r"^/c", false),
        ];
        for (i, (p, ci)) in patterns.iter().enumerate() {
            b.add(i as u32 * 10, compile_regex(p, *ci).unwrap(), p, *ci);
        }
        let t = b.build();
        let mut out = Vec::new();
        assert!(t.candidates("/a/1", &mut out));
        assert_eq!(out, vec![1, 2, 3, 4]);
        assert!(t.candidates("/c/x/c", &mut out));
        assert_eq!(out, vec![2, 5]);
        assert!(t.candidates("/none!", &mut out));
        assert!(out.is_empty());
        assert_eq!(t.rule(3), 30);
    }
}
