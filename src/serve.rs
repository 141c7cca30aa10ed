//! `serve`: the front proxy on Pingora.
//!
//! Builds Pingora's server from `[server]` (threads, grace period, upgrade
//! socket, pid file), the traffic service (every `listen` address, optional
//! h2c), the upstream health checks as a background service, and the admin
//! service, then runs until a signal: SIGINT exits at once, SIGTERM drains for
//! `grace_period`, SIGQUIT hands the listeners to a `serve --upgrade`.

use crate::admin::AdminApp;
use crate::config::Config;
use crate::config::{Selection, UpstreamConfig};
use crate::plugin::{Engine, RedirectPlugin};
use crate::pool::PoolHealth;
use crate::proxy::{
    FrontProxy, HealthService, Maintenance, MaintenanceMode, Upstream, DEFAULT_RETRY_AFTER,
};
use crate::rules::RuleSet;
use pingora::apps::HttpServerOptions;
use pingora::proxy::ProxyServiceBuilder;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::Server;
use pingora::services::background::background_service;
use pingora::services::listening::Service;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// How `serve` was asked to start.
pub struct ServeOptions {
    pub upgrade: bool,
    pub daemon: bool,
}

/// Pingora's own settings from `[server]`.
pub fn server_conf(cfg: &Config, daemon: bool) -> ServerConf {
    let s = &cfg.server;
    let mut conf = ServerConf {
        threads: s.threads,
        daemon,
        ..ServerConf::default()
    };
    let grace = s.grace_period.as_secs_f64().ceil() as u64;
    conf.grace_period_seconds = Some(grace);
    conf.graceful_shutdown_timeout_seconds = Some(grace.max(1));
    conf.upgrade_sock = s.upgrade_sock.display().to_string();
    conf.pid_file = s.pid_file.display().to_string();
    conf
}

/// Runs the front proxy; returns only on a startup error.
pub fn run(cfg: Config, rules: RuleSet, opts: ServeOptions) -> Result<(), String> {
    let opt = Opt {
        upgrade: opts.upgrade,
        daemon: opts.daemon,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, server_conf(&cfg, opts.daemon));
    server.bootstrap();

    let count = rules.len();
    if std::env::var("PINGORA_REDIRECT_METRICS").is_ok_and(|v| v == "off") {
        crate::metrics::set_enabled(false);
    }
    crate::metrics::set_rule_counts(rules.counts());
    crate::metrics::record_start(crate::unix_now());
    let engine = Engine::new(rules, &cfg);
    let plugin = RedirectPlugin::from_engine(engine);
    let engine = plugin.engine().clone();
    let engine_for_health = engine.clone();

    let mut upstream = None;
    if let Some(u) = &cfg.upstream {
        let (lb, health) = Upstream::new(u).map_err(|e| format!("[upstream]: {e}"))?;
        match health {
            Some(HealthService::RoundRobin(s)) => {
                server.add_service(s);
            }
            Some(HealthService::Random(s)) => {
                server.add_service(s);
            }
            Some(HealthService::Hash(s)) => {
                server.add_service(s);
            }
            None => {}
        }
        upstream = Some(lb);
    }

    let refresh = {
        let upstream = upstream.clone();
        let backends: Vec<String> = cfg
            .upstream
            .as_ref()
            .map(|u| u.backends.clone())
            .unwrap_or_default();
        move || {
            let m = crate::metrics::metrics();
            if let Some(u) = &upstream {
                let health = u.health();
                for name in &backends {
                    let addr = name.parse::<std::net::SocketAddr>().ok();
                    let up = health
                        .iter()
                        .any(|(b, ok)| *ok && b.addr.as_inet() == addr.as_ref());
                    m.upstream_backend_up
                        .with_label_values(&[name])
                        .set(i64::from(up));
                }
            }
            for pool in &engine.load().pools {
                for t in &pool.targets {
                    m.pool_target_up
                        .with_label_values(&[&pool.name, &t.url])
                        .set(i64::from(t.is_healthy()));
                }
            }
        }
    };
    // Pool health checks, following the engine across reloads.
    if cfg.pools.values().any(|p| p.health_check.is_some()) {
        server.add_service(background_service(
            "pool health checks",
            PoolHealth {
                engine: engine_for_health,
            },
        ));
    }
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
                    let (lb, _) =
                        Upstream::new(&lb_cfg).map_err(|e| format!("[maintenance]: {e}"))?;
                    MaintenanceMode::Backends(lb)
                }
            },
            retry_after,
        }),
        _ => None,
    };
    if maintenance.is_some() {
        log::warn!("maintenance is on: requests no rule answers are not sent to [upstream]");
    }
    let front = FrontProxy {
        plugin,
        upstream,
        failover_pool: cfg.upstream.as_ref().and_then(|u| u.failover_pool.clone()),
        failover_retry_after: retry_after,
        maintenance,
    };

    let mut options = HttpServerOptions::default();
    options.h2c = cfg.server.h2c;
    let mut proxy = ProxyServiceBuilder::new(&server.configuration, front)
        .name("pingora-redirect")
        .server_options(options)
        .build();
    for addr in &cfg.server.listen {
        proxy.add_tcp(&addr.to_string());
    }
    server.add_service(proxy);

    let ready = Arc::new(AtomicBool::new(false));
    let mut admin = Service::new(
        "pingora-redirect admin".to_string(),
        AdminApp {
            ready: ready.clone(),
            refresh: Box::new(refresh),
        },
    );
    admin.add_tcp(&cfg.server.admin.to_string());
    server.add_service(admin);

    ready.store(true, Ordering::Release);
    log::info!(
        "serving {} rules on {:?}, admin on {}",
        count,
        cfg.server.listen,
        cfg.server.admin
    );
    server.run_forever()
}
