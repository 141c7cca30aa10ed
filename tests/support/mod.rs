//! Harness for the integration tests, one file per job:
//!
//! * `fixtures.rs`: the binary, temporary directories, free ports, polling
//!   with a deadline;
//! * `proxy.rs`: the real binary started with `serve` on free loopback
//!   ports;
//! * `client.rs`: a byte-exact raw HTTP/1.1 client and the metrics reader;
//! * `backend.rs`: a recording HTTP/1.1 test backend that can be stopped and
//!   restarted on the same port;
//! * `process.rs`: the `serve` processes under /proc, and signals to them;
//! * `prometheus.rs`: a real Prometheus scraping the test proxies;
//! * `two_errors.rs`: configurations with errors in two load phases;
//! * `tls.rs`: a throwaway CA, leaf certificates and an OpenSSL client;
//! * `upgrade.rs`: the `serve --upgrade` side of a graceful upgrade.
//!
//! Everything here is bounded: every wait has a deadline, every loop a count,
//! and whatever a value starts it stops on drop.

#![allow(dead_code, unused_imports)]

pub mod backend;
pub mod client;
pub mod fixtures;
pub mod process;
pub mod prometheus;
pub mod proxy;
pub mod tls;
pub mod two_errors;
pub mod upgrade;

pub use backend::*;
pub use client::*;
pub use fixtures::*;
pub use process::*;
pub use prometheus::*;
pub use proxy::*;
pub use upgrade::Upgraded;
