//! The sections that say where requests go when no rule answers them, and
//! where pool redirects send clients: `[upstream]`, `[maintenance]` and
//! `[pools.NAME]`, with their health checks.

use super::model::{
    HashKey, HealthCheck, HealthCheckKind, MaintenanceConfig, PoolConfig, PoolTarget, Selection,
    UpstreamConfig,
};
use super::reader::{valid_id, Reader, Val};
use std::time::Duration;
use toml::de::{DeTable, DeValue};

const UPSTREAM_KEYS: &[&str] = &["backends", "selection", "health_check", "failover_pool"];
const MAINTENANCE_KEYS: &[&str] = &["enabled", "backends", "redirect_pool", "retry_after"];
const POOL_KEYS: &[&str] = &["targets", "selection", "hash_key", "health_check"];
const HEALTH_KEYS: &[&str] = &["type", "path", "interval"];

impl Reader<'_> {
    pub(super) fn health_check(&mut self, v: &Val<'_>, rule: Option<&str>) -> Option<HealthCheck> {
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

    pub(super) fn backends(&mut self, v: &Val<'_>, key: &str) -> Option<Vec<String>> {
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

    pub(super) fn upstream(&mut self, t: &DeTable<'_>, whole: &Val<'_>) -> Option<UpstreamConfig> {
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

    pub(super) fn maintenance(
        &mut self,
        t: &DeTable<'_>,
        whole: &Val<'_>,
    ) -> Option<MaintenanceConfig> {
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

    pub(super) fn pool(&mut self, name: &str, v: &Val<'_>) -> Option<PoolConfig> {
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

    pub(super) fn pool_targets(&mut self, v: &Val<'_>, section: &str) -> Option<Vec<PoolTarget>> {
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
}

pub(super) fn parse_hash_key(s: &str) -> Option<HashKey> {
    if s == "client_ip" {
        return Some(HashKey::ClientIp);
    }
    // Header and cookie names are both RFC 9110 tokens.
    let token = |n: &str| !n.is_empty() && http::HeaderName::from_bytes(n.as_bytes()).is_ok();
    if let Some(h) = s.strip_prefix("header:") {
        return token(h).then(|| HashKey::Header(h.to_ascii_lowercase()));
    }
    if let Some(c) = s.strip_prefix("cookie:") {
        return token(c).then(|| HashKey::Cookie(c.to_string()));
    }
    None
}
