//! Health: the background services that probe upstream backends and pool
//! targets, each on its own interval, with Pingora's health checks.
//!
//! Both read the [`Snapshot`] in force at every round, so they follow
//! reloads: a new upstream is probed at once, and a pool keeps its schedule
//! while its checks do not change. Backends are probed by
//! `pingora-load-balancing` itself; a pool target is a base URL (a name,
//! not an address), so it is resolved first, then probed with the same
//! `TcpHealthCheck` or `HttpHealthCheck` (its own `Host`, 2xx or 3xx
//! expected).

use crate::config::HealthCheckKind;
use crate::pool::target_endpoint;
use crate::snapshot::{Shared, Snapshot};
use crate::upstream::{http_check, tcp_check};
use async_trait::async_trait;
use pingora::lb::health_check::HealthCheck;
use pingora::lb::Backend;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the services look at what is due.
const TICK: Duration = Duration::from_millis(100);

/// Probes one pool target once: a TCP connection, or an HTTP `GET path`
/// answered with a 2xx or 3xx status, within `timeout`.
pub async fn probe(base: &str, check: &HealthCheckKind, timeout: Duration) -> bool {
    let Some((host, port, tls)) = target_endpoint(base) else {
        return false;
    };
    let attempt = async {
        let addr = tokio::net::lookup_host((host.as_str(), port))
            .await
            .ok()?
            .next()?;
        let backend = Backend::new(&addr.to_string()).ok()?;
        let check: Box<dyn HealthCheck + Send + Sync> = match check {
            HealthCheckKind::Tcp => tcp_check(timeout),
            HealthCheckKind::Http { path } => {
                let default_port = if tls { 443 } else { 80 };
                let host_header = match (port == default_port, host.contains(':')) {
                    (true, _) => host.clone(),
                    (false, true) => format!("[{host}]:{port}"),
                    (false, false) => format!("{host}:{port}"),
                };
                http_check(path, &host_header, timeout)
            }
        };
        check.check(&backend).await.ok()
    };
    matches!(
        tokio::time::timeout(timeout * 2, attempt).await,
        Ok(Some(()))
    )
}

/// Runs the health checks of the upstream in force, on its interval; a new
/// upstream (after a reload) is checked at once.
pub struct UpstreamHealth {
    pub shared: Shared,
}

#[async_trait]
impl BackgroundService for UpstreamHealth {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut next = Instant::now();
        let mut current: Option<Arc<Snapshot>> = None;
        loop {
            let snap = self.shared.load_full();
            if !current.as_ref().is_some_and(|c| Arc::ptr_eq(c, &snap)) {
                current = Some(snap.clone());
                next = Instant::now();
            }
            let routing = &snap.routing;
            if let (Some(u), Some(every)) = (&routing.upstream, routing.upstream_interval) {
                if Instant::now() >= next {
                    u.run_health_check().await;
                    next = Instant::now() + every;
                }
            }
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(TICK) => {}
            }
        }
    }
}

/// Health-checks the targets of every pool that has a `health_check`.
pub struct PoolHealth {
    pub shared: Shared,
}

/// How long one probe of a pool checked every `interval` may take.
pub fn probe_timeout(interval: Duration) -> Duration {
    interval.clamp(Duration::from_millis(100), Duration::from_secs(1))
}

#[async_trait]
impl BackgroundService for PoolHealth {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut due: HashMap<String, Instant> = HashMap::new();
        loop {
            let snap = self.shared.load_full();
            let now = Instant::now();
            let mut probes = Vec::new();
            for pool in &snap.pools {
                let Some(hc) = pool.health_check.clone() else {
                    continue;
                };
                let key = format!("{}\u{0}{:?}", pool.name, hc);
                if due.get(&key).is_some_and(|t| *t > now) {
                    continue;
                }
                due.insert(key, now + hc.interval);
                let timeout = probe_timeout(hc.interval);
                for (i, t) in pool.targets.iter().enumerate() {
                    let (pool, base, kind) = (pool.clone(), t.base.clone(), hc.kind.clone());
                    probes.push(tokio::spawn(async move {
                        let up = probe(&base, &kind, timeout).await;
                        let target = &pool.targets[i];
                        if target.is_healthy() != up {
                            log::warn!(
                                "pool {} target {} is now {}",
                                pool.name,
                                target.url,
                                if up { "healthy" } else { "unhealthy" }
                            );
                        }
                        target.set_healthy(up);
                    }));
                }
            }
            for p in probes {
                let _ = p.await;
            }
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(TICK) => {}
            }
        }
    }
}
