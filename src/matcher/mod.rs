//! Request-side normalisation and the lookup structures of a compiled rule set.
//!
//! [`host`] turns a raw `Host`/`:authority` into the name rules are indexed
//! by, and reads a rule's host pattern; [`path`] resolves dot segments and
//! builds the comparison key of docs/configuration.md ("Path");
//! [`regex_tier`] matches all regex rules of a host tier in one scan of one
//! lazy DFA before any single regex runs.

pub mod host;
pub mod path;
pub mod regex_tier;
