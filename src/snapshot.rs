//! Everything a request reads, in one value swapped once per reload.
//!
//! A [`Snapshot`] holds the compiled rules with their metric handles, the
//! pools with their health, the routing of what no rule answers (upstream,
//! failover, maintenance), the trusted proxies and the configuration it was
//! built from. [`Shared`] is the one `ArcSwap` the servers, the health
//! checks and the reload share: a request loads it once and sees one
//! consistent configuration to its end, whatever a reload swaps meanwhile.

use crate::config::{Config, Selection, UpstreamConfig};
use crate::load::Loaded;
use crate::metrics::RuleCounters;
use crate::pool::Pool;
use crate::rules::RuleSet;
use crate::upstream::Upstream;
use arc_swap::ArcSwap;
use http::HeaderValue;
use ipnet::IpNet;
use std::sync::Arc;
use std::time::Duration;

/// The snapshot in force, shared by everything that serves.
pub type Shared = Arc<ArcSwap<Snapshot>>;

/// `Retry-After` of failover and maintenance redirects, and of a pool's 503,
/// when `[maintenance]` sets none.
pub const DEFAULT_RETRY_AFTER: u32 = 60;

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

/// Where requests that no rule answers go.
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
    pub fn new(cfg: &Config) -> Result<Routing, String> {
        let upstream = cfg
            .upstream
            .as_ref()
            .map(|u| Upstream::new(u).map_err(|e| format!("[upstream]: {e}")))
            .transpose()?;
        let retry_after = retry_after(cfg);
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

/// `[maintenance] retry_after`, else [`DEFAULT_RETRY_AFTER`].
fn retry_after(cfg: &Config) -> u32 {
    cfg.maintenance
        .as_ref()
        .and_then(|m| m.retry_after)
        .unwrap_or(DEFAULT_RETRY_AFTER)
}

/// Everything a request needs.
pub struct Snapshot {
    /// Shared with the previous snapshot when a reload changed nothing the
    /// rules are compiled from (`rules_key`).
    pub rules: Arc<RuleSet>,
    pub(crate) rules_key: Option<u64>,
    /// The list files the rules were compiled from, as they were read.
    pub(crate) list_files: Vec<crate::load::ListFile>,
    /// Per-rule metric handles of these rules.
    pub(crate) counters: RuleCounters,
    /// The pools the rules and the routing name, with their health.
    pub(crate) pools: Vec<Arc<Pool>>,
    pub(crate) routing: Routing,
    pub(crate) trusted_proxies: Vec<IpNet>,
    /// `Retry-After` of a pool's 503 when the rule sets none.
    pub(crate) retry_after: u32,
    /// `[defaults]` Cache-Control values, built once.
    permanent_cc: HeaderValue,
    temporary_cc: HeaderValue,
    /// `[tls]` with its certificates, when HTTPS is served.
    pub tls: Option<Arc<crate::tls::TlsState>>,
    /// The configuration this snapshot was built from.
    pub config: Config,
}

impl Snapshot {
    /// The snapshot of a configuration and its compiled rules. `Err` when a
    /// backend address cannot be used.
    pub fn new(config: Config, rules: RuleSet) -> Result<Snapshot, String> {
        Snapshot::with_rules(config, Arc::new(rules), None, Vec::new(), None)
    }

    /// The snapshot of a configuration with rules already compiled (kept
    /// from the previous snapshot by a reload).
    pub(crate) fn with_rules(
        config: Config,
        rules: Arc<RuleSet>,
        rules_key: Option<u64>,
        list_files: Vec<crate::load::ListFile>,
        tls: Option<Arc<crate::tls::TlsState>>,
    ) -> Result<Snapshot, String> {
        let routing = Routing::new(&config)?;
        let pools = config
            .pools
            .values()
            .map(|p| Arc::new(Pool::new(p)))
            .collect();
        Ok(Snapshot {
            counters: RuleCounters::new(rules.label_count()),
            rules,
            rules_key,
            list_files,
            pools,
            routing,
            trusted_proxies: config.server.trusted_proxies.clone(),
            retry_after: retry_after(&config),
            permanent_cc: HeaderValue::from_str(&config.defaults.permanent_cache_control)
                .unwrap_or_else(|_| HeaderValue::from_static("max-age=86400")),
            temporary_cc: HeaderValue::from_str(&config.defaults.temporary_cache_control)
                .unwrap_or_else(|_| HeaderValue::from_static("no-store")),
            tls,
            config,
        })
    }

    /// The snapshot of a configuration that loaded; `Err` when it did not
    /// (with its errors) or a backend address cannot be used.
    pub fn from_loaded(loaded: Loaded) -> Result<Snapshot, String> {
        match loaded.rules {
            Some(rules) => Snapshot::with_rules(
                loaded.config,
                Arc::new(rules),
                Some(loaded.rules_key),
                loaded.list_files,
                loaded.tls,
            ),
            None => Err(loaded
                .errors()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")),
        }
    }

    /// The pool named `name`.
    pub(crate) fn pool(&self, name: &str) -> Option<&Arc<Pool>> {
        self.pools.iter().find(|p| p.name == name)
    }

    /// The Cache-Control value for `text`, without copying the defaults.
    pub(crate) fn cache_control(&self, text: &str) -> HeaderValue {
        if text.as_bytes() == self.permanent_cc.as_bytes() {
            self.permanent_cc.clone()
        } else if text.as_bytes() == self.temporary_cc.as_bytes() {
            self.temporary_cc.clone()
        } else {
            HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("no-store"))
        }
    }

    /// Gives the pool targets of this snapshot the health they have in
    /// `old` (by pool name and target URL); returns the targets `old` does
    /// not know, which are unchecked.
    pub(crate) fn keep_health_of(&self, old: &Snapshot) -> Vec<(Arc<Pool>, usize)> {
        let mut unchecked = Vec::new();
        for pool in &self.pools {
            let before = old.pool(&pool.name);
            for (i, t) in pool.targets.iter().enumerate() {
                match before.and_then(|b| b.targets.iter().find(|b| b.url == t.url)) {
                    Some(b) => t.set_healthy(b.is_healthy()),
                    None if pool.health_check.is_some() => unchecked.push((pool.clone(), i)),
                    None => {}
                }
            }
        }
        unchecked
    }
}
