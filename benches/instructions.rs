//! A fixed amount of `decide()` work, for instruction counts that do not
//! move with the machine's load:
//!
//! ```sh
//! cargo bench --bench instructions --no-run
//! valgrind --tool=callgrind --toggle-collect='*lookups*' \
//!     target/release/deps/instructions-HASH list 1000
//! ```
//!
//! `list N`, `regex N`, `shared N` or `noliteral N` builds the rule set of
//! `benches/common` with N rules, then `lookups` runs 100,000 requests of its request mix;
//! callgrind counts only what runs inside `lookups`.

#[path = "common/mod.rs"]
mod common;

use pingora_redirect::{Decision, RuleSet};

const LOOKUPS: usize = 100_000;

#[inline(never)]
fn lookups(set: &RuleSet, reqs: &[(String, String, Option<String>)]) -> usize {
    let mut hits = 0;
    for i in 0..LOOKUPS {
        let d = set.decide(&common::view(&reqs[i % reqs.len()]));
        hits += usize::from(matches!(d, Decision::Redirect(_)));
    }
    hits
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let kind = args.next().unwrap_or_else(|| "list".into());
    let n: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(1000);
    let shape = match kind.as_str() {
        "regex" => Some(common::Regexes::Distinct),
        "shared" => Some(common::Regexes::SharedLiteral),
        "noliteral" => Some(common::Regexes::NoLiteral),
        _ => None,
    };
    let (conf, reqs) = match shape {
        Some(shape) => (
            common::write_regexes(shape, n),
            common::regex_shape_requests(shape, n, 4096),
        ),
        None => (common::write_list_config(n), common::list_requests(n, 4096)),
    };
    let loaded = common::load(&conf);
    let set = loaded.rules.as_ref().expect("loaded");
    // Once without counting: a lazy DFA builds its states as keys need them.
    for r in &reqs {
        std::hint::black_box(set.decide(&common::view(r)));
    }
    let hits = lookups(set, &reqs);
    println!("{kind} {n}: {LOOKUPS} lookups, {hits} redirects");
    let _ = std::fs::remove_dir_all(conf.parent().expect("dir"));
}
