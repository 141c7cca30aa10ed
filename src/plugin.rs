//! The Pingora-facing piece: answer redirects from any `ProxyHttp`.
//!
//! [`RedirectPlugin::respond`] turns a Pingora [`Session`] into a
//! [`RequestView`], asks the compiled rules, and when they answer writes the
//! whole response itself (SPEC §6): framed with `Content-Length`, exactly one
//! `Location`, `Cache-Control`, the rule's headers and a short HTML body (none
//! for HEAD, on HTTP/1.1 and HTTP/2), keep-alive kept for requests without a
//! body, a small body drained first and a larger one answered with
//! `Connection: close` so it is never read as the next request. Bad requests
//! get a 400 or 414 with the reason. It returns `Ok(true)` when it responded:
//!
//! ```text
//! async fn request_filter(&self, session: &mut Session, _ctx: &mut Self::CTX) -> pingora::Result<bool> {
//!     if self.redirects.respond(session).await? {
//!         return Ok(true);
//!     }
//!     Ok(false) // not a redirect: proxy it
//! }
//! ```
//!
//! The rules sit behind an [`ArcSwap`], so a reload swaps them while requests
//! in flight finish on the set they started with.

use crate::config::{Config, HashKey, Scheme};
use crate::location;
use crate::metrics::{metrics, RuleCounters};
use crate::pool::Pool;
use crate::rules::{Decision, RequestView, RuleSet};
use arc_swap::ArcSwap;
use bytes::Bytes;
use http::HeaderValue;
use ipnet::IpNet;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// Request bodies up to this size are read and dropped so the connection can
/// be kept; larger (or unsized) ones close it after the response.
pub const DRAIN_LIMIT: u64 = 64 * 1024;
/// How long draining a small body may take.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// An HTTP/2 request body is read and dropped after the answer up to this
/// size, so the stream ends cleanly; a larger one (or one still arriving
/// after [`DRAIN_TIMEOUT`]) gets `RST_STREAM(NO_ERROR)`.
pub const H2_DRAIN_LIMIT: usize = 8 * 1024 * 1024;

/// Everything a request needs, swapped as one on reload.
pub struct Engine {
    pub rules: RuleSet,
    /// Per-rule metric handles of this rule set.
    pub counters: RuleCounters,
    /// Pools in the order of `rules.pools()`.
    pub pools: Vec<Arc<Pool>>,
    pub trusted_proxies: Vec<IpNet>,
    /// `Retry-After` of a pool's 503 when the rule sets none: `[maintenance]
    /// retry_after`, else 60 s.
    pub retry_after: u32,
    /// `[defaults]` Cache-Control values, built once.
    permanent_cc: HeaderValue,
    temporary_cc: HeaderValue,
}

impl Engine {
    /// Builds the engine of a loaded configuration.
    pub fn new(rules: RuleSet, config: &Config) -> Self {
        let pools = rules
            .pools()
            .iter()
            .filter_map(|p| config.pools.get(&p.name))
            .map(|p| Arc::new(Pool::new(p)))
            .collect();
        Engine {
            counters: RuleCounters::new(rules.label_count()),
            rules,
            pools,
            trusted_proxies: config.server.trusted_proxies.clone(),
            retry_after: config
                .maintenance
                .as_ref()
                .and_then(|m| m.retry_after)
                .unwrap_or(60),
            permanent_cc: HeaderValue::from_str(&config.defaults.permanent_cache_control)
                .unwrap_or_else(|_| HeaderValue::from_static("max-age=86400")),
            temporary_cc: HeaderValue::from_str(&config.defaults.temporary_cache_control)
                .unwrap_or_else(|_| HeaderValue::from_static("no-store")),
        }
    }

    /// The Cache-Control value for `text`, without copying the defaults.
    fn cache_control(&self, text: &str) -> HeaderValue {
        if text.as_bytes() == self.permanent_cc.as_bytes() {
            self.permanent_cc.clone()
        } else if text.as_bytes() == self.temporary_cc.as_bytes() {
            self.temporary_cc.clone()
        } else {
            HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("no-store"))
        }
    }

    /// The runtime pool named `name`.
    pub fn pool(&self, name: &str) -> Option<&Arc<Pool>> {
        self.pools.iter().find(|p| p.name == name)
    }
}

/// What [`RedirectPlugin::handle`] did with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// A redirect was sent with this status.
    Redirect { status: u16 },
    /// A pool rule found no healthy target: 503 was sent.
    PoolUnavailable,
    /// 400 or 414 was sent.
    BadRequest { status: u16 },
    /// No rule applies: the caller goes on (proxy or 404).
    Pass,
}

/// The redirect plugin: one call from `request_filter`.
#[derive(Clone)]
pub struct RedirectPlugin {
    engine: Arc<ArcSwap<Engine>>,
}

/// Parts of the request the rules need, borrowed from the session.
struct Parts<'a> {
    scheme: Scheme,
    host: Option<Cow<'a, str>>,
    client: Option<IpAddr>,
}

/// What to write, decided while the request is borrowed.
enum Reply {
    Redirect {
        status: u16,
        location: String,
        cache_control: HeaderValue,
        retry_after: Option<u32>,
        headers: Vec<(Box<str>, Box<str>)>,
    },
    Unavailable(u32),
    Bad(u16, String),
    Pass,
}

impl RedirectPlugin {
    /// A plugin over a shared, swappable engine.
    pub fn new(engine: Arc<ArcSwap<Engine>>) -> Self {
        RedirectPlugin { engine }
    }

    /// A plugin over a fixed engine.
    pub fn from_engine(engine: Engine) -> Self {
        Self::new(Arc::new(ArcSwap::from_pointee(engine)))
    }

    /// The shared engine (to swap it on reload).
    pub fn engine(&self) -> &Arc<ArcSwap<Engine>> {
        &self.engine
    }

    /// Answers the request when a rule applies (or it is malformed);
    /// `Ok(true)` means a response was written and the caller must stop.
    pub async fn respond(&self, session: &mut Session) -> pingora::Result<bool> {
        Ok(self.handle(session).await? != Handled::Pass)
    }

    /// Like [`respond`](Self::respond), saying what was done.
    pub async fn handle(&self, session: &mut Session) -> pingora::Result<Handled> {
        let reply = self.decide(session);
        write_reply(session, reply).await
    }

    /// Sends the request to one healthy target of pool `pool`: 307 (the
    /// method is kept), `Cache-Control: no-store`, `Retry-After`, the request
    /// path and query kept; 503 with `Retry-After` when no target is healthy.
    /// Used for upstream failover and the maintenance swap. Returns whether a
    /// target was found.
    pub async fn redirect_to_pool(
        &self,
        session: &mut Session,
        pool: &str,
        retry_after: u32,
    ) -> pingora::Result<bool> {
        let reply = {
            let engine = self.engine.load();
            let req = session.req_header();
            let client = read_parts(session, &engine.trusted_proxies)
                .ok()
                .and_then(|p| p.client);
            let path = crate::matcher::path::remove_dot_segments(req.uri.path().as_bytes());
            match (engine.pool(pool), path) {
                (Some(p), Ok(path)) => {
                    let key = hash_key(session, &p.hash_key, client);
                    match p.select(&key) {
                        Some(target) => {
                            if crate::metrics::enabled() {
                                metrics()
                                    .pool_selections
                                    .with_label_values(&[&p.name, &target.url])
                                    .inc();
                            }
                            let mut location =
                                String::with_capacity(target.base.len() + path.len() + 16);
                            let query = req.uri.query().map(str::as_bytes);
                            location::assemble(
                                &mut location,
                                false,
                                &target.base,
                                None,
                                None,
                                Some(&path),
                                query,
                            );
                            Reply::Redirect {
                                status: 307,
                                location,
                                cache_control: HeaderValue::from_static("no-store"),
                                retry_after: Some(retry_after),
                                headers: Vec::new(),
                            }
                        }
                        None => Reply::Unavailable(retry_after),
                    }
                }
                _ => Reply::Unavailable(retry_after),
            }
        };
        Ok(matches!(
            write_reply(session, reply).await?,
            Handled::Redirect { .. }
        ))
    }

    /// The decision for the request in `session`, counted in the metrics.
    fn decide(&self, session: &Session) -> Reply {
        let engine = self.engine.load();
        let req = session.req_header();
        let parts = match read_parts(session, &engine.trusted_proxies) {
            Ok(p) => p,
            Err(reason) => return Reply::Bad(400, reason),
        };
        let now = crate::unix_now();
        let view = RequestView {
            method: req.method.as_str(),
            scheme: parts.scheme,
            host: parts.host.as_deref(),
            path: req.uri.path().as_bytes(),
            query: req.uri.query().map(str::as_bytes),
            client: parts.client,
            now,
        };
        match engine.rules.decide(&view) {
            Decision::NoMatch => Reply::Pass,
            Decision::BadRequest(b) => Reply::Bad(b.status, b.reason),
            Decision::Redirect(r) => {
                engine.counters.hit(&r.rule, r.status, now);
                Reply::Redirect {
                    status: r.status,
                    cache_control: engine.cache_control(r.cache_control),
                    location: r.location,
                    retry_after: r.retry_after,
                    headers: r.headers.to_vec(),
                }
            }
            Decision::Pool(p) => {
                let Some(pool) = engine.pool(&p.pool.name) else {
                    return Reply::Pass;
                };
                let key = hash_key(session, &pool.hash_key, parts.client);
                match pool.select(&key) {
                    Some(target) => {
                        engine.counters.hit(&p.rule, p.status, now);
                        if crate::metrics::enabled() {
                            metrics()
                                .pool_selections
                                .with_label_values(&[&pool.name, &target.url])
                                .inc();
                        }
                        Reply::Redirect {
                            status: p.status,
                            location: p.location_for(&target.base),
                            cache_control: engine.cache_control(p.cache_control),
                            retry_after: p.retry_after,
                            headers: p.headers.to_vec(),
                        }
                    }
                    None => Reply::Unavailable(p.retry_after.unwrap_or(engine.retry_after)),
                }
            }
        }
    }
}

/// Writes what [`RedirectPlugin::decide`] (or a pool redirect) settled on.
async fn write_reply(session: &mut Session, reply: Reply) -> pingora::Result<Handled> {
    match reply {
        Reply::Pass => Ok(Handled::Pass),
        Reply::Bad(status, reason) => {
            write_error(session, status, &reason).await?;
            Ok(Handled::BadRequest { status })
        }
        Reply::Unavailable(retry_after) => {
            write_unavailable(session, retry_after).await?;
            Ok(Handled::PoolUnavailable)
        }
        Reply::Redirect {
            status,
            location,
            cache_control,
            retry_after,
            headers,
        } => {
            write_redirect_value(
                session,
                status,
                location,
                cache_control,
                retry_after,
                &headers,
            )
            .await?;
            Ok(Handled::Redirect { status })
        }
    }
}

/// The bytes a pool with `selection = "hash"` hashes: the client IP, a
/// header or a cookie (the client IP when the header or cookie is absent).
pub fn hash_key(session: &Session, key: &HashKey, client: Option<IpAddr>) -> Vec<u8> {
    let ip = || {
        client
            .map(|c| c.to_string().into_bytes())
            .unwrap_or_default()
    };
    let headers = &session.req_header().headers;
    match key {
        HashKey::ClientIp => ip(),
        HashKey::Header(name) => headers
            .get(name.as_str())
            .map(|v| v.as_bytes().to_vec())
            .unwrap_or_else(ip),
        HashKey::Cookie(name) => headers
            .get_all("cookie")
            .iter()
            .flat_map(|v| v.as_bytes().split(|b| *b == b';'))
            .filter_map(|kv| {
                let kv = kv.trim_ascii();
                let eq = kv.iter().position(|b| *b == b'=')?;
                (&kv[..eq] == name.as_bytes()).then(|| kv[eq + 1..].to_vec())
            })
            .next()
            .unwrap_or_else(ip),
    }
}

/// Is `ip` one of the trusted proxies?
fn trusted(ip: Option<IpAddr>, nets: &[IpNet]) -> bool {
    ip.is_some_and(|ip| nets.iter().any(|n| n.contains(&ip)))
}

/// The authority of an HTTP/1 absolute-form target (`GET http://host/path`),
/// which Pingora leaves out of the parsed URI.
fn absolute_form_authority(raw: &[u8]) -> Option<String> {
    let lower = raw.get(..8).unwrap_or(raw).to_ascii_lowercase();
    let rest = if lower.starts_with(b"https://") {
        &raw[8..]
    } else if lower.starts_with(b"http://") {
        &raw[7..]
    } else {
        return None;
    };
    let end = rest
        .iter()
        .position(|b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    Some(String::from_utf8_lossy(&rest[..end]).into_owned())
}

fn read_parts<'a>(session: &'a Session, trusted_proxies: &[IpNet]) -> Result<Parts<'a>, String> {
    let req = session.req_header();
    let peer = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip());
    let from_proxy = !trusted_proxies.is_empty() && trusted(peer, trusted_proxies);

    // Host: absolute-form authority or :authority, else the Host header.
    let mut hosts = req.headers.get_all(http::header::HOST).iter();
    let first_host = hosts.next();
    if hosts.next().is_some() {
        return Err("more than one Host header".into());
    }
    let authority = match req.uri.authority() {
        Some(a) => Some(Cow::Borrowed(a.as_str())),
        None if req.raw_path().first() != Some(&b'/') => {
            absolute_form_authority(req.raw_path()).map(Cow::Owned)
        }
        None => None,
    };
    let host = match authority {
        Some(a) => Some(a),
        None => match first_host {
            Some(h) => Some(Cow::Borrowed(
                h.to_str()
                    .map_err(|_| "malformed Host: not ASCII".to_string())?,
            )),
            None if req.version == http::Version::HTTP_10
                || req.version == http::Version::HTTP_09 =>
            {
                None
            }
            None => return Err("the request has no Host".into()),
        },
    };

    // Scheme: the connection's (no TLS here), or a trusted proxy's word.
    let mut scheme = Scheme::Http;
    let mut client = peer;
    if from_proxy {
        if let Some(p) = req
            .headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
        {
            match p
                .split(',')
                .next()
                .map(|s| s.trim().to_ascii_lowercase())
                .as_deref()
            {
                Some("https") => scheme = Scheme::Https,
                Some("http") => scheme = Scheme::Http,
                _ => {}
            }
        }
        // The client is the right-most address that is not a trusted proxy.
        let forwarded: Vec<IpAddr> = req
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|s| s.trim().parse().ok())
            .collect();
        if let Some(ip) = forwarded
            .iter()
            .rev()
            .find(|ip| !trusted(Some(**ip), trusted_proxies))
        {
            client = Some(*ip);
        }
    }
    Ok(Parts {
        scheme,
        host,
        client,
    })
}

/// Does the client wait for `100 Continue` before it sends its body?
fn expects_continue(session: &Session) -> bool {
    session
        .req_header()
        .headers
        .get(http::header::EXPECT)
        .is_some()
}

/// Reads and drops a small request body so the connection can be kept;
/// returns whether keep-alive is safe.
async fn settle_body(session: &mut Session) -> bool {
    if session.is_http2() || session.is_body_empty() {
        return true;
    }
    // A client waiting for `100 Continue` has not sent its body: answer now
    // and close rather than wait for bytes that will not come.
    if expects_continue(session) {
        return false;
    }
    let len = session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match len {
        Some(n) if n <= DRAIN_LIMIT => {
            session.set_total_drain_timeout(Some(DRAIN_TIMEOUT));
            session.drain_request_body().await.is_ok()
        }
        _ => false,
    }
}

async fn finish_response(
    session: &mut Session,
    mut resp: ResponseHeader,
    body: Bytes,
) -> pingora::Result<()> {
    let keep = settle_body(session).await;
    if !keep {
        session.set_keepalive(None);
    }
    resp.set_content_length(body.len())?;
    let head = session.req_header().method == http::Method::HEAD;
    session.write_response_header(Box::new(resp), head).await?;
    if !head {
        session.write_response_body(Some(body), true).await?;
    }
    drain_h2_after_answer(session).await;
    Ok(())
}

/// After an HTTP/2 answer, reads the rest of the request body (bounded by
/// [`H2_DRAIN_LIMIT`] and [`DRAIN_TIMEOUT`]) so the stream ends with both
/// sides closed. RFC 9113 §8.1 also allows `RST_STREAM(NO_ERROR)` instead,
/// which is what a larger or slower body gets; but clients that are still
/// sending take that reset as an error (curl 7.88 reports "Stream error in
/// the HTTP/2 framing layer" and no response), so a body of ordinary size is
/// read to its end.
async fn drain_h2_after_answer(session: &mut Session) {
    if !session.is_http2() || expects_continue(session) {
        return;
    }
    let down = session.as_downstream_mut();
    if down.is_body_done() {
        return;
    }
    let drain = async {
        let mut read = 0usize;
        while let Ok(Some(chunk)) = down.read_request_body().await {
            read += chunk.len();
            if read > H2_DRAIN_LIMIT {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, drain).await;
}

/// Writes a redirect (SPEC §6).
pub async fn write_redirect(
    session: &mut Session,
    status: u16,
    location: &str,
    cache_control: &str,
    retry_after: Option<u32>,
    headers: &[(Box<str>, Box<str>)],
) -> pingora::Result<()> {
    let cc = HeaderValue::from_str(cache_control)
        .unwrap_or_else(|_| HeaderValue::from_static("no-store"));
    write_redirect_value(
        session,
        status,
        location.to_string(),
        cc,
        retry_after,
        headers,
    )
    .await
}

async fn write_redirect_value(
    session: &mut Session,
    status: u16,
    location: String,
    cache_control: HeaderValue,
    retry_after: Option<u32>,
    headers: &[(Box<str>, Box<str>)],
) -> pingora::Result<()> {
    let body = location::html_body(status, &location);
    let mut resp = ResponseHeader::build(status, Some(6 + headers.len()))?;
    resp.insert_header("Location", location)?;
    resp.insert_header(
        "Content-Type",
        HeaderValue::from_static("text/html; charset=utf-8"),
    )?;
    resp.insert_header("Cache-Control", cache_control)?;
    if let Some(s) = retry_after {
        resp.insert_header("Retry-After", s.to_string())?;
    }
    for (k, v) in headers {
        resp.append_header(k.to_string(), v.as_ref())?;
    }
    finish_response(session, resp, Bytes::from(body)).await
}

/// Writes a short plain-text error (400, 404, 414, 502, 503) with its reason.
pub async fn write_error(session: &mut Session, status: u16, reason: &str) -> pingora::Result<()> {
    let mut resp = ResponseHeader::build(status, Some(4))?;
    resp.insert_header("Content-Type", "text/plain; charset=utf-8")?;
    resp.insert_header("Cache-Control", "no-store")?;
    let title = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let body = format!("{status} {title}: {reason}\n");
    if status == 400 || status == 414 {
        // The request was not understood: do not trust what follows it.
        session.set_keepalive(None);
    }
    finish_response(session, resp, Bytes::from(body)).await
}

/// 503 with `Retry-After`: a pool has no healthy target.
pub async fn write_unavailable(session: &mut Session, retry_after: u32) -> pingora::Result<()> {
    let mut resp = ResponseHeader::build(503, Some(4))?;
    resp.insert_header("Content-Type", "text/plain; charset=utf-8")?;
    resp.insert_header("Cache-Control", "no-store")?;
    resp.insert_header("Retry-After", retry_after.to_string())?;
    finish_response(
        session,
        resp,
        Bytes::from_static(b"503 Service Unavailable: no healthy target\n"),
    )
    .await
}
