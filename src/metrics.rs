//! Every metric the product exports (docs/metrics.md), in one place.
//!
//! All of them live in the process's default `prometheus` registry, the one
//! `pingora-prometheus` and the admin `/metrics` endpoint gather. Per-rule
//! series are created on a rule's first hit, never at load. Counting a
//! redirect formats no label: [`RuleCounters`] caches the counter handles of
//! each rule (or list) label and status the first time they are used, and a
//! reload starts a fresh cache for the new rule set. Lists with
//! `metrics = "source"` have one series per source URL, looked up by label on
//! each hit (they are opt-in and bounded by the list's size).

use crate::rules::RuleRef;
use prometheus::{
    register_histogram_vec, register_int_counter, register_int_counter_vec, register_int_gauge,
    register_int_gauge_vec, Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, OnceLock};

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Turns per-request counting off or on (the load benchmark measures what
/// counting costs by running once with `PINGORA_REDIRECT_METRICS=off`).
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether per-request counting is on.
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The metric families of docs/metrics.md.
pub struct Metrics {
    pub hits: IntCounterVec,
    pub last_hit: IntGaugeVec,
    pub requests: IntCounterVec,
    pub rules: IntGaugeVec,
    pub pool_selections: IntCounterVec,
    pub pool_target_up: IntGaugeVec,
    pub upstream_backend_up: IntGaugeVec,
    pub config_reloads: IntCounterVec,
    pub config_last_reload_successful: IntGauge,
    pub config_last_reload_success_timestamp: IntGauge,
    pub connections: IntGaugeVec,
    pub connections_rejected: IntCounterVec,
    pub client_timeouts: IntCounterVec,
    pub request_duration: HistogramVec,
    pub upstream_responses: IntCounterVec,
    pub access_log_dropped: IntCounter,
    pub fast_path: IntCounter,
    pub config_reload_duration: HistogramVec,
    pub certificate_expiry: IntGaugeVec,
}

/// Buckets of `config_reload_duration_seconds`: 1 ms to 5 min.
pub const RELOAD_BUCKETS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Buckets of `request_duration_seconds`: 100 µs to 10 s.
pub const DURATION_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

fn build() -> prometheus::Result<Metrics> {
    Ok(Metrics {
        hits: register_int_counter_vec!(
            "pingora_redirect_hits_total",
            "Redirects answered, per rule and status sent.",
            &["rule", "status"]
        )?,
        last_hit: register_int_gauge_vec!(
            "pingora_redirect_last_hit_timestamp_seconds",
            "Unix time of the rule's last hit.",
            &["rule"]
        )?,
        requests: register_int_counter_vec!(
            "pingora_redirect_requests_total",
            "Requests by outcome: redirect, proxy, not_found, failover, maintenance, bad_request.",
            &["outcome"]
        )?,
        rules: register_int_gauge_vec!(
            "pingora_redirect_rules",
            "Loaded rules by kind.",
            &["kind"]
        )?,
        pool_selections: register_int_counter_vec!(
            "pingora_redirect_pool_selections_total",
            "Pool targets handed out.",
            &["pool", "target"]
        )?,
        pool_target_up: register_int_gauge_vec!(
            "pingora_redirect_pool_target_up",
            "Pool target health: 1 healthy, 0 not.",
            &["pool", "target"]
        )?,
        upstream_backend_up: register_int_gauge_vec!(
            "pingora_redirect_upstream_backend_up",
            "Upstream backend health: 1 healthy, 0 not.",
            &["backend"]
        )?,
        config_reloads: register_int_counter_vec!(
            "pingora_redirect_config_reloads_total",
            "Configuration reloads by result.",
            &["result"]
        )?,
        config_last_reload_successful: register_int_gauge!(
            "pingora_redirect_config_last_reload_successful",
            "1 when the last configuration load succeeded, 0 when it failed."
        )?,
        config_last_reload_success_timestamp: register_int_gauge!(
            "pingora_redirect_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful configuration load."
        )?,
        connections: register_int_gauge_vec!(
            "pingora_redirect_connections",
            "Open client connections per listener.",
            &["listener"]
        )?,
        connections_rejected: register_int_counter_vec!(
            "pingora_redirect_connections_rejected_total",
            "Client connections answered 503 and closed because the listener had max_connections open.",
            &["listener"]
        )?,
        client_timeouts: register_int_counter_vec!(
            "pingora_redirect_client_timeouts_total",
            "Client connections closed for slowness, by phase: handshake (TLS, closed), header (408) or body.",
            &["phase"]
        )?,
        certificate_expiry: register_int_gauge_vec!(
            "pingora_redirect_certificate_expiry_timestamp_seconds",
            "The notAfter of each [[certificate]] in force, Unix time; label: its `cert` as configured.",
            &["certificate"]
        )?,
        config_reload_duration: register_histogram_vec!(
            "pingora_redirect_config_reload_duration_seconds",
            "Time from a reload's start to the new configuration in force, by whether the rules were kept or compiled (failed reloads included).",
            &["rules"],
            RELOAD_BUCKETS.to_vec()
        )?,
        request_duration: register_histogram_vec!(
            "pingora_redirect_request_duration_seconds",
            "Time from the request head's first byte to the last byte of the response, by outcome.",
            &["outcome"],
            DURATION_BUCKETS.to_vec()
        )?,
        upstream_responses: register_int_counter_vec!(
            "pingora_redirect_upstream_responses_total",
            "Proxied responses by backend and status class (2xx ... 5xx, error when none came).",
            &["backend", "code"]
        )?,
        fast_path: register_int_counter!(
            "pingora_redirect_fast_path_requests_total",
            "Redirects answered by the fast path, below Pingora's proxy layer (counted in requests_total too)."
        )?,
        access_log_dropped: register_int_counter!(
            "pingora_redirect_access_log_dropped_total",
            "Access-log lines dropped because the writer fell behind."
        )?,
    })
}

static METRICS: LazyLock<Metrics> =
    LazyLock::new(|| build().expect("metrics register once in the default registry"));

/// The metrics, registered on first use.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

/// The `requests_total{outcome}` counters, resolved once.
pub struct Outcomes {
    pub redirect: IntCounter,
    pub proxy: IntCounter,
    pub not_found: IntCounter,
    pub failover: IntCounter,
    pub maintenance: IntCounter,
    pub bad_request: IntCounter,
    pub https_redirect: IntCounter,
}

static OUTCOMES: LazyLock<Outcomes> = LazyLock::new(|| {
    let r = &metrics().requests;
    Outcomes {
        redirect: r.with_label_values(&["redirect"]),
        proxy: r.with_label_values(&["proxy"]),
        not_found: r.with_label_values(&["not_found"]),
        failover: r.with_label_values(&["failover"]),
        maintenance: r.with_label_values(&["maintenance"]),
        bad_request: r.with_label_values(&["bad_request"]),
        https_redirect: r.with_label_values(&["https_redirect"]),
    }
});

/// The request outcome counters.
pub fn outcomes() -> &'static Outcomes {
    &OUTCOMES
}

/// The `request_duration_seconds` histogram of each outcome, resolved once.
pub fn duration_of(outcome: &str) -> &'static Histogram {
    static BY_OUTCOME: LazyLock<[(&str, Histogram); 7]> = LazyLock::new(|| {
        let h = &metrics().request_duration;
        [
            "redirect",
            "proxy",
            "not_found",
            "failover",
            "maintenance",
            "bad_request",
            "https_redirect",
        ]
        .map(|o| (o, h.with_label_values(&[o])))
    });
    let all = &*BY_OUTCOME;
    all.iter()
        .find(|(o, _)| *o == outcome)
        .map_or(&all[0].1, |(_, h)| h)
}

const STATUSES: [u16; 5] = [301, 302, 303, 307, 308];

fn status_slot(status: u16) -> usize {
    STATUSES.iter().position(|s| *s == status).unwrap_or(4)
}

/// Cached counter handles of one label (a rule id or a list id).
#[derive(Default)]
struct LabelCounters {
    hits: [OnceLock<IntCounter>; 5],
    last_hit: OnceLock<IntGauge>,
}

/// Per-rule counters of one rule set, created lazily on first hit.
pub struct RuleCounters {
    labels: Vec<LabelCounters>,
}

impl RuleCounters {
    /// Counters for a rule set with `labels` labels (see `RuleSet::label_count`).
    pub fn new(labels: usize) -> Self {
        RuleCounters {
            labels: (0..labels).map(|_| LabelCounters::default()).collect(),
        }
    }

    /// Counts one redirect answered by `rule` with `status`, at Unix time `now`.
    pub fn hit(&self, rule: &RuleRef<'_>, status: u16, now: i64) {
        if !enabled() {
            return;
        }
        let m = metrics();
        if rule.metrics_per_source() {
            let label = rule.metric_label();
            m.hits
                .with_label_values(&[label.as_ref(), &status.to_string()])
                .inc();
            m.last_hit.with_label_values(&[label.as_ref()]).set(now);
            return;
        }
        let Some(slot) = self.labels.get(rule.label_index() as usize) else {
            return;
        };
        let slot_status = status_slot(status);
        slot.hits[slot_status]
            .get_or_init(|| {
                m.hits
                    .with_label_values(&[rule.id(), &STATUSES[slot_status].to_string()])
            })
            .inc();
        slot.last_hit
            .get_or_init(|| m.last_hit.with_label_values(&[rule.id()]))
            .set(now);
    }
}

/// Sets `pingora_redirect_rules{kind}` for a loaded rule set.
pub fn set_rule_counts(counts: crate::rules::RuleCounts) {
    let m = metrics();
    m.rules
        .with_label_values(&["exact"])
        .set(counts.exact as i64);
    m.rules
        .with_label_values(&["prefix"])
        .set(counts.prefix as i64);
    m.rules
        .with_label_values(&["regex"])
        .set(counts.regex as i64);
}

/// Sets `certificate_expiry_timestamp_seconds` to the certificates in
/// force (a certificate no longer configured loses its series).
pub fn set_certificate_expiry(tls: Option<&crate::tls::TlsState>) {
    let g = &metrics().certificate_expiry;
    g.reset();
    for c in tls.iter().flat_map(|t| t.certs.iter()) {
        g.with_label_values(&[&c.label]).set(c.not_after);
    }
}

/// Records a successful start: the configuration in force loaded at `now`.
/// The reload counters start at zero for both results.
pub fn record_start(now: i64) {
    let m = metrics();
    m.config_reloads.with_label_values(&["success"]);
    m.config_reloads.with_label_values(&["failure"]);
    m.config_reload_duration.with_label_values(&["kept"]);
    m.config_reload_duration.with_label_values(&["partly_kept"]);
    m.config_reload_duration.with_label_values(&["compiled"]);
    m.config_last_reload_successful.set(1);
    m.config_last_reload_success_timestamp.set(now);
}

/// Records how long a reload took; `rules` is `kept` or `compiled`.
pub fn record_reload_duration(rules: &str, took: std::time::Duration) {
    metrics()
        .config_reload_duration
        .with_label_values(&[rules])
        .observe(took.as_secs_f64());
}

/// Records the result of a reload.
pub fn record_reload(ok: bool, now: i64) {
    let m = metrics();
    m.config_reloads
        .with_label_values(&[if ok { "success" } else { "failure" }])
        .inc();
    m.config_last_reload_successful.set(i64::from(ok));
    if ok {
        m.config_last_reload_success_timestamp.set(now);
    }
}
