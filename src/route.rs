//! What to do with one request: the whole policy, as one function that
//! `serve` and `explain` both call.
//!
//! [`route`] takes a [`RequestView`] and the [`Snapshot`] in force and
//! returns a [`Routed`]: the [`Action`] (a redirect, a 503 for an empty pool,
//! a 400/414, a backend to proxy to, a 502, a 404) and the `outcome` the
//! metrics count. The order is that of docs/operations.md: the rules first
//! ([`answer`], which is all the embeddable plugin does), then the
//! maintenance swap, then the upstream (or its failover pool, else 502),
//! else 404. Nothing here writes a response or touches the network; pool
//! and backend selection read the health the checks recorded.

use crate::location;
use crate::matcher::path::remove_dot_segments;
use crate::metrics;
use crate::pool::Pool;
use crate::request::{hash_key, RequestView};
use crate::rules::{Decision, RuleRef};
use crate::snapshot::{MaintenanceMode, Snapshot};
use http::HeaderValue;
use pingora::lb::Backend;
use std::net::IpAddr;

/// `pingora_redirect_requests_total{outcome}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Redirect,
    Proxy,
    NotFound,
    Failover,
    Maintenance,
    BadRequest,
    HttpsRedirect,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Redirect => "redirect",
            Outcome::Proxy => "proxy",
            Outcome::NotFound => "not_found",
            Outcome::Failover => "failover",
            Outcome::Maintenance => "maintenance",
            Outcome::BadRequest => "bad_request",
            Outcome::HttpsRedirect => "https_redirect",
        }
    }
}

/// A redirect to send.
#[derive(Debug)]
pub struct Reply<'s> {
    pub status: u16,
    pub location: String,
    pub cache_control: HeaderValue,
    pub retry_after: Option<u32>,
    /// The rule's extra headers.
    pub headers: &'s [(Box<str>, Box<str>)],
    /// The rule that answered (its hit is counted), if a rule did.
    pub rule: Option<RuleRef<'s>>,
    /// The pool target handed out: (pool, target as configured).
    pub pool: Option<(&'s str, &'s str)>,
}

impl<'s> Reply<'s> {
    /// The reply of a rule's redirect, with the `Cache-Control` value the
    /// snapshot built for it.
    pub fn of_rule(snap: &'s Snapshot, r: crate::rules::Redirect<'s>) -> Reply<'s> {
        Reply {
            status: r.status,
            cache_control: snap.cache_control(r.cache_control),
            location: r.location,
            retry_after: r.retry_after,
            headers: r.headers,
            rule: Some(r.rule),
            pool: None,
        }
    }
}

/// What is done with a request.
#[derive(Debug)]
pub enum Action<'s> {
    Redirect(Reply<'s>),
    /// 503 with `Retry-After`: the pool has no healthy target.
    Unavailable {
        retry_after: u32,
        /// The rule whose pool it is, if a rule matched.
        rule: Option<RuleRef<'s>>,
        pool: &'s str,
    },
    /// 400 or 414, with the reason.
    Bad {
        status: u16,
        reason: String,
    },
    /// Proxy to this backend.
    Proxy(Backend),
    /// 502: there is no backend to proxy to.
    NoBackend(&'static str),
    /// 404: nothing answers.
    NotFound,
}

/// An action and the outcome it counts as.
#[derive(Debug)]
pub struct Routed<'s> {
    pub action: Action<'s>,
    pub outcome: Outcome,
}

impl Routed<'_> {
    /// Counts what was done, once: the outcome, the hit of the rule that
    /// answered, the pool target handed out.
    pub fn record(&self, snap: &Snapshot, now: i64) {
        if !metrics::enabled() {
            return;
        }
        let o = metrics::outcomes();
        match self.outcome {
            Outcome::Redirect => &o.redirect,
            Outcome::Proxy => &o.proxy,
            Outcome::NotFound => &o.not_found,
            Outcome::Failover => &o.failover,
            Outcome::Maintenance => &o.maintenance,
            Outcome::BadRequest => &o.bad_request,
            Outcome::HttpsRedirect => &o.https_redirect,
        }
        .inc();
        if let Action::Redirect(r) = &self.action {
            if let Some(rule) = &r.rule {
                snap.counters.hit(rule, r.status, now);
            }
            if let Some((pool, target)) = r.pool {
                metrics::metrics()
                    .pool_selections
                    .with_label_values(&[pool, target])
                    .inc();
            }
        }
    }

    /// A request refused before any rule is looked at.
    pub fn bad(status: u16, reason: String) -> Routed<'static> {
        Routed {
            action: Action::Bad { status, reason },
            outcome: Outcome::BadRequest,
        }
    }
}

/// The bytes a backend selection hashes: the client address.
fn client_key(client: Option<IpAddr>) -> Vec<u8> {
    match client {
        Some(IpAddr::V4(ip)) => ip.octets().to_vec(),
        Some(IpAddr::V6(ip)) => ip.octets().to_vec(),
        None => Vec::new(),
    }
}

/// What the rules say about `req`; `None` when no rule applies (the
/// embeddable plugin then lets its host proxy the request).
pub fn answer<'s>(snap: &'s Snapshot, req: &RequestView<'_>) -> Option<Routed<'s>> {
    let action = match snap.rules.decide(req) {
        Decision::NoMatch => return None,
        Decision::BadRequest(b) => {
            return Some(Routed::bad(b.status, b.reason));
        }
        Decision::Redirect(r) => Action::Redirect(Reply::of_rule(snap, r)),
        Decision::Pool(p) => {
            let pool = snap.pool(&p.pool.name)?;
            match pool.select(&hash_key(&pool.hash_key, req)) {
                Some(target) => Action::Redirect(Reply {
                    status: p.status,
                    location: p.location_for(&target.base),
                    cache_control: snap.cache_control(p.cache_control),
                    retry_after: p.retry_after,
                    headers: p.headers,
                    rule: Some(p.rule),
                    pool: Some((&pool.name, &target.url)),
                }),
                None => Action::Unavailable {
                    retry_after: p.retry_after.unwrap_or(snap.retry_after),
                    rule: Some(p.rule),
                    pool: &pool.name,
                },
            }
        }
    };
    Some(Routed {
        action,
        outcome: Outcome::Redirect,
    })
}

/// The failover and maintenance redirect: one healthy target of `pool`,
/// 307, `Cache-Control: no-store`, `Retry-After`, the request's path and
/// query kept; 503 when no target is healthy.
fn pool_redirect<'s>(pool: &'s Pool, req: &RequestView<'_>, retry_after: u32) -> Action<'s> {
    let unavailable = Action::Unavailable {
        retry_after,
        rule: None,
        pool: &pool.name,
    };
    let Ok(path) = remove_dot_segments(req.path) else {
        return unavailable;
    };
    let Some(target) = pool.select(&hash_key(&pool.hash_key, req)) else {
        return unavailable;
    };
    let mut location = String::with_capacity(target.base.len() + path.len() + 16);
    location::assemble(
        &mut location,
        false,
        &target.base,
        None,
        None,
        Some(&path),
        req.query,
    );
    Action::Redirect(Reply {
        status: 307,
        location,
        cache_control: HeaderValue::from_static("no-store"),
        retry_after: Some(retry_after),
        headers: &[],
        rule: None,
        pool: Some((&pool.name, &target.url)),
    })
}

/// `[tls] redirect_http`: the 308 to `https://` for a plain-HTTP request
/// whose host a certificate covers (SPEC §6); `None` for anything else,
/// including a request a trusted proxy says arrived over https.
fn https_redirect<'s>(snap: &'s Snapshot, req: &RequestView<'_>) -> Option<Action<'s>> {
    let tls = snap.tls.as_ref().filter(|t| t.redirect_http)?;
    if req.scheme != crate::request::Scheme::Http {
        return None;
    }
    let host = crate::matcher::host::normalize_host(req.host?).ok()??;
    if !tls.certs.covers(&host) {
        return None;
    }
    // The path as a redirect keeps it elsewhere: dot segments resolved
    // (a path above the root was a 400 before this), every unsafe byte
    // encoded by the Location builder.
    let path = remove_dot_segments(req.path).ok()?;
    let mut location = String::with_capacity(16 + host.len() + path.len());
    location.push_str("https://");
    location.push_str(&host);
    if tls.port != 443 {
        location.push(':');
        location.push_str(itoa::Buffer::new().format(tls.port));
    }
    location::assemble(&mut location, false, "", None, None, Some(&path), req.query);
    Some(Action::Redirect(Reply {
        status: 308,
        location,
        cache_control: snap.cache_control(&snap.config.defaults.permanent_cache_control),
        retry_after: None,
        headers: &[],
        rule: None,
        pool: None,
    }))
}

/// The whole policy for `req` (see the module doc).
pub fn route<'s>(snap: &'s Snapshot, req: &RequestView<'_>) -> Routed<'s> {
    if let Some(answered) = answer(snap, req) {
        return answered;
    }
    let routing = &snap.routing;
    // `OPTIONS *` asks about the server, not a resource: never redirected.
    let options_star = req.method == "OPTIONS" && req.path == b"*";
    let routed = |action, outcome| Routed { action, outcome };
    if let Some(action) = https_redirect(snap, req).filter(|_| !options_star) {
        return routed(action, Outcome::HttpsRedirect);
    }
    if let Some(m) = &routing.maintenance {
        let action = match &m.mode {
            MaintenanceMode::RedirectPool(name) => match snap.pool(name) {
                Some(pool) if !options_star => pool_redirect(pool, req, m.retry_after),
                _ => Action::Unavailable {
                    retry_after: m.retry_after,
                    rule: None,
                    pool: name,
                },
            },
            MaintenanceMode::Backends(lb) => match lb.select(&client_key(req.client)) {
                Some(b) => Action::Proxy(b),
                None => Action::NoBackend("no maintenance backend is reachable"),
            },
        };
        return routed(action, crate::route::Outcome::Maintenance);
    }
    let Some(upstream) = &routing.upstream else {
        return routed(Action::NotFound, Outcome::NotFound);
    };
    if let Some(b) = upstream.select(&client_key(req.client)) {
        return routed(Action::Proxy(b), Outcome::Proxy);
    }
    match routing
        .failover_pool
        .as_deref()
        .filter(|_| !options_star)
        .and_then(|name| snap.pool(name))
    {
        Some(pool) => routed(
            pool_redirect(pool, req, routing.failover_retry_after),
            Outcome::Failover,
        ),
        None => routed(
            Action::NoBackend("no healthy upstream backend"),
            Outcome::Proxy,
        ),
    }
}
