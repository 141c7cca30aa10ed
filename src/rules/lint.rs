//! Lint of a compiled rule set (SPEC §9): loops and chains, expiry.
//!
//! Every non-pool rule's target is fed back through the same lookup that
//! serves requests (a GET, its relative target keeping the source's scheme and
//! host, time windows ignored). Since a URL has at most one winning rule, the
//! rules form a graph with at most one edge out of each rule, so loops and
//! chains are found in one linear pass, seconds for a million rules. Targets
//! that depend on the request (`${path}`, regex groups) and pool targets are
//! not followed. `duplicate_rule` and `shadowed` are found while compiling,
//! where the rule chains are built.

use super::{RuleSet, Span, ABSOLUTE, APEX_OK, NONE, POOL, PRESERVE_METHOD, TEMPLATE, TIMED};
use crate::config::{methods, Scheme};
use crate::location::Piece;
use crate::problem::Problem;
use std::borrow::Cow;

const MAX_REPORTS: usize = 1000;

/// Runs every lint over `set`; `now` is Unix seconds.
pub fn lint(set: &RuleSet, now: i64) -> Vec<Problem> {
    let mut out = Vec::new();
    expiry(set, now, &mut out);
    loops_and_chains(set, &mut out);
    out
}

fn at(set: &RuleSet, i: u32, p: Problem) -> Problem {
    let r = set.rule(i);
    p.at(r.file(), r.line(), r.column()).rule(Some(r.id()))
}

fn expiry(set: &RuleSet, now: i64, out: &mut Vec<Problem>) {
    for (i, r) in set.rules.iter().enumerate() {
        if r.flags & TIMED == 0 {
            continue;
        }
        let e = &set.extras[r.extra as usize];
        if e.active_until == i64::MAX {
            continue;
        }
        if e.active_until <= now {
            out.push(at(
                set,
                i as u32,
                Problem::warning(
                    "expired",
                    "`active_until` has passed: the rule no longer matches; remove it",
                ),
            ));
        }
        if matches!(r.status, 301 | 308) {
            out.push(at(
                set,
                i as u32,
                Problem::warning(
                    "permanent_with_expiry",
                    format!("status {} is permanent (browsers cache it) but the rule ends at `active_until`; use 302 or 307", r.status),
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

/// The host a relative target of tier `tier` resolves against, if one.
fn tier_hosts(set: &RuleSet) -> Vec<(Option<&str>, bool)> {
    let mut v = vec![(None, false); set.tiers.len()];
    for (h, &t) in &set.exact_hosts {
        v[t as usize] = (Some(&**h), false);
    }
    for (h, &t) in &set.wild_hosts {
        v[t as usize] = (Some(&**h), true);
    }
    v
}

/// The URL a rule sends its own source to: (scheme, host, path).
fn target_of<'s>(
    set: &'s RuleSet,
    i: usize,
    hosts: &[(Option<&'s str>, bool)],
) -> Option<(Option<Scheme>, Option<String>, Vec<u8>)> {
    let r = &set.rules[i];
    if r.flags & POOL != 0 {
        return None;
    }
    let (host, wildcard) = hosts[r.tier as usize];
    // For `*.x` the source host is unknown; for `.x` it may be the apex.
    // `*.x` stands for any subdomain: a label no configuration names
    // represents them.
    let src_host: Option<Cow<'_, str>> = match (host, wildcard) {
        (Some(h), false) => Some(Cow::Borrowed(h)),
        (Some(h), true) if r.flags & APEX_OK != 0 => Some(Cow::Borrowed(h)),
        (Some(h), true) => Some(Cow::Owned(format!("_.{h}"))),
        _ => None,
    };
    let text: String = if r.flags & TEMPLATE != 0 {
        let t = set.extras[r.extra as usize].template.as_ref()?;
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
        set.span(Span { ..r.target }).to_string()
    };
    let cut = |s: &str| s[..s.find(['?', '#']).unwrap_or(s.len())].to_string();
    if r.flags & ABSOLUTE != 0 {
        let (scheme, rest) = if let Some(rest) = text.strip_prefix("https://") {
            (Scheme::Https, rest)
        } else {
            (Scheme::Http, text.strip_prefix("http://")?)
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let path = cut(&rest[end..]);
        let path = if path.is_empty() {
            "/".to_string()
        } else {
            path
        };
        Some((
            Some(scheme),
            Some(rest[..end].to_string()),
            path.into_bytes(),
        ))
    } else {
        Some((None, src_host.map(Cow::into_owned), cut(&text).into_bytes()))
    }
}

/// The method a client sends when it follows rule `i`: GET when the rule
/// takes GET; otherwise the rule's first method, kept by 307/308 and by the
/// method-preserving upgrade, turned into GET by 303 and by 301/302 without it.
fn follow_method(set: &RuleSet, i: usize) -> &'static str {
    let r = &set.rules[i];
    let get = methods::bit("GET").unwrap_or(1);
    if r.methods == 0 || r.methods & get != 0 {
        return "GET";
    }
    let first = methods::names(r.methods).first().copied().unwrap_or("GET");
    match r.status {
        303 => "GET",
        301 | 302 if r.flags & PRESERVE_METHOD == 0 => "GET",
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
    let n = set.rules.len();
    let hosts = tier_hosts(set);
    let mut next = vec![NONE; 2 * n];
    let mut valid = vec![false; 2 * n];
    for i in 0..n {
        let r = &set.rules[i];
        let target = target_of(set, i, &hosts);
        for scheme in [Scheme::Http, Scheme::Https] {
            let code = if scheme == Scheme::Https { 2 } else { 1 };
            if r.scheme != 0 && r.scheme != code {
                continue;
            }
            let me = node(i as u32, scheme) as usize;
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
        out.push(Problem::error(
            "loop",
            format!(
                "{} more loops (only the first {MAX_REPORTS} are listed)",
                loops - MAX_REPORTS
            ),
        ));
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
        out.push(Problem::warning(
            "chain",
            format!(
                "{} more chains (only the first {MAX_REPORTS} are listed)",
                chains - MAX_REPORTS
            ),
        ));
    }
}
