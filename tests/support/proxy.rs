//! The proxy process: the real binary started with `serve` on free
//! loopback ports, ready when `/readyz` says so, stopped with SIGINT.

#![allow(dead_code)]

use super::client::{try_get, Conn};
use super::fixtures::*;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Instant;

/// A running `pingora-redirect serve`, stopped with SIGINT on drop. When the
/// test fails, its stderr is printed.
pub struct Proxy {
    child: Option<Child>,
    /// The traffic listener's port.
    pub port: u16,
    /// The admin listener's port.
    pub admin_port: u16,
    pub config_path: PathBuf,
    stderr_path: PathBuf,
    pub dir: TempDir,
}

/// The `[server]` section every test proxy runs with, plus `extra` lines.
pub fn server_section(dir: &Path, port: u16, admin_port: u16, extra: &str) -> String {
    format!(
        "[server]\nlisten = [\"127.0.0.1:{port}\"]\nadmin = \"127.0.0.1:{admin_port}\"\n\
         threads = 2\ngrace_period = \"1s\"\nupgrade_sock = {}\npid_file = {}\n{extra}\n",
        toml_str(&dir.join("upgrade.sock").display().to_string()),
        toml_str(&dir.join("pingora-redirect.pid").display().to_string()),
    )
}

impl Proxy {
    /// Starts the proxy with the default test `[server]` section followed by
    /// `sections` (rules, upstream, …) and waits until it is ready.
    pub fn start(sections: &str) -> Proxy {
        Self::start_with("", sections)
    }

    /// Like [`start`](Self::start) with extra `[server]` lines (`h2c = true`).
    pub fn start_with(server_extra: &str, sections: &str) -> Proxy {
        let dir = TempDir::new("serve");
        let port = free_port();
        let admin_port = free_port();
        let config = format!(
            "{}\n{sections}\n",
            server_section(&dir.path, port, admin_port, server_extra)
        );
        let config_path = dir.write("proxy.toml", &config);
        let stderr_path = dir.path.join("stderr.log");
        let stderr = std::fs::File::create(&stderr_path).expect("create stderr log");
        let child = Command::new(BIN)
            .arg("serve")
            .arg("-c")
            .arg(&config_path)
            .current_dir(&dir.path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn pingora-redirect serve");
        let mut proxy = Proxy {
            child: Some(child),
            port,
            admin_port,
            config_path,
            stderr_path,
            dir,
        };
        proxy.wait_ready();
        proxy
    }

    /// Polls `GET /readyz` on the admin port until it answers 200 and the
    /// traffic port accepts connections.
    fn wait_ready(&mut self) {
        let end = Instant::now() + START_DEADLINE;
        let mut last = String::from("no answer yet");
        for _ in 0..10_000 {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "pingora-redirect serve exited with {status} before it was ready\nstderr:\n{}",
                    self.stderr()
                );
            }
            match try_get(self.admin_port, "/readyz") {
                Ok(r) if r.status == 200 => {
                    if TcpStream::connect(self.addr()).is_ok() {
                        return;
                    }
                    last = "readyz 200 but the traffic port refuses".into();
                }
                Ok(r) => last = format!("readyz answered {}", r.status),
                Err(e) => last = format!("readyz: {e}"),
            }
            if Instant::now() >= end {
                break;
            }
            std::thread::sleep(POLL);
        }
        panic!(
            "pingora-redirect serve not ready within {START_DEADLINE:?} ({last})\nstderr:\n{}",
            self.stderr()
        );
    }

    /// The traffic listener.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `http://127.0.0.1:ADMIN{path}`.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin_port)
    }

    /// A raw HTTP/1.1 connection to the traffic listener.
    pub fn connect(&self) -> Conn {
        Conn::connect(self.port)
    }

    /// What the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read(&self.stderr_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Sends SIGINT and waits for the exit (kills it after [`STOP_DEADLINE`]).
    pub fn stop(&mut self) -> Option<ExitStatus> {
        stop_child(self.child.take()?, "pingora-redirect serve")
    }
}

/// Stops a `serve` process: SIGINT, then a wait of [`STOP_DEADLINE`], then
/// a kill; returns its exit status.
pub fn stop_child(mut child: Child, what: &str) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    let _ = Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if let Some(status) = wait_exit(&mut child, STOP_DEADLINE) {
        return Some(status);
    }
    eprintln!("{what} ignored SIGINT for {STOP_DEADLINE:?}; killing it");
    let _ = child.kill();
    child.wait().ok()
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!(
                "---- pingora-redirect serve stderr ({}) ----\n{}\n---- end of stderr ----",
                self.config_path.display(),
                self.stderr()
            );
        }
    }
}

/// Runs `serve -c FILE` on `config` (written into a temp dir, as
/// `broken.toml`), expecting it to exit on its own; returns the exit status,
/// the stderr and the config path as given.
pub fn serve_expecting_exit(config: Option<&str>) -> (ExitStatus, String, String) {
    let dir = TempDir::new("exit");
    let config_path = match config {
        Some(c) => dir.write("broken.toml", c),
        None => dir.path.join("missing.toml"),
    };
    let out_path = dir.path.join("stderr.log");
    let out = std::fs::File::create(&out_path).expect("create stderr log");
    let mut child = Command::new(BIN)
        .arg("serve")
        .arg("-c")
        .arg(&config_path)
        .current_dir(&dir.path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(out)
        .spawn()
        .expect("spawn pingora-redirect serve");
    let status = match wait_exit(&mut child, START_DEADLINE) {
        Some(s) => s,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "serve kept running on a configuration that should not load\nstderr:\n{}",
                String::from_utf8_lossy(&std::fs::read(&out_path).unwrap_or_default())
            );
        }
    };
    let stderr =
        String::from_utf8_lossy(&std::fs::read(&out_path).unwrap_or_default()).into_owned();
    (status, stderr, config_path.display().to_string())
}
