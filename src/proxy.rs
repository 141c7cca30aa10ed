//! The front proxy's `ProxyHttp`: redirects first, then the upstream.
//!
//! `request_filter` hands every request to the [`RedirectPlugin`]; what no rule
//! answers goes to an `[upstream]` backend chosen by `pingora-load-balancing`
//! among the healthy ones (502 when none is), or gets a 404 when there is no
//! `[upstream]`. HTTP/1.1 pipelining is enabled so pipelined requests are
//! answered in order.

use crate::config::{HealthCheck, HealthCheckKind, Selection, UpstreamConfig};
use crate::metrics::{enabled, outcomes};
use crate::plugin::{write_error, Handled, RedirectPlugin};
use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::lb::health_check::{HttpHealthCheck, TcpHealthCheck};
use pingora::lb::selection::{Consistent, Random, RoundRobin};
use pingora::lb::{Backend, LoadBalancer};
use pingora::prelude::HttpPeer;
use pingora::proxy::{ProxyHttp, Session};
use pingora::services::background::{background_service, GenBackgroundService};
use pingora::{Error, ErrorType, Result};
use std::net::IpAddr;
use std::sync::Arc;

/// How many backends `select` may look at before giving up.
const MAX_ITERATIONS: usize = 256;

/// The upstream backends behind one of the three selections.
#[derive(Clone)]
pub enum Upstream {
    RoundRobin(Arc<LoadBalancer<RoundRobin>>),
    Random(Arc<LoadBalancer<Random>>),
    Hash(Arc<LoadBalancer<Consistent>>),
}

/// A background service that runs an upstream's health checks.
pub enum HealthService {
    RoundRobin(GenBackgroundService<LoadBalancer<RoundRobin>>),
    Random(GenBackgroundService<LoadBalancer<Random>>),
    Hash(GenBackgroundService<LoadBalancer<Consistent>>),
}

fn health_check(hc: &HealthCheck) -> Box<dyn pingora::lb::health_check::HealthCheck + Send + Sync> {
    match &hc.kind {
        HealthCheckKind::Tcp => TcpHealthCheck::new(),
        HealthCheckKind::Http { path } => {
            let mut check = HttpHealthCheck::new("localhost", false);
            if let Ok(mut req) = RequestHeader::build("GET", path.as_bytes(), None) {
                let _ = req.insert_header("Host", "localhost");
                check.req = req;
            }
            check.validator = Some(Box::new(|resp: &ResponseHeader| {
                let s = resp.status.as_u16();
                if (200..400).contains(&s) {
                    Ok(())
                } else {
                    Error::e_explain(
                        ErrorType::CustomCode("unhealthy backend", s),
                        format!("health check answered {s}"),
                    )
                }
            }));
            Box::new(check)
        }
    }
}

fn build<S>(cfg: &UpstreamConfig) -> std::io::Result<LoadBalancer<S>>
where
    S: pingora::lb::selection::BackendSelection + 'static,
    S::Iter: pingora::lb::selection::BackendIter,
{
    let mut lb = LoadBalancer::<S>::try_from_iter(cfg.backends.iter().map(String::as_str))?;
    if let Some(hc) = &cfg.health_check {
        lb.set_health_check(health_check(hc));
        lb.health_check_frequency = Some(hc.interval);
    }
    Ok(lb)
}

impl Upstream {
    /// Builds the balancer and, when it has health checks, the background
    /// service that runs them (to be added to the server).
    pub fn new(cfg: &UpstreamConfig) -> std::io::Result<(Self, Option<HealthService>)> {
        let checked = cfg.health_check.is_some();
        Ok(match cfg.selection {
            Selection::RoundRobin => {
                let svc = background_service("upstream health checks", build::<RoundRobin>(cfg)?);
                let lb = svc.task();
                (
                    Upstream::RoundRobin(lb),
                    checked.then_some(HealthService::RoundRobin(svc)),
                )
            }
            Selection::Random => {
                let svc = background_service("upstream health checks", build::<Random>(cfg)?);
                let lb = svc.task();
                (
                    Upstream::Random(lb),
                    checked.then_some(HealthService::Random(svc)),
                )
            }
            Selection::Hash => {
                let svc = background_service("upstream health checks", build::<Consistent>(cfg)?);
                let lb = svc.task();
                (
                    Upstream::Hash(lb),
                    checked.then_some(HealthService::Hash(svc)),
                )
            }
        })
    }

    /// A healthy backend; `key` matters for `hash` only.
    pub fn select(&self, key: &[u8]) -> Option<Backend> {
        match self {
            Upstream::RoundRobin(lb) => lb.select(key, MAX_ITERATIONS),
            Upstream::Random(lb) => lb.select(key, MAX_ITERATIONS),
            Upstream::Hash(lb) => lb.select(key, MAX_ITERATIONS),
        }
    }

    /// Every backend with its health (for metrics and `/readyz`).
    pub fn health(&self) -> Vec<(Backend, bool)> {
        fn list<S>(lb: &LoadBalancer<S>) -> Vec<(Backend, bool)>
        where
            S: pingora::lb::selection::BackendSelection + 'static,
            S::Iter: pingora::lb::selection::BackendIter,
        {
            let b = lb.backends();
            b.get_backend()
                .iter()
                .map(|x| (x.clone(), b.ready(x)))
                .collect()
        }
        match self {
            Upstream::RoundRobin(lb) => list(lb),
            Upstream::Random(lb) => list(lb),
            Upstream::Hash(lb) => list(lb),
        }
    }
}

/// What `[maintenance] enabled = true` does with requests no rule answers.
pub enum MaintenanceMode {
    /// Proxy them to the maintenance backends instead of `[upstream]`.
    Backends(Upstream),
    /// Redirect them to this pool.
    RedirectPool(String),
}

/// The maintenance swap, when it is on.
pub struct Maintenance {
    pub mode: MaintenanceMode,
    /// Seconds, sent as `Retry-After`.
    pub retry_after: u32,
}

/// `Retry-After` of failover and maintenance redirects when `[maintenance]`
/// sets none.
pub const DEFAULT_RETRY_AFTER: u32 = 60;

/// The front proxy.
pub struct FrontProxy {
    pub plugin: RedirectPlugin,
    pub upstream: Option<Upstream>,
    /// `[upstream] failover_pool`: where to send clients when no backend is healthy.
    pub failover_pool: Option<String>,
    /// `Retry-After` of failover redirects.
    pub failover_retry_after: u32,
    /// The maintenance swap, when enabled.
    pub maintenance: Option<Maintenance>,
}

/// Per-request state.
#[derive(Default)]
pub struct Ctx {
    /// The backend chosen in `request_filter`.
    backend: Option<Backend>,
}

fn client_key(session: &Session) -> Vec<u8> {
    match session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
    {
        Some(IpAddr::V4(ip)) => ip.octets().to_vec(),
        Some(IpAddr::V6(ip)) => ip.octets().to_vec(),
        None => Vec::new(),
    }
}

#[async_trait]
impl ProxyHttp for FrontProxy {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx::default()
    }

    async fn early_request_filter(&self, session: &mut Session, _ctx: &mut Ctx) -> Result<()> {
        session.as_downstream_mut().set_pipelining_enabled(true);
        Ok(())
    }

    /// Rules first; then maintenance; then the upstream (or failover, 502, 404).
    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        let out = outcomes();
        let count = |c: &prometheus::IntCounter| {
            if enabled() {
                c.inc()
            }
        };
        match self.plugin.handle(session).await? {
            Handled::Redirect { .. } | Handled::PoolUnavailable => {
                count(&out.redirect);
                return Ok(true);
            }
            Handled::BadRequest { .. } => {
                count(&out.bad_request);
                return Ok(true);
            }
            Handled::Pass => {}
        }
        if let Some(m) = &self.maintenance {
            count(&out.maintenance);
            match &m.mode {
                MaintenanceMode::RedirectPool(pool) => {
                    self.plugin
                        .redirect_to_pool(session, pool, m.retry_after)
                        .await?;
                    return Ok(true);
                }
                MaintenanceMode::Backends(lb) => {
                    return match lb.select(&client_key(session)) {
                        Some(b) => {
                            ctx.backend = Some(b);
                            Ok(false)
                        }
                        None => {
                            write_error(session, 502, "no maintenance backend is reachable")
                                .await?;
                            Ok(true)
                        }
                    };
                }
            }
        }
        let Some(upstream) = &self.upstream else {
            count(&out.not_found);
            write_error(session, 404, "no rule matches this URL").await?;
            return Ok(true);
        };
        match upstream.select(&client_key(session)) {
            Some(b) => {
                count(&out.proxy);
                ctx.backend = Some(b);
                Ok(false)
            }
            None => match &self.failover_pool {
                Some(pool) => {
                    count(&out.failover);
                    self.plugin
                        .redirect_to_pool(session, pool, self.failover_retry_after)
                        .await?;
                    Ok(true)
                }
                None => {
                    count(&out.proxy);
                    write_error(session, 502, "no healthy upstream backend").await?;
                    Ok(true)
                }
            },
        }
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
}
