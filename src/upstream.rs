//! The backends that requests no rule answers are proxied to: `[upstream]`
//! and the maintenance backends, each a `pingora-load-balancing`
//! `LoadBalancer` behind one of the three selections, and the Pingora health
//! checks they (and pool targets, see [`crate::health`]) are probed with.

use crate::config::{HealthCheck, HealthCheckKind, Selection, UpstreamConfig};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::lb::health_check::{HttpHealthCheck, TcpHealthCheck};
use pingora::lb::selection::{Consistent, Random, RoundRobin};
use pingora::lb::{Backend, LoadBalancer};
use pingora::{Error, ErrorType};
use std::sync::Arc;
use std::time::Duration;

/// How many backends `select` may look at before giving up.
const MAX_ITERATIONS: usize = 256;

/// The backends behind one of the three selections.
#[derive(Clone)]
pub enum Upstream {
    RoundRobin(Arc<LoadBalancer<RoundRobin>>),
    Random(Arc<LoadBalancer<Random>>),
    Hash(Arc<LoadBalancer<Consistent>>),
}

/// A check that passes on any 2xx or 3xx answer to `GET path` with this
/// `Host`, within `timeout` for the connection and for the answer.
pub(crate) fn http_check(path: &str, host: &str, timeout: Duration) -> Box<HttpHealthCheck> {
    let mut check = HttpHealthCheck::new(host, false);
    if let Ok(mut req) = RequestHeader::build("GET", path.as_bytes(), None) {
        let _ = req.insert_header("Host", host);
        let _ = req.insert_header("User-Agent", "pingora-redirect-health-check");
        check.req = req;
    }
    check.peer_template.options.connection_timeout = Some(timeout);
    check.peer_template.options.read_timeout = Some(timeout);
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

/// A check that passes when a TCP connection opens within `timeout`.
pub(crate) fn tcp_check(timeout: Duration) -> Box<TcpHealthCheck> {
    let mut check = TcpHealthCheck::new();
    check.peer_template.options.connection_timeout = Some(timeout);
    check
}

/// The check of `[upstream] health_check` for every backend.
fn backend_check(
    hc: &HealthCheck,
) -> Box<dyn pingora::lb::health_check::HealthCheck + Send + Sync> {
    let timeout = Duration::from_secs(1);
    match &hc.kind {
        HealthCheckKind::Tcp => tcp_check(timeout),
        HealthCheckKind::Http { path } => http_check(path, "localhost", timeout),
    }
}

fn build<S>(cfg: &UpstreamConfig) -> std::io::Result<LoadBalancer<S>>
where
    S: pingora::lb::selection::BackendSelection + 'static,
    S::Iter: pingora::lb::selection::BackendIter,
{
    let mut lb = LoadBalancer::<S>::try_from_iter(cfg.backends.iter().map(String::as_str))?;
    if let Some(hc) = &cfg.health_check {
        lb.set_health_check(backend_check(hc));
        lb.health_check_frequency = Some(hc.interval);
    }
    Ok(lb)
}

impl Upstream {
    /// Builds the balancer of `cfg` (its health checks are run by
    /// [`crate::health::UpstreamHealth`]).
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

    /// Every backend with its health (for metrics).
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
