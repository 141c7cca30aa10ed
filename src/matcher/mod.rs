//! Request-side normalisation and the lookup structures of a compiled rule set.
//!
//! [`host`] turns a raw `Host`/`:authority` into the name rules are indexed by;
//! [`path`] resolves dot segments and builds the comparison key of docs/configuration.md ("Path");
//! [`regex_tier`] runs all regex rules of a host tier through one Aho-Corasick
//! pass over their required literals before any single regex runs.

pub mod host;
pub mod path;
pub mod regex_tier;
