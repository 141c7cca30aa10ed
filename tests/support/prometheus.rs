//! A real Prometheus server (Debian's `prometheus` package) on loopback,
//! scraping test proxies every second; stopped on drop.

use super::fixtures::*;
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Panics unless `tool` runs (`tool --version`).
pub fn need(tool: &str) {
    let ok = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "`{tool}` is not installed: run scripts/test.sh, which installs Debian's prometheus package");
}

/// A Prometheus server on loopback, stopped on drop.
pub struct Prometheus {
    child: Child,
    pub port: u16,
    rt: tokio::runtime::Runtime,
    _dir: TempDir,
}

impl Prometheus {
    /// Scrapes `127.0.0.1:PORT` of each of `target_ports` every second,
    /// with the alert rules of `rule_file` when given.
    pub fn start(target_ports: &[u16], rule_file: Option<&Path>) -> Prometheus {
        let dir = TempDir::new("prometheus");
        let port = free_port();
        let rules = rule_file
            .map(|f| format!("rule_files:\n  - {:?}\n", f.display().to_string()))
            .unwrap_or_default();
        let targets: Vec<String> = target_ports
            .iter()
            .map(|p| format!("'127.0.0.1:{p}'"))
            .collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n{rules}scrape_configs:\n  - job_name: pingora-redirect\n    static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        );
        let config_path = dir.write("prometheus.yml", &config);
        let log = std::fs::File::create(dir.path.join("prometheus.log")).expect("log file");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let p = Prometheus {
            child,
            port,
            rt,
            _dir: dir,
        };
        let ready = poll_until(Duration::from_secs(30), || {
            p.get("/-/ready").ok().filter(|(s, _)| *s == 200)
        });
        assert!(ready.is_some(), "prometheus did not become ready");
        p
    }

    pub fn get(&self, path_and_query: &str) -> Result<(u16, String), String> {
        let url = format!("http://127.0.0.1:{}{path_and_query}", self.port);
        self.rt.block_on(async {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .map_err(|e| e.to_string())?;
            let r = client.get(&url).send().await.map_err(|e| e.to_string())?;
            let status = r.status().as_u16();
            let body = r.text().await.map_err(|e| e.to_string())?;
            Ok((status, body))
        })
    }

    /// Runs an instant query; `Err` carries Prometheus's error.
    pub fn query(&self, expr: &str) -> Result<Value, String> {
        let q: String = url::form_urlencoded::byte_serialize(expr.as_bytes()).collect();
        let (status, body) = self.get(&format!("/api/v1/query?query={q}"))?;
        let v: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
        if status == 200 && v["status"] == "success" {
            Ok(v["data"].clone())
        } else {
            Err(format!("{status}: {}", v["error"]))
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
