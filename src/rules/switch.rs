//! Rules on one path told apart by the value of one header (beta groups,
//! A/B variants, tenants: `match_headers = { "X-Variant" = "vN" }` on a
//! thousand rules) are found in one hash lookup, not tested one by one.
//!
//! After compiling, each chain of rules with one key is scanned for runs of
//! at least [`MIN_RUN`] consecutive rules whose conditions are one
//! `match_headers` entry with a value, the same header, and otherwise the
//! same conditions. The first rule of a run is flagged [`SWITCH`]; its
//! [`Switch`] maps each value to the first rule of the run that wants it.
//! A lookup that reaches the flagged rule reads the request's values of the
//! header (each field, and each member of a comma-separated one, trimmed,
//! as [`Conditions::holds`](crate::config::Conditions::holds) compares them),
//! checks only the rules those values name, and goes on after the run when
//! none holds. Shorter runs stay a plain scan: a few comparisons cost less
//! than a hash.

use super::compile::Compiler;
use super::set::*;
use crate::config::{Conditions, Want};

/// Shorter runs are scanned.
const MIN_RUN: usize = 8;

/// One run of rules told apart by one header's value.
#[derive(Debug)]
pub(crate) struct Switch {
    pub(super) header: http::HeaderName,
    /// Value → the first rule of the run that wants it.
    pub(super) by_value: FastMap<Box<[u8]>, u32>,
    /// The chain's next rule after the run (NONE: the chain ends).
    pub(super) after: u32,
}

/// The header and value of a rule's conditions when they are one
/// `match_headers` value, and the rest of its conditions.
fn header_value(c: &Conditions) -> Option<(&str, &str, Conditions)> {
    match c.headers.as_slice() {
        [(name, Want::Value(v))] => {
            let rest = Conditions {
                headers: Vec::new(),
                ..c.clone()
            };
            Some((name, v, rest))
        }
        _ => None,
    }
}

impl Compiler {
    /// Finds the runs of every exact and prefix chain and flags them.
    pub(super) fn find_switches(&mut self) {
        let heads: Vec<u32> = self
            .set
            .exact_index
            .iter()
            .chain(self.set.prefix_index.iter())
            .copied()
            .collect();
        for head in heads {
            let mut chain = Vec::new();
            let mut cur = head;
            while cur != NONE {
                chain.push(cur);
                cur = self.set.rules[cur as usize].next;
            }
            if chain.len() < MIN_RUN {
                continue;
            }
            // The run key of each rule: header, rest of the conditions, apex flag.
            let keys: Vec<Option<(String, Conditions, u16)>> = chain
                .iter()
                .map(|&i| {
                    let r = &self.set.rules[i as usize];
                    header_value(&self.set.conditions[r.cond as usize])
                        .map(|(h, _, rest)| (h.to_string(), rest, r.flags & APEX_OK))
                })
                .collect();
            let mut start = 0;
            while start < chain.len() {
                let mut end = start + 1;
                while end < chain.len() && keys[start].is_some() && keys[end] == keys[start] {
                    end += 1;
                }
                if keys[start].is_some() && end - start >= MIN_RUN {
                    self.add_switch(&chain[start..end]);
                }
                start = end;
            }
        }
    }

    fn add_switch(&mut self, run: &[u32]) {
        let set = &mut self.set;
        let mut by_value = FastMap::default();
        let mut header = None;
        for &i in run {
            let c = &set.conditions[set.rules[i as usize].cond as usize];
            if let Some((h, v, _)) = header_value(c) {
                header.get_or_insert_with(|| h.to_string());
                by_value
                    .entry(v.as_bytes().to_vec().into_boxed_slice())
                    .or_insert(i);
            }
        }
        let Some(Ok(header)) = header.map(|h| http::HeaderName::from_bytes(h.as_bytes())) else {
            return;
        };
        let last = *run.last().expect("a run");
        let head = run[0];
        set.rules[head as usize].flags |= SWITCH;
        set.switch_at.insert(head, set.switches.len() as u32);
        set.switches.push(Switch {
            header,
            by_value,
            after: set.rules[last as usize].next,
        });
    }
}
