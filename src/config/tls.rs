//! The `[tls]` section and the `[[certificate]]` entries (SPEC §10).
//!
//! What can be checked from the text is checked here: addresses, the TLS
//! version, HSTS and its preload rules, two defaults, `[tls]` without a
//! certificate and certificates without `[tls]`. Whether the files parse and
//! the key matches is the loader's to find out ([`crate::tls`]).

use super::model::{CertificateSpec, Config, Hsts, TlsConfig, TlsVersion};
use super::reader::Reader;
use crate::problem::Problem;
use std::time::Duration;
use toml::de::{DeTable, DeValue};

const TLS_KEYS: &[&str] = &["listen", "min_version", "redirect_http", "hsts"];
const HSTS_KEYS: &[&str] = &["max_age", "include_subdomains", "preload"];
const CERTIFICATE_KEYS: &[&str] = &["cert", "key", "default"];

/// The shortest `max-age` the HSTS preload list accepts: one year.
pub const PRELOAD_MIN_AGE: u64 = 31_536_000;

impl Reader<'_> {
    /// `[tls]`; `None` when it cannot be used (each problem is reported).
    pub(super) fn tls(
        &mut self,
        t: &DeTable<'_>,
        whole: &super::reader::Val<'_>,
    ) -> Option<TlsConfig> {
        let mut tls = TlsConfig {
            listen: Vec::new(),
            min_version: TlsVersion::V1_2,
            redirect_http: false,
            hsts: None,
            place: self.place(&whole.span()),
        };
        let mut ok = true;
        for (k, v) in t.iter() {
            match k.get_ref().as_ref() {
                "listen" => match self.strings(v, "listen", None) {
                    Some(list) => {
                        for (a, span) in list {
                            match self.socket_addr(&a, span.clone(), "listen") {
                                Some(addr) if addr.port() == 0 => {
                                    self.push(
                                        "bad_value",
                                        span,
                                        None,
                                        format!(
                                            "[tls] `listen`: \"{a}\" needs a port other than 0"
                                        ),
                                    );
                                    ok = false;
                                }
                                Some(addr) => tls.listen.push(addr),
                                None => ok = false,
                            }
                        }
                    }
                    None => ok = false,
                },
                "min_version" => match self.string(v, "min_version", None).as_deref() {
                    Some("1.2") => tls.min_version = TlsVersion::V1_2,
                    Some("1.3") => tls.min_version = TlsVersion::V1_3,
                    Some(other) => {
                        self.bad(
                            v,
                            None,
                            format!("`min_version` = \"{other}\" is not \"1.2\" or \"1.3\""),
                        );
                        ok = false;
                    }
                    None => ok = false,
                },
                "redirect_http" => match self.boolean(v, "redirect_http", None) {
                    Some(b) => tls.redirect_http = b,
                    None => ok = false,
                },
                "hsts" => match self.hsts(v) {
                    Some(h) => tls.hsts = Some(h),
                    None => ok = false,
                },
                _ => self.unknown(k, TLS_KEYS, None, "[tls]"),
            }
        }
        if tls.listen.is_empty() && ok {
            self.bad(
                whole,
                None,
                "[tls] needs `listen`, the HTTPS addresses, e.g. [\"0.0.0.0:443\"]".into(),
            );
            ok = false;
        }
        ok.then_some(tls)
    }

    fn hsts(&mut self, v: &super::reader::Val<'_>) -> Option<Hsts> {
        let t = self.table(v, "`hsts`", None)?;
        let mut max_age = None;
        let mut hsts = Hsts {
            max_age: 0,
            include_subdomains: false,
            preload: false,
        };
        let mut ok = true;
        for (k, item) in t.iter() {
            match k.get_ref().as_ref() {
                "max_age" => {
                    let secs = match item.get_ref() {
                        DeValue::Integer(_) => self
                            .integer_in(item, "max_age", 0..=i64::from(u32::MAX))
                            .map(|n| n as u64),
                        _ => self
                            .duration(item, "max_age", None)
                            .map(|d: Duration| d.as_secs()),
                    };
                    match secs {
                        Some(s) => max_age = Some(s),
                        None => ok = false,
                    }
                }
                "include_subdomains" => match self.boolean(item, "include_subdomains", None) {
                    Some(b) => hsts.include_subdomains = b,
                    None => ok = false,
                },
                "preload" => match self.boolean(item, "preload", None) {
                    Some(b) => hsts.preload = b,
                    None => ok = false,
                },
                _ => self.unknown(k, HSTS_KEYS, None, "`hsts`"),
            }
        }
        if !ok {
            return None;
        }
        let Some(max_age) = max_age else {
            self.bad(
                v,
                None,
                "`hsts` needs `max_age`, e.g. \"300s\" to start, then \"365d\"".into(),
            );
            return None;
        };
        hsts.max_age = max_age;
        if hsts.preload && (!hsts.include_subdomains || hsts.max_age < PRELOAD_MIN_AGE) {
            self.bad(
                v,
                None,
                format!(
                    "`hsts` with `preload = true` needs `include_subdomains = true` and a `max_age` of at least one year (31536000 s), as the preload list requires; this one has include_subdomains = {} and max_age = {} s",
                    hsts.include_subdomains, hsts.max_age
                ),
            );
            return None;
        }
        Some(hsts)
    }

    /// One `[[certificate]]`.
    pub(super) fn certificate(&mut self, v: &super::reader::Val<'_>) -> Option<CertificateSpec> {
        let t = self.table(v, "a [[certificate]]", None)?;
        let (mut cert, mut key, mut default) = (None, None, false);
        let mut ok = true;
        for (k, item) in t.iter() {
            match k.get_ref().as_ref() {
                "cert" => cert = self.nonempty_path(item, "cert"),
                "key" => key = self.nonempty_path(item, "key"),
                "default" => match self.boolean(item, "default", None) {
                    Some(b) => default = b,
                    None => ok = false,
                },
                _ => self.unknown(k, CERTIFICATE_KEYS, None, "[[certificate]]"),
            }
        }
        for (name, found) in [("cert", cert.is_some()), ("key", key.is_some())] {
            if !found && !t.iter().any(|(k, _)| k.get_ref().as_ref() == name) {
                self.bad(
                    v,
                    None,
                    format!("[[certificate]] needs `{name}`, the path of its PEM file"),
                );
            }
        }
        let (Some(cert_raw), Some(key_raw)) = (cert, key) else {
            return None;
        };
        ok.then(|| CertificateSpec {
            cert: self.base.join(&cert_raw),
            cert_raw,
            key: self.base.join(&key_raw),
            default,
            place: self.place(&v.span()),
        })
    }

    fn nonempty_path(&mut self, v: &super::reader::Val<'_>, key: &str) -> Option<String> {
        let s = self.string(v, key, None)?;
        if s.is_empty() {
            self.bad(
                v,
                None,
                format!("`{key}` is the path of a PEM file; it is empty"),
            );
            return None;
        }
        Some(s)
    }

    /// What needs `[tls]` and the certificates together.
    pub(super) fn tls_cross_check(&mut self, cfg: &mut Config) {
        let bad = |place: &super::Place, msg: String| {
            Problem::error("bad_certificate", msg).at(&place.file, place.line, Some(place.column))
        };
        let defaults: Vec<_> = cfg.certificates.iter().filter(|c| c.default).collect();
        if defaults.len() > 1 {
            let first = defaults[0].place.line;
            for c in &defaults[1..] {
                self.problems.push(bad(
                    &c.place,
                    format!(
                        "a second `default = true` certificate ({}); the one at line {first} is already the default",
                        c.cert_raw
                    ),
                ));
            }
        }
        match &cfg.tls {
            Some(tls) if cfg.certificates.is_empty() => {
                let p = bad(
                    &tls.place,
                    "[tls] has no certificate to serve: add a [[certificate]] with `cert` and `key`".into(),
                );
                self.problems.push(p);
            }
            Some(tls) => {
                for addr in &tls.listen {
                    // Connections are told apart by their local port.
                    let shared = cfg.server.listen.iter().any(|a| a.port() == addr.port())
                        || cfg.server.admin.port() == addr.port();
                    if shared {
                        let p = Problem::error(
                            "bad_value",
                            format!("[tls] listen {addr}: its port is also a plain-HTTP (or the admin) port of [server]; HTTPS needs ports of its own"),
                        )
                        .at(&tls.place.file, tls.place.line, Some(tls.place.column));
                        self.problems.push(p);
                    }
                }
            }
            None if self.tls_written => {}
            None => {
                if let Some(c) = cfg.certificates.first() {
                    self.problems.push(bad(
                        &c.place,
                        "a [[certificate]] without [tls]: add [tls] with `listen` to serve HTTPS"
                            .into(),
                    ));
                }
            }
        }
    }
}
