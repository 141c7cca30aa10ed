//! The compiled rule set and [`RuleSet::decide`].
//!
//! Compilation turns a checked [`Config`](crate::config::Config) (and the rows
//! of its bulk lists) into
//! one immutable [`RuleSet`]:
//!
//! * **Host tiers.** Exact hosts and wildcard suffixes map to a tier number in
//!   hash maps; tier 0 holds the rules without a host. A lookup visits the exact
//!   tier, then the wildcard tiers from the longest suffix to the shortest, then
//!   tier 0: a handful of hash probes, whatever the number of rules.
//! * **Exact and prefix paths.** One hash table per kind, keyed by
//!   `(tier, case flag, path key)`, holding the first rule of a chain of rules
//!   with that key in file order (they differ by their conditions). A prefix
//!   lookup probes the key cut at each `/` from the longest to the shortest. The
//!   keys live in one string arena, so a million rules cost one allocation
//!   each for the arena and the table, not several per rule.
//! * **Regex rules** go through the tier's `RegexTier`: one scan of one lazy
//!   DFA over every pattern of the tier says which match; the first in file
//!   order whose conditions hold runs alone for its groups.
//! * **Conditions** are kept once per distinct set and tested only for the
//!   rules that have some ([`crate::config::Conditions`]); a run of rules
//!   on one path told apart by one header's value is one hash lookup
//!   (`switch.rs`).
//!
//! The files: `set.rs` the layout and [`RuleRef`]; `compile.rs` the
//! pure compiler; `chains.rs` duplicates and shadowing; `decide.rs` the
//! lookup and the rendering of a Location; `lint.rs` loops, chains and expiry.
//!
//! [`RuleSet::decide`] is pure: a [`RequestView`](crate::RequestView) in, a [`Decision`] out, with
//! no I/O and no clock of its own. `explain`, the tests, the benchmarks and the
//! proxy call the same function.

mod chains;
mod compile;
mod decide;
pub(crate) mod lint;
mod set;
mod switch;

pub use compile::compile;
pub use decide::{BadRequest, Decision, PoolRedirect, Redirect};
pub use set::{PoolInfo, RuleCounts, RuleRef, RuleSet};

impl RuleSet {
    /// The lint of this set (loops, chains, expiry at Unix time `now`):
    /// what [`crate::load`] adds to the problems of a load.
    pub fn lint(&self, now: i64) -> Vec<crate::problem::Problem> {
        lint::lint(self, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Scheme, Sources};
    use crate::request::RequestView;
    use set::Rule;
    use std::path::Path;

    fn sources(src: &str) -> Sources {
        Sources::from_text(src, Path::new("t.toml"), |_| Ok(Vec::new()))
    }

    fn set(src: &str) -> RuleSet {
        let s = sources(src);
        assert!(s.problems.iter().all(|p| !p.is_error()), "{:?}", s.problems);
        let (set, p) = compile(&s);
        assert!(p.iter().all(|p| !p.is_error()), "{p:?}");
        set
    }

    fn get<'a>(method: &'a str, host: &'a str, path: &'a str) -> RequestView<'a> {
        let (p, q) = match path.split_once('?') {
            Some((p, q)) => (p, Some(q.as_bytes())),
            None => (path, None),
        };
        RequestView::new(method, Scheme::Https, Some(host), p.as_bytes(), q).at(1_800_000_000)
    }

    #[test]
    fn rule_struct_stays_small() {
        assert!(
            std::mem::size_of::<Rule>() <= 56,
            "{}",
            std::mem::size_of::<Rule>()
        );
    }

    #[test]
    fn prefix_keeps_suffix_and_query() {
        let s = set("[[redirect]]\nid = \"docs\"\nprefix = \"/docs\"\nto = \"https://new.example/documentation\"\nstatus = 308\n");
        match s.decide(&get("GET", "a.example", "/docs/a/b?x=1")) {
            Decision::Redirect(r) => {
                assert_eq!(r.location, "https://new.example/documentation/a/b?x=1");
                assert_eq!(r.status, 308);
                assert_eq!(r.rule.id(), "docs");
                assert_eq!(r.cache_control, "max-age=86400");
            }
            d => panic!("{d:?}"),
        }
        assert!(matches!(
            s.decide(&get("GET", "a.example", "/docsx")),
            Decision::NoMatch
        ));
    }

    fn codes(src: &str) -> Vec<(&'static str, Option<String>)> {
        let s = sources(src);
        let mut p = s.problems.clone();
        if !p.iter().any(|p| p.is_error()) {
            let (set, more) = compile(&s);
            p.extend(more);
            p.extend(lint::lint(&set, 0));
        }
        p.into_iter().map(|p| (p.code, p.rule)).collect()
    }

    #[test]
    fn loop_through_a_scheme_condition_is_found() {
        let p = codes(
            "[[redirect]]\nid = \"a\"\npath = \"/a\"\nto = \"/b\"\n\n[[redirect]]\nid = \"b\"\npath = \"/b\"\nscheme = \"http\"\nto = \"/a\"\n",
        );
        assert_eq!(p, vec![("loop", Some("a".to_string()))]);
    }

    #[test]
    fn http_to_https_pair_is_not_a_loop_but_a_bounce_back_is() {
        let ok = codes("[[redirect]]\nid = \"up\"\nhost = \"x.example\"\nscheme = \"http\"\nprefix = \"/\"\nto = \"https://x.example\"\n");
        assert!(ok.is_empty(), "{ok:?}");
        let bad = codes(
            "[[redirect]]\nid = \"up\"\nhost = \"x.example\"\nscheme = \"http\"\nprefix = \"/\"\nto = \"https://x.example\"\n\n[[redirect]]\nid = \"down\"\nhost = \"x.example\"\nscheme = \"https\"\nprefix = \"/\"\nto = \"http://x.example\"\n",
        );
        assert_eq!(bad, vec![("loop", Some("up".to_string()))]);
    }

    #[test]
    fn path_variable_does_not_add_the_suffix_twice() {
        let s = set(
            "[[redirect]]\nid = \"p\"\nprefix = \"/pv\"\nto = \"https://n.example/x${path}\"\n",
        );
        match s.decide(&get("GET", "a.example", "/pv/1")) {
            Decision::Redirect(r) => assert_eq!(r.location, "https://n.example/x/pv/1"),
            d => panic!("{d:?}"),
        }
        let p = codes("[[redirect]]\nid = \"p\"\nprefix = \"/pv\"\nkeep_suffix = true\nto = \"https://n.example/x${path}\"\n");
        assert_eq!(p, vec![("bad_value", Some("p".to_string()))]);
    }

    #[test]
    fn keep_suffix_on_a_pool_rule_is_refused() {
        let p = codes(
            "[pools.b]\ntargets = [\"https://b.example\"]\n\n[[redirect]]\nid = \"p\"\nprefix = \"/d\"\nkeep_suffix = false\npool = \"b\"\n",
        );
        assert_eq!(p, vec![("bad_value", Some("p".to_string()))]);
    }
}
