//! A real Prometheus scrapes a running proxy: exact per-rule hit counts come
//! back through its query API, every expression of the Grafana dashboard and
//! of the alert rules is accepted by it, and promtool accepts `/metrics` and
//! the alert rules.
//!
//! Needs Debian's `prometheus` package (`prometheus` and `promtool`), which
//! `scripts/test.sh` installs when missing.

mod support;

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::{free_port, need, poll_until, Backend, Prometheus, Proxy, TempDir};

const RULES: &str = r#"
[[redirect]]
id = "docs"
host = "old.example.com"
prefix = "/docs"
to = "https://docs.example.com"
status = 308

[[redirect]]
id = "about"
host = "any.example"
path = "/about"
to = "https://www.example.com/about"
status = 301
"#;

const LEGACY: &str = "old.example.com/a,https://www.example.com/a,301\nold.example.com/b,https://www.example.com/b,302\n";

fn manifest_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Sends `GET path` with `host` and expects `status`.
fn hit(proxy: &Proxy, method: &str, host: &str, path: &str, status: u16) {
    let mut c = proxy.connect();
    let body = if method == "POST" { "x=1" } else { "" };
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    c.send(req.as_bytes());
    let r = c.read_response(method == "HEAD");
    assert_eq!(r.status, status, "{method} {host}{path}: {r:?}");
}

/// Every `expr:` of an alert rules file (single-line or `|` block).
fn alert_exprs(yaml: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if let Some(rest) = line.trim_start().strip_prefix("expr:") {
            let indent = line.len() - line.trim_start().len();
            let rest = rest.trim();
            if rest == "|" || rest == ">" {
                let mut block = Vec::new();
                i += 1;
                while i < lines.len()
                    && (lines[i].trim().is_empty()
                        || lines[i].len() - lines[i].trim_start().len() > indent)
                {
                    block.push(lines[i].trim());
                    i += 1;
                }
                out.push(block.join(" ").trim().to_string());
                continue;
            }
            out.push(rest.to_string());
        }
        i += 1;
    }
    out
}

/// Every `expr` of the dashboard, with Grafana's variables given values.
fn dashboard_exprs() -> Vec<String> {
    let text = std::fs::read_to_string(manifest_path("docs/grafana/pingora-redirect.json"))
        .expect("dashboard");
    let dash: Value = serde_json::from_str(&text).expect("dashboard is JSON");
    let vars: Vec<&str> = dash["templating"]["list"]
        .as_array()
        .expect("variables")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert!(
        vars.contains(&"datasource") && vars.contains(&"instance"),
        "{vars:?}"
    );
    let mut out = Vec::new();
    for p in dash["panels"].as_array().expect("panels") {
        assert_eq!(
            p["datasource"]["uid"], "${datasource}",
            "panel {}",
            p["title"]
        );
        for t in p["targets"].as_array().expect("targets") {
            let e = t["expr"].as_str().expect("expr");
            out.push(
                e.replace("$__rate_interval", "1m")
                    .replace("$instance", ".*")
                    .replace("$days", "30"),
            );
        }
    }
    out
}

#[test]
fn prometheus_counts_hits_per_rule_and_accepts_the_dashboard_and_alerts() {
    need("prometheus");
    need("promtool");
    let lists = TempDir::new("lists");
    let csv = lists.write("legacy.csv", LEGACY);
    // One backend that answers and one port where nothing listens.
    let live = Backend::start("live");
    let dead = format!("127.0.0.1:{}", free_port());
    // An HTTPS listener whose certificate has 10 days left: the dashboard's
    // days-left panel has a series, and the expiry alert fires.
    let ca = support::tls::TestCa::new();
    let (cert, key) = ca
        .leaf_valid(&["m.example"], -1, 10)
        .write(&lists.path, "m");
    let proxy = Proxy::start(&format!(
        "[upstream]\nbackends = [\"{}\", \"{dead}\"]\n{RULES}\n[[list]]\nid = \"legacy\"\nfile = {}\n\n\
         [tls]\nlisten = [\"127.0.0.1:{}\"]\n\n[[certificate]]\ncert = {}\nkey = {}\n",
        live.addr(),
        support::toml_str(&csv.display().to_string()),
        free_port(),
        support::toml_str(&cert.display().to_string()),
        support::toml_str(&key.display().to_string()),
    ));

    // Known numbers of requests per rule.
    for _ in 0..5 {
        hit(&proxy, "GET", "old.example.com", "/docs/x", 308);
    }
    for _ in 0..2 {
        hit(&proxy, "POST", "old.example.com", "/docs/y", 308);
    }
    for _ in 0..3 {
        hit(&proxy, "GET", "any.example", "/about", 301);
    }
    hit(&proxy, "POST", "any.example", "/about", 308);
    for _ in 0..4 {
        hit(&proxy, "GET", "old.example.com", "/a", 301);
    }
    for _ in 0..3 {
        hit(&proxy, "HEAD", "old.example.com", "/b", 302);
    }
    // Round robin over the two backends: two answers, two failures.
    let mut proxied = BTreeMap::new();
    for _ in 0..4 {
        let mut c = proxy.connect();
        c.send(b"GET /nothing HTTP/1.1\r\nHost: old.example.com\r\nConnection: close\r\n\r\n");
        *proxied.entry(c.read_response(false).status).or_insert(0) += 1;
    }
    assert_eq!(proxied, BTreeMap::from([(200, 2), (502, 2)]));
    hit(&proxy, "GET", "old.example.com", "/%2e%2e/x", 400);

    let prom = Prometheus::start(
        &[proxy.admin_port],
        Some(&manifest_path("docs/prometheus/alerts.yml")),
    );

    let want: BTreeMap<String, f64> = [("docs", 7.0), ("about", 4.0), ("legacy", 7.0)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let mut last = BTreeMap::new();
    let got = poll_until(Duration::from_secs(30), || {
        let data = prom
            .query("sum by (rule) (pingora_redirect_hits_total)")
            .ok()?;
        last = data["result"]
            .as_array()?
            .iter()
            .map(|s| {
                let rule = s["metric"]["rule"].as_str().unwrap_or("").to_string();
                let v: f64 = s["value"][1]
                    .as_str()
                    .unwrap_or("nan")
                    .parse()
                    .unwrap_or(f64::NAN);
                (rule, v)
            })
            .collect();
        (last == want).then_some(())
    });
    assert!(
        got.is_some(),
        "sum by (rule) (pingora_redirect_hits_total) = {last:?}, expected {want:?}"
    );

    // By status too.
    let data = prom
        .query("sum by (rule, status) (pingora_redirect_hits_total)")
        .expect("query");
    let mut by_status: BTreeMap<(String, String), f64> = BTreeMap::new();
    for s in data["result"].as_array().expect("vector") {
        by_status.insert(
            (
                s["metric"]["rule"].as_str().unwrap_or("").into(),
                s["metric"]["status"].as_str().unwrap_or("").into(),
            ),
            s["value"][1]
                .as_str()
                .unwrap_or("nan")
                .parse()
                .unwrap_or(f64::NAN),
        );
    }
    let expect: BTreeMap<(String, String), f64> = [
        (("docs", "308"), 7.0),
        (("about", "301"), 3.0),
        (("about", "308"), 1.0),
        (("legacy", "301"), 4.0),
        (("legacy", "302"), 3.0),
    ]
    .into_iter()
    .map(|((r, s), v)| ((r.to_string(), s.to_string()), v))
    .collect();
    assert_eq!(by_status, expect);
    let outcome = |o: &str| -> f64 {
        let d = prom
            .query(&format!(
                "sum(pingora_redirect_requests_total{{outcome=\"{o}\"}})"
            ))
            .expect("query");
        d["result"][0]["value"][1]
            .as_str()
            .unwrap_or("nan")
            .parse()
            .unwrap_or(f64::NAN)
    };
    assert_eq!(outcome("redirect"), 18.0);
    assert_eq!(outcome("proxy"), 4.0);
    assert_eq!(outcome("bad_request"), 1.0);

    // The latency histogram counts every request once, by outcome, and its
    // p99 falls within the buckets (100 µs to 10 s).
    let scalar = |e: &str| -> Vec<(String, f64)> {
        let d = prom.query(e).expect("query");
        d["result"]
            .as_array()
            .expect("vector")
            .iter()
            .map(|s| {
                let label = s["metric"]
                    .as_object()
                    .map(|m| {
                        m.values()
                            .filter_map(|v| v.as_str())
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default();
                let v: f64 = s["value"][1]
                    .as_str()
                    .unwrap_or("nan")
                    .parse()
                    .unwrap_or(f64::NAN);
                (label, v)
            })
            .collect::<BTreeMap<_, _>>()
            .into_iter()
            .collect()
    };
    assert_eq!(
        scalar("sum by (outcome) (pingora_redirect_request_duration_seconds_count)"),
        // (every outcome's series exists from the first request on)
        vec![
            ("bad_request".to_string(), 1.0),
            ("failover".to_string(), 0.0),
            ("https_redirect".to_string(), 0.0),
            ("maintenance".to_string(), 0.0),
            ("not_found".to_string(), 0.0),
            ("proxy".to_string(), 4.0),
            ("redirect".to_string(), 18.0)
        ]
    );
    let p99 = scalar("histogram_quantile(0.99, sum by (le) (pingora_redirect_request_duration_seconds_bucket{outcome=\"redirect\"}))");
    assert_eq!(p99.len(), 1, "{p99:?}");
    assert!(p99[0].1 > 0.0 && p99[0].1 <= 10.0, "{p99:?}");
    // The backends' answers, by class; the alert's ratio names the dead one.
    assert_eq!(
        scalar("sum by (backend, code) (pingora_redirect_upstream_responses_total)"),
        BTreeMap::from([
            (format!("{dead},error"), 2.0),
            (format!("{},2xx", live.addr()), 2.0)
        ])
        .into_iter()
        .collect::<Vec<_>>()
    );

    // Every expression of the dashboard and of the alert rules is accepted.
    let alerts_text =
        std::fs::read_to_string(manifest_path("docs/prometheus/alerts.yml")).expect("alerts");
    let alerts = alert_exprs(&alerts_text);
    assert_eq!(alerts.len(), 7, "{alerts:?}");
    let dash = dashboard_exprs();
    assert!(dash.len() >= 10, "{dash:?}");
    for e in dash.iter().chain(&alerts) {
        if let Err(err) = prom.query(e) {
            panic!("Prometheus refused `{e}`: {err}");
        }
    }
    // The rule file loaded and its rules evaluate without error.
    let healthy = poll_until(Duration::from_secs(20), || {
        let (_, body) = prom.get("/api/v1/rules").ok()?;
        let v: Value = serde_json::from_str(&body).ok()?;
        let rules: Vec<Value> = v["data"]["groups"]
            .as_array()?
            .iter()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        (rules.len() == 7 && rules.iter().all(|r| r["health"] == "ok")).then_some(())
    });
    assert!(
        healthy.is_some(),
        "the alert rules did not all evaluate with health ok"
    );
    // The certificate with 10 days left: the panel's expression gives its
    // days, labelled by its `cert`, and the expiry alert fires for it.
    let label = cert.display().to_string();
    let days = poll_until(Duration::from_secs(20), || {
        let data = prom
            .query("min by (certificate) ((pingora_redirect_certificate_expiry_timestamp_seconds - time()) / 86400)")
            .ok()?;
        let s = data["result"].as_array()?.first()?.clone();
        (s["metric"]["certificate"] == label.as_str()).then(|| {
            s["value"][1]
                .as_str()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(f64::NAN)
        })
    })
    .expect("the days left of the certificate");
    assert!((9.9..=10.0).contains(&days), "{days} days left");
    let firing = poll_until(Duration::from_secs(20), || {
        let (_, body) = prom.get("/api/v1/alerts").ok()?;
        let v: Value = serde_json::from_str(&body).ok()?;
        v["data"]["alerts"]
            .as_array()?
            .iter()
            .any(|a| {
                a["labels"]["alertname"] == "PingoraRedirectCertificateExpiring"
                    && a["labels"]["certificate"] == label.as_str()
                    && a["state"] == "firing"
            })
            .then_some(())
    });
    assert!(
        firing.is_some(),
        "PingoraRedirectCertificateExpiring does not fire"
    );

    // promtool accepts the exposition and the rules.
    let metrics = support::try_get(proxy.admin_port, "/metrics")
        .expect("metrics")
        .body;
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    check
        .stdin
        .take()
        .expect("stdin")
        .write_all(&metrics)
        .expect("write");
    let out = check.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(manifest_path("docs/prometheus/alerts.yml"))
        .output()
        .expect("promtool");
    assert!(
        out.status.success(),
        "promtool check rules: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}
