//! `audit`: the configured redirects joined with how they are used.
//!
//! The usage comes from the admin `/metrics` pages of running instances
//! (summed per rule; the latest last hit) or from a Prometheus server over
//! its HTTP API: per series, its last value in the window less its value
//! when the window opened (its whole value when it appeared inside the
//! window), summed over instances, and the latest
//! `pingora_redirect_last_hit_timestamp_seconds`. Not `increase()`: that
//! extrapolates to the window's edges and misses the hits counted before a
//! series' first scrape, and a report of hits should give whole numbers that
//! match the scrapes. A counter reset inside the window (a restart) makes
//! the count low, never high. Every rule and list row
//! becomes an inventory [`Row`]; [`findings`] says what to retire
//! (`never_hit`), make permanent or give an end (`temporary_in_use`), look
//! at soon (`expires_soon`) and collapse (`chain`, `loop`, from the lint).
//!
//! A source that cannot be read is an error, and nothing is reported: a
//! partial count would call rules "never hit" that are.
//!
//! Rows are built one at a time as they are printed, so a million-row list
//! costs the rule set and the counts, not a second copy of every rule.
//!
//! One file (about 670 lines before its tests) for one job: the sources,
//! the rows and findings, and the four formats share the row and finding
//! types and nothing else uses them.

use crate::config::{rfc3339, Config, ListMetrics, RedirectRule};
use crate::matcher::host::HostPattern;
use crate::problem::Problem;
use crate::rules::{RuleRef, RuleSet};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::Duration;

/// The usage of each metrics label (a rule id, a list id, or
/// `list:source` for rows of a list with `metrics = "source"`).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Usage {
    pub hits: HashMap<String, u64>,
    /// Unix seconds.
    pub last_hit: HashMap<String, i64>,
    /// How the counts were taken, for the report: "2 instances since they
    /// started" or "the last 30d".
    pub over: String,
}

const HITS: &str = "pingora_redirect_hits_total";
const LAST_HIT: &str = "pingora_redirect_last_hit_timestamp_seconds";

fn client() -> Result<reqwest::blocking::Client, String> {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| format!("cannot make an HTTP client: {e}"))
}

/// GET `url`: the status and the body, or an error naming the URL.
fn fetch(
    client: &reqwest::blocking::Client,
    url: &str,
) -> Result<(reqwest::StatusCode, String), String> {
    let resp = client
        .get(url)
        .send()
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = resp.status();
    let body = resp
        .text()
        .map_err(|e| format!("GET {url}: reading the body: {e}"))?;
    Ok((status, body))
}

/// GET `url`: the body of a 200, else an error that says what came back.
fn get(client: &reqwest::blocking::Client, url: &str) -> Result<String, String> {
    let (status, body) = fetch(client, url)?;
    if !status.is_success() {
        let head: String = body.chars().take(200).collect();
        return Err(format!("GET {url}: {status}: {head}"));
    }
    Ok(body)
}

/// Adds the counts of one admin `/metrics` page to `usage`.
pub fn add_metrics_page(usage: &mut Usage, url: &str, body: &str) -> Result<(), String> {
    let lines = body.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines)
        .map_err(|e| format!("{url}: not the Prometheus text format: {e}"))?;
    if !scrape
        .samples
        .iter()
        .any(|s| s.metric.starts_with("pingora_redirect_"))
    {
        return Err(format!(
            "{url}: no pingora_redirect_ metric on this page; give the admin /metrics of a pingora-redirect instance"
        ));
    }
    for s in &scrape.samples {
        let value = match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => continue,
        };
        let Some(rule) = s.labels.get("rule") else {
            continue;
        };
        if s.metric == HITS || s.metric == HITS.trim_end_matches("_total") {
            *usage.hits.entry(rule.to_string()).or_default() += value.round() as u64;
        } else if s.metric == LAST_HIT {
            let t = value as i64;
            let e = usage.last_hit.entry(rule.to_string()).or_insert(t);
            *e = (*e).max(t);
        }
    }
    Ok(())
}

/// The usage summed over the admin `/metrics` pages at `urls`.
pub fn from_metrics(urls: &[String]) -> Result<Usage, String> {
    let client = client()?;
    let mut usage = Usage {
        over: format!(
            "{} instance{}, since {} started",
            urls.len(),
            if urls.len() == 1 { "" } else { "s" },
            if urls.len() == 1 { "it" } else { "they" }
        ),
        ..Usage::default()
    };
    for url in urls {
        let body = get(&client, url)?;
        add_metrics_page(&mut usage, url, &body)?;
    }
    Ok(usage)
}

/// One instant query: the `(rule, value)` of each series of the result.
fn query(
    client: &reqwest::blocking::Client,
    base: &str,
    expr: &str,
) -> Result<Vec<(String, f64)>, String> {
    let q = percent_encoding::utf8_percent_encode(expr, percent_encoding::NON_ALPHANUMERIC);
    let url = format!("{}/api/v1/query?query={q}", base.trim_end_matches('/'));
    let (status, body) = fetch(client, &url)?;
    let v: Value = serde_json::from_str(&body).map_err(|_| {
        let head: String = body.chars().take(200).collect();
        format!("GET {url}: {status}, not a Prometheus API answer: {head}")
    })?;
    if v["status"] != "success" {
        return Err(format!(
            "Prometheus at {base} refused `{expr}`: {status}: {} {}",
            v["errorType"].as_str().unwrap_or(""),
            v["error"].as_str().unwrap_or("")
        ));
    }
    let Some(result) = v["data"]["result"].as_array() else {
        return Err(format!("Prometheus at {base}: `{expr}` gave no vector"));
    };
    Ok(result
        .iter()
        .filter_map(|s| {
            let rule = s["metric"]["rule"].as_str()?.to_string();
            let value = s["value"][1].as_str()?.parse::<f64>().ok()?;
            Some((rule, value))
        })
        .collect())
}

/// The usage over `window` from the Prometheus server at `base`.
pub fn from_prometheus(base: &str, window: Duration) -> Result<Usage, String> {
    let client = client()?;
    let w = format!("{}s", window.as_secs().max(1));
    let mut usage = Usage {
        over: format!("the last {}", humantime::format_duration(window)),
        ..Usage::default()
    };
    for (rule, v) in query(
        &client,
        base,
        &format!(
            "sum by (rule) (clamp_min(last_over_time({HITS}[{w}]) - {HITS} offset {w}, 0) or last_over_time({HITS}[{w}]))"
        ),
    )? {
        usage.hits.insert(rule, v.round() as u64);
    }
    for (rule, v) in query(
        &client,
        base,
        &format!("max by (rule) (max_over_time({LAST_HIT}[{w}]))"),
    )? {
        usage.last_hit.insert(rule, v as i64);
    }
    Ok(usage)
}

/// One rule or list row of the inventory.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub id: String,
    pub kind: &'static str,
    pub host: Option<String>,
    pub path: String,
    pub to: Option<String>,
    pub pool: Option<String>,
    pub status: u16,
    pub conditions: Option<String>,
    pub active_from: Option<i64>,
    pub active_until: Option<i64>,
    pub hits: u64,
    pub last_hit: Option<i64>,
    /// List rows: the source URL as written and its line.
    pub source: Option<(String, u32)>,
    /// A row of a list counted as a whole (`metrics = "list"`): `hits` and
    /// `last_hit` are the list's.
    pub list_count: bool,
}

fn host_text(h: &HostPattern) -> Option<String> {
    match h {
        HostPattern::Any => None,
        HostPattern::Exact(h) => Some(h.clone()),
        HostPattern::Subdomains(h) => Some(format!("*.{h}")),
        HostPattern::ApexAndSubdomains(h) => Some(format!(".{h}")),
    }
}

/// What the audit reads: the loaded configuration and the usage.
pub struct Audit<'a> {
    pub config: &'a Config,
    pub set: &'a RuleSet,
    /// The lint's problems of the load (for `chain` and `loop`).
    pub problems: &'a [Problem],
    pub usage: &'a Usage,
    pub now: i64,
    redirects: HashMap<&'a str, &'a RedirectRule>,
    list_metrics: HashMap<&'a str, ListMetrics>,
}

/// One finding: a code, the rule it is about, what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub code: &'static str,
    pub rule: String,
    pub message: String,
}

/// The order findings are reported in.
pub const CODES: [&str; 5] = [
    "loop",
    "chain",
    "temporary_in_use",
    "expires_soon",
    "never_hit",
];

impl<'a> Audit<'a> {
    pub fn new(
        config: &'a Config,
        set: &'a RuleSet,
        problems: &'a [Problem],
        usage: &'a Usage,
        now: i64,
    ) -> Audit<'a> {
        Audit {
            config,
            set,
            problems,
            usage,
            now,
            redirects: config
                .redirects
                .iter()
                .map(|r| (r.id.as_str(), r))
                .collect(),
            list_metrics: config
                .lists
                .iter()
                .map(|l| (l.id.as_str(), l.metrics))
                .collect(),
        }
    }

    /// The inventory row of `rule`.
    pub fn row(&self, rule: RuleRef<'_>) -> Row {
        let label = rule.metric_label();
        let hits = self.usage.hits.get(label.as_ref()).copied().unwrap_or(0);
        let last_hit = self.usage.last_hit.get(label.as_ref()).copied();
        let c = rule.conditions();
        let conditions = (!c.is_unconditional()).then(|| c.to_string());
        let mut row = Row {
            id: rule.id().to_string(),
            kind: rule.kind().as_str(),
            host: None,
            path: String::new(),
            to: None,
            pool: None,
            status: rule.status(),
            conditions,
            active_from: c.active_from,
            active_until: c.active_until,
            hits,
            last_hit,
            source: None,
            list_count: false,
        };
        if let Some(src) = rule.source() {
            let bare = src
                .strip_prefix("https://")
                .or_else(|| src.strip_prefix("http://"))
                .unwrap_or(src);
            let (host, path) = match bare.find('/') {
                Some(i) => (&bare[..i], &bare[i..]),
                None => (bare, "/"),
            };
            row.host = Some(host.to_string());
            row.path = path.to_string();
            row.to = rule.target().map(str::to_string);
            row.source = Some((src.to_string(), rule.line()));
            row.list_count = self.list_metrics.get(rule.id()) == Some(&ListMetrics::List);
        } else if let Some(r) = self.redirects.get(rule.id()) {
            row.host = host_text(&r.host);
            row.path = r.path.clone();
            row.to = r.to.clone();
            row.pool = r.pool.clone();
        }
        row
    }

    /// Every finding, in [`CODES`] order, then file order.
    pub fn findings(&self) -> Vec<Finding> {
        let mut out: Vec<Finding> = Vec::new();
        for p in self.problems {
            if p.code == "loop" || p.code == "chain" {
                let code = if p.code == "loop" { "loop" } else { "chain" };
                out.push(Finding {
                    code,
                    rule: p.rule.clone().unwrap_or_default(),
                    message: p.message.clone(),
                });
            }
        }
        let over = &self.usage.over;
        let mut seen_lists: std::collections::HashSet<&str> = Default::default();
        for rule in self.set.rules() {
            let id = rule.id();
            let c = rule.conditions();
            let label = rule.metric_label();
            let hits = self.usage.hits.get(label.as_ref()).copied().unwrap_or(0);
            let shared = rule.source().is_some() && !rule.metrics_per_source();
            // A list counted as a whole is one label: one finding for it.
            if shared && !seen_lists.insert(id) {
                continue;
            }
            let what = match (rule.source(), shared) {
                (Some(_), true) => format!("list \"{id}\""),
                (Some(src), false) => format!("row {src} (line {})", rule.line()),
                (None, _) => format!("rule \"{id}\""),
            };
            if matches!(rule.status(), 302 | 307) && c.active_until.is_none() && hits > 0 {
                out.push(Finding {
                    code: "temporary_in_use",
                    rule: id.to_string(),
                    message: format!(
                        "{what} answers {} and was hit {hits} time{} over {over}: make it {} if the move is permanent, or give it active_until",
                        rule.status(),
                        if hits == 1 { "" } else { "s" },
                        if rule.status() == 302 { "301 or 308" } else { "308" }
                    ),
                });
            }
            if let Some(until) = c.active_until {
                if until > self.now && until <= self.now + 7 * 86_400 {
                    out.push(Finding {
                        code: "expires_soon",
                        rule: id.to_string(),
                        message: format!(
                            "{what} stops at {} (active_until), in {} days: extend it or plan its removal",
                            rfc3339(until),
                            (until - self.now + 86_399) / 86_400
                        ),
                    });
                }
            }
            if hits == 0 && !self.usage.last_hit.contains_key(label.as_ref()) {
                out.push(Finding {
                    code: "never_hit",
                    rule: id.to_string(),
                    message: format!("{what} had no hit over {over}: retire it, or check that clients still reach it"),
                });
            }
        }
        out.sort_by_key(|f| {
            CODES
                .iter()
                .position(|c| *c == f.code)
                .unwrap_or(CODES.len())
        });
        out
    }
}

impl Row {
    /// The `rules[]` object of `--format json`.
    pub fn json(&self) -> Value {
        let mut v = json!({
            "id": self.id,
            "kind": self.kind,
            "host": self.host,
            "path": self.path,
            "to": self.to,
            "pool": self.pool,
            "status": self.status,
            "conditions": self.conditions,
            "active_from": self.active_from.map(rfc3339),
            "active_until": self.active_until.map(rfc3339),
            "hits": self.hits,
            "last_hit": self.last_hit,
        });
        if let Some((src, line)) = &self.source {
            v["source"] = json!(src);
            v["line"] = json!(line);
            v["counted"] = json!(if self.list_count { "list" } else { "source" });
        }
        v
    }

    /// The CSV columns, in [`CSV_HEADER`] order.
    fn csv(&self) -> [String; 15] {
        let opt = |s: &Option<String>| s.clone().unwrap_or_default();
        let time = |t: Option<i64>| t.map(rfc3339).unwrap_or_default();
        [
            self.id.clone(),
            self.kind.to_string(),
            opt(&self.host),
            self.path.clone(),
            opt(&self.to),
            opt(&self.pool),
            self.status.to_string(),
            opt(&self.conditions),
            time(self.active_from),
            time(self.active_until),
            self.hits.to_string(),
            time(self.last_hit),
            self.source
                .as_ref()
                .map(|s| s.0.clone())
                .unwrap_or_default(),
            self.source
                .as_ref()
                .map(|s| s.1.to_string())
                .unwrap_or_default(),
            match (&self.source, self.list_count) {
                (None, _) => "rule",
                (Some(_), true) => "list",
                (Some(_), false) => "source",
            }
            .to_string(),
        ]
    }
}

/// The columns of `--format csv`.
pub const CSV_HEADER: [&str; 15] = [
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
    "counted",
];

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Csv,
    Markdown,
}

/// Every row of the set, with a progress line on a terminal's stderr for
/// large sets.
fn rows<'s>(audit: &'s Audit<'_>) -> impl Iterator<Item = Row> + 's {
    let total = audit.set.len();
    let progress = total >= 100_000 && std::io::stderr().is_terminal();
    audit.set.rules().enumerate().map(move |(i, rule)| {
        if progress && (i + 1) % 100_000 == 0 {
            eprint!("\raudit: {} of {total} rules", i + 1);
            if i + 1 == total - total % 100_000 {
                eprintln!();
            }
        }
        audit.row(rule)
    })
}

/// `|` and line breaks would break a Markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// A cell of configuration text (`*.example.com`, `${host}`, a regex) as
/// code, so that Markdown shows it as written.
fn code(s: &str) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!("`{}`", cell(s).replace('`', "'"))
    }
}

/// Writes the report in `format`.
pub fn write(audit: &Audit<'_>, format: Format, out: &mut dyn Write) -> std::io::Result<()> {
    // The CSV is the inventory alone.
    let findings = match format {
        Format::Csv => Vec::new(),
        _ => audit.findings(),
    };
    match format {
        Format::Json => {
            out.write_all(b"{\"rules\":[")?;
            for (i, row) in rows(audit).enumerate() {
                if i > 0 {
                    out.write_all(b",")?;
                }
                serde_json::to_writer(&mut *out, &row.json())?;
            }
            out.write_all(b"],\"findings\":[")?;
            for (i, f) in findings.iter().enumerate() {
                if i > 0 {
                    out.write_all(b",")?;
                }
                serde_json::to_writer(
                    &mut *out,
                    &json!({"code": f.code, "rule": f.rule, "message": f.message}),
                )?;
            }
            out.write_all(b"]}\n")
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record(CSV_HEADER)?;
            for row in rows(audit) {
                w.write_record(row.csv())?;
            }
            w.flush()
        }
        Format::Text => {
            writeln!(
                out,
                "audit of {} rules, usage over {}: {} finding{}",
                audit.set.len(),
                audit.usage.over,
                findings.len(),
                if findings.len() == 1 { "" } else { "s" }
            )?;
            for code in CODES {
                let of: Vec<&Finding> = findings.iter().filter(|f| f.code == code).collect();
                if of.is_empty() {
                    continue;
                }
                writeln!(out, "\n{code} ({}):", of.len())?;
                for f in of {
                    writeln!(out, "  {}: {}", f.rule, f.message)?;
                }
            }
            writeln!(out, "\ninventory:")?;
            for row in rows(audit) {
                let target = row
                    .to
                    .clone()
                    .or(row.pool.as_ref().map(|p| format!("pool {p}")))
                    .unwrap_or_default();
                let src = row
                    .source
                    .as_ref()
                    .map(|(s, l)| format!(" [{s}, line {l}]"))
                    .unwrap_or_default();
                writeln!(
                    out,
                    "  {}{src} {} {} {} -> {} {} hits {}{}",
                    row.id,
                    row.kind,
                    row.host.as_deref().unwrap_or("*"),
                    row.path,
                    row.status,
                    target,
                    row.hits,
                    row.last_hit
                        .map(|t| format!(", last {}", rfc3339(t)))
                        .unwrap_or_default()
                )?;
            }
            Ok(())
        }
        Format::Markdown => {
            writeln!(out, "# Redirect audit\n")?;
            writeln!(
                out,
                "{} rules; usage over {}; generated {}.\n",
                audit.set.len(),
                audit.usage.over,
                rfc3339(audit.now)
            )?;
            writeln!(out, "## Findings\n")?;
            if findings.is_empty() {
                writeln!(out, "None.\n")?;
            } else {
                writeln!(out, "| finding | rule | what to do |\n|---|---|---|")?;
                for f in &findings {
                    writeln!(
                        out,
                        "| `{}` | `{}` | {} |",
                        f.code,
                        cell(&f.rule),
                        cell(&f.message)
                    )?;
                }
                writeln!(out)?;
            }
            writeln!(out, "## Inventory\n")?;
            writeln!(
                out,
                "| rule | kind | host | path | target | status | conditions | active | hits | last hit |\n|---|---|---|---|---|---|---|---|---|---|"
            )?;
            for row in rows(audit) {
                let id = match &row.source {
                    Some((s, l)) => format!("`{}` {} (line {l})", cell(&row.id), cell(s)),
                    None => format!("`{}`", cell(&row.id)),
                };
                let target = row
                    .to
                    .clone()
                    .or(row.pool.as_ref().map(|p| format!("pool {p}")))
                    .unwrap_or_default();
                let active = match (row.active_from, row.active_until) {
                    (None, None) => String::new(),
                    (f, u) => format!(
                        "{} to {}",
                        f.map(rfc3339).unwrap_or_default(),
                        u.map(rfc3339).unwrap_or_default()
                    ),
                };
                let hits = if row.list_count {
                    format!("{} (whole list)", row.hits)
                } else {
                    row.hits.to_string()
                };
                writeln!(
                    out,
                    "| {id} | {} | {} | {} | {} | {} | {} | {} | {hits} | {} |",
                    row.kind,
                    row.host.as_deref().map_or("any".to_string(), code),
                    code(&row.path),
                    code(&target),
                    row.status,
                    cell(row.conditions.as_deref().unwrap_or("")),
                    active,
                    row.last_hit.map(rfc3339).unwrap_or_default()
                )?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_metrics_page_sums_statuses_and_keeps_the_latest_hit() {
        let page =
            "# HELP pingora_redirect_hits_total x\n# TYPE pingora_redirect_hits_total counter\n\
pingora_redirect_hits_total{rule=\"a\",status=\"301\"} 3\n\
pingora_redirect_hits_total{rule=\"a\",status=\"308\"} 2\n\
pingora_redirect_hits_total{rule=\"list:x.example/p\",status=\"301\"} 1\n\
# TYPE pingora_redirect_last_hit_timestamp_seconds gauge\n\
pingora_redirect_last_hit_timestamp_seconds{rule=\"a\"} 1800000000\n";
        let mut usage = Usage::default();
        add_metrics_page(&mut usage, "one", page).unwrap();
        add_metrics_page(
            &mut usage,
            "two",
            &page
                .replace(" 3\n", " 10\n")
                .replace("1800000000", "1800000500"),
        )
        .unwrap();
        assert_eq!(usage.hits["a"], 3 + 2 + 10 + 2);
        assert_eq!(usage.hits["list:x.example/p"], 2);
        assert_eq!(usage.last_hit["a"], 1_800_000_500);
        let err = add_metrics_page(&mut usage, "three", "# nothing\nother_metric 1\n").unwrap_err();
        assert!(err.contains("no pingora_redirect_ metric"), "{err}");
    }

    #[test]
    fn markdown_cells_keep_to_their_cell() {
        assert_eq!(cell("a|b\nc"), "a\\|b c");
        assert_eq!(code("*.x`y"), "`*.x'y`");
        assert_eq!(code(""), "");
    }
}
