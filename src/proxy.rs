//! The front proxy's `ProxyHttp`: redirects first, then the upstream.
//!
//! `request_filter` hands every request to the [`RedirectPlugin`]; what no rule
//! answers goes to an `[upstream]` backend chosen by `pingora-load-balancing`
//! among the healthy ones (502 when none is), or gets a 404 when there is no
//! `[upstream]`. HTTP/1.1 pipelining is enabled so pipelined requests are
//! answered in order.

use crate::config::{Config, HealthCheck, HealthCheckKind, Selection, UpstreamConfig};
use crate::metrics::{enabled, outcomes};
use crate::plugin::{write_error, Handled, RedirectPlugin};
use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::lb::health_check::{HttpHealthCheck, TcpHealthCheck};
use pingora::lb::selection::{Consistent, Random, RoundRobin};
use pingora::lb::{Backend, LoadBalancer};
use pingora::prelude::HttpPeer;
use pingora::proxy::{ProxyHttp, Session};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora::{Error, ErrorType, Result};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How many backends `select` may look at before giving up.
const MAX_ITERATIONS: usize = 256;

/// The upstream backends behind one of the three selections.
#[derive(Clone)]
pub enum Upstream {
    RoundRobin(Arc<LoadBalancer<RoundRobin>>),
    Random(Arc<LoadBalancer<Random>>),
    Hash(Arc<LoadBalancer<Consistent>>),
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
    /// Builds the balancer of `cfg` (its health checks are run by [`UpstreamHealth`]).
    pub fn new(cfg: &UpstreamConfig) -> std::io::Result<Self> {
        Ok(match cfg.selection {
            Selection::RoundRobin => Upstream::RoundRobin(Arc::new(build::<RoundRobin>(cfg)?)),
            Selection::Random => Upstream::Random(Arc::new(build::<Random>(cfg)?)),
            Selection::Hash => Upstream::Hash(Arc::new(build::<Consistent>(cfg)?)),
        })
    }

    /// Probes every backend once (in parallel) and records the results.
    pub async fn run_health_check(&self) {
        match self {
            Upstream::RoundRobin(lb) => lb.backends().run_health_check(true).await,
            Upstream::Random(lb) => lb.backends().run_health_check(true).await,
            Upstream::Hash(lb) => lb.backends().run_health_check(true).await,
        }
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

/// Where requests that no rule answers go: everything of the configuration
/// that is not a rule, swapped as one on reload.
pub struct Routing {
    pub upstream: Option<Upstream>,
    /// How often the upstream's health is checked (`None`: never; every
    /// backend counts as healthy).
    pub upstream_interval: Option<Duration>,
    /// The backends as configured (the metrics labels).
    pub upstream_names: Vec<String>,
    /// `[upstream] failover_pool`: where to send clients when no backend is healthy.
    pub failover_pool: Option<String>,
    /// `Retry-After` of failover redirects.
    pub failover_retry_after: u32,
    /// The maintenance swap, when enabled.
    pub maintenance: Option<Maintenance>,
}

impl Routing {
    /// The routing of a loaded configuration.
    pub fn new(cfg: &Config) -> std::result::Result<Routing, String> {
        let upstream = cfg
            .upstream
            .as_ref()
            .map(|u| Upstream::new(u).map_err(|e| format!("[upstream]: {e}")))
            .transpose()?;
        let retry_after = cfg
            .maintenance
            .as_ref()
            .and_then(|m| m.retry_after)
            .unwrap_or(DEFAULT_RETRY_AFTER);
        let maintenance = match &cfg.maintenance {
            Some(m) if m.enabled => Some(Maintenance {
                mode: match &m.redirect_pool {
                    Some(pool) => MaintenanceMode::RedirectPool(pool.clone()),
                    None => {
                        let lb_cfg = UpstreamConfig {
                            backends: m.backends.clone(),
                            selection: Selection::RoundRobin,
                            health_check: None,
                            failover_pool: None,
                        };
                        MaintenanceMode::Backends(
                            Upstream::new(&lb_cfg).map_err(|e| format!("[maintenance]: {e}"))?,
                        )
                    }
                },
                retry_after,
            }),
            _ => None,
        };
        Ok(Routing {
            upstream,
            upstream_interval: cfg
                .upstream
                .as_ref()
                .and_then(|u| u.health_check.as_ref())
                .map(|h| h.interval),
            upstream_names: cfg
                .upstream
                .as_ref()
                .map(|u| u.backends.clone())
                .unwrap_or_default(),
            failover_pool: cfg.upstream.as_ref().and_then(|u| u.failover_pool.clone()),
            failover_retry_after: retry_after,
            maintenance,
        })
    }
}

/// The front proxy.
pub struct FrontProxy {
    pub plugin: RedirectPlugin,
    pub routing: Arc<ArcSwap<Routing>>,
}

/// Runs the health checks of the upstream in force, on its interval; follows
/// reloads (a new upstream is checked once before it is swapped in).
pub struct UpstreamHealth {
    pub routing: Arc<ArcSwap<Routing>>,
}

#[async_trait]
impl BackgroundService for UpstreamHealth {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut next = Instant::now();
        let mut current: Option<Arc<Routing>> = None;
        loop {
            let routing = self.routing.load_full();
            if !current.as_ref().is_some_and(|c| Arc::ptr_eq(c, &routing)) {
                current = Some(routing.clone());
                next = Instant::now();
            }
            if let (Some(u), Some(every)) = (&routing.upstream, routing.upstream_interval) {
                if Instant::now() >= next {
                    u.run_health_check().await;
                    next = Instant::now() + every;
                }
            }
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }
}

/// Makes a backend's response this proxy's own before it goes to a client
/// that asked with `version`:
///
/// * An intermediary sends its own HTTP version (RFC 9110 §6.2): a backend's
///   `HTTP/1.0 200 OK` reaches an HTTP/1.x client as `HTTP/1.1 200 OK`.
/// * Hop-by-hop fields are the backend's business with us, not the client's
///   (RFC 9110 §7.6.1): `Keep-Alive`, `Proxy-Connection` and every field the
///   backend's `Connection` names are removed (Pingora writes the client's
///   own `Connection`). A `101` keeps its upgrade fields.
/// * An HTTP/1.0 client cannot read chunked framing, which Pingora chooses
///   for a body of unknown length (a close-delimited HTTP/1.0 backend's, or
///   a chunked one's): without `Transfer-Encoding` that body is sent as is
///   and ends with the connection, as HTTP/1.0 frames it. An HTTP/1.1 client
///   keeps its chunked body and its keep-alive connection.
pub fn own_response(version: http::Version, resp: &mut ResponseHeader) {
    if version == http::Version::HTTP_2 || resp.status == http::StatusCode::SWITCHING_PROTOCOLS {
        return;
    }
    resp.set_version(http::Version::HTTP_11);
    let nominated: Vec<http::HeaderName> = resp
        .headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| http::HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .filter(|n| {
            !matches!(
                *n,
                http::header::CONNECTION
                    | http::header::CONTENT_LENGTH
                    | http::header::TRANSFER_ENCODING
            )
        })
        .collect();
    for name in nominated {
        resp.remove_header(&name);
    }
    resp.remove_header("keep-alive");
    resp.remove_header("proxy-connection");
    if version < http::Version::HTTP_11 {
        resp.remove_header(&http::header::TRANSFER_ENCODING);
    }
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
        crate::guard::headers_read(session);
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
        let routing = self.routing.load();
        // `OPTIONS *` asks about the server, not a resource: never redirected.
        let options_star = {
            let req = session.req_header();
            req.method == http::Method::OPTIONS && req.uri.path() == "*"
        };
        if let Some(m) = &routing.maintenance {
            count(&out.maintenance);
            match &m.mode {
                MaintenanceMode::RedirectPool(_) if options_star => {
                    crate::plugin::write_unavailable(session, m.retry_after).await?;
                    return Ok(true);
                }
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
        let Some(upstream) = &routing.upstream else {
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
            None => match routing.failover_pool.as_ref().filter(|_| !options_star) {
                Some(pool) => {
                    count(&out.failover);
                    self.plugin
                        .redirect_to_pool(session, pool, routing.failover_retry_after)
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
    /// §6.2, §7.6.1): see [`own_response`].
    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        _ctx: &mut Ctx,
    ) -> Result<()> {
        own_response(session.req_header().version, resp);
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
