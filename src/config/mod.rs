//! The configuration file: its typed model and the loader that checks it.
//!
//! The loader walks the spanned TOML tree (`toml::de::DeTable`) by hand rather
//! than through `#[derive(Deserialize)]`, so that every problem, an unknown key,
//! a bad value or a missing field, is reported with its file, line, column and
//! the id of the rule it belongs to, and all of them at once instead of the
//! first only. What this module does not do: compile rules (see
//! [`crate::rules`]) or read the bulk lists (see [`list`]).

pub mod list;

use crate::problem::{LineIndex, Problem};
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// The request scheme a rule can require.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

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

/// What a pool with `selection = "hash"` hashes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    ClientIp,
    Header(String),
    Cookie(String),
}

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

/// A rule's `host`, normalised: lower case, IDNA (punycode), no trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// No `host`: any host.
    Any,
    /// `example.com`: exactly that host.
    Exact(String),
    /// `*.example.com`: any subdomain, not the apex (holds `example.com`).
    Subdomains(String),
    /// `.example.com`: the apex and every subdomain (holds `example.com`).
    ApexAndSubdomains(String),
}

impl HostPattern {
    /// Does `host` (already normalised) fall under this pattern?
    pub fn matches(&self, host: Option<&str>) -> bool {
        match (self, host) {
            (HostPattern::Any, _) => true,
            (_, None) => false,
            (HostPattern::Exact(h), Some(x)) => h == x,
            (HostPattern::Subdomains(s), Some(x)) => is_subdomain(x, s),
            (HostPattern::ApexAndSubdomains(s), Some(x)) => x == s || is_subdomain(x, s),
        }
    }
}

fn is_subdomain(host: &str, suffix: &str) -> bool {
    host.len() > suffix.len() + 1
        && host.ends_with(suffix)
        && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
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

/// Request methods as a bit set (0 = any method).
pub mod methods {
    pub const NAMES: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
    ];

    /// The bit of a method name, if it is one of the nine of RFC 9110 and RFC 5789.
    pub fn bit(name: &str) -> Option<u16> {
        NAMES.iter().position(|m| *m == name).map(|i| 1 << i)
    }

    /// Names of the methods in `mask`.
    pub fn names(mask: u16) -> Vec<&'static str> {
        NAMES
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, n)| *n)
            .collect()
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
    pub methods: u16,
    pub scheme: Option<Scheme>,
    pub case_insensitive: bool,
    /// Unix seconds.
    pub active_from: Option<i64>,
    pub active_until: Option<i64>,
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
}

/// Reads and checks the configuration file at `path`.
///
/// `Err` carries an `io` problem when the file itself cannot be read (the
/// caller treats that as an I/O error); otherwise the parsed configuration (as
/// much of it as was valid) and every problem found.
pub fn load_file(path: &Path) -> Result<(Config, Vec<Problem>), Problem> {
    let src = std::fs::read_to_string(path).map_err(|e| {
        Problem::error("io", format!("cannot read the configuration: {e}")).at(
            &path.display().to_string(),
            0,
            None,
        )
    })?;
    Ok(parse(&src, path))
}

/// Parses and checks configuration text; `path` names it in problems and
/// anchors relative list paths.
pub fn parse(src: &str, path: &Path) -> (Config, Vec<Problem>) {
    let mut r = Reader {
        file: Arc::from(path.display().to_string()),
        src,
        lines: LineIndex::new(src),
        problems: Vec::new(),
        base: path.parent().map(Path::to_path_buf).unwrap_or_default(),
        pool_refs: Vec::new(),
        pool_names: Vec::new(),
    };
    let mut cfg = Config {
        path: path.to_path_buf(),
        server: ServerConfig::default(),
        defaults: Defaults::default(),
        upstream: None,
        maintenance: None,
        pools: BTreeMap::new(),
        redirects: Vec::new(),
        lists: Vec::new(),
    };
    let root = match DeTable::parse(src) {
        Ok(t) => t,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            let msg = e.message().trim().to_string();
            r.push("parse", span, None, format!("TOML syntax: {msg}"));
            return (cfg, r.problems);
        }
    };
    r.root(root.get_ref(), &mut cfg);
    r.cross_check(&mut cfg);
    (cfg, r.problems)
}

type Val<'i> = Spanned<DeValue<'i>>;

struct Reader<'s> {
    file: Arc<str>,
    src: &'s str,
    lines: LineIndex,
    problems: Vec<Problem>,
    base: PathBuf,
    /// Pool names referenced, checked once every pool is known.
    pool_refs: Vec<(String, Range<usize>, Option<String>)>,
    /// Every `[pools.NAME]` written, valid or not (so a broken pool is
    /// reported once, not again at each reference).
    pool_names: Vec<String>,
}

const ROOT_KEYS: &[&str] = &[
    "server",
    "defaults",
    "upstream",
    "maintenance",
    "pools",
    "redirect",
    "list",
];
const SERVER_KEYS: &[&str] = &[
    "listen",
    "admin",
    "threads",
    "h2c",
    "grace_period",
    "trusted_proxies",
    "watch",
    "upgrade_sock",
    "pid_file",
    "header_timeout",
    "body_timeout",
    "idle_timeout",
    "max_connections",
];
const DEFAULTS_KEYS: &[&str] = &[
    "status",
    "query",
    "preserve_method",
    "permanent_cache_control",
    "temporary_cache_control",
];
const UPSTREAM_KEYS: &[&str] = &["backends", "selection", "health_check", "failover_pool"];
const MAINTENANCE_KEYS: &[&str] = &["enabled", "backends", "redirect_pool", "retry_after"];
const POOL_KEYS: &[&str] = &["targets", "selection", "hash_key", "health_check"];
const HEALTH_KEYS: &[&str] = &["type", "path", "interval"];
const REDIRECT_KEYS: &[&str] = &[
    "id",
    "host",
    "path",
    "prefix",
    "regex",
    "to",
    "pool",
    "status",
    "query",
    "keep_suffix",
    "preserve_method",
    "methods",
    "scheme",
    "case_insensitive",
    "active_from",
    "active_until",
    "cache_control",
    "retry_after",
    "headers",
];
const LIST_KEYS: &[&str] = &["id", "file", "format", "metrics"];

impl<'s> Reader<'s> {
    fn place(&self, span: &Range<usize>) -> Place {
        let (line, column) = self.lines.locate(self.src, span.start);
        Place {
            file: self.file.clone(),
            line,
            column,
        }
    }

    fn push(&mut self, code: &'static str, span: Range<usize>, rule: Option<&str>, msg: String) {
        let (line, col) = self.lines.locate(self.src, span.start);
        self.problems.push(
            Problem::error(code, msg)
                .at(&self.file, line, Some(col))
                .rule(rule),
        );
    }

    fn unknown(
        &mut self,
        key: &Spanned<std::borrow::Cow<'_, str>>,
        known: &[&str],
        rule: Option<&str>,
        section: &str,
    ) {
        let name = key.get_ref().as_ref();
        let hint = match closest(name, known) {
            Some(k) => format!("did you mean `{k}`?"),
            None => format!("the keys of {section} are: {}", known.join(", ")),
        };
        self.push(
            "unknown_key",
            key.span(),
            rule,
            format!("unknown key `{name}` in {section}; {hint}"),
        );
    }

    fn bad(&mut self, v: &Val<'_>, rule: Option<&str>, msg: String) {
        self.push("bad_value", v.span(), rule, msg);
    }

    fn table<'a, 'i>(
        &mut self,
        v: &'a Val<'i>,
        what: &str,
        rule: Option<&str>,
    ) -> Option<&'a DeTable<'i>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(t),
            other => {
                self.bad(
                    v,
                    rule,
                    format!("{what} must be a table, not a {}", other.type_str()),
                );
                None
            }
        }
    }

    fn string(&mut self, v: &Val<'_>, key: &str, rule: Option<&str>) -> Option<String> {
        match v.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            other => {
                self.bad(
                    v,
                    rule,
                    format!("`{key}` must be a string, not a {}", other.type_str()),
                );
                None
            }
        }
    }

    fn boolean(&mut self, v: &Val<'_>, key: &str, rule: Option<&str>) -> Option<bool> {
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            other => {
                self.bad(
                    v,
                    rule,
                    format!("`{key}` must be true or false, not a {}", other.type_str()),
                );
                None
            }
        }
    }

    fn integer(&mut self, v: &Val<'_>, key: &str, rule: Option<&str>) -> Option<i64> {
        match v.get_ref() {
            DeValue::Integer(i) => {
                match i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()) {
                    Ok(n) => Some(n),
                    Err(_) => {
                        self.bad(v, rule, format!("`{key}` is out of range"));
                        None
                    }
                }
            }
            other => {
                self.bad(
                    v,
                    rule,
                    format!("`{key}` must be an integer, not a {}", other.type_str()),
                );
                None
            }
        }
    }

    fn strings(
        &mut self,
        v: &Val<'_>,
        key: &str,
        rule: Option<&str>,
    ) -> Option<Vec<(String, Range<usize>)>> {
        match v.get_ref() {
            DeValue::Array(a) => {
                let mut out = Vec::new();
                for item in a.iter() {
                    out.push((self.string(item, key, rule)?, item.span()));
                }
                Some(out)
            }
            other => {
                self.bad(
                    v,
                    rule,
                    format!(
                        "`{key}` must be an array of strings, not a {}",
                        other.type_str()
                    ),
                );
                None
            }
        }
    }

    fn duration(&mut self, v: &Val<'_>, key: &str, rule: Option<&str>) -> Option<Duration> {
        let s = self.string(v, key, rule)?;
        match humantime::parse_duration(&s) {
            Ok(d) => Some(d),
            Err(e) => {
                self.bad(
                    v,
                    rule,
                    format!("`{key}` = \"{s}\" is not a duration ({e}); write e.g. \"250ms\", \"5s\" or \"2m\""),
                );
                None
            }
        }
    }

    fn positive_duration(
        &mut self,
        v: &Val<'_>,
        key: &str,
        rule: Option<&str>,
    ) -> Option<Duration> {
        let d = self.duration(v, key, rule)?;
        if d.is_zero() {
            self.bad(v, rule, format!("`{key}` must be longer than zero"));
            return None;
        }
        Some(d)
    }

    fn socket_addr(&mut self, s: &str, span: Range<usize>, key: &str) -> Option<SocketAddr> {
        match s.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.push(
                    "bad_value",
                    span,
                    None,
                    format!("`{key}`: \"{s}\" is not an address; write IP:PORT, e.g. \"127.0.0.1:8080\" or \"[::1]:8080\""),
                );
                None
            }
        }
    }

    fn selection(&mut self, v: &Val<'_>, rule: Option<&str>) -> Option<Selection> {
        let s = self.string(v, "selection", rule)?;
        match s.as_str() {
            "round_robin" => Some(Selection::RoundRobin),
            "random" => Some(Selection::Random),
            "hash" => Some(Selection::Hash),
            _ => {
                self.bad(
                    v,
                    rule,
                    format!(
                        "`selection` = \"{s}\" is not one of \"round_robin\", \"random\", \"hash\""
                    ),
                );
                None
            }
        }
    }

    fn query_mode(&mut self, v: &Val<'_>, rule: Option<&str>) -> Option<QueryMode> {
        let s = self.string(v, "query", rule)?;
        match s.as_str() {
            "preserve" => Some(QueryMode::Preserve),
            "drop" => Some(QueryMode::Drop),
            _ => {
                self.bad(
                    v,
                    rule,
                    format!("`query` = \"{s}\" is not \"preserve\" or \"drop\""),
                );
                None
            }
        }
    }

    fn status(&mut self, v: &Val<'_>, rule: Option<&str>) -> Option<u16> {
        let code = match v.get_ref() {
            DeValue::String(s) => match s.as_ref() {
                "permanent" => return Some(308),
                "temporary" => return Some(307),
                other => {
                    self.bad(
                        v,
                        rule,
                        format!("`status` = \"{other}\" is not a status; write 301, 302, 303, 307, 308, \"permanent\" or \"temporary\""),
                    );
                    return None;
                }
            },
            _ => self.integer(v, "status", rule)?,
        };
        if matches!(code, 301 | 302 | 303 | 307 | 308) {
            Some(code as u16)
        } else {
            self.bad(
                v,
                rule,
                format!(
                    "`status` = {code} is not a redirect status; write 301, 302, 303, 307 or 308"
                ),
            );
            None
        }
    }

    fn header_text(&mut self, v: &Val<'_>, key: &str, rule: Option<&str>) -> Option<String> {
        let s = self.string(v, key, rule)?;
        if s.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            self.bad(
                v,
                rule,
                format!("`{key}` contains a control character, which no header may carry"),
            );
            return None;
        }
        Some(s)
    }

    fn health_check(&mut self, v: &Val<'_>, rule: Option<&str>) -> Option<HealthCheck> {
        let t = self.table(v, "`health_check`", rule)?;
        let mut kind = None;
        let mut path = None;
        let mut interval = Duration::from_secs(5);
        for (k, val) in t.iter() {
            match k.get_ref().as_ref() {
                "type" => kind = Some((self.string(val, "type", rule)?, val.span())),
                "path" => {
                    let p = self.string(val, "path", rule)?;
                    if !p.starts_with('/') || p.bytes().any(|b| b <= b' ' || b >= 0x7f) {
                        self.bad(val, rule, format!("health check `path` \"{p}\" must start with `/` and hold no spaces or control characters"));
                        return None;
                    }
                    path = Some(p);
                }
                "interval" => interval = self.positive_duration(val, "interval", rule)?,
                _ => self.unknown(k, HEALTH_KEYS, rule, "`health_check`"),
            }
        }
        let kind = match kind {
            Some((k, _)) if k == "tcp" => {
                if path.is_some() {
                    self.bad(
                        v,
                        rule,
                        "a `tcp` health check takes no `path`; use type = \"http\" to probe a path"
                            .into(),
                    );
                    return None;
                }
                HealthCheckKind::Tcp
            }
            Some((k, _)) if k == "http" => HealthCheckKind::Http {
                path: path.unwrap_or_else(|| "/".into()),
            },
            Some((k, span)) => {
                self.push(
                    "bad_value",
                    span,
                    rule,
                    format!("health check `type` = \"{k}\" is not \"tcp\" or \"http\""),
                );
                return None;
            }
            None => {
                self.bad(
                    v,
                    rule,
                    "`health_check` needs `type` = \"tcp\" or \"http\"".into(),
                );
                return None;
            }
        };
        Some(HealthCheck { kind, interval })
    }

    fn root(&mut self, root: &DeTable<'_>, cfg: &mut Config) {
        for (k, v) in root.iter() {
            match k.get_ref().as_ref() {
                "server" => {
                    if let Some(t) = self.table(v, "[server]", None) {
                        self.server(t, &mut cfg.server);
                    }
                }
                "defaults" => {
                    if let Some(t) = self.table(v, "[defaults]", None) {
                        self.defaults(t, &mut cfg.defaults);
                    }
                }
                "upstream" => {
                    if let Some(t) = self.table(v, "[upstream]", None) {
                        cfg.upstream = self.upstream(t, v);
                    }
                }
                "maintenance" => {
                    if let Some(t) = self.table(v, "[maintenance]", None) {
                        cfg.maintenance = self.maintenance(t, v);
                    }
                }
                "pools" => {
                    if let Some(t) = self.table(v, "[pools]", None) {
                        for (name, pv) in t.iter() {
                            self.pool_names.push(name.get_ref().to_string());
                            if let Some(p) = self.pool(name.get_ref(), pv) {
                                cfg.pools.insert(p.name.clone(), p);
                            }
                        }
                    }
                }
                "redirect" => match v.get_ref() {
                    DeValue::Array(a) => {
                        for item in a.iter() {
                            if let Some(rule) = self.redirect(item) {
                                cfg.redirects.push(rule);
                            }
                        }
                    }
                    _ => self.bad(
                        v,
                        None,
                        "write each redirect as a `[[redirect]]` table".into(),
                    ),
                },
                "list" => match v.get_ref() {
                    DeValue::Array(a) => {
                        for item in a.iter() {
                            if let Some(l) = self.list(item) {
                                cfg.lists.push(l);
                            }
                        }
                    }
                    _ => self.bad(v, None, "write each list as a `[[list]]` table".into()),
                },
                _ => self.unknown(k, ROOT_KEYS, None, "the top level"),
            }
        }
    }

    fn server(&mut self, t: &DeTable<'_>, s: &mut ServerConfig) {
        for (k, v) in t.iter() {
            match k.get_ref().as_ref() {
                "listen" => {
                    if let Some(list) = self.strings(v, "listen", None) {
                        let addrs: Vec<_> = list
                            .into_iter()
                            .filter_map(|(a, span)| self.socket_addr(&a, span, "listen"))
                            .collect();
                        if addrs.is_empty() {
                            self.bad(v, None, "`listen` needs at least one address".into());
                        } else {
                            s.listen = addrs;
                        }
                    }
                }
                "admin" => {
                    if let Some(a) = self.string(v, "admin", None) {
                        if let Some(addr) = self.socket_addr(&a, v.span(), "admin") {
                            s.admin = addr;
                        }
                    }
                }
                "threads" => {
                    if let Some(n) = self.integer(v, "threads", None) {
                        if (1..=1024).contains(&n) {
                            s.threads = n as usize;
                        } else {
                            self.bad(
                                v,
                                None,
                                format!("`threads` = {n} must be between 1 and 1024"),
                            );
                        }
                    }
                }
                "h2c" => s.h2c = self.boolean(v, "h2c", None).unwrap_or(s.h2c),
                "watch" => s.watch = self.boolean(v, "watch", None).unwrap_or(s.watch),
                "grace_period" => {
                    if let Some(d) = self.duration(v, "grace_period", None) {
                        s.grace_period = d;
                    }
                }
                key @ ("header_timeout" | "body_timeout" | "idle_timeout") => {
                    if let Some(d) = self.duration(v, key, None) {
                        if d < Duration::from_millis(100) || d > Duration::from_secs(3600) {
                            self.bad(v, None, format!("`{key}` must be between 100ms and 1h"));
                        } else if key == "header_timeout" {
                            s.header_timeout = d;
                        } else if key == "body_timeout" {
                            s.body_timeout = d;
                        } else if d.subsec_nanos() != 0 {
                            self.bad(v, None, "`idle_timeout` is whole seconds".into());
                        } else {
                            s.idle_timeout = d;
                        }
                    }
                }
                "max_connections" => {
                    if let Some(n) = self.integer(v, "max_connections", None) {
                        if (1..=1_000_000).contains(&n) {
                            s.max_connections = n as usize;
                        } else {
                            self.bad(
                                v,
                                None,
                                format!("`max_connections` = {n} must be between 1 and 1000000"),
                            );
                        }
                    }
                }
                "trusted_proxies" => {
                    if let Some(list) = self.strings(v, "trusted_proxies", None) {
                        for (c, span) in list {
                            let net = c
                                .parse::<IpNet>()
                                .or_else(|_| c.parse::<std::net::IpAddr>().map(IpNet::from));
                            match net {
                                Ok(n) => s.trusted_proxies.push(n),
                                Err(_) => self.push(
                                    "bad_value",
                                    span,
                                    None,
                                    format!("`trusted_proxies`: \"{c}\" is not a CIDR; write e.g. \"10.0.0.0/8\" or \"::1/128\""),
                                ),
                            }
                        }
                    }
                }
                "upgrade_sock" => {
                    if let Some(p) = self.string(v, "upgrade_sock", None) {
                        s.upgrade_sock = PathBuf::from(p);
                    }
                }
                "pid_file" => {
                    if let Some(p) = self.string(v, "pid_file", None) {
                        s.pid_file = PathBuf::from(p);
                    }
                }
                _ => self.unknown(k, SERVER_KEYS, None, "[server]"),
            }
        }
    }

    fn defaults(&mut self, t: &DeTable<'_>, d: &mut Defaults) {
        for (k, v) in t.iter() {
            match k.get_ref().as_ref() {
                "status" => d.status = self.status(v, None).unwrap_or(d.status),
                "query" => d.query = self.query_mode(v, None).unwrap_or(d.query),
                "preserve_method" => {
                    d.preserve_method = self
                        .boolean(v, "preserve_method", None)
                        .unwrap_or(d.preserve_method)
                }
                "permanent_cache_control" => {
                    if let Some(s) = self.header_text(v, "permanent_cache_control", None) {
                        d.permanent_cache_control = s;
                    }
                }
                "temporary_cache_control" => {
                    if let Some(s) = self.header_text(v, "temporary_cache_control", None) {
                        d.temporary_cache_control = s;
                    }
                }
                _ => self.unknown(k, DEFAULTS_KEYS, None, "[defaults]"),
            }
        }
    }

    fn backends(&mut self, v: &Val<'_>, key: &str) -> Option<Vec<String>> {
        let list = self.strings(v, key, None)?;
        let mut out = Vec::new();
        for (b, span) in list {
            self.socket_addr(&b, span, key)?;
            out.push(b);
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = out.iter().find(|b| !seen.insert(b.as_str())) {
            self.bad(v, None, format!("`{key}` names \"{dup}\" twice"));
            return None;
        }
        Some(out)
    }

    fn upstream(&mut self, t: &DeTable<'_>, whole: &Val<'_>) -> Option<UpstreamConfig> {
        let mut u = UpstreamConfig {
            backends: Vec::new(),
            selection: Selection::RoundRobin,
            health_check: None,
            failover_pool: None,
        };
        let mut ok = true;
        for (k, v) in t.iter() {
            match k.get_ref().as_ref() {
                "backends" => match self.backends(v, "backends") {
                    Some(b) => u.backends = b,
                    None => ok = false,
                },
                "selection" => match self.selection(v, None) {
                    Some(s) => u.selection = s,
                    None => ok = false,
                },
                "health_check" => match self.health_check(v, None) {
                    Some(h) => u.health_check = Some(h),
                    None => ok = false,
                },
                "failover_pool" => match self.string(v, "failover_pool", None) {
                    Some(p) => {
                        self.pool_refs.push((p.clone(), v.span(), None));
                        u.failover_pool = Some(p);
                    }
                    None => ok = false,
                },
                _ => self.unknown(k, UPSTREAM_KEYS, None, "[upstream]"),
            }
        }
        if ok && u.backends.is_empty() {
            self.bad(whole, None, "[upstream] needs `backends`, e.g. backends = [\"127.0.0.1:3000\"]; omit the section to answer 404".into());
            return None;
        }
        ok.then_some(u)
    }

    fn maintenance(&mut self, t: &DeTable<'_>, whole: &Val<'_>) -> Option<MaintenanceConfig> {
        let mut m = MaintenanceConfig {
            enabled: false,
            backends: Vec::new(),
            redirect_pool: None,
            retry_after: None,
        };
        for (k, v) in t.iter() {
            match k.get_ref().as_ref() {
                "enabled" => m.enabled = self.boolean(v, "enabled", None).unwrap_or(false),
                "backends" => m.backends = self.backends(v, "backends").unwrap_or_default(),
                "redirect_pool" => {
                    if let Some(p) = self.string(v, "redirect_pool", None) {
                        self.pool_refs.push((p.clone(), v.span(), None));
                        m.redirect_pool = Some(p);
                    }
                }
                "retry_after" => m.retry_after = self.retry_after(v, None),
                _ => self.unknown(k, MAINTENANCE_KEYS, None, "[maintenance]"),
            }
        }
        if !m.backends.is_empty() && m.redirect_pool.is_some() {
            self.bad(
                whole,
                None,
                "[maintenance] takes `backends` or `redirect_pool`, not both".into(),
            );
            return None;
        }
        if m.enabled && m.backends.is_empty() && m.redirect_pool.is_none() {
            self.bad(whole, None, "[maintenance] is enabled but has neither `backends` nor `redirect_pool`; name where traffic goes".into());
            return None;
        }
        Some(m)
    }

    fn retry_after(&mut self, v: &Val<'_>, rule: Option<&str>) -> Option<u32> {
        let n = self.integer(v, "retry_after", rule)?;
        match u32::try_from(n) {
            Ok(n) => Some(n),
            Err(_) => {
                self.bad(
                    v,
                    rule,
                    format!("`retry_after` = {n} must be a number of seconds, 0 or more"),
                );
                None
            }
        }
    }

    fn pool(&mut self, name: &str, v: &Val<'_>) -> Option<PoolConfig> {
        let t = self.table(v, "a pool", None)?;
        if !valid_id(name) {
            self.bad(
                v,
                None,
                format!("pool name \"{name}\" may use only A-Z a-z 0-9 _ . : -"),
            );
            return None;
        }
        let section = format!("[pools.{name}]");
        let mut p = PoolConfig {
            name: name.to_string(),
            targets: Vec::new(),
            selection: Selection::RoundRobin,
            hash_key: HashKey::ClientIp,
            health_check: None,
        };
        let mut ok = true;
        for (k, val) in t.iter() {
            match k.get_ref().as_ref() {
                "targets" => match self.pool_targets(val, &section) {
                    Some(ts) => p.targets = ts,
                    None => ok = false,
                },
                "selection" => match self.selection(val, None) {
                    Some(s) => p.selection = s,
                    None => ok = false,
                },
                "hash_key" => match self.string(val, "hash_key", None) {
                    Some(s) => match parse_hash_key(&s) {
                        Some(h) => p.hash_key = h,
                        None => {
                            self.bad(val, None, format!("`hash_key` = \"{s}\" is not \"client_ip\", \"header:NAME\" or \"cookie:NAME\""));
                            ok = false;
                        }
                    },
                    None => ok = false,
                },
                "health_check" => match self.health_check(val, None) {
                    Some(h) => p.health_check = Some(h),
                    None => ok = false,
                },
                _ => self.unknown(k, POOL_KEYS, None, &section),
            }
        }
        if let Some(HealthCheck {
            kind: HealthCheckKind::Http { .. },
            ..
        }) = &p.health_check
        {
            if let Some(t) = p
                .targets
                .iter()
                .find(|t| t.url.to_ascii_lowercase().starts_with("https://"))
            {
                self.bad(
                    v,
                    None,
                    format!(
                        "{section}: an http health check cannot probe the https target \"{}\" (no TLS client here); use type = \"tcp\"",
                        t.url
                    ),
                );
                return None;
            }
        }
        if ok && p.targets.is_empty() {
            self.bad(
                v,
                None,
                format!(
                    "{section} needs `targets`, e.g. targets = [\"https://backup1.example.net\"]"
                ),
            );
            return None;
        }
        ok.then_some(p)
    }

    fn pool_targets(&mut self, v: &Val<'_>, section: &str) -> Option<Vec<PoolTarget>> {
        let DeValue::Array(a) = v.get_ref() else {
            self.bad(
                v,
                None,
                format!("{section} `targets` must be an array of URLs or {{ url, weight }} tables"),
            );
            return None;
        };
        let mut out = Vec::new();
        for item in a.iter() {
            let (url, weight, span) = match item.get_ref() {
                DeValue::String(s) => (s.to_string(), 1, item.span()),
                DeValue::Table(t) => {
                    let mut url = None;
                    let mut weight = 1;
                    for (k, val) in t.iter() {
                        match k.get_ref().as_ref() {
                            "url" => url = Some((self.string(val, "url", None)?, val.span())),
                            "weight" => {
                                let w = self.integer(val, "weight", None)?;
                                if !(1..=10_000).contains(&w) {
                                    self.bad(
                                        val,
                                        None,
                                        format!("`weight` = {w} must be between 1 and 10000"),
                                    );
                                    return None;
                                }
                                weight = w as u32;
                            }
                            _ => self.unknown(k, &["url", "weight"], None, "a pool target"),
                        }
                    }
                    let Some((url, span)) = url else {
                        self.bad(item, None, "a pool target table needs `url`".into());
                        return None;
                    };
                    (url, weight, span)
                }
                other => {
                    self.bad(item, None, format!("a pool target must be a URL string or a {{ url, weight }} table, not a {}", other.type_str()));
                    return None;
                }
            };
            if let Err(e) = crate::location::check_pool_base(&url) {
                self.push(
                    "bad_target",
                    span,
                    None,
                    format!("{section} target \"{url}\": {e}"),
                );
                return None;
            }
            if out.iter().any(|t: &PoolTarget| t.url == url) {
                self.push(
                    "bad_value",
                    span,
                    None,
                    format!("{section} names target \"{url}\" twice; raise its `weight` instead"),
                );
                return None;
            }
            out.push(PoolTarget { url, weight });
        }
        Some(out)
    }

    fn list(&mut self, v: &Val<'_>) -> Option<ListSpec> {
        let t = self.table(v, "a `[[list]]`", None)?;
        let id = t
            .get("id")
            .and_then(|i| i.get_ref().as_str())
            .map(str::to_string);
        let rid = id.as_deref();
        let mut file = None;
        let mut metrics = ListMetrics::List;
        let mut ok = true;
        for (k, val) in t.iter() {
            match k.get_ref().as_ref() {
                "id" => {
                    if !self.check_id(val) {
                        ok = false;
                    }
                }
                "file" => file = self.string(val, "file", rid),
                "format" => {
                    if let Some(f) = self.string(val, "format", rid) {
                        if f != "cloudflare" {
                            self.bad(val, rid, format!("list `format` = \"{f}\" is not known; the one format is \"cloudflare\""));
                            ok = false;
                        }
                    }
                }
                "metrics" => match self.string(val, "metrics", rid).as_deref() {
                    Some("list") => metrics = ListMetrics::List,
                    Some("source") => metrics = ListMetrics::Source,
                    Some(other) => {
                        self.bad(
                            val,
                            rid,
                            format!("list `metrics` = \"{other}\" is not \"list\" or \"source\""),
                        );
                        ok = false;
                    }
                    None => ok = false,
                },
                _ => self.unknown(k, LIST_KEYS, rid, "a `[[list]]`"),
            }
        }
        let Some(id) = id else {
            self.bad(
                v,
                None,
                "a `[[list]]` needs an `id`, e.g. id = \"legacy\"".into(),
            );
            return None;
        };
        let Some(file_raw) = file else {
            self.bad(
                v,
                Some(&id),
                "a `[[list]]` needs `file`, the CSV path relative to this configuration".into(),
            );
            return None;
        };
        if !ok {
            return None;
        }
        let path = self.base.join(&file_raw);
        Some(ListSpec {
            id,
            file: path,
            file_raw,
            metrics,
            place: self.place(&v.span()),
            order: v.span().start,
        })
    }

    fn check_id(&mut self, v: &Val<'_>) -> bool {
        match v.get_ref().as_str() {
            Some(s) if valid_id(s) => true,
            Some(s) => {
                self.bad(
                    v,
                    Some(s),
                    format!("id \"{s}\" may use only A-Z a-z 0-9 _ . : - (it is a metrics label)"),
                );
                false
            }
            None => {
                self.bad(v, None, "`id` must be a string".into());
                false
            }
        }
    }

    fn redirect(&mut self, v: &Val<'_>) -> Option<RedirectRule> {
        let t = self.table(v, "a `[[redirect]]`", None)?;
        let id = t
            .get("id")
            .and_then(|i| i.get_ref().as_str())
            .map(str::to_string);
        let rid = id.as_deref();
        let mut ok = true;
        let mut rule = RedirectRule {
            id: String::new(),
            host: HostPattern::Any,
            kind: PathKind::Prefix,
            path: String::new(),
            to: None,
            pool: None,
            status: None,
            query: None,
            keep_suffix: true,
            preserve_method: None,
            methods: 0,
            scheme: None,
            case_insensitive: false,
            active_from: None,
            active_until: None,
            cache_control: None,
            retry_after: None,
            headers: Vec::new(),
            place: self.place(&v.span()),
            order: v.span().start,
        };
        let mut paths: Vec<(PathKind, String, Range<usize>)> = Vec::new();
        let mut from_span = None;
        let mut to_span = None;
        let mut keep_suffix_span = None;
        for (k, val) in t.iter() {
            let key = k.get_ref().as_ref();
            match key {
                "id" => ok &= self.check_id(val),
                "host" => match self.string(val, "host", rid) {
                    Some(h) => match parse_host_pattern(&h) {
                        Ok(p) => rule.host = p,
                        Err(e) => {
                            self.bad(val, rid, format!("`host` = \"{h}\": {e}"));
                            ok = false;
                        }
                    },
                    None => ok = false,
                },
                "path" | "prefix" | "regex" => {
                    let kind = match key {
                        "path" => PathKind::Exact,
                        "prefix" => PathKind::Prefix,
                        _ => PathKind::Regex,
                    };
                    match self.string(val, key, rid) {
                        Some(p) => {
                            if kind != PathKind::Regex {
                                if let Err(e) = check_rule_path(&p) {
                                    self.bad(val, rid, format!("`{key}` = \"{p}\": {e}"));
                                    ok = false;
                                }
                            }
                            paths.push((kind, p, val.span()));
                        }
                        None => ok = false,
                    }
                }
                "to" => {
                    to_span = Some(val.span());
                    rule.to = self.string(val, "to", rid);
                    ok &= rule.to.is_some();
                }
                "pool" => match self.string(val, "pool", rid) {
                    Some(p) => {
                        self.pool_refs.push((p.clone(), val.span(), id.clone()));
                        rule.pool = Some(p);
                    }
                    None => ok = false,
                },
                "status" => match self.status(val, rid) {
                    Some(s) => rule.status = Some(s),
                    None => ok = false,
                },
                "query" => match self.query_mode(val, rid) {
                    Some(q) => rule.query = Some(q),
                    None => ok = false,
                },
                "keep_suffix" => {
                    keep_suffix_span = Some(val.span());
                    match self.boolean(val, key, rid) {
                        Some(b) => rule.keep_suffix = b,
                        None => ok = false,
                    }
                }
                "preserve_method" => match self.boolean(val, key, rid) {
                    Some(b) => rule.preserve_method = Some(b),
                    None => ok = false,
                },
                "case_insensitive" => match self.boolean(val, key, rid) {
                    Some(b) => rule.case_insensitive = b,
                    None => ok = false,
                },
                "methods" => {
                    match self.strings(val, "methods", rid) {
                        Some(list) if !list.is_empty() => {
                            for (m, span) in list {
                                match methods::bit(&m.to_ascii_uppercase()) {
                                    Some(b) => rule.methods |= b,
                                    None => {
                                        self.push("bad_value", span, rid, format!("`methods`: \"{m}\" is not a method; write any of {}", methods::NAMES.join(", ")));
                                        ok = false;
                                    }
                                }
                            }
                        }
                        Some(_) => {
                            self.bad(
                                val,
                                rid,
                                "`methods` = [] would never match; omit it to allow every method"
                                    .into(),
                            );
                            ok = false;
                        }
                        None => ok = false,
                    }
                }
                "scheme" => match self.string(val, "scheme", rid).as_deref() {
                    Some("http") => rule.scheme = Some(Scheme::Http),
                    Some("https") => rule.scheme = Some(Scheme::Https),
                    Some(other) => {
                        self.bad(
                            val,
                            rid,
                            format!("`scheme` = \"{other}\" is not \"http\" or \"https\""),
                        );
                        ok = false;
                    }
                    None => ok = false,
                },
                "active_from" | "active_until" => match self.datetime(val, key, rid) {
                    Some(ts) => {
                        if key == "active_from" {
                            from_span = Some(val.span());
                            rule.active_from = Some(ts);
                        } else {
                            rule.active_until = Some(ts);
                        }
                    }
                    None => ok = false,
                },
                "cache_control" => match self.header_text(val, key, rid) {
                    Some(s) => rule.cache_control = Some(s),
                    None => ok = false,
                },
                "retry_after" => match self.retry_after(val, rid) {
                    Some(s) => rule.retry_after = Some(s),
                    None => ok = false,
                },
                "headers" => match self.headers(val, rid) {
                    Some(h) => rule.headers = h,
                    None => ok = false,
                },
                _ => self.unknown(k, REDIRECT_KEYS, rid, "a `[[redirect]]`"),
            }
        }
        let Some(id) = id else {
            self.bad(v, None, "a `[[redirect]]` needs an `id`, e.g. id = \"docs\" (it names the rule in logs and metrics)".into());
            return None;
        };
        rule.id = id;
        let rid = Some(rule.id.as_str());
        match paths.len() {
            1 => {
                let (kind, p, _) = paths.pop().expect("one path");
                rule.kind = kind;
                rule.path = p;
            }
            0 => {
                self.bad(
                    v,
                    rid,
                    "a `[[redirect]]` needs one of `path` (exact), `prefix` or `regex`".into(),
                );
                return None;
            }
            _ => {
                self.push(
                    "bad_value",
                    paths[1].2.clone(),
                    rid,
                    "a `[[redirect]]` takes exactly one of `path`, `prefix`, `regex`".into(),
                );
                return None;
            }
        }
        match (&rule.to, &rule.pool) {
            (None, None) => {
                self.bad(
                    v,
                    rid,
                    "a `[[redirect]]` needs `to` (the target URL) or `pool` (a [pools.*] name)"
                        .into(),
                );
                return None;
            }
            (Some(_), Some(_)) => {
                self.push(
                    "bad_value",
                    to_span.unwrap_or(v.span()),
                    rid,
                    "a `[[redirect]]` takes `to` or `pool`, not both".into(),
                );
                return None;
            }
            _ => {}
        }
        if let Some(span) = keep_suffix_span {
            let uses_path = rule.to.as_deref().is_some_and(|t| t.contains("${path}"));
            let problem = if rule.kind != PathKind::Prefix {
                Some("`keep_suffix` applies to `prefix` rules only")
            } else if rule.pool.is_some() {
                Some("a pool rule always keeps the whole request path; remove `keep_suffix`")
            } else if uses_path && rule.keep_suffix {
                Some("`${path}` already holds the whole path; with `keep_suffix = true` the suffix would be added twice")
            } else {
                None
            };
            if let Some(msg) = problem {
                self.push("bad_value", span, rid, msg.into());
                ok = false;
            }
        } else if rule.to.as_deref().is_some_and(|t| t.contains("${path}")) {
            // `${path}` holds the whole path: by default do not add the suffix again.
            rule.keep_suffix = false;
        }
        if let (Some(from), Some(until)) = (rule.active_from, rule.active_until) {
            if until <= from {
                self.push(
                    "bad_time_window",
                    from_span.unwrap_or(v.span()),
                    rid,
                    "`active_until` is not after `active_from`; the rule could never be active"
                        .into(),
                );
                ok = false;
            }
        }
        ok.then_some(rule)
    }

    fn headers(&mut self, v: &Val<'_>, rule: Option<&str>) -> Option<Vec<(String, String)>> {
        let t = self.table(v, "`headers`", rule)?;
        let mut out = Vec::new();
        for (k, val) in t.iter() {
            let name = k.get_ref().to_string();
            let valid_name = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !valid_name {
                self.push(
                    "bad_value",
                    k.span(),
                    rule,
                    format!("header name \"{name}\" is not a valid field name"),
                );
                return None;
            }
            const RESERVED: &[&str] = &[
                "location",
                "content-length",
                "content-type",
                "transfer-encoding",
                "connection",
                "cache-control",
                "retry-after",
            ];
            if RESERVED.contains(&name.to_ascii_lowercase().as_str()) {
                self.push(
                    "bad_value",
                    k.span(),
                    rule,
                    format!("header \"{name}\" is set by the redirect itself; use `to`, `cache_control` or `retry_after`"),
                );
                return None;
            }
            out.push((name, self.header_text(val, "headers", rule)?));
        }
        Some(out)
    }

    fn datetime(&mut self, v: &Val<'_>, key: &str, rule: Option<&str>) -> Option<i64> {
        let DeValue::Datetime(dt) = v.get_ref() else {
            self.bad(
                v,
                rule,
                format!("`{key}` must be an offset date-time, e.g. {key} = 2026-12-01T00:00:00Z"),
            );
            return None;
        };
        match datetime_to_unix(dt) {
            Some(ts) => Some(ts),
            None => {
                self.bad(
                    v,
                    rule,
                    format!(
                        "`{key}` needs a date, a time and an offset, e.g. 2026-12-01T00:00:00Z"
                    ),
                );
                None
            }
        }
    }

    fn cross_check(&mut self, cfg: &mut Config) {
        // Pool references: every name must exist.
        for (name, span, rule) in std::mem::take(&mut self.pool_refs) {
            if !self.pool_names.contains(&name) {
                let known: Vec<&str> = cfg.pools.keys().map(String::as_str).collect();
                let hint = if known.is_empty() {
                    "there is no [pools.*] section; add one".to_string()
                } else {
                    format!("the pools are: {}", known.join(", "))
                };
                self.push(
                    "unknown_pool",
                    span,
                    rule.as_deref(),
                    format!("pool \"{name}\" is not defined; {hint}"),
                );
            }
        }
        // A rule whose pool is missing or broken has been reported (here or
        // at the pool) and stays out of the compile.
        cfg.redirects
            .retain(|r| r.pool.as_ref().is_none_or(|p| cfg.pools.contains_key(p)));
        // Ids are unique across rules and lists.
        let mut seen: std::collections::HashMap<&str, &Place> = std::collections::HashMap::new();
        let mut dups = Vec::new();
        let ids = cfg
            .redirects
            .iter()
            .map(|r| (&r.id, &r.place))
            .chain(cfg.lists.iter().map(|l| (&l.id, &l.place)));
        for (id, place) in ids {
            if let Some(first) = seen.get(id.as_str()) {
                dups.push(
                    Problem::error(
                        "duplicate_id",
                        format!(
                            "id \"{id}\" is already used at line {}; ids must be unique",
                            first.line
                        ),
                    )
                    .at(&place.file, place.line, Some(place.column))
                    .rule(Some(id)),
                );
            } else {
                seen.insert(id, place);
            }
        }
        self.problems.extend(dups);
    }
}

/// The key closest to `name` (edit distance ≤ 2), for "did you mean".
fn closest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (levenshtein(name, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// `[A-Za-z0-9_.:-]+`
pub fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b))
}

fn parse_hash_key(s: &str) -> Option<HashKey> {
    if s == "client_ip" {
        return Some(HashKey::ClientIp);
    }
    let token = |n: &str| {
        !n.is_empty()
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    if let Some(h) = s.strip_prefix("header:") {
        return token(h).then(|| HashKey::Header(h.to_ascii_lowercase()));
    }
    if let Some(c) = s.strip_prefix("cookie:") {
        return token(c).then(|| HashKey::Cookie(c.to_string()));
    }
    None
}

/// Unix seconds of a TOML offset date-time.
fn datetime_to_unix(dt: &toml::value::Datetime) -> Option<i64> {
    let (date, t, offset) = (dt.date?, dt.time?, dt.offset?);
    let month = time::Month::try_from(date.month).ok()?;
    let d = time::Date::from_calendar_date(date.year as i32, month, date.day).ok()?;
    let tm = time::Time::from_hms(t.hour, t.minute, t.second.min(59)).ok()?;
    let minutes = match offset {
        toml::value::Offset::Z => 0,
        toml::value::Offset::Custom { minutes } => minutes as i32,
    };
    let off = time::UtcOffset::from_whole_seconds(minutes * 60).ok()?;
    Some(d.with_time(tm).assume_offset(off).unix_timestamp())
}

/// Normalises a host name: lower case, IDNA (punycode), no trailing dot.
pub fn normalize_config_host(h: &str) -> Result<String, String> {
    let h = h.strip_suffix('.').unwrap_or(h);
    if h.is_empty() {
        return Err("the host is empty".into());
    }
    if h.starts_with('[') || h.parse::<std::net::Ipv4Addr>().is_ok() {
        return crate::matcher::host::normalize_host(h)
            .map_err(|e| e.to_string())
            .and_then(|o| {
                o.map(|c| c.into_owned())
                    .ok_or_else(|| "the host is empty".to_string())
            });
    }
    if h.contains(':') {
        return Err("a rule's host takes no port".into());
    }
    let plain = h.bytes().all(|b| {
        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.' || b == b'_'
    }) && !h.contains("xn--");
    let ascii = if plain {
        h.to_string()
    } else {
        idna::domain_to_ascii(h).map_err(|_| "not a valid host name (IDNA)".to_string())?
    };
    if ascii.is_empty()
        || ascii.split('.').any(|l| l.is_empty() || l.len() > 63)
        || !ascii
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
    {
        return Err("not a valid host name; write e.g. \"example.com\", \"*.example.com\" or \".example.com\"".into());
    }
    // A URL parser (WHATWG) reads a host whose last label is a number as an
    // IPv4 address: `a.0x1` or `10.1` would not reach the name written.
    let last = ascii.rsplit('.').next().unwrap_or("");
    let hex = last
        .strip_prefix("0x")
        .is_some_and(|d| d.bytes().all(|b| b.is_ascii_hexdigit()));
    if hex || last.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "\"{ascii}\" ends in a number, so browsers read it as an IPv4 address; write an IPv4 address as four decimal numbers (e.g. \"192.0.2.1\")"
        ));
    }
    Ok(ascii)
}

/// Parses a rule's `host`: `example.com`, `*.example.com` or `.example.com`.
pub fn parse_host_pattern(h: &str) -> Result<HostPattern, String> {
    if let Some(rest) = h.strip_prefix("*.") {
        Ok(HostPattern::Subdomains(normalize_config_host(rest)?))
    } else if let Some(rest) = h.strip_prefix('.') {
        Ok(HostPattern::ApexAndSubdomains(normalize_config_host(rest)?))
    } else if h.contains('*') {
        Err("a wildcard is written `*.example.com` (any subdomain) or `.example.com` (apex and subdomains)".into())
    } else {
        Ok(HostPattern::Exact(normalize_config_host(h)?))
    }
}

/// Checks an exact or prefix path as written in a rule.
pub fn check_rule_path(p: &str) -> Result<(), String> {
    if !p.starts_with('/') {
        return Err("a path must start with `/`".into());
    }
    if p.contains('?') || p.contains('#') {
        return Err(
            "a path holds no query or fragment; the query never takes part in matching".into(),
        );
    }
    if p.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err("a path holds no control characters".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(src: &str) -> (Config, Vec<Problem>) {
        parse(src, Path::new("t.toml"))
    }

    #[test]
    fn defaults_apply_when_sections_are_missing() {
        let (cfg, problems) = load("");
        assert!(problems.is_empty());
        assert_eq!(cfg.server.listen, vec!["127.0.0.1:8080".parse().unwrap()]);
        assert_eq!(cfg.server.admin, "127.0.0.1:9091".parse().unwrap());
        assert_eq!(cfg.defaults, Defaults::default());
        assert!(cfg.upstream.is_none());
    }

    #[test]
    fn unknown_key_names_line_column_rule_and_suggests() {
        let (_, p) = load("[[redirect]]\nid = \"a\"\npath = \"/x\"\nto = \"/y\"\nstatsu = 301\n");
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].code, "unknown_key");
        assert_eq!((p[0].line, p[0].column), (Some(5), Some(1)));
        assert_eq!(p[0].rule.as_deref(), Some("a"));
        assert!(
            p[0].message.contains("did you mean `status`?"),
            "{}",
            p[0].message
        );
    }

    #[test]
    fn syntax_error_is_parse_with_place() {
        let (_, p) = load("[server]\nlisten = [\"127.0.0.1:1\"\n");
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].code, "parse");
        assert!(p[0].line.is_some() && p[0].column.is_some());
    }

    #[test]
    fn time_window_must_be_ordered() {
        let (_, p) = load(
            "[[redirect]]\nid = \"a\"\npath = \"/x\"\nto = \"/y\"\nactive_from = 2026-12-02T00:00:00Z\nactive_until = 2026-12-01T00:00:00Z\n",
        );
        assert_eq!(p[0].code, "bad_time_window");
        assert_eq!(p[0].line, Some(5));
    }

    #[test]
    fn datetime_with_offset_converts_to_unix() {
        let (cfg, p) = load("[[redirect]]\nid = \"a\"\npath = \"/x\"\nto = \"/y\"\nactive_from = 2026-12-01T01:00:00+01:00\n");
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(cfg.redirects[0].active_from, Some(1_796_083_200));
    }

    #[test]
    fn unknown_pool_is_an_error() {
        let (_, p) = load("[[redirect]]\nid = \"a\"\nprefix = \"/x\"\npool = \"nope\"\n");
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].code, "unknown_pool");
        assert_eq!(p[0].rule.as_deref(), Some("a"));
    }

    #[test]
    fn hosts_normalise_to_punycode_and_lower_case() {
        assert_eq!(
            parse_host_pattern("Bücher.Example."),
            Ok(HostPattern::Exact("xn--bcher-kva.example".into()))
        );
        assert_eq!(
            parse_host_pattern("*.Example.com"),
            Ok(HostPattern::Subdomains("example.com".into()))
        );
        assert_eq!(
            parse_host_pattern(".example.com"),
            Ok(HostPattern::ApexAndSubdomains("example.com".into()))
        );
        assert!(parse_host_pattern("a*.example.com").is_err());
        assert!(parse_host_pattern("example.com:80").is_err());
    }

    #[test]
    fn host_pattern_matching() {
        let sub = HostPattern::Subdomains("example.com".into());
        let all = HostPattern::ApexAndSubdomains("example.com".into());
        assert!(sub.matches(Some("a.example.com")));
        assert!(!sub.matches(Some("example.com")));
        assert!(!sub.matches(Some("aexample.com")));
        assert!(all.matches(Some("example.com")));
        assert!(all.matches(Some("b.a.example.com")));
        assert!(!all.matches(None));
    }
}
