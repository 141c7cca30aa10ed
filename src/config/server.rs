//! The `[server]` and `[defaults]` sections, and the top level that hands
//! each section to its reader.

use super::model::{AccessTarget, Config, Defaults, LogConfig, LogFormat, Place, ServerConfig};
use super::reader::Reader;
use ipnet::IpNet;
use std::path::PathBuf;
use std::time::Duration;
use toml::de::{DeTable, DeValue};

const ROOT_KEYS: &[&str] = &[
    "server",
    "defaults",
    "upstream",
    "maintenance",
    "pools",
    "redirect",
    "list",
    "log",
    "tls",
    "certificate",
];
const LOG_KEYS: &[&str] = &["access", "format"];
const SERVER_KEYS: &[&str] = &[
    "listen",
    "admin",
    "threads",
    "h2c",
    "fast_path",
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

impl Reader<'_> {
    pub(super) fn root(&mut self, root: &DeTable<'_>, cfg: &mut Config) {
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
                "log" => {
                    if let Some(t) = self.table(v, "[log]", None) {
                        cfg.log_place = self.log(t, &mut cfg.log);
                    }
                }
                "tls" => {
                    self.tls_written = true;
                    if let Some(t) = self.table(v, "[tls]", None) {
                        cfg.tls = self.tls(t, v);
                    }
                }
                "certificate" => match v.get_ref() {
                    DeValue::Array(a) => {
                        for item in a.iter() {
                            if let Some(c) = self.certificate(item) {
                                cfg.certificates.push(c);
                            }
                        }
                    }
                    _ => self.bad(
                        v,
                        None,
                        "write each certificate as a `[[certificate]]` table".into(),
                    ),
                },
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

    pub(super) fn server(&mut self, t: &DeTable<'_>, s: &mut ServerConfig) {
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
                    if let Some(n) = self.integer_in(v, "threads", 1..=1024) {
                        s.threads = n as usize;
                    }
                }
                "h2c" => s.h2c = self.boolean(v, "h2c", None).unwrap_or(s.h2c),
                "fast_path" => {
                    s.fast_path = self.boolean(v, "fast_path", None).unwrap_or(s.fast_path)
                }
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
                    if let Some(n) = self.integer_in(v, "max_connections", 1..=1_000_000) {
                        s.max_connections = n as usize;
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

    pub(super) fn defaults(&mut self, t: &DeTable<'_>, d: &mut Defaults) {
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

    /// `[log]`; returns where `access` names a file.
    pub(super) fn log(&mut self, t: &DeTable<'_>, log: &mut LogConfig) -> Option<Place> {
        let mut place = None;
        for (k, v) in t.iter() {
            match k.get_ref().as_ref() {
                "access" => {
                    if let Some(a) = self.string(v, "access", None) {
                        log.access = match a.as_str() {
                            "off" => AccessTarget::Off,
                            "stdout" => AccessTarget::Stdout,
                            "" => {
                                self.bad(
                                    v,
                                    None,
                                    "`access` is \"off\", \"stdout\" or a file path".into(),
                                );
                                continue;
                            }
                            path => {
                                place = Some(self.place(&v.span()));
                                AccessTarget::File(self.base.join(path))
                            }
                        };
                    }
                }
                "format" => match self.string(v, "format", None).as_deref() {
                    Some("combined") => log.format = LogFormat::Combined,
                    Some("json") => log.format = LogFormat::Json,
                    Some(other) => self.bad(
                        v,
                        None,
                        format!("`format` = \"{other}\" is not \"combined\" or \"json\""),
                    ),
                    None => {}
                },
                _ => self.unknown(k, LOG_KEYS, None, "[log]"),
            }
        }
        place
    }
}
