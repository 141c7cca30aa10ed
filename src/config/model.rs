//! The configuration model: what a checked configuration file holds.
//!
//! Plain data, built by the reader ([`super::parse`]) and read by the
//! compiler, the routing and the servers. Defaults are those of
//! docs/configuration.md.

use super::conditions::Conditions;
pub use crate::matcher::host::HostPattern;
pub use crate::request::Scheme;
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// What happens to the request's query string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryMode {
    Preserve,
    Drop,
}

/// How a backend or a pool target is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    RoundRobin,
    Random,
    Hash,
}

pub use crate::request::HashKey;

/// A health check of backends or pool targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub kind: HealthCheckKind,
    pub interval: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthCheckKind {
    Tcp,
    Http { path: String },
}

/// Where a rule, a list or a section was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub file: Arc<str>,
    pub line: u32,
    pub column: u32,
}

/// How the path of a rule is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PathKind {
    Exact,
    Prefix,
    Regex,
}

impl PathKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PathKind::Exact => "exact",
            PathKind::Prefix => "prefix",
            PathKind::Regex => "regex",
        }
    }
}

/// A rule as written in a `[[redirect]]` table (or derived from a list row).
#[derive(Debug, Clone)]
pub struct RedirectRule {
    pub id: String,
    pub host: HostPattern,
    pub kind: PathKind,
    /// The path, prefix or regex as written.
    pub path: String,
    pub to: Option<String>,
    pub pool: Option<String>,
    pub status: Option<u16>,
    pub query: Option<QueryMode>,
    pub keep_suffix: bool,
    pub preserve_method: Option<bool>,
    pub conditions: Conditions,
    pub case_insensitive: bool,
    pub cache_control: Option<String>,
    pub retry_after: Option<u32>,
    pub headers: Vec<(String, String)>,
    pub place: Place,
    /// Position in the file, for file order between rules and lists.
    pub order: usize,
}

/// How list rules are counted in the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListMetrics {
    List,
    Source,
}

/// A `[[list]]` entry.
#[derive(Debug, Clone)]
pub struct ListSpec {
    pub id: String,
    /// Resolved against the configuration file's directory.
    pub file: PathBuf,
    /// As written.
    pub file_raw: String,
    pub metrics: ListMetrics,
    pub place: Place,
    pub order: usize,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: Vec<SocketAddr>,
    pub admin: SocketAddr,
    pub threads: usize,
    pub h2c: bool,
    /// Answer bodiless HTTP/1.1 GET and HEAD redirects below Pingora's
    /// proxy layer (`crate::fast`); everything else goes to Pingora.
    pub fast_path: bool,
    pub grace_period: Duration,
    pub trusted_proxies: Vec<IpNet>,
    pub watch: bool,
    pub upgrade_sock: PathBuf,
    pub pid_file: PathBuf,
    /// The whole request head must arrive within this time from its first
    /// byte (from the accept for a new connection), else 408 and close.
    pub header_timeout: Duration,
    /// The longest wait for the next bytes of a request body.
    pub body_timeout: Duration,
    /// How long an idle keep-alive connection waits for its next request.
    pub idle_timeout: Duration,
    /// Open client connections per listener; more are answered 503 and closed.
    pub max_connections: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 8080))],
            admin: SocketAddr::from(([127, 0, 0, 1], 9091)),
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            h2c: false,
            fast_path: true,
            grace_period: Duration::from_secs(5),
            trusted_proxies: Vec::new(),
            watch: false,
            upgrade_sock: PathBuf::from("/tmp/pingora-redirect-upgrade.sock"),
            pid_file: PathBuf::from("/tmp/pingora-redirect.pid"),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defaults {
    pub status: u16,
    pub query: QueryMode,
    pub preserve_method: bool,
    pub permanent_cache_control: String,
    pub temporary_cache_control: String,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            status: 307,
            query: QueryMode::Preserve,
            preserve_method: true,
            permanent_cache_control: "max-age=86400".into(),
            temporary_cache_control: "no-store".into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// `ip:port` strings as configured (the metrics label).
    pub backends: Vec<String>,
    pub selection: Selection,
    pub health_check: Option<HealthCheck>,
    pub failover_pool: Option<String>,
}

#[derive(Debug, Clone)]
pub struct MaintenanceConfig {
    pub enabled: bool,
    pub backends: Vec<String>,
    pub redirect_pool: Option<String>,
    pub retry_after: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolTarget {
    /// The base URL as configured (the metrics label).
    pub url: String,
    pub weight: u32,
}

#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub name: String,
    pub targets: Vec<PoolTarget>,
    pub selection: Selection,
    pub hash_key: HashKey,
    pub health_check: Option<HealthCheck>,
}

/// Where access-log lines go (`[log] access`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AccessTarget {
    #[default]
    Off,
    Stdout,
    /// A file, resolved against the configuration file's directory.
    File(PathBuf),
}

/// How access-log lines are written (`[log] format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// The nginx/Apache combined format and four fields more.
    #[default]
    Combined,
    /// One JSON object per line.
    Json,
}

/// `[log]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogConfig {
    pub access: AccessTarget,
    pub format: LogFormat,
}

/// The oldest TLS version a handshake may use (`[tls] min_version`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TlsVersion {
    #[default]
    V1_2,
    V1_3,
}

/// `[tls] hsts`: the `Strict-Transport-Security` sent over TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hsts {
    /// Seconds.
    pub max_age: u64,
    pub include_subdomains: bool,
    pub preload: bool,
}

impl Hsts {
    /// The header's value, e.g. `max-age=31536000; includeSubDomains`.
    pub fn value(&self) -> String {
        let mut v = format!("max-age={}", self.max_age);
        if self.include_subdomains {
            v.push_str("; includeSubDomains");
        }
        if self.preload {
            v.push_str("; preload");
        }
        v
    }
}

/// `[tls]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// HTTPS listeners.
    pub listen: Vec<SocketAddr>,
    pub min_version: TlsVersion,
    /// Plain-HTTP requests no rule answers, for a host a certificate
    /// covers, get a 308 to https.
    pub redirect_http: bool,
    pub hsts: Option<Hsts>,
    pub place: Place,
}

/// A `[[certificate]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateSpec {
    /// The certificate chain's PEM file, resolved against the configuration
    /// file's directory.
    pub cert: PathBuf,
    /// As written (the metrics label).
    pub cert_raw: String,
    /// The private key's PEM file, resolved.
    pub key: PathBuf,
    pub default: bool,
    pub place: Place,
}

/// A whole configuration file, checked.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    pub server: ServerConfig,
    pub defaults: Defaults,
    pub upstream: Option<UpstreamConfig>,
    pub maintenance: Option<MaintenanceConfig>,
    pub pools: BTreeMap<String, PoolConfig>,
    pub redirects: Vec<RedirectRule>,
    pub lists: Vec<ListSpec>,
    pub log: LogConfig,
    /// Where `[log] access` was written, for problems with its file.
    pub log_place: Option<Place>,
    /// `[tls]`: `None` serves plain HTTP only.
    pub tls: Option<TlsConfig>,
    /// The `[[certificate]]` entries, in file order.
    pub certificates: Vec<CertificateSpec>,
}
