//! # pingora-redirect
//!
//! A rule-based redirect engine and front proxy built on Cloudflare's Pingora.
//!
//! Data flows one way:
//!
//! ```text
//! config file(s) ──load──▶ Config (checked, with places for every problem)
//!                ──compile──▶ RuleSet (immutable: host tiers, path indexes, regex prefilter)
//! request ──RequestView──▶ RuleSet::decide() ──▶ Decision (rule, status, Location, headers)
//! ```
//!
//! * [`config`] reads the TOML file and the bulk CSV lists and reports every
//!   problem with its file, line, column and rule id.
//! * [`rules`] compiles them into a [`rules::RuleSet`] whose lookups cost a
//!   handful of hash probes and one Aho-Corasick pass, whatever the number of
//!   rules, and lints it (loops, chains, shadowed and expired rules).
//! * [`location`] builds the `Location` header and enforces the safety
//!   invariants: scheme, host and port come from the configuration only, and
//!   no byte a browser could reinterpret is ever copied raw.
//!
//! The decision is a pure function: `explain`, the tests and the benchmarks
//! call exactly what the proxy calls.
//!
//! ```
//! use pingora_redirect::config::{self, Scheme};
//! use pingora_redirect::rules::{self, Decision, RequestView};
//! use std::path::Path;
//!
//! let src = r#"
//! [[redirect]]
//! id = "docs"
//! prefix = "/docs"
//! to = "https://new.example/documentation"
//! status = 308
//! "#;
//! let (cfg, problems) = config::parse(src, Path::new("example.toml"));
//! assert!(problems.is_empty());
//! let (set, problems) = rules::compile(&cfg);
//! assert!(problems.is_empty());
//! let req = RequestView {
//!     method: "GET",
//!     scheme: Scheme::Https,
//!     host: Some("old.example"),
//!     path: b"/docs/install",
//!     query: Some(b"v=2"),
//!     client: None,
//!     now: 0,
//! };
//! match set.decide(&req) {
//!     Decision::Redirect(r) => {
//!         assert_eq!(r.status, 308);
//!         assert_eq!(r.location, "https://new.example/documentation/install?v=2");
//!     }
//!     other => panic!("{other:?}"),
//! }
//! ```

pub mod admin;
pub mod config;
pub mod explain;
pub mod guard;
pub mod location;
pub mod matcher;
pub mod metrics;
pub mod plugin;
pub mod pool;
pub mod problem;
pub mod proxy;
pub mod reload;
mod reply_watch;
pub mod rules;
pub mod serve;

/// Current Unix time in seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
