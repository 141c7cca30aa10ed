//! # pingora-redirect
//!
//! A rule-based redirect engine and front proxy built on Cloudflare's Pingora.
//!
//! Data flows one way:
//!
//! ```text
//! files ──load.rs──▶ Sources (Config + list and certificate bytes, every problem with its place)
//!       ──rules::compile (pure)──▶ RuleSet ──lint──▶ Loaded (+ tls::build: certificates)
//!       ──Snapshot::new──▶ Snapshot { rules, counters, pools, routing, tls, config }
//!                          one Arc behind one ArcSwap, swapped once per reload
//! Session ──http::request──▶ RequestView ──route::route──▶ RuleSet::decide ──▶ Decision
//!                                                          + routing ──▶ Action
//! Action ──http::response──▶ the reply     (metrics record the Action once)
//! ```
//!
//! * **Loading** ([`load`], [`read_sources`]) is the one place that reads
//!   files. [`Sources`] holds the configuration model and the bytes of every
//!   list; [`compile`] turns them into a [`RuleSet`] without touching a file;
//!   the lint follows the rules for loops and chains. Every problem of every
//!   step is kept, with its file, line, column and rule id ([`Problem`]).
//! * **Deciding** ([`RuleSet::decide`]) is pure: a [`RequestView`] in, a
//!   [`Decision`] out. Lookups cost a handful of hash probes and one
//!   lazy-DFA scan for the regexes of a tier, whatever the number of rules;
//!   a rule's conditions live in one module (`config/conditions.rs`).
//! * **Routing** (`route.rs`) is the whole policy as one function: the
//!   rules, then the maintenance swap, then the upstream or its failover
//!   pool, else 404. `serve` and `explain` both call it, so `explain` says
//!   what `serve` does.
//! * **Serving**: the front proxy's `ProxyHttp` (`proxy.rs`) and the
//!   embeddable [`RedirectPlugin`] read a request, route it and write the
//!   reply; a [`Snapshot`] holds everything a request reads and a reload
//!   swaps it once. Around them: the connection guard ([`guard`], which
//!   also does the TLS handshake of HTTPS listeners with the certificate the
//!   snapshot's SNI index picks, `tls.rs`), health checks, the admin
//!   listener, reload.
//!
//! The `Location` builder (`location.rs`) enforces the safety invariants:
//! scheme, host and port come from the configuration only, and no byte a
//! browser could reinterpret is ever copied raw.
//!
//! ```
//! use pingora_redirect::{compile, Decision, RequestView, Scheme, Sources};
//! use std::path::Path;
//!
//! let src = r#"
//! [[redirect]]
//! id = "docs"
//! prefix = "/docs"
//! to = "https://new.example/documentation"
//! status = 308
//! "#;
//! let sources = Sources::from_text(src, Path::new("example.toml"), |_| Ok(Vec::new()));
//! assert!(sources.problems.is_empty());
//! let (set, problems) = compile(&sources);
//! assert!(problems.is_empty());
//! let req = RequestView::new("GET", Scheme::Https, Some("old.example"), b"/docs/install", Some(b"v=2"));
//! match set.decide(&req) {
//!     Decision::Redirect(r) => {
//!         assert_eq!(r.status, 308);
//!         assert_eq!(r.location, "https://new.example/documentation/install?v=2");
//!     }
//!     other => panic!("{other:?}"),
//! }
//! ```

mod access_log;
mod admin;
pub mod audit;
mod config;
pub mod explain;
mod fast;
pub mod guard;
mod health;
mod http;
mod load;
mod location;
mod matcher;
mod metrics;
mod pace;
mod plugin;
mod pool;
mod problem;
mod proxy;
mod reload;
mod reply_watch;
mod request;
mod route;
mod rules;
pub mod serve;
mod snapshot;
mod tls;
mod upstream;

pub use config::{parse as parse_config, Conditions, Config, Sources};
pub use load::{load, load_sources, read_sources, Loaded};
pub use plugin::{Handled, RedirectPlugin};
pub use problem::{Problem, Severity};
pub use request::{RequestView, Scheme};
pub use rules::{
    compile, BadRequest, Decision, PoolInfo, PoolRedirect, Redirect, RuleCounts, RuleRef, RuleSet,
};
pub use snapshot::{Shared, Snapshot};

/// Current Unix time in seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Internals the fuzz targets and the property tests drive directly. Not
/// part of the API: they change without notice.
#[doc(hidden)]
pub mod internals {
    pub use crate::config::list;
    pub use crate::location::{
        assemble, check_pool_base, html_body, parse_target, pool_base, Groups, NoGroups, Vars,
    };
    pub use crate::matcher::host::{normalize_config_host, normalize_host};
    pub use crate::matcher::path::remove_dot_segments;
}
