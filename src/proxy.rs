//! The front proxy's `ProxyHttp`: short hooks that delegate.
//!
//! `request_filter` reads the request ([`crate::http::request`]), asks
//! [`route::route`] what to do (rules, maintenance, upstream, failover, 404),
//! writes the reply ([`crate::http::response`]) or keeps the chosen backend
//! for `upstream_peer`, and counts the outcome once. HTTP/1.1 pipelining is
//! enabled so pipelined requests are answered in order; the connection
//! guard is told when a request head has been read and when a request is
//! over.

use crate::http::{request, response};
use crate::route::{self, Action, Routed};
use crate::snapshot::Shared;
use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::lb::Backend;
use pingora::prelude::HttpPeer;
use pingora::proxy::{ProxyHttp, Session};
use pingora::{Error, ErrorType, Result};

/// The front proxy.
pub struct FrontProxy {
    pub shared: Shared,
}

/// Per-request state.
#[derive(Default)]
pub struct Ctx {
    /// The backend chosen in `request_filter`.
    backend: Option<Backend>,
}

#[async_trait]
impl ProxyHttp for FrontProxy {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx::default()
    }

    async fn early_request_filter(&self, session: &mut Session, _ctx: &mut Ctx) -> Result<()> {
        session.as_downstream_mut().set_pipelining_enabled(true);
        crate::guard::headers_read(session);
        Ok(())
    }

    /// Rules first; then maintenance; then the upstream (or failover, 502, 404).
    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        let snap = self.shared.load_full();
        let now = crate::unix_now();
        let routed = match request::parts(session, &snap.trusted_proxies) {
            Err(reason) => Routed::bad(400, reason),
            Ok(parts) => route::route(&snap, &request::view(session, &parts, now)),
        };
        if let Action::Proxy(backend) = &routed.action {
            ctx.backend = Some(backend.clone());
            routed.record(&snap, now);
            return Ok(false);
        }
        let written = response::write(session, &routed.action).await;
        routed.record(&snap, now);
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
        _ctx: &mut Ctx,
    ) -> Result<()> {
        response::own_response(session.req_header().version, resp);
        Ok(())
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, _ctx: &mut Ctx) {
        if e.is_some_and(|e| e.etype == ErrorType::ReadTimedout) {
            crate::metrics::metrics()
                .client_timeouts
                .with_label_values(&["body"])
                .inc();
        }
        crate::guard::request_done(session);
    }
}
