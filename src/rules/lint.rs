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
    lint_unless(set, now, &|| false).unwrap_or_default()
}

/// [`lint`], given up (`None`) as soon as `stop` says so.
pub(crate) fn lint_unless(
    set: &RuleSet,
    now: i64,
    stop: &dyn Fn() -> bool,
) -> Option<Vec<Problem>> {
    let mut out = Vec::new();
    expiry(set, now, &mut out);
    loops_and_chains(set, &mut out, stop)?;
    Some(out)
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

/// The edges of rule `i`'s nodes: for each scheme it answers, the node its
/// target reaches (NONE: none); `None` for a scheme it does not answer.
fn edges_of(set: &RuleSet, i: u32) -> [Option<u32>; 2] {
    let r = set.rule(i);
    let target = r.fixed_target();
    [Scheme::Http, Scheme::Https].map(|scheme| {
        if r.conditions().scheme.is_some_and(|s| s != scheme) {
            return None;
        }
        let Some((abs, host, path)) = &target else {
            return Some(NONE);
        };
        let to_scheme = abs.unwrap_or(scheme);
        Some(
            set.follow(
                follow_method(set, i),
                Some(to_scheme),
                host.as_deref(),
                path,
            )
            .map_or(NONE, |j| node(j, to_scheme)),
        )
    })
}

/// The loop error for `cycle` (nodes in order), said at its first rule.
fn loop_problem(set: &RuleSet, cycle: &[u32]) -> (u32, Problem) {
    let first = *cycle.iter().min_by_key(|x| **x / 2).unwrap_or(&cycle[0]);
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
        format!(
            "following the rules comes back here ({via}): {}; change one of these targets",
            names.join(" → ")
        )
    };
    (first / 2, at(set, first / 2, Problem::error("loop", msg)))
}

/// The loops found so far: each reported once, at its first rule, the
/// first [`MAX_REPORTS`] one by one.
#[derive(Default)]
struct Loops {
    reported: std::collections::HashSet<u32>,
    count: usize,
}

impl Loops {
    fn found(&mut self, set: &RuleSet, cycle: &[u32], out: &mut Vec<Problem>) {
        let (first, problem) = loop_problem(set, cycle);
        if self.reported.insert(first) {
            if self.count < MAX_REPORTS {
                out.push(problem);
            }
            self.count += 1;
        }
    }

    fn finish(self, out: &mut Vec<Problem>) {
        if self.count > MAX_REPORTS {
            out.push(Problem::error("loop", more(self.count, "loops")));
        }
    }
}

fn loops_and_chains(set: &RuleSet, out: &mut Vec<Problem>, stop: &dyn Fn() -> bool) -> Option<()> {
    let n = set.len();
    let mut next = vec![NONE; 2 * n];
    let mut valid = vec![false; 2 * n];
    for i in 0..n as u32 {
        if i % 65536 == 0 && stop() {
            return None;
        }
        crate::pace::point();
        for (s, e) in edges_of(set, i).into_iter().enumerate() {
            if let Some(e) = e {
                let me = 2 * i as usize + s;
                valid[me] = true;
                next[me] = e;
            }
        }
    }
    // Cycles in a graph with out-degree ≤ 1.
    let m = 2 * n;
    let mut state = vec![0u8; m];
    let mut in_cycle = vec![false; m];
    let mut loops = Loops::default();
    let mut stack = Vec::new();
    for start in 0..m {
        if start % 1024 == 0 {
            crate::pace::point();
            if start % 65536 == 0 && stop() {
                return None;
            }
        }
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
            loops.found(set, cycle, out);
        }
        for &x in &stack {
            state[x as usize] = 2;
        }
    }
    loops.finish(out);
    // Chains: a rule whose target another rule redirects again.
    let mut chains = 0usize;
    for i in 0..n as u32 {
        if i % 1024 == 0 {
            crate::pace::point();
            if i % 65536 == 0 && stop() {
                return None;
            }
        }
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
    let _ = set.edges.set(std::sync::Arc::new(next));
    if let Ok(mut base) = set.lint_base.lock() {
        base.take();
    }
    Some(())
}

/// The loops of `new`, found from the lint of `old` (a set it shares
/// layers with), or of the set `old`'s own loops were found from while
/// `old`'s [`lint`] has not finished: `None` when there is no such lint or
/// the shared layers are not in the same order, and the whole lint is
/// needed. With the expiry warnings of every rule, not the chains (which
/// [`lint`] finds).
///
/// A loop of `new` has a node whose edge differs from the one `old`'s
/// lint recorded (`old` has no loop). The edge of a node of a kept layer
/// can change only by reaching a rule of a new layer, or because the rule
/// it reached is gone. So the walks start at every node of the new layers
/// and at every node of a kept layer whose recorded edge led into a layer
/// that is gone, and follow the targets afresh at each step: they meet
/// every loop there is, in time proportional to what changed.
pub(crate) fn loops_after(
    new: &RuleSet,
    old: &std::sync::Arc<RuleSet>,
    now: i64,
) -> Option<Vec<Problem>> {
    let base = match old.edges.get() {
        Some(_) => old.clone(),
        None => old.lint_base.lock().ok()?.clone()?,
    };
    let out = loops_from(new, &base, now)?;
    if let Ok(mut b) = new.lint_base.lock() {
        *b = Some(base);
    }
    Some(out)
}

fn loops_from(new: &RuleSet, old: &RuleSet, now: i64) -> Option<Vec<Problem>> {
    let old_edges = old.edges.get()?.clone();
    // For each old layer, the base of its rules in `new` when it is kept.
    let mut kept: Vec<Option<u32>> = vec![None; old.layers.len()];
    let mut last = None;
    let mut fresh_layers = Vec::new();
    for p in &new.layers {
        match old
            .layers
            .iter()
            .position(|o| std::sync::Arc::ptr_eq(&o.layer, &p.layer))
        {
            Some(i) => {
                if last.is_some_and(|l| l >= i) {
                    return None;
                }
                last = Some(i);
                kept[i] = Some(p.at.rules);
            }
            None => fresh_layers.push(p),
        }
    }
    let mut starts: Vec<u32> = Vec::new();
    for p in fresh_layers {
        for i in 0..p.layer.rules.len() as u32 {
            starts.extend([
                node(p.at.rules + i, Scheme::Http),
                node(p.at.rules + i, Scheme::Https),
            ]);
        }
    }
    for (o, base) in old.layers.iter().zip(&kept) {
        let Some(base) = *base else {
            continue;
        };
        let from = 2 * o.at.rules as usize;
        let len = 2 * o.layer.rules.len();
        for (k, &e) in old_edges[from..from + len].iter().enumerate() {
            if e != NONE && kept[old.layer_of(e / 2)].is_none() {
                starts.push(2 * base + k as u32);
            }
        }
    }
    let mut out = Vec::new();
    expiry(new, now, &mut out);
    // Edges found so far (UNKNOWN: not yet), and the walk state of each
    // node: 1 on the walk under way, 2 done.
    const UNKNOWN: u32 = NONE - 1;
    let mut edges = vec![UNKNOWN; 2 * new.len()];
    let mut state = vec![0u8; 2 * new.len()];
    let mut edge = |x: u32| -> Option<u32> {
        let e = &mut edges[x as usize];
        if *e == UNKNOWN {
            // NONE - 2 marks a scheme the rule does not answer.
            *e = edges_of(new, x / 2)[(x % 2) as usize].unwrap_or(NONE - 2);
        }
        (*e != NONE - 2).then_some(*e)
    };
    let mut loops = Loops::default();
    let mut stack = Vec::new();
    for start in starts {
        crate::pace::point();
        if state[start as usize] != 0 || edge(start).is_none() {
            continue;
        }
        stack.clear();
        let mut cur = start;
        while cur != NONE && state[cur as usize] == 0 {
            state[cur as usize] = 1;
            stack.push(cur);
            cur = edge(cur).unwrap_or(NONE);
        }
        if cur != NONE && state[cur as usize] == 1 {
            let pos = stack.iter().position(|&x| x == cur).unwrap_or(0);
            loops.found(new, &stack[pos..], &mut out);
        }
        for &x in &stack {
            state[x as usize] = 2;
        }
    }
    loops.finish(&mut out);
    Some(out)
}
