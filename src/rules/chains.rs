//! Where rules that share a path meet: chains of rules with one host tier
//! and one path key, in file order, and the two findings they give.
//!
//! A later rule with the same host form, path and conditions (equal
//! conditions share one index) as an earlier one is a `duplicate_rule`
//! error; one behind an earlier rule without conditions can never match and
//! is a `shadowed` warning. Exact and prefix rules are chained in their hash
//! tables; regex rules are compared by pattern.

use super::compile::{Compiler, NewRule, MAX_REPORTS};
use super::set::*;
use crate::config::PathKind;
use crate::problem::Problem;

impl Compiler {
    /// Checks a regex rule against the regex rules before it: `duplicate_rule`
    /// for the same tier, pattern, flags and conditions; `shadowed` behind an
    /// earlier one without conditions. Returns whether it is added.
    pub(super) fn check_regex_chain(&mut self, rule: &Rule, index: u32, n: &NewRule<'_>) -> bool {
        let (tier, flags, cond) = (rule.tier, rule.flags, rule.cond);
        let sig = (
            tier,
            n.path.to_string(),
            flags & (CASE_INSENSITIVE | APEX_OK),
            cond,
        );
        if let Some(&first) = self.regex_seen.get(&sig) {
            let place = self.set.rule_at(first, Base::default()).place();
            self.problem(
                Problem::error("duplicate_rule", format!("the same host, regex and conditions as the rule at {place}; remove one or add a condition")),
                n,
            );
            return false;
        }
        let unconditional = cond == 0;
        let plain = (tier, n.path.to_string(), flags & CASE_INSENSITIVE);
        match self.regex_unconditional.get(&plain) {
            Some(&by) if self.set.rules[by as usize].flags & APEX_OK >= flags & APEX_OK => {
                self.report_shadowed(by, n)
            }
            _ if unconditional => {
                self.regex_unconditional.insert(plain, index);
            }
            _ => {}
        }
        self.regex_seen.insert(sig, index);
        true
    }

    pub(super) fn report_shadowed(&mut self, by: u32, n: &NewRule<'_>) {
        if self.shadow_reports < MAX_REPORTS {
            self.shadow_reports += 1;
            let by = self.set.rule_at(by, Base::default());
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
    pub(super) fn insert_indexed(&mut self, rule: Rule, index: u32, n: &NewRule<'_>) -> bool {
        let ci = rule.flags & CASE_INSENSITIVE != 0;
        let set = &self.set;
        let key = set.span(rule.key);
        let h = set.hash(rule.tier, ci, key);
        let exact = kind_of(rule.flags) == PathKind::Exact;
        let table = if exact {
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
        // Conditions are compared by their index: equal conditions share one.
        let same_conditions =
            |a: &Rule, b: &Rule| a.cond == b.cond && (a.flags & APEX_OK) == (b.flags & APEX_OK);
        match head {
            None => {
                self.set.rules.push(rule);
                let mut table = std::mem::take(if exact {
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
                if exact {
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
                    if same_conditions(&r, &rule) {
                        let place = self.set.rule_at(cur, Base::default()).place();
                        let what = if n.source.is_empty() {
                            String::new()
                        } else {
                            format!(" (source {})", n.source)
                        };
                        self.problem(
                            Problem::error(
                                "duplicate_rule",
                                format!("the same host, {} path and conditions as the rule at {place}{what}; remove one or add a condition", kind_of(rule.flags).as_str()),
                            ),
                            n,
                        );
                        return false;
                    }
                    if shadow_by.is_none()
                        && r.cond == 0
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
