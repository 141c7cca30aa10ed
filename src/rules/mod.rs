//! The compiled rule set and [`RuleSet::decide`].
//!
//! Compilation turns a checked [`Config`](crate::config::Config) (and the rows
//! of its bulk lists) into
//! one immutable [`RuleSet`], made of layers: each list of 1 MiB or more is
//! one, and so is each run of `[[redirect]]` tables (and smaller lists)
//! between those. A reload keeps the
//! layers whose sources did not change and compiles the others
//! ([`compile_reusing`]); a lookup visits the precedence steps below and, at
//! each, the layers in file order, so the first rule of the file among
//! those of the winning precedence answers, as with one index. Within a
//! layer:
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
//! pure compiler; `chains.rs` duplicates and shadowing within a layer,
//! `cross.rs` between two; `decide.rs` the lookup and the rendering of a
//! Location; `lint.rs` loops, chains and expiry (and loops from what a
//! reload changed).
//!
//! [`RuleSet::decide`] is pure: a [`RequestView`](crate::RequestView) in, a [`Decision`] out, with
//! no I/O and no clock of its own. `explain`, the tests, the benchmarks and the
//! proxy call the same function.

mod chains;
mod compile;
mod cross;
mod decide;
pub(crate) mod lint;
mod set;
mod switch;

pub use compile::compile;
pub(crate) use compile::{compile_reusing, lists_to_compile, ListBytes, LAYER_BYTES};
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

    /// Sources whose lists come from `lists` (by list id).
    fn with_lists(src: &str, lists: &[(&str, &str)]) -> Sources {
        let lists: Vec<(String, Vec<u8>)> = lists
            .iter()
            .map(|(id, rows)| (id.to_string(), rows.as_bytes().to_vec()))
            .collect();
        Sources::from_text(src, Path::new("t.toml"), |l| {
            Ok(lists
                .iter()
                .find(|(id, _)| *id == l.id)
                .map(|(_, b)| b.clone())
                .unwrap_or_default())
        })
    }

    /// Compiled with every list a layer of its own, whatever its size,
    /// keeping the layers of `old`.
    fn layered(s: &Sources, old: Option<&RuleSet>) -> (RuleSet, Vec<crate::problem::Problem>) {
        compile_reusing(s, &compile::list_bytes(s), old, 0)
    }

    /// What `set` answers to each of `urls` (host and path): status and
    /// Location, the rule id and its place, or "-".
    fn answers(set: &RuleSet, urls: &[(&str, &str)]) -> Vec<String> {
        urls.iter()
            .map(|(host, path)| match set.decide(&get("GET", host, path)) {
                Decision::Redirect(r) => format!(
                    "{} {} {} {} #{}",
                    r.status,
                    r.location,
                    r.rule.id(),
                    r.rule.place(),
                    r.rule.index()
                ),
                Decision::Pool(p) => format!("pool {} {}", p.pool.name, p.rule.id()),
                _ => "-".to_string(),
            })
            .collect()
    }

    const LAYERED: &str = "[pools.p]\ntargets = [\"https://pool.example\"]\n\n\
        [[redirect]]\nid = \"host-exact\"\nhost = \"a.example\"\npath = \"/x\"\nto = \"https://r.example/host-exact\"\n\n\
        [[list]]\nid = \"one\"\nfile = \"one.csv\"\n\n\
        [[redirect]]\nid = \"wild\"\nhost = \"*.a.example\"\nprefix = \"/w\"\nto = \"https://r.example/wild\"\n\n\
        [[redirect]]\nid = \"any-prefix\"\nprefix = \"/p\"\nto = \"https://r.example/any-prefix\"\n\n\
        [[redirect]]\nid = \"re\"\nhost = \"a.example\"\nregex = \"^/re/(\\\\d+)$\"\nto = \"https://r.example/re/${1}\"\n\n\
        [[list]]\nid = \"two\"\nfile = \"two.csv\"\n\n\
        [[redirect]]\nid = \"late\"\nhost = \"a.example\"\nprefix = \"/p/q\"\npool = \"p\"\n";
    const ONE: &str = "a.example/y,https://one.example/y,301\n\
        a.example/p/q/deep,https://one.example/deep,302\n\
        b.a.example/w/1,https://one.example/w1,301\n";
    const TWO: &str = "a.example/z,https://two.example/z,301\n\
        a.example/re/7,https://two.example/re7,301\n\
        a.example/p,https://two.example/p,301,,,TRUE\n";

    /// Requests that meet rules of every layer at every precedence step.
    const URLS: &[(&str, &str)] = &[
        ("a.example", "/x"),
        ("a.example", "/y"),
        ("a.example", "/z"),
        ("a.example", "/p/q/deep"),
        ("a.example", "/p/q/other"),
        ("a.example", "/p/r"),
        ("c.example", "/p/r"),
        ("b.a.example", "/w/1"),
        ("b.a.example", "/w/2"),
        ("a.example", "/re/7"),
        ("a.example", "/re/8"),
        ("a.example", "/nothing"),
    ];

    #[test]
    fn each_list_and_each_run_of_redirects_is_a_layer_and_precedence_is_that_of_the_file() {
        let s = with_lists(LAYERED, &[("one", ONE), ("two", TWO)]);
        let (set, p) = layered(&s, None);
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(set.layers.len(), 5);
        // Lists under `LAYER_BYTES` are compiled with the tables around
        // them: one layer, the same answers.
        let (one, p) = compile(&s);
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(one.layers.len(), 1);
        assert_eq!(answers(&one, URLS), answers(&set, URLS));
        assert_eq!(
            answers(&set, URLS),
            [
                "307 https://r.example/host-exact host-exact t.toml:4 #0",
                "301 https://one.example/y one one.csv:1 #1",
                "301 https://two.example/z two two.csv:1 #7",
                "302 https://one.example/deep one one.csv:2 #2",
                // Exact host, longest prefix: `late` (/p/q) beats the row /p.
                "pool p late",
                "301 https://two.example/p two two.csv:3 #9",
                "307 https://r.example/any-prefix/r any-prefix t.toml:20 #5",
                "301 https://one.example/w1 one one.csv:3 #3",
                "307 https://r.example/wild/2 wild t.toml:14 #4",
                // Exact before regex, whatever the layers' order.
                "301 https://two.example/re7 two two.csv:2 #8",
                "307 https://r.example/re/8 re t.toml:25 #6",
                "-",
            ]
        );
    }

    #[test]
    fn a_partial_compile_answers_as_a_whole_one_and_shares_what_did_not_change() {
        let v1 = with_lists(LAYERED, &[("one", ONE), ("two", TWO)]);
        let edited = LAYERED.replace("/any-prefix\"", "/edited\"");
        let v2 = with_lists(&edited, &[("one", ONE), ("two", TWO)]);
        let two_edited = TWO.replace("two.example/z", "two.example/zz");
        let v3 = with_lists(&edited, &[("one", ONE), ("two", &two_edited)]);
        let (s1, _) = layered(&v1, None);
        // One [[redirect]] edited: its run alone is compiled.
        let (s2, p) = layered(&v2, Some(&s1));
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(s2.shared_with(&s1), (5, 4, 8));
        assert_eq!(answers(&s2, URLS), answers(&compile(&v2).0, URLS));
        assert_ne!(answers(&s2, URLS), answers(&s1, URLS));
        // One row of one list edited: that list alone.
        let (s3, _) = layered(&v3, Some(&s2));
        assert_eq!(s3.shared_with(&s2), (5, 4, 8));
        let (whole, _) = compile(&v3);
        assert_eq!(answers(&s3, URLS), answers(&whole, URLS));
        let changed: Vec<usize> = (0..URLS.len())
            .filter(|&i| answers(&s3, URLS)[i] != answers(&s2, URLS)[i])
            .collect();
        assert_eq!(changed, [2]);
        // And back: the first answers again.
        let (s4, _) = layered(&v1, Some(&s3));
        assert_eq!(answers(&s4, URLS), answers(&s1, URLS));
        // A pool's targets change: the tables are kept (they know pools by
        // name) and a pool redirect names the current pool.
        let v5 = with_lists(
            &LAYERED.replace("https://pool.example", "https://pool2.example"),
            &[("one", ONE), ("two", TWO)],
        );
        let (s5, _) = layered(&v5, Some(&s4));
        assert_eq!(s5.shared_with(&s4), (5, 5, 11));
        match s5.decide(&get("GET", "a.example", "/p/q/other")) {
            Decision::Pool(p) => assert_eq!(p.pool.targets[0].2, "https://pool2.example"),
            d => panic!("{d:?}"),
        }
        // The metric labels follow the layers.
        let labels: Vec<(u32, String)> = s4
            .rules()
            .map(|r| (r.label_index(), r.metric_label().into_owned()))
            .collect();
        let again: Vec<(u32, String)> = s1
            .rules()
            .map(|r| (r.label_index(), r.metric_label().into_owned()))
            .collect();
        assert_eq!(labels, again);
        assert_eq!(s4.label_count(), 7);
    }

    fn problem_codes(p: &[crate::problem::Problem]) -> Vec<(&'static str, Option<String>, u32)> {
        p.iter()
            .map(|p| (p.code, p.rule.clone(), p.line.unwrap_or(0)))
            .collect()
    }

    #[test]
    fn duplicates_and_shadowing_are_found_across_layers() {
        let src = "[[redirect]]\nid = \"r\"\nhost = \"a.example\"\npath = \"/y\"\nto = \"/elsewhere\"\n\n\
            [[redirect]]\nid = \"rc\"\nhost = \"a.example\"\npath = \"/c\"\nscheme = \"https\"\nto = \"/elsewhere\"\n\n\
            [[list]]\nid = \"one\"\nfile = \"one.csv\"\n";
        let rows = "a.example/x,https://one.example/x,301\nhttps://a.example/y,https://one.example/y,301\nhttps://a.example/c,https://one.example/c,301\n";
        let (_, p) = layered(&with_lists(src, &[("one", rows)]), None);
        assert_eq!(
            problem_codes(&p),
            [
                ("shadowed", Some("one".into()), 2),
                ("duplicate_rule", Some("one".into()), 3)
            ]
        );
        assert!(p[1].message.contains("t.toml:7"), "{}", p[1].message);
        assert!(
            p[0].message.contains("rule \"r\" at t.toml:1"),
            "{}",
            p[0].message
        );
    }

    /// Loops found from a partial compile of `v2` after `v1`, and by the
    /// whole lint; with `between`, a set compiled after `v1` and before
    /// `v2` whose own lint has not run.
    fn loops_both_ways(
        v1: &str,
        between: Option<&str>,
        v2: &str,
        rows: &str,
    ) -> (Vec<String>, Vec<String>) {
        let s1 = with_lists(v1, &[("one", rows)]);
        let (set1, p) = layered(&s1, None);
        assert!(p.is_empty(), "{p:?}");
        assert!(set1.lint(0).iter().all(|p| p.code != "loop"));
        let mut old = std::sync::Arc::new(set1);
        if let Some(between) = between {
            let s = with_lists(between, &[("one", rows)]);
            let (set, _) = layered(&s, Some(&old));
            let loops = lint::loops_after(&set, &old, 0).expect("the first lint ran");
            assert!(loops.is_empty(), "{loops:?}");
            assert!(set.edges.get().is_none());
            old = std::sync::Arc::new(set);
        }
        let s2 = with_lists(v2, &[("one", rows)]);
        let (set2, _) = layered(&s2, Some(&old));
        assert!(set2.shared_with(&old).1 >= 1);
        let partial = lint::loops_after(&set2, &old, 0).expect("a lint ran");
        let whole = compile(&s2).0.lint(0);
        let show = |p: Vec<crate::problem::Problem>| -> Vec<String> {
            p.into_iter()
                .filter(|p| p.code == "loop")
                .map(|p| p.to_string())
                .collect()
        };
        (show(partial), show(whole))
    }

    #[test]
    fn a_loop_through_kept_layers_is_found_from_what_changed() {
        let rows = "x.example/a,https://x.example/b,301\n";
        let tail = "[[list]]\nid = \"one\"\nfile = \"one.csv\"\n\n\
            [[redirect]]\nid = \"back\"\nprefix = \"/b\"\nto = \"https://x.example/a\"\n";
        let guard = "[[redirect]]\nid = \"guard\"\nhost = \"x.example\"\npath = \"/b\"\nto = \"https://else.example/\"\n\n";
        // A new rule closes the loop.
        let fwd = guard.replace("https://else.example/", "https://x.example/a");
        let v1 = format!("{guard}{tail}");
        let (partial, whole) = loops_both_ways(&v1, None, &format!("{fwd}{tail}"), rows);
        assert_eq!(partial.len(), 1, "{partial:?}");
        assert_eq!(partial, whole);
        // The rule that stood in the way is gone: a loop of kept rules alone.
        let (partial, whole) = loops_both_ways(&v1, None, tail, rows);
        assert_eq!(partial.len(), 1, "{partial:?}");
        assert!(partial[0].contains("\"back\""), "{partial:?}");
        assert_eq!(partial, whole);
        // The same, from a set whose own lint has not run yet: found from
        // the lint of the one before it.
        let other = guard.replace("else.example", "else2.example");
        let between = format!("{other}{tail}");
        let (partial, whole) = loops_both_ways(&v1, Some(&between), tail, rows);
        assert_eq!(partial.len(), 1, "{partial:?}");
        assert_eq!(partial, whole);
        // No loop: nothing said.
        let (partial, whole) = loops_both_ways(&v1, None, &between, rows);
        assert!(
            whole.is_empty() && partial.is_empty(),
            "{partial:?} {whole:?}"
        );
    }
}
