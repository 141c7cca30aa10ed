//! All regex rules of one host tier, tried in one pass.
//!
//! Each regex's required literals (the prefixes, or failing that the suffixes,
//! that every match must contain, from `regex-syntax`'s literal extractor) go
//! into one Aho-Corasick automaton. A lookup runs that automaton once over the
//! path key; only the regexes whose literal occurred (plus the few that have no
//! usable literal) are candidates, and they are tried in file order. The
//! benchmark in `benches/decide.rs` compares this with one `RegexSet` over all
//! patterns; see `docs/benchmarks.md` for the numbers behind the choice.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use regex_automata::meta::{self, Regex};
use regex_automata::util::syntax;
use regex_automata::{Input, PatternID};
use regex_syntax::hir::literal::{ExtractKind, Extractor};

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

/// Collects the regexes of one tier; [`RegexTierBuilder::build`] compiles the prefilter.
#[derive(Default)]
pub struct RegexTierBuilder {
    rules: Vec<u32>,
    regexes: Vec<Regex>,
    literals: Vec<Vec<u8>>,
    owners: Vec<u32>,
    always: Vec<u32>,
}

/// The compiled regex rules of one tier.
pub struct RegexTier {
    /// Rule index of each pattern, in file order.
    rules: Vec<u32>,
    regexes: Vec<Regex>,
    ac: Option<AhoCorasick>,
    /// Aho-Corasick pattern → local pattern index.
    owners: Vec<u32>,
    /// Patterns without a usable literal: always candidates.
    always: Vec<u32>,
}

/// The literals every match of `pattern` must contain, if there are few enough.
pub fn required_literals(pattern: &str) -> Option<Vec<Vec<u8>>> {
    let hir = regex_syntax::ParserBuilder::new()
        .utf8(false)
        .build()
        .parse(pattern)
        .ok()?;
    for kind in [ExtractKind::Prefix, ExtractKind::Suffix] {
        let seq = Extractor::new().kind(kind).limit_total(256).extract(&hir);
        if let Some(lits) = seq.literals() {
            if !lits.is_empty() && lits.iter().all(|l| !l.as_bytes().is_empty()) {
                return Some(lits.iter().map(|l| l.as_bytes().to_vec()).collect());
            }
        }
    }
    None
}

impl RegexTierBuilder {
    /// Adds the regex of rule `rule`; returns its local index.
    pub fn add(&mut self, rule: u32, regex: Regex, pattern: &str) -> u32 {
        let local = self.rules.len() as u32;
        self.rules.push(rule);
        self.regexes.push(regex);
        match required_literals(pattern) {
            Some(lits) => {
                for l in lits {
                    self.literals.push(l);
                    self.owners.push(local);
                }
            }
            None => self.always.push(local),
        }
        local
    }

    pub fn build(self, case_insensitive: bool) -> RegexTier {
        let ac = if self.literals.is_empty() {
            None
        } else {
            AhoCorasickBuilder::new()
                .match_kind(MatchKind::Standard)
                .ascii_case_insensitive(case_insensitive)
                // A DFA costs memory per state but is the fastest scan; past
                // 100k literals let the builder choose.
                .kind((self.literals.len() <= 100_000).then_some(AhoCorasickKind::DFA))
                .build(&self.literals)
                .ok()
        };
        let (owners, always) = if ac.is_some() || self.literals.is_empty() {
            (self.owners, self.always)
        } else {
            // The automaton could not be built: every pattern is a candidate.
            (Vec::new(), (0..self.rules.len() as u32).collect())
        };
        RegexTier {
            rules: self.rules,
            regexes: self.regexes,
            ac,
            owners,
            always,
        }
    }
}

impl RegexTier {
    /// Local indices of the patterns that may match `key`, in file order.
    pub fn candidates(&self, key: &str, out: &mut Vec<u32>) {
        out.clear();
        if let Some(ac) = &self.ac {
            for m in ac.find_overlapping_iter(key) {
                out.push(self.owners[m.pattern().as_usize()]);
            }
        }
        out.extend_from_slice(&self.always);
        out.sort_unstable();
        out.dedup();
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
    fn extracts_prefix_or_suffix_literals() {
        assert_eq!(
            required_literals(r"^/blog/(\d+)$"),
            Some(vec![b"/blog/".to_vec()])
        );
        let alt = required_literals(r"^/(en|fr)/old$").unwrap();
        assert!(alt.contains(&b"/en/old".to_vec()) && alt.contains(&b"/fr/old".to_vec()));
        assert_eq!(
            required_literals(r"(\d+)\.html$"),
            Some(vec![b".html".to_vec()])
        );
        assert_eq!(required_literals(r"^.*$"), None);
    }

    #[test]
    fn candidates_are_narrowed_and_in_file_order() {
        let mut b = RegexTierBuilder::default();
        for (i, p) in [r"^/b/(\d+)$", r"^/a/(\d+)$", r"^[/a-z0-9]+$", r"^/a/1$"]
            .iter()
            .enumerate()
        {
            b.add(i as u32 * 10, compile_regex(p, false).unwrap(), p);
        }
        let t = b.build(false);
        let mut out = Vec::new();
        t.candidates("/a/1", &mut out);
        assert_eq!(out, vec![1, 2, 3]);
        assert_eq!(t.rule(3), 30);
    }
}
