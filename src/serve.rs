//! `serve`: the front proxy on Pingora.
//!
//! Builds Pingora's server from `[server]` (threads, grace period, upgrade
//! socket, pid file) and adds: the traffic service (every `listen` address,
//! optional h2c) running [`FrontProxy`]; background services for upstream
//! health checks, pool health checks and reload; and the admin service. It
//! runs until a signal: SIGINT exits at once, SIGTERM drains for
//! `grace_period`, SIGQUIT hands the listeners to a `serve --upgrade`, SIGHUP
//! reloads the configuration.

use crate::admin::AdminApp;
use crate::config::Config;
use crate::guard::{Guarded, Limits};
use crate::health::{PoolHealth, UpstreamHealth};
use crate::proxy::FrontProxy;
use crate::reload::Reloader;
use crate::snapshot::{Shared, Snapshot};
use arc_swap::ArcSwap;
use pingora::apps::HttpServerOptions;
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

/// Refreshes the health gauges from the live state (called at each scrape).
fn refresh_gauges(shared: &Shared) {
    let m = crate::metrics::metrics();
    let snap = shared.load();
    let r = &snap.routing;
    if let Some(u) = &r.upstream {
        let health = u.health();
        for name in &r.upstream_names {
            let addr = name.parse::<std::net::SocketAddr>().ok();
            let up = health
                .iter()
                .any(|(b, ok)| *ok && b.addr.as_inet() == addr.as_ref());
            m.upstream_backend_up
                .with_label_values(&[name])
                .set(i64::from(up));
        }
    }
    for pool in &snap.pools {
        for t in &pool.targets {
            m.pool_target_up
                .with_label_values(&[&pool.name, &t.url])
                .set(i64::from(t.is_healthy()));
        }
    }
}

/// Runs the front proxy on `snap` (built from the configuration at its
/// `config.path`); returns only on a startup error.
pub fn run(snap: Snapshot, opts: ServeOptions) -> Result<(), String> {
    let opt = Opt {
        upgrade: opts.upgrade,
        daemon: opts.daemon,
        ..Opt::default()
    };
    let cfg = snap.config.clone();
    let mut server = Server::new_with_opt_and_conf(opt, server_conf(&cfg, opts.daemon));
    server.bootstrap();

    if std::env::var("PINGORA_REDIRECT_METRICS").is_ok_and(|v| v == "off") {
        crate::metrics::set_enabled(false);
    }
    crate::access_log::access_log().apply(&cfg.log);
    let count = snap.rules.len();
    crate::metrics::set_rule_counts(snap.rules.counts());
    crate::metrics::set_certificate_expiry(snap.tls.as_deref());
    crate::metrics::record_start(crate::unix_now());
    let shared: Shared = Arc::new(ArcSwap::from_pointee(snap));

    server.add_service(background_service(
        "upstream health checks",
        UpstreamHealth {
            shared: shared.clone(),
        },
    ));
    server.add_service(background_service(
        "pool health checks",
        PoolHealth {
            shared: shared.clone(),
        },
    ));

    let mut options = HttpServerOptions::default();
    options.h2c = cfg.server.h2c;
    // An HTTP/2 connection with no open stream is closed like an idle
    // HTTP/1 keep-alive connection.
    options.h2_idle_timeout = Some(cfg.server.idle_timeout);
    let front = FrontProxy {
        shared: shared.clone(),
    };
    let mut app = pingora::proxy::http_proxy(&server.configuration, front);
    app.server_options = Some(options);
    let mut guarded = Guarded::new(app, Limits::from_server(&cfg.server), &cfg.server.listen)
        .with_snapshot(shared.clone());
    let tls_listen = crate::reload::tls_listen(&cfg);
    if !tls_listen.is_empty() {
        // TLS listeners are TCP listeners to Pingora (so an upgrade hands
        // them over like the others); the guard does the handshake.
        guarded = guarded.with_tls(&tls_listen);
    }
    let mut proxy = Service::new("pingora-redirect".to_string(), guarded);
    for addr in cfg.server.listen.iter().chain(&tls_listen) {
        proxy.add_tcp(&addr.to_string());
    }
    server.add_service(proxy);

    let ready = Arc::new(AtomicBool::new(false));
    let refresh = {
        let shared = shared.clone();
        move || refresh_gauges(&shared)
    };
    let mut admin = Service::new(
        "pingora-redirect admin".to_string(),
        AdminApp {
            ready: ready.clone(),
            refresh: Box::new(refresh),
        },
    );
    admin.add_tcp(&cfg.server.admin.to_string());
    server.add_service(admin);

    if cfg.maintenance.as_ref().is_some_and(|m| m.enabled) {
        log::warn!("maintenance is on: requests no rule answers are not sent to [upstream]");
    }
    server.add_service(background_service(
        "reload",
        Reloader {
            path: cfg.path.clone(),
            started: cfg.server.clone(),
            started_tls: tls_listen.clone(),
            shared,
        },
    ));

    ready.store(true, Ordering::Release);
    log::info!(
        "serving {count} rules on {:?}{}, admin on {}",
        cfg.server.listen,
        if tls_listen.is_empty() {
            String::new()
        } else {
            format!(", HTTPS on {tls_listen:?}")
        },
        cfg.server.admin
    );
    server.run(pingora::server::RunArgs::default());
    // Every request has ended: what the access log holds goes out.
    crate::access_log::access_log().finish(std::time::Duration::from_secs(2));
    std::process::exit(0)
}
