//! REDbot (PyPI `redbot`), a checker of HTTP response semantics nobody here
//! wrote, run on the product's answers: a permanent redirect and a 404 over
//! plain HTTP, a temporary redirect and a 404 over HTTPS with HSTS (REDbot
//! resolves names through DNS only, so the URLs name 127.0.0.1, which the
//! default certificate serves). Every note it rates BAD or WARN is a
//! failure.
//!
//! `scripts/test.sh` installs REDbot in a virtual environment under
//! `target/redbot` when it is missing; `REDBOT` names another executable.

mod support;

use serde_json::Value;
use std::process::Command;
use support::tls::TestCa;
use support::{free_port, toml_str, Proxy, TempDir};

fn redbot() -> String {
    std::env::var("REDBOT")
        .unwrap_or_else(|_| format!("{}/target/redbot/bin/redbot", env!("CARGO_MANIFEST_DIR")))
}

/// REDbot's notes on `url` (subnotes included): (level, id, summary).
fn notes(url: &str) -> (u16, Vec<(String, String, String)>) {
    let out = Command::new(redbot())
        .args(["-o", "har", url])
        .output()
        .unwrap_or_else(|e| panic!("run {} (scripts/test.sh installs it): {e}", redbot()));
    let har: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "REDbot's HAR for {url}: {e}\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let entry = &har["log"]["entries"][0];
    let status = entry["response"]["status"].as_u64().unwrap_or(0) as u16;
    let mut all = Vec::new();
    let mut stack: Vec<&Value> = entry["_red_messages"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    while let Some(n) = stack.pop() {
        let s = |k: &str| n[k].as_str().unwrap_or("").to_string();
        all.push((s("level"), s("note_id"), s("summary")));
        if let Some(sub) = n["subnotes"].as_array() {
            stack.extend(sub);
        }
    }
    (status, all)
}

#[test]
fn redbot_finds_nothing_bad_in_redirects_over_http_and_https() {
    let ca = TestCa::new();
    let leaf = ca.leaf(&["localhost"]);
    let certs = TempDir::new("redbot-certs");
    let (cert, key) = leaf.write(&certs.path, "localhost");
    let tls_port = free_port();
    let proxy = Proxy::start(&format!(
        "[tls]\nlisten = [\"127.0.0.1:{tls_port}\"]\n\
         hsts = {{ max_age = \"365d\", include_subdomains = true }}\n\n\
         [[certificate]]\ncert = {}\nkey = {}\n\n\
         [[redirect]]\nid = \"moved\"\nhost = \"127.0.0.1\"\nprefix = \"/moved\"\nto = \"https://new.example.com/moved\"\nstatus = 301\n\n\
         [[redirect]]\nid = \"temp\"\nscheme = \"https\"\npath = \"/temp\"\nto = \"/elsewhere\"\nstatus = 307\n",
        toml_str(&cert.display().to_string()),
        toml_str(&key.display().to_string()),
    ));
    let cases = [
        (format!("http://127.0.0.1:{}/moved/a?x=1", proxy.port), 301),
        (format!("http://127.0.0.1:{}/other?x=1", proxy.port), 404),
        (format!("https://127.0.0.1:{tls_port}/temp?x=1"), 307),
        (format!("https://127.0.0.1:{tls_port}/nothing"), 404),
    ];
    for (url, status) in cases {
        let (got, notes) = notes(&url);
        assert_eq!(got, status, "{url}: {notes:?}");
        let bad: Vec<_> = notes
            .iter()
            .filter(|(level, _, _)| level == "BAD" || level == "WARN")
            .collect();
        assert!(bad.is_empty(), "REDbot on {url}: {bad:?}");
        if url.starts_with("https") {
            assert!(
                notes
                    .iter()
                    .any(|(l, id, _)| l == "GOOD" && id == "HSTS_VALID"),
                "{url}: {notes:?}"
            );
        }
    }
}
