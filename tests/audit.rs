//! `audit` (docs/operations.md, "Auditing redirects"): two real instances'
//! `/metrics` summed, a real Prometheus asked over its HTTP API, every
//! format read back with a standard parser, and sources that cannot be read
//! refused with exit 2 and nothing on stdout.

mod support;

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::time::Duration;
use support::*;

/// The configuration: hit and unhit rules, a temporary one, one that ends
/// in three days, a chain, a list counted by source and one counted whole.
fn config(ends: &str, lists: &TempDir) -> String {
    let file = |name: &str| toml_str(&lists.path.join(name).display().to_string());
    let (bysource, whole) = (file("bysource.csv"), file("whole.csv"));
    format!(
        r#"
[[redirect]]
id = "moved"
host = "a.example"
path = "/a"
to = "https://b.example/a"
status = 301

[[redirect]]
id = "temp"
host = "a.example"
path = "/b"
to = "https://b.example/b"
status = 302

[[redirect]]
id = "ending"
host = "a.example"
path = "/c"
to = "https://b.example/c"
status = 307
active_until = {ends}

[[redirect]]
id = "unused"
host = "a.example"
path = "/d"
to = "https://b.example/d"
status = 301

[[redirect]]
id = "hop1"
host = "a.example"
path = "/x"
to = "/y"
status = 301

[[redirect]]
id = "hop2"
host = "a.example"
path = "/y"
to = "https://b.example/z"
status = 301

[[list]]
id = "bysource"
file = {bysource}
metrics = "source"

[[list]]
id = "whole"
file = {whole}
"#
    )
}

/// Three days from now, to the second, as TOML and as the report writes it.
fn in_three_days() -> String {
    let t = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap()
        + time::Duration::days(3);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// A proxy on the configuration, and the directory of its lists.
fn start(ends: &str) -> (Proxy, TempDir) {
    let lists = TempDir::new("audit-lists");
    lists.write(
        "bysource.csv",
        "a.example/s1,https://b.example/s1,301\na.example/s2,https://b.example/s2,301\n",
    );
    lists.write(
        "whole.csv",
        "a.example/w1,https://b.example/w1,301\na.example/w2,https://b.example/w2,301\n",
    );
    (Proxy::start(&config(ends, &lists)), lists)
}

/// Sends `GET path` `n` times on one connection; each gets a 3xx.
fn hit(proxy: &Proxy, path: &str, n: usize) {
    let mut c = proxy.connect();
    for _ in 0..n {
        c.send(format!("GET {path} HTTP/1.1\r\nHost: a.example\r\n\r\n").as_bytes());
        let r = c.read_response(false);
        assert!((300..400).contains(&r.status), "{path}: {}", r.status);
    }
}

fn audit(proxy: &Proxy, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(["audit", "-c"])
        .arg(&proxy.config_path)
        .args(args)
        .output()
        .expect("run audit")
}

fn stdout_of(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("UTF-8")
}

/// (code, rule) of every finding.
fn findings(report: &Value) -> Vec<(String, String)> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            (
                f["code"].as_str().unwrap().to_string(),
                f["rule"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// hits by rule id (and `id source` for list rows).
fn hits(report: &Value) -> BTreeMap<String, u64> {
    report["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| {
            let mut key = r["id"].as_str().unwrap().to_string();
            if let Some(src) = r["source"].as_str() {
                key = format!("{key} {src}");
            }
            (key, r["hits"].as_u64().expect("hits is a number"))
        })
        .collect()
}

#[test]
fn two_instances_are_summed_and_the_findings_name_the_rules() {
    let ends = in_three_days();
    let (one, _lists) = start(&ends);
    let (two, _lists2) = start(&ends);
    hit(&one, "/a", 2);
    hit(&one, "/b", 1);
    hit(&one, "/s1", 1);
    hit(&one, "/w1", 1);
    hit(&two, "/a", 3);
    hit(&two, "/b", 2);
    hit(&two, "/x", 1);
    let m1 = one.admin_url("/metrics");
    let m2 = two.admin_url("/metrics");
    let args = ["--metrics", &m1, "--metrics", &m2];

    let json_args = [&args[..], &["--format", "json"]].concat();
    let report: Value = serde_json::from_str(&stdout_of(&audit(&one, &json_args))).expect("JSON");
    let want: BTreeMap<String, u64> = [
        ("moved", 5),
        ("temp", 3),
        ("ending", 0),
        ("unused", 0),
        ("hop1", 1),
        ("hop2", 0),
        ("bysource a.example/s1", 1),
        ("bysource a.example/s2", 0),
        ("whole a.example/w1", 1),
        ("whole a.example/w2", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(hits(&report), want);
    let f = |c: &str, r: &str| (c.to_string(), r.to_string());
    assert_eq!(
        findings(&report),
        vec![
            f("chain", "hop1"),
            f("temporary_in_use", "temp"),
            f("expires_soon", "ending"),
            f("never_hit", "ending"),
            f("never_hit", "unused"),
            f("never_hit", "hop2"),
            f("never_hit", "bysource"),
        ]
    );
    let rules = report["rules"].as_array().unwrap();
    let moved = &rules[0];
    let last = moved["last_hit"].as_i64().expect("a last hit");
    assert_eq!(
        moved,
        &json!({
            "id": "moved", "kind": "exact", "host": "a.example", "path": "/a",
            "to": "https://b.example/a", "pool": null, "status": 301,
            "conditions": null, "active_from": null, "active_until": null,
            "hits": 5, "last_hit": last
        })
    );
    let newest = [&one, &two]
        .iter()
        .filter_map(|p| {
            metric(
                p.admin_port,
                r#"pingora_redirect_last_hit_timestamp_seconds{rule="moved"}"#,
            )
        })
        .fold(0.0, f64::max);
    assert_eq!(last as f64, newest, "the latest last hit of the two");
    assert_eq!(rules[2]["active_until"], json!(ends));
    assert_eq!(rules[2]["conditions"], json!(format!("until {ends}")));
    let row = |i: usize| {
        (
            rules[i]["source"].clone(),
            rules[i]["line"].clone(),
            rules[i]["counted"].clone(),
        )
    };
    assert_eq!(row(7), (json!("a.example/s2"), json!(2), json!("source")));
    assert_eq!(row(9), (json!("a.example/w2"), json!(2), json!("list")));

    // CSV: the inventory, one header row, one row per rule.
    let csv_text = stdout_of(&audit(&one, &[&args[..], &["--format", "csv"]].concat()));
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        header,
        [
            "id",
            "kind",
            "host",
            "path",
            "to",
            "pool",
            "status",
            "conditions",
            "active_from",
            "active_until",
            "hits",
            "last_hit",
            "source",
            "line",
            "counted"
        ]
    );
    let records: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("a CSV row")).collect();
    assert_eq!(records.len(), 10);
    let by_id: Vec<(&str, &str, &str)> = records.iter().map(|r| (&r[0], &r[10], &r[14])).collect();
    assert_eq!(by_id[0], ("moved", "5", "rule"));
    assert_eq!(by_id[1], ("temp", "3", "rule"));
    assert_eq!(by_id[8], ("whole", "1", "list"));

    // Markdown: two tables whose rows all have their header's columns.
    let md = stdout_of(&audit(
        &one,
        &[&args[..], &["--format", "markdown"]].concat(),
    ));
    assert!(md.starts_with("# Redirect audit\n"), "{md}");
    let mut tables: Vec<Vec<&str>> = Vec::new();
    let mut in_table = false;
    for line in md.lines() {
        if line.starts_with('|') {
            if !in_table {
                tables.push(Vec::new());
            }
            tables.last_mut().unwrap().push(line);
        }
        in_table = line.starts_with('|');
    }
    assert_eq!(tables.len(), 2, "{md}");
    assert_eq!(
        tables[0].len(),
        2 + 7,
        "findings: header, rule, 7 rows\n{md}"
    );
    assert_eq!(
        tables[1].len(),
        2 + 10,
        "inventory: header, rule, 10 rows\n{md}"
    );
    let columns = |l: &str| l.replace("\\|", "").matches('|').count();
    for t in &tables {
        assert!(t[1].chars().all(|c| c == '|' || c == '-'), "{}", t[1]);
        assert!(t.iter().all(|l| columns(l) == columns(t[0])), "{t:#?}");
    }

    // Text: the findings first, grouped by code.
    let text = stdout_of(&audit(&one, &args));
    let head: Vec<&str> = text.lines().take(6).collect();
    assert_eq!(
        head,
        [
            "audit of 10 rules, usage over 2 instances, since they started: 7 findings",
            "",
            "chain (1):",
            head[3],
            "",
            "temporary_in_use (1):",
        ]
    );
    assert!(head[3].starts_with("  hop1: "), "{text}");
}

#[test]
fn a_source_that_cannot_be_read_is_exit_2_and_no_report() {
    let (proxy, _lists) = start(&in_three_days());
    // Nothing listens on a fresh port.
    let closed = format!("http://127.0.0.1:{}/metrics", free_port());
    let out = audit(
        &proxy,
        &[
            "--metrics",
            &proxy.admin_url("/metrics"),
            "--metrics",
            &closed,
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("GET {closed}")), "{err}");
    // A page that is not ours: the test backend answers any path.
    let backend = Backend::start("not-metrics");
    let page = format!("http://{}/metrics", backend.addr());
    let out = audit(&proxy, &["--metrics", &page]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no pingora_redirect_ metric"), "{err}");
    // Not a Prometheus server: the admin listener has no query API.
    let out = audit(&proxy, &["--prometheus", &proxy.admin_url("")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/api/v1/query?query="), "{err}");
    // Both sources, or neither: a usage error.
    let out = audit(&proxy, &[]);
    assert_eq!(out.status.code(), Some(2));
    let out = audit(
        &proxy,
        &["--metrics", &closed, "--prometheus", "http://127.0.0.1:1"],
    );
    assert_eq!(out.status.code(), Some(2));
    let out = audit(&proxy, &["--metrics", &closed, "--window", "soon"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn prometheus_gives_the_counts_it_scraped_over_the_window() {
    need("prometheus");
    let (proxy, _lists) = start(&in_three_days());
    let prom = Prometheus::start(&[proxy.admin_port], None);
    // The first hit makes the series; Prometheus scrapes it at 1.
    hit(&proxy, "/a", 1);
    let scraped = |rule: &str, want: f64| {
        let q = format!("sum(pingora_redirect_hits_total{{rule=\"{rule}\"}})");
        poll_until(Duration::from_secs(30), || {
            let v = prom.query(&q).ok()?;
            let got: f64 = v["result"][0]["value"][1].as_str()?.parse().ok()?;
            (got == want).then_some(())
        })
        .unwrap_or_else(|| panic!("Prometheus never scraped {rule} = {want}"));
    };
    scraped("moved", 1.0);
    hit(&proxy, "/a", 4);
    hit(&proxy, "/b", 1);
    scraped("moved", 5.0);
    scraped("temp", 1.0);
    let url = format!("http://127.0.0.1:{}", prom.port);
    let out = audit(
        &proxy,
        &["--prometheus", &url, "--window", "1h", "--format", "json"],
    );
    let report: Value = serde_json::from_str(&stdout_of(&out)).expect("JSON");
    let got = hits(&report);
    assert_eq!((got["moved"], got["temp"], got["hop1"]), (5, 1, 0));
    let last = metric(
        proxy.admin_port,
        r#"pingora_redirect_last_hit_timestamp_seconds{rule="moved"}"#,
    )
    .expect("the gauge");
    assert_eq!(report["rules"][0]["last_hit"], json!(last as i64));
    let never: Vec<String> = findings(&report)
        .into_iter()
        .filter(|(c, _)| c == "never_hit")
        .map(|(_, r)| r)
        .collect();
    assert_eq!(
        never,
        ["ending", "unused", "hop1", "hop2", "bysource", "bysource", "whole"]
    );
    let text = stdout_of(&audit(&proxy, &["--prometheus", &url, "--window", "1h"]));
    assert!(
        text.starts_with("audit of 10 rules, usage over the last 1h: "),
        "{text}"
    );
}
