//! `duplicate_rule` and `shadowed` between two layers: what `chains.rs`
//! finds inside one layer, for a rule of a later layer against the rules
//! of an earlier one with the same host form and path (the same pattern
//! for regex rules). The smaller layer's chains are walked and the other's
//! probed, so a `[[redirect]]` beside a million-row list costs a few
//! lookups; the result for two layers is kept with the set and reused
//! while neither changes.

use super::compile::MAX_REPORTS;
use super::set::*;
use crate::config::PathKind;
use crate::problem::Problem;
use std::collections::HashMap;

/// What regex rules are compared by: host (name, wildcard), pattern, case flag.
type RegexKey<'l> = (Option<(&'l str, bool)>, &'l str, u16);

/// The tier of `other` with the host of tier `tier` of `layer`.
fn same_tier(layer: &Layer, tier: u32, other: &Layer) -> Option<u32> {
    match layer.tier_hosts.get(tier as usize).copied() {
        Some((Some(h), wildcard)) => {
            let name = layer.span(h);
            let map = if wildcard {
                &other.wild_hosts
            } else {
                &other.exact_hosts
            };
            map.get(name).copied()
        }
        _ => Some(0),
    }
}

/// The rules of the chain that starts at `head`.
fn chain(layer: &Layer, head: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut cur = head;
    while cur != NONE {
        out.push(cur);
        cur = layer.rules[cur as usize].next;
    }
    out
}

/// What rule `rb` of `b` is, behind the rules `earlier` of `a` with its
/// host and path: a duplicate of one, shadowed by one, or neither.
fn judge(a: &Layer, earlier: &[u32], b: &Layer, rb: u32) -> Option<(bool, u32)> {
    let r = &b.rules[rb as usize];
    let apex = r.flags & APEX_OK;
    let cond = &b.conditions[r.cond as usize];
    if let Some(&ra) = earlier.iter().find(|&&ra| {
        let x = &a.rules[ra as usize];
        x.flags & APEX_OK == apex && &a.conditions[x.cond as usize] == cond
    }) {
        return Some((true, ra));
    }
    earlier
        .iter()
        .find(|&&ra| {
            let x = &a.rules[ra as usize];
            x.cond == 0 && x.flags & APEX_OK >= apex
        })
        .map(|&ra| (false, ra))
}

struct Report<'l> {
    a: &'l Layer,
    b: &'l Layer,
    out: Vec<Problem>,
    shadowed: usize,
}

impl Report<'_> {
    fn add(&mut self, rb: u32, found: (bool, u32)) {
        let (duplicate, ra) = found;
        let by = self.a.rule_at(ra, Base::default());
        let me = self.b.rule_at(rb, Base::default());
        let p = if duplicate {
            let what = match kind_of(self.b.rules[rb as usize].flags) {
                PathKind::Regex => "regex".to_string(),
                k => format!("{} path", k.as_str()),
            };
            let source = me
                .source()
                .map(|s| format!(" (source {s})"))
                .unwrap_or_default();
            Problem::error(
                "duplicate_rule",
                format!(
                    "the same host, {what} and conditions as the rule at {}{source}; remove one or add a condition",
                    by.place()
                ),
            )
        } else {
            self.shadowed += 1;
            if self.shadowed > MAX_REPORTS {
                return;
            }
            Problem::warning(
                "shadowed",
                format!(
                    "can never match: rule \"{}\" at {} has the same host and path and no condition, so it always wins; move this rule before it or remove it",
                    by.id(),
                    by.place()
                ),
            )
        };
        self.out
            .push(p.at(me.file(), me.line(), me.column()).rule(Some(me.id())));
    }
}

/// The problems of the rules of `b` against those of `a`, which comes
/// before it in the file.
pub(super) fn cross(a: &Layer, b: &Layer) -> Vec<Problem> {
    // (rule of b, what it is), reported in file order.
    let mut found: Vec<(u32, (bool, u32))> = Vec::new();
    // Exact and prefix: the chains with one key in both layers.
    let walk_a = a.rules.len() <= b.rules.len();
    let (small, large) = if walk_a { (a, b) } else { (b, a) };
    for (table, other) in [
        (&small.exact_index, &large.exact_index),
        (&small.prefix_index, &large.prefix_index),
    ] {
        for &head in table.iter() {
            crate::pace::point();
            let r = &small.rules[head as usize];
            let Some(tier) = same_tier(small, r.tier, large) else {
                continue;
            };
            let ci = r.flags & CASE_INSENSITIVE != 0;
            let there = large.chain(other, tier, ci, small.span(r.key));
            if there == NONE {
                continue;
            }
            let (ea, eb) = if walk_a {
                (chain(a, head), chain(b, there))
            } else {
                (chain(a, there), chain(b, head))
            };
            for rb in eb {
                if let Some(f) = judge(a, &ea, b, rb) {
                    found.push((rb, f));
                }
            }
        }
    }
    // Regex: by host, pattern and case flag.
    if a.counts.regex > 0 && b.counts.regex > 0 {
        let mut earlier: HashMap<RegexKey<'_>, Vec<u32>> = HashMap::new();
        fn host(l: &Layer, tier: u32) -> Option<(&str, bool)> {
            l.tier_hosts
                .get(tier as usize)
                .and_then(|&(h, w)| h.map(|h| (l.span(h), w)))
        }
        for (i, r) in a.rules.iter().enumerate() {
            if kind_of(r.flags) == PathKind::Regex {
                earlier
                    .entry((host(a, r.tier), a.span(r.key), r.flags & CASE_INSENSITIVE))
                    .or_default()
                    .push(i as u32);
            }
        }
        for (i, r) in b.rules.iter().enumerate() {
            if kind_of(r.flags) != PathKind::Regex {
                continue;
            }
            let k = (host(b, r.tier), b.span(r.key), r.flags & CASE_INSENSITIVE);
            if let Some(f) = earlier.get(&k).and_then(|ea| judge(a, ea, b, i as u32)) {
                found.push((i as u32, f));
            }
        }
    }
    found.sort_unstable_by_key(|(rb, _)| *rb);
    let mut report = Report {
        a,
        b,
        out: Vec::new(),
        shadowed: 0,
    };
    for (rb, f) in found {
        report.add(rb, f);
    }
    if report.shadowed > MAX_REPORTS {
        report.out.push(Problem::warning(
            "shadowed",
            format!(
                "{} more rules are shadowed (only the first {MAX_REPORTS} are listed)",
                report.shadowed - MAX_REPORTS
            ),
        ));
    }
    report.out
}
