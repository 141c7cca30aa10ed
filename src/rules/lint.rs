//! Lint of a compiled rule set (docs/configuration.md, "Lint"): loops and
//! chains, expiry. It reads the set through [`RuleSet::rules`] and
//! [`RuleSet::follow`] only.
//!
//! Every non-pool rule's target is fed back through the same lookup that
//! serves requests (a GET, its relative target keeping the source's scheme and
//! host, time windows ignored). Since a URL has at most one winning rule, the
//! rules form a graph with at most one edge out of each rule, so loops and
//! chains are found in one linear pass, seconds for a million rules. Targets
//! that depend on the request (`${path}`, regex groups) and pool targets are
//! not followed. `duplicate_rule` and `shadowed` are found while compiling,
//! where the rule chains are built.

use super::RuleSet;
use crate::config::{methods, Scheme};
use crate::problem::Problem;

/// Marks a node with no edge out.
const NONE: u32 = u32::MAX;

const MAX_REPORTS: usize = 1000;

/// Runs every lint over `set`; `now` is Unix seconds.
pub fn lint(set: &RuleSet, now: i64) -> Vec<Problem> {
    let mut out = Vec::new();
    expiry(set, now, &mut out);
    loops_and_chains(set, &mut out);
    out
}

/// What is said of the findings past the first [`MAX_REPORTS`].
fn more(found: usize, what: &str) -> String {
    format!(
        "{} more {what} (only the first {MAX_REPORTS} are listed)",
        found - MAX_REPORTS
    )
}

fn at(set: &RuleSet, i: u32, p: Problem) -> Problem {
    let r = set.rule(i);
    p.at(r.file(), r.line(), r.column()).rule(Some(r.id()))
}

fn expiry(set: &RuleSet, now: i64, out: &mut Vec<Problem>) {
    for r in set.rules() {
        let Some(until) = r.active_until() else {
            continue;
        };
        if until <= now {
            out.push(at(
                set,
                r.index(),
                Problem::warning(
                    "expired",
                    "`active_until` has passed: the rule no longer matches; remove it",
                ),
            ));
        }
        if matches!(r.status(), 301 | 308) {
            out.push(at(
                set,
                r.index(),
                Problem::warning(
                    "permanent_with_expiry",
                    format!("status {} is permanent (browsers cache it) but the rule ends at `active_until`; use 302 or 307", r.status()),
                ),
            ));
        }
    }
}

/// How a rule is named in loop and chain messages.
fn describe(set: &RuleSet, i: u32) -> String {
    let r = set.rule(i);
    match r.source() {
        Some(src) => format!("\"{}\" row \"{}\" ({})", r.id(), src, r.place()),
        None => format!("\"{}\" ({})", r.id(), r.place()),
    }
}

/// The method a client sends when it follows rule `i`: GET when the rule
/// takes GET; otherwise the rule's first method, kept by 307/308 and by the
/// method-preserving upgrade, turned into GET by 303 and by 301/302 without it.
fn follow_method(set: &RuleSet, i: u32) -> &'static str {
    let r = set.rule(i);
    let wanted = r.conditions().methods;
    let get = methods::bit("GET").unwrap_or(1);
    if wanted == 0 || wanted & get != 0 {
        return "GET";
    }
    let first = methods::names(wanted).first().copied().unwrap_or("GET");
    match r.status() {
        303 => "GET",
        301 | 302 if !r.preserves_method() => "GET",
        _ => first,
    }
}

/// A node of the follow graph: a rule and the scheme of the request it
/// answers (even: http, odd: https). A relative target keeps the scheme, so a
/// rule without a `scheme` condition is two nodes.
fn node(rule: u32, scheme: Scheme) -> u32 {
    rule * 2 + u32::from(scheme == Scheme::Https)
}

fn node_scheme(n: u32) -> Scheme {
    if n % 2 == 1 {
        Scheme::Https
    } else {
        Scheme::Http
    }
}

fn loops_and_chains(set: &RuleSet, out: &mut Vec<Problem>) {
    let n = set.len();
    let mut next = vec![NONE; 2 * n];
    let mut valid = vec![false; 2 * n];
    for r in set.rules() {
        let i = r.index();
        let target = r.fixed_target();
        for scheme in [Scheme::Http, Scheme::Https] {
            if r.conditions().scheme.is_some_and(|s| s != scheme) {
                continue;
            }
            let me = node(i, scheme) as usize;
            valid[me] = true;
            if let Some((abs, host, path)) = &target {
                let to_scheme = abs.unwrap_or(scheme);
                if let Some(j) = set.follow(
                    follow_method(set, i),
                    Some(to_scheme),
                    host.as_deref(),
                    path,
                ) {
                    next[me] = node(j, to_scheme);
                }
            }
        }
    }
    // Cycles in a graph with out-degree ≤ 1.
    let m = 2 * n;
    let mut state = vec![0u8; m];
    let mut in_cycle = vec![false; m];
    let mut reported = std::collections::HashSet::new();
    let mut stack = Vec::new();
    let mut loops = 0usize;
    for start in 0..m {
        if state[start] != 0 || !valid[start] {
            continue;
        }
        stack.clear();
        let mut cur = start as u32;
        while cur != NONE && state[cur as usize] == 0 {
            state[cur as usize] = 1;
            stack.push(cur);
            cur = next[cur as usize];
        }
        if cur != NONE && state[cur as usize] == 1 {
            let pos = stack.iter().position(|&x| x == cur).unwrap_or(0);
            let cycle = &stack[pos..];
            for &x in cycle {
                in_cycle[x as usize] = true;
            }
            let first = *cycle.iter().min_by_key(|x| **x / 2).unwrap_or(&cur);
            if reported.insert(first / 2) {
                let k = cycle.iter().position(|&x| x == first).unwrap_or(0);
                let mut names: Vec<String> = cycle[k..]
                    .iter()
                    .chain(&cycle[..k])
                    .map(|&x| describe(set, x / 2))
                    .collect();
                names.push(describe(set, first / 2));
                let via = node_scheme(first).as_str();
                let msg = if cycle.len() == 1 {
                    format!(
                        "the rule's target falls under the rule itself, so it redirects forever ({via}): {}; point it outside its own path (or add a condition)",
                        names.join(" → ")
                    )
                } else {
                    format!("following the rules comes back here ({via}): {}; change one of these targets", names.join(" → "))
                };
                if loops < MAX_REPORTS {
                    out.push(at(set, first / 2, Problem::error("loop", msg)));
                }
                loops += 1;
            }
        }
        for &x in &stack {
            state[x as usize] = 2;
        }
    }
    if loops > MAX_REPORTS {
        out.push(Problem::error("loop", more(loops, "loops")));
    }
    // Chains: a rule whose target another rule redirects again.
    let mut chains = 0usize;
    for i in 0..n as u32 {
        let Some(start) = [node(i, Scheme::Http), node(i, Scheme::Https)]
            .into_iter()
            .find(|&x| {
                let j = next[x as usize];
                valid[x as usize] && j != NONE && !in_cycle[x as usize] && !in_cycle[j as usize]
            })
        else {
            continue;
        };
        if chains < MAX_REPORTS {
            let mut path = vec![start, next[start as usize]];
            let mut cur = next[start as usize];
            while next[cur as usize] != NONE
                && path.len() < 16
                && !in_cycle[next[cur as usize] as usize]
            {
                cur = next[cur as usize];
                path.push(cur);
            }
            let names: Vec<String> = path.iter().map(|&x| describe(set, x / 2)).collect();
            let last = set.rule(cur / 2);
            let msg = format!(
                "redirect chain {}: clients make {} round trips; point this rule straight at the target of \"{}\"",
                names.join(" → "),
                path.len(),
                last.id()
            );
            out.push(at(set, i, Problem::warning("chain", msg)));
        }
        chains += 1;
    }
    if chains > MAX_REPORTS {
        out.push(Problem::warning("chain", more(chains, "chains")));
    }
}
