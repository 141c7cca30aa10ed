//! A fixed amount of `decide()` work, for instruction counts that do not
//! move with the machine's load:
//!
//! ```sh
//! cargo bench --bench instructions --no-run
//! valgrind --tool=callgrind --toggle-collect='*lookups*' \
//!     target/release/deps/instructions-HASH list 1000
//! ```
//!
//! `list N` or `regex N` builds the rule set of `benches/common` with N
//! rules, then `lookups` runs 100,000 requests of its request mix;
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
    let (conf, reqs) = match kind.as_str() {
        "regex" => (
            common::write_regex_config(n),
            common::regex_requests(n, 4096),
        ),
        _ => (common::write_list_config(n), common::list_requests(n, 4096)),
    };
    let loaded = common::load(&conf);
    let set = loaded.rules.as_ref().expect("loaded");
    let hits = lookups(set, &reqs);
    println!("{kind} {n}: {LOOKUPS} lookups, {hits} redirects");
    let _ = std::fs::remove_dir_all(conf.parent().expect("dir"));
}
