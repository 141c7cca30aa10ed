//! The front proxy's `ProxyHttp`: short hooks that delegate.
//!
//! `request_filter` reads the request ([`crate::http::request`]), asks
//! [`route::route`] what to do (rules, maintenance, upstream, failover, 404),
//! writes the reply ([`crate::http::response`]) or keeps the chosen backend
//! for `upstream_peer`, and counts the outcome once. HTTP/1.1 pipelining is
//! enabled so pipelined requests are answered in order; the connection
//! guard is told when a request head has been read and when a request is
//! over. `logging`, which Pingora calls for every request it parsed, records
//! the request's duration, the backend's answer and the access-log line.

use crate::access_log::{access_log, Entry};
use crate::http::{request, response};
use crate::request::Scheme;
use crate::route::{self, Action, Outcome, Routed};
use crate::snapshot::Shared;
use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::lb::Backend;
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{Error, ErrorSource, ErrorType, Result};
use std::net::IpAddr;
use std::time::Instant;

/// The front proxy.
pub struct FrontProxy {
    pub shared: Shared,
}

/// Per-request state: what the access log and the latency metrics say.
pub struct Ctx {
    /// When the request began (its head's first byte when the guard saw it).
    started: Instant,
    /// The backend chosen in `request_filter`.
    backend: Option<Backend>,
    outcome: Outcome,
    scheme: Scheme,
    client: Option<IpAddr>,
    rule: Option<String>,
    location: Option<String>,
    upstream_status: Option<u16>,
    /// `Strict-Transport-Security` for a proxied response that has none
    /// (a TLS connection with `[tls] hsts`).
    hsts: Option<http::HeaderValue>,
    /// Whether the access log was on when the request arrived: a request
    /// is logged by the `[log]` in force then, whatever a reload does
    /// before it ends.
    logged: bool,
}

#[async_trait]
impl ProxyHttp for FrontProxy {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            started: Instant::now(),
            backend: None,
            outcome: Outcome::BadRequest,
            scheme: Scheme::Http,
            client: None,
            rule: None,
            location: None,
            upstream_status: None,
            hsts: None,
            logged: access_log().enabled(),
        }
    }

    async fn early_request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<()> {
        session.as_downstream_mut().set_pipelining_enabled(true);
        if let Some(t) = crate::guard::head_started(session) {
            ctx.started = t;
        }
        crate::guard::headers_read(session);
        Ok(())
    }

    /// Rules first; then maintenance; then the upstream (or failover, 502, 404).
    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        let snap = self.shared.load_full();
        let now = crate::unix_now();
        let routed = match request::parts(session, &snap.trusted_proxies) {
            Err(reason) => Routed::bad(400, reason),
            Ok(parts) => {
                ctx.scheme = parts.scheme;
                ctx.client = parts.client;
                route::route(&snap, &request::view(session, &parts, now))
            }
        };
        ctx.outcome = routed.outcome;
        routed.record(&snap, now);
        let hsts = response::hsts_for(session, &snap);
        if let Action::Proxy(backend) = &routed.action {
            ctx.backend = Some(backend.clone());
            ctx.hsts = hsts.cloned();
            return Ok(false);
        }
        let written = response::write(session, &routed.action, hsts).await;
        if let Action::Redirect(r) = routed.action {
            if ctx.logged {
                ctx.rule = r.rule.map(|rule| rule.id().to_string());
                ctx.location = Some(r.location);
            }
        }
        written?;
        Ok(true)
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        match &ctx.backend {
            Some(b) => Ok(Box::new(HttpPeer::new(
                b.addr.clone(),
                false,
                String::new(),
            ))),
            None => Error::e_explain(ErrorType::HTTPStatus(502), "no healthy upstream backend"),
        }
    }

    /// A repeated `Content-Length` (`45, 45` or two lines; Pingora has
    /// already refused differing values) goes upstream as one value: RFC 9112
    /// §6.3 forbids forwarding the list.
    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        req: &mut RequestHeader,
        _ctx: &mut Ctx,
    ) -> Result<()> {
        let values = req.headers.get_all(http::header::CONTENT_LENGTH);
        let mut it = values.iter();
        let (Some(first), more) = (it.next(), it.next().is_some()) else {
            return Ok(());
        };
        if more || first.as_bytes().contains(&b',') {
            let one = first
                .to_str()
                .ok()
                .and_then(|v| v.split(',').next())
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()));
            match one {
                Some(n) => req.insert_header(http::header::CONTENT_LENGTH, n)?,
                None => {
                    return Error::e_explain(
                        ErrorType::InvalidHTTPHeader,
                        "a Content-Length that is not a number",
                    )
                }
            }
        }
        Ok(())
    }

    /// The proxied response goes out as this proxy's own message (RFC 9110
    /// §6.2, §7.6.1): see [`response::own_response`].
    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        ctx.upstream_status = Some(resp.status.as_u16());
        response::own_response(session.req_header().version, resp);
        if let Some(v) = &ctx.hsts {
            if !resp
                .headers
                .contains_key(http::header::STRICT_TRANSPORT_SECURITY)
            {
                resp.insert_header("Strict-Transport-Security", v.clone())?;
            }
        }
        Ok(())
    }

    /// Pingora's own error answer when proxying fails (502 for a backend
    /// that refuses or times out, as Pingora decides), with the HSTS of a
    /// TLS connection: SPEC §10 wants it on every answer over TLS.
    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let code = match e.etype() {
            ErrorType::HTTPStatus(code) => *code,
            _ => match e.esource() {
                ErrorSource::Upstream => 502,
                ErrorSource::Downstream => match e.etype() {
                    ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => 0,
                    _ => 400,
                },
                ErrorSource::Internal | ErrorSource::Unset => 500,
            },
        };
        if code > 0 {
            let mut resp = pingora::protocols::http::ServerSession::generate_error(code);
            if let Some(v) = &ctx.hsts {
                let _ = resp.insert_header("Strict-Transport-Security", v.clone());
            }
            if let Err(err) = session
                .as_downstream_mut()
                .write_error_response(resp, bytes::Bytes::new())
                .await
            {
                log::error!("failed to send error response to downstream: {err}");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        let m = crate::metrics::metrics();
        if e.is_some_and(|e| e.etype == ErrorType::ReadTimedout) {
            m.client_timeouts.with_label_values(&["body"]).inc();
        }
        crate::guard::request_done(session);
        let duration = ctx.started.elapsed();
        let backend = ctx.backend.as_ref().map(|b| b.addr.to_string());
        if crate::metrics::enabled() {
            crate::metrics::duration_of(ctx.outcome.as_str()).observe(duration.as_secs_f64());
            if let Some(b) = &backend {
                let code = match ctx.upstream_status {
                    Some(s @ 100..=599) => {
                        ["1xx", "2xx", "3xx", "4xx", "5xx"][usize::from(s / 100) - 1]
                    }
                    _ => "error",
                };
                m.upstream_responses.with_label_values(&[b, code]).inc();
            }
        }
        let log = access_log();
        if !ctx.logged || !log.enabled() {
            return;
        }
        let req = session.req_header();
        let header = |name: http::header::HeaderName| req.headers.get(name).map(|v| v.as_bytes());
        let host = req
            .uri
            .authority()
            .map(|a| a.as_str().as_bytes())
            .or_else(|| header(http::header::HOST));
        let client = ctx.client.or_else(|| {
            session
                .client_addr()
                .and_then(|a| a.as_inet())
                .map(|a| a.ip())
        });
        log.log(&Entry {
            client,
            method: Some(req.method.as_str()),
            scheme: ctx.scheme,
            host,
            target: req.raw_path(),
            protocol: match req.version {
                http::Version::HTTP_09 => "HTTP/0.9",
                http::Version::HTTP_10 => "HTTP/1.0",
                http::Version::HTTP_2 => "HTTP/2.0",
                _ => "HTTP/1.1",
            },
            // Nothing was written: the client went away (nginx says 499).
            status: session
                .response_written()
                .map_or(499, |r| r.status.as_u16()),
            bytes: session.body_bytes_sent(),
            duration,
            outcome: ctx.outcome.as_str(),
            rule: ctx.rule.as_deref(),
            location: ctx.location.as_deref(),
            backend: backend.as_deref(),
            upstream_status: ctx.upstream_status,
            user_agent: header(http::header::USER_AGENT),
            referer: header(http::header::REFERER),
        });
    }
}
