//! A real browser through the maintenance swap: headless Chromium loads an
//! HTML form from a loopback page and submits it by POST to a path under
//! maintenance; the proxy answers 307 to the backup pool, Chromium follows it,
//! and the backup target records the method and the form fields.
//!
//! Needs Debian's `chromium` package, which `scripts/test.sh` installs when
//! missing.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{poll_until, Backend, Proxy, TempDir};

const CHROMIUM: &str = "/usr/bin/chromium";

/// Serves one HTML page on a loopback port until dropped.
struct Page {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Page {
    fn serve(html: String) -> Page {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind page");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let end = Instant::now() + Duration::from_secs(120);
            while !flag.load(Ordering::SeqCst) && Instant::now() < end {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        let _ = s.set_nonblocking(false);
                        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                        let mut buf = [0u8; 4096];
                        let n = s.read(&mut buf).unwrap_or(0);
                        let req = String::from_utf8_lossy(&buf[..n]);
                        let (status, body) = if req.starts_with("GET /form.html ") {
                            ("200 OK", html.clone())
                        } else {
                            ("404 Not Found", "not found".to_string())
                        };
                        let resp = format!(
                            "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = s.write_all(resp.as_bytes());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Page {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Headless Chromium with a profile of its own loading the form page on
/// `page_port`, with `extra` flags; it runs until killed.
fn chromium(profile: &TempDir, page_port: u16, extra: &[String]) -> std::process::Child {
    Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--virtual-time-budget=15000",
            "--dump-dom",
        ])
        .args(extra)
        .arg(format!("--user-data-dir={}", profile.path.display()))
        .arg(format!("http://127.0.0.1:{page_port}/form.html"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium")
}

#[test]
fn chromium_follows_the_maintenance_307_and_the_backup_gets_the_post() {
    assert!(
        std::path::Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: run scripts/test.sh, which installs Debian's chromium package"
    );
    let backup = Backend::start("backup");
    let proxy = Proxy::start(&format!(
        "[pools.backup]\ntargets = [\"http://{}\"]\n\n\
         [maintenance]\nenabled = true\nredirect_pool = \"backup\"\nretry_after = 120\n\n\
         [[redirect]]\nid = \"moved\"\nprefix = \"/old\"\nto = \"/new\"\n",
        backup.addr()
    ));
    let form = format!(
        "<!DOCTYPE html><html><body>\
         <form id=\"f\" method=\"POST\" action=\"http://127.0.0.1:{}/orders/submit?ref=maint\">\
         <input name=\"name\" value=\"Ada Lovelace\"><input name=\"city\" value=\"Zürich\">\
         <input name=\"qty\" value=\"3\"></form>\
         <script>document.getElementById('f').submit();</script></body></html>",
        proxy.port
    );
    let page = Page::serve(form);
    let profile = TempDir::new("chromium");

    let mut chromium = chromium(&profile, page.port, &[]);

    // The backup target records the POST the browser sent after the 307.
    let got = poll_until(Duration::from_secs(60), || {
        backup
            .traffic()
            .into_iter()
            .find(|r| r.target.starts_with("/orders/submit"))
    });
    let _ = chromium.kill();
    let _ = chromium.wait();
    let r = got.expect("the backup target received no request from the browser");
    assert_eq!(r.method, "POST", "{r:?}");
    assert_eq!(r.target, "/orders/submit?ref=maint", "{r:?}");
    assert_eq!(
        r.header("content-type"),
        Some("application/x-www-form-urlencoded"),
        "{r:?}"
    );
    let body = String::from_utf8_lossy(&r.body).into_owned();
    assert_eq!(body, "name=Ada+Lovelace&city=Z%C3%BCrich&qty=3", "{r:?}");
    // The proxy counted it as a maintenance request.
    support::expect_metric(
        proxy.admin_port,
        "pingora_redirect_requests_total{outcome=\"maintenance\"}",
        Some(1.0),
    );
    drop(page);
}

/// HTTPS in a real browser: Chromium submits a form by POST to
/// `http://a.example`; the proxy answers 308 to `https://a.example:TLS`
/// (`redirect_http`), where a rule that holds only over https answers 307,
/// and the follow-up is proxied to a plain-HTTP backend, which records the
/// POST. Chromium trusts the test certificate by its key only
/// (`--ignore-certificate-errors-spki-list`) and resolves `a.example` to
/// loopback (`--host-resolver-rules`).
#[test]
fn chromium_goes_from_http_to_https_and_posts_through_a_307() {
    assert!(
        std::path::Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: run scripts/test.sh, which installs Debian's chromium package"
    );
    let app = Backend::start("app");
    let ca = support::tls::TestCa::new();
    let leaf = ca.leaf(&["a.example"]);
    let certs = TempDir::new("chromium-certs");
    let (cert, key) = leaf.write(&certs.path, "a");
    let tls_port = support::free_port();
    let proxy = Proxy::start(&format!(
        "[tls]\nlisten = [\"127.0.0.1:{tls_port}\"]\nredirect_http = true\nhsts = {{ max_age = \"60s\" }}\n\n\
         [[certificate]]\ncert = {}\nkey = {}\n\n\
         [upstream]\nbackends = [\"{}\"]\n\n\
         [[redirect]]\nid = \"form-moved\"\nhost = \"a.example\"\nscheme = \"https\"\npath = \"/form\"\nto = \"/orders/submit\"\nstatus = 307\n",
        support::toml_str(&cert.display().to_string()),
        support::toml_str(&key.display().to_string()),
        app.addr()
    ));
    let form = format!(
        "<!DOCTYPE html><html><body>\
         <form id=\"f\" method=\"POST\" action=\"http://a.example:{}/form?ref=tls\">\
         <input name=\"name\" value=\"Grace Hopper\"><input name=\"city\" value=\"Zürich\">\
         </form><script>document.getElementById('f').submit();</script></body></html>",
        proxy.port
    );
    let page = Page::serve(form);
    let profile = TempDir::new("chromium");
    let mut chromium = chromium(
        &profile,
        page.port,
        &[
            "--host-resolver-rules=MAP a.example 127.0.0.1".to_string(),
            format!("--ignore-certificate-errors-spki-list={}", leaf.spki_hash()),
        ],
    );
    let got = poll_until(Duration::from_secs(60), || {
        app.traffic()
            .into_iter()
            .find(|r| r.target.starts_with("/orders/submit"))
    });
    let _ = chromium.kill();
    let _ = chromium.wait();
    let r = got.expect("the backend received no request from the browser");
    assert_eq!(r.method, "POST", "{r:?}");
    assert_eq!(r.target, "/orders/submit?ref=tls", "{r:?}");
    let body = String::from_utf8_lossy(&r.body).into_owned();
    assert_eq!(body, "name=Grace+Hopper&city=Z%C3%BCrich", "{r:?}");
    // One 308 to https, one rule 307 over https (then the proxied POST,
    // and whatever else the browser fetches, such as a favicon).
    for (outcome, n) in [("https_redirect", 1.0), ("redirect", 1.0)] {
        support::expect_metric(
            proxy.admin_port,
            &format!("pingora_redirect_requests_total{{outcome=\"{outcome}\"}}"),
            Some(n),
        );
    }
    support::expect_metric(
        proxy.admin_port,
        "pingora_redirect_hits_total{rule=\"form-moved\",status=\"307\"}",
        Some(1.0),
    );
    drop(page);
}
