//! Harness for the front-proxy integration tests: the real binary started
//! with `serve` on free loopback ports, a byte-exact raw HTTP/1.1 client, and
//! a recording HTTP/1.1 test backend that can be stopped and restarted on the
//! same port.
//!
//! Everything here is bounded: every wait has a deadline, every loop a count,
//! and whatever a value starts it stops on drop.

#![allow(dead_code)]

pub mod two_errors;

use std::collections::HashSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_pingora-redirect");
/// Pause between two polls of a deadline loop.
pub const POLL: Duration = Duration::from_millis(25);
/// How long the proxy may take to become ready.
pub const START_DEADLINE: Duration = Duration::from_secs(20);
/// How long the proxy may take to exit after SIGINT.
pub const STOP_DEADLINE: Duration = Duration::from_secs(10);
/// Read and write timeout of raw connections.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest response head or request head either side accepts.
const MAX_HEAD: usize = 64 * 1024;

// ---------------------------------------------------------------------------
// Temp dirs and ports

/// A directory of its own under the system temp dir, removed on drop.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "pr-proxy-{tag}-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }

    /// Writes `name` (relative to the directory) and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.path.join(name);
        std::fs::write(&p, contents).expect("write temp file");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A loopback port that was free a moment ago: bind `127.0.0.1:0`, read the
/// port, drop the listener. Ports are never handed out twice by one test
/// process, so concurrent tests do not collide with each other.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    for _ in 0..64 {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = l.local_addr().expect("local addr").port();
        drop(l);
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if given.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
    panic!("no fresh loopback port in 64 tries");
}

/// A string as a TOML basic string (quotes included).
pub fn toml_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Polls `f` every [`POLL`] until it returns `Some` or `deadline` passes.
pub fn poll_until<T>(deadline: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

/// Waits up to `deadline` for `child` to exit.
fn wait_exit(child: &mut Child, deadline: Duration) -> Option<ExitStatus> {
    poll_until(deadline, || child.try_wait().ok().flatten())
}

// ---------------------------------------------------------------------------
// The proxy process

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

// ---------------------------------------------------------------------------
// Raw HTTP/1.1 client

/// One parsed HTTP/1.x response.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// `HTTP/1.1`.
    pub version: String,
    pub status: u16,
    pub reason: String,
    /// In order, names as sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// Every value of header `name` (case-insensitive).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The single value of header `name`; panics when it appears twice.
    pub fn header(&self, name: &str) -> Option<&str> {
        let all = self.all(name);
        assert!(
            all.len() <= 1,
            "header {name} sent {} times: {self:?}",
            all.len()
        );
        all.first().copied()
    }

    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A raw connection that keeps what it read beyond one response, so
/// pipelined responses are parsed one after another, byte-exact.
pub struct Conn {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub fn connect(port: u16) -> Conn {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the proxy");
        stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .expect("read timeout");
        stream
            .set_write_timeout(Some(IO_TIMEOUT))
            .expect("write timeout");
        stream.set_nodelay(true).ok();
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    /// Writes `bytes` in one call.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write request");
        self.stream.flush().expect("flush request");
    }

    /// Reads more bytes into the buffer; `Ok(0)` at end of stream.
    fn fill(&mut self) -> std::io::Result<usize> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Reads until the buffer holds a whole response head; returns where
    /// the blank line that ends it starts.
    fn wait_for_head(&mut self) -> usize {
        let end = Instant::now() + IO_TIMEOUT;
        loop {
            if let Some(p) = find(&self.buf, b"\r\n\r\n") {
                return p;
            }
            assert!(
                self.buf.len() <= MAX_HEAD,
                "response head over {MAX_HEAD} bytes"
            );
            assert!(
                Instant::now() < end,
                "no complete response head within {IO_TIMEOUT:?}; got {:?}",
                String::from_utf8_lossy(&self.buf)
            );
            match self.fill() {
                Ok(0) => panic!(
                    "connection closed before a complete response head; got {:?}",
                    String::from_utf8_lossy(&self.buf)
                ),
                Ok(_) => {}
                Err(e) => panic!(
                    "reading a response head: {e}; got {:?}",
                    String::from_utf8_lossy(&self.buf)
                ),
            }
        }
    }

    /// Reads one response; `head` says it answers a HEAD (no body bytes
    /// follow whatever its `Content-Length`). The response must be framed
    /// with exactly one `Content-Length` (the proxy's always are).
    pub fn read_response(&mut self, head: bool) -> RawResponse {
        let end = Instant::now() + IO_TIMEOUT;
        let head_end = self.wait_for_head();
        let head_text = std::str::from_utf8(&self.buf[..head_end])
            .expect("response head is UTF-8")
            .to_string();
        let mut lines = head_text.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default().to_string();
        assert!(
            version == "HTTP/1.1" || version == "HTTP/1.0",
            "bad status line {status_line:?} (stray bytes before a response?)"
        );
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let reason = parts.next().unwrap_or_default().to_string();
        let mut headers = Vec::new();
        for line in lines {
            let (n, v) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("bad header line {line:?}"));
            assert!(
                !n.is_empty() && n.trim() == n,
                "bad header name in {line:?}"
            );
            headers.push((n.to_string(), v.trim().to_string()));
        }
        self.buf.drain(..head_end + 4);
        let lengths: Vec<&str> = headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(
            lengths.len(),
            1,
            "expected exactly one Content-Length in {status_line:?} {headers:?}"
        );
        assert!(
            !headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding")),
            "Transfer-Encoding next to Content-Length: {headers:?}"
        );
        let len: usize = lengths[0].parse().expect("numeric Content-Length");
        let body = if head {
            Vec::new()
        } else {
            while self.buf.len() < len {
                assert!(
                    Instant::now() < end,
                    "no complete body within {IO_TIMEOUT:?}"
                );
                match self.fill() {
                    Ok(0) => panic!(
                        "connection closed after {} of {len} body bytes",
                        self.buf.len()
                    ),
                    Ok(_) => {}
                    Err(e) => panic!("reading a body: {e}"),
                }
            }
            self.buf.drain(..len).collect()
        };
        RawResponse {
            version,
            status,
            reason,
            headers,
            body,
        }
    }

    /// Like [`read_response`](Self::read_response), also returning the head
    /// exactly as received: the status line and the header lines, without
    /// the blank line that ends them (the parsed values are trimmed; these
    /// bytes are not).
    pub fn read_response_and_head(&mut self, head: bool) -> (RawResponse, Vec<u8>) {
        let at = self.wait_for_head();
        let raw = self.buf[..at].to_vec();
        (self.read_response(head), raw)
    }

    /// Asserts that nothing but the end of the stream follows: no stray
    /// bytes are buffered and the peer closes within [`IO_TIMEOUT`] (a reset
    /// counts as closed).
    pub fn expect_closed(&mut self) {
        assert!(
            self.buf.is_empty(),
            "bytes after the last response: {:?}",
            String::from_utf8_lossy(&self.buf)
        );
        let end = Instant::now() + IO_TIMEOUT;
        loop {
            match self.fill() {
                Ok(0) => return,
                Ok(_) => panic!(
                    "bytes after the last response: {:?}",
                    String::from_utf8_lossy(&self.buf)
                ),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return,
                Err(e) if e.kind() == ErrorKind::Interrupted && Instant::now() < end => {}
                Err(e) => panic!("the connection was not closed within {IO_TIMEOUT:?}: {e}"),
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// One `GET path` with `Connection: close` on a fresh connection.
pub fn try_get(port: u16, path: &str) -> std::io::Result<RawResponse> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )?;
    let mut conn = Conn {
        stream,
        buf: Vec::new(),
    };
    // `read_response` panics on malformed input; readiness polls only need
    // well-formed answers, so check for a complete head first.
    let end = Instant::now() + Duration::from_secs(2);
    while find(&conn.buf, b"\r\n\r\n").is_none() {
        if Instant::now() >= end || conn.buf.len() > MAX_HEAD {
            return Err(std::io::Error::new(ErrorKind::TimedOut, "no response head"));
        }
        if conn.fill()? == 0 {
            return Err(std::io::Error::new(ErrorKind::UnexpectedEof, "closed"));
        }
    }
    Ok(conn.read_response(false))
}

/// The value of one sample of the admin `/metrics` (`series` as exposed,
/// e.g. `name{label="v"}`); `None` when the series is absent.
pub fn metric(admin_port: u16, series: &str) -> Option<f64> {
    let r = try_get(admin_port, "/metrics").expect("GET /metrics");
    assert_eq!(r.status, 200, "GET /metrics: {r:?}");
    r.body_str()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == series).then(|| value.parse().expect("numeric sample"))
        })
}

/// Polls the admin `/metrics` until `series` has the value `want` (counters
/// are bumped right after the response is written, so a client can read the
/// answer a moment before the count moves); panics with the last value
/// after 10 s.
pub fn expect_metric(admin_port: u16, series: &str, want: Option<f64>) {
    let mut last = None;
    let got = poll_until(Duration::from_secs(10), || {
        last = metric(admin_port, series);
        (last == want).then_some(())
    });
    assert!(got.is_some(), "{series} is {last:?}, expected {want:?}");
}

// ---------------------------------------------------------------------------
// The recording test backend

/// One request as the backend received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query as on the request line.
    pub target: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

/// A loopback HTTP/1.1 server with keep-alive that records every request and
/// answers `200` with the body `backend NAME` (`GET /healthz` answers 503
/// while it is told to be unhealthy). Its runtime lives on a thread
/// of its own, so it serves sync and async tests alike; stopping it drops the
/// runtime, which closes the listener and every open connection.
pub struct Backend {
    pub name: String,
    pub port: u16,
    log: Arc<Mutex<Vec<Recorded>>>,
    healthy: Arc<AtomicBool>,
    running: Option<Running>,
}

impl Backend {
    /// Starts a backend on a free loopback port.
    pub fn start(name: &str) -> Backend {
        let mut b = Backend {
            name: name.to_string(),
            port: free_port(),
            log: Arc::new(Mutex::new(Vec::new())),
            healthy: Arc::new(AtomicBool::new(true)),
            running: None,
        };
        b.restart();
        b
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The body it answers with.
    pub fn answer(&self) -> String {
        format!("backend {}", self.name)
    }

    /// What `GET /healthz` answers from now on: 200, or 503 when `false`.
    /// Every other request is still answered 200.
    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::SeqCst);
    }

    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Every request received so far (across restarts).
    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Requests other than HTTP health checks (`GET /healthz`).
    pub fn traffic(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.target != "/healthz")
            .collect()
    }

    /// (Re)starts listening on its port; retries the bind for a few seconds.
    pub fn restart(&mut self) {
        assert!(self.running.is_none(), "backend {} already runs", self.name);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<std::io::Result<()>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let port = self.port;
        let name = self.name.clone();
        let log = self.log.clone();
        let healthy = self.healthy.clone();
        let thread = std::thread::Builder::new()
            .name(format!("backend-{name}"))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("backend runtime");
                rt.block_on(async move {
                    let listener = match bind_reusable(port).await {
                        Ok(l) => {
                            let _ = ready_tx.send(Ok(()));
                            l
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let mut stop_rx = stop_rx;
                    loop {
                        tokio::select! {
                            _ = &mut stop_rx => break,
                            accepted = listener.accept() => {
                                if let Ok((stream, _)) = accepted {
                                    tokio::spawn(serve_conn(
                                        stream,
                                        name.clone(),
                                        log.clone(),
                                        healthy.clone(),
                                    ));
                                }
                            }
                        }
                    }
                });
                // Dropping the runtime here cancels every connection task.
                drop(rt);
            })
            .expect("spawn backend thread");
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => {
                self.running = Some(Running {
                    stop: stop_tx,
                    thread,
                })
            }
            Ok(Err(e)) => {
                let _ = thread.join();
                panic!("backend {} cannot listen on {}: {e}", self.name, self.port);
            }
            Err(e) => panic!("backend {} did not start: {e}", self.name),
        }
    }

    /// Stops listening and closes every connection it has open.
    pub fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            let _ = r.stop.send(());
            let _ = r.thread.join();
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Binds `127.0.0.1:port` with `SO_REUSEADDR` (the port may have
/// connections in TIME_WAIT from the previous run), retrying while it is in
/// use, for up to 5 s.
async fn bind_reusable(port: u16) -> std::io::Result<tokio::net::TcpListener> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let attempt = (|| {
            let s = tokio::net::TcpSocket::new_v4()?;
            s.set_reuseaddr(true)?;
            s.bind(addr)?;
            s.listen(1024)
        })();
        match attempt {
            Ok(l) => return Ok(l),
            Err(e) if e.kind() == ErrorKind::AddrInUse && Instant::now() < end => {
                tokio::time::sleep(POLL).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Serves one connection: requests one after another until the peer closes,
/// asks to close, errs, or idles for 30 s (at most 10 000 requests).
async fn serve_conn(
    mut stream: tokio::net::TcpStream,
    name: String,
    log: Arc<Mutex<Vec<Recorded>>>,
    healthy: Arc<AtomicBool>,
) {
    use tokio::io::AsyncWriteExt;
    let _ = stream.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::new();
    for _ in 0..10_000 {
        let req = match tokio::time::timeout(
            Duration::from_secs(30),
            read_request(&mut stream, &mut buf),
        )
        .await
        {
            Ok(Ok(Some(r))) => r,
            _ => return,
        };
        let close = req.version == "HTTP/1.0"
            || req
                .header("connection")
                .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let head = req.method == "HEAD";
        let failing = req.target == "/healthz" && !healthy.load(Ordering::SeqCst);
        log.lock().unwrap_or_else(|e| e.into_inner()).push(req);
        let (status, body) = if failing {
            (
                "503 Service Unavailable",
                format!("backend {name} unhealthy"),
            )
        } else {
            ("200 OK", format!("backend {name}"))
        };
        let mut resp = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nX-Backend: {name}\r\n",
            body.len()
        );
        if close {
            resp.push_str("Connection: close\r\n");
        }
        resp.push_str("\r\n");
        if !head {
            resp.push_str(&body);
        }
        if stream.write_all(resp.as_bytes()).await.is_err() || close {
            return;
        }
    }
}

/// Reads one request (head and body, by `Content-Length` or chunked);
/// `Ok(None)` when the peer closed between requests.
async fn read_request(
    stream: &mut tokio::net::TcpStream,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<Recorded>> {
    let bad = |m: &str| std::io::Error::new(ErrorKind::InvalidData, m.to_string());
    let head_end = loop {
        if let Some(p) = find(buf, b"\r\n\r\n") {
            break p;
        }
        if buf.len() > MAX_HEAD {
            return Err(bad("request head too large"));
        }
        if fill_async(stream, buf).await? == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(bad("closed inside a request head"))
            };
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    buf.drain(..head_end + 4);
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_string();
    let target = first.next().unwrap_or_default().to_string();
    let version = first.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if get("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        for _ in 0..1_000_000 {
            let line = read_line(stream, buf).await?;
            let size_hex = line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_hex, 16).map_err(|_| bad("bad chunk size"))?;
            if size == 0 {
                // Trailers up to the empty line.
                for _ in 0..1000 {
                    if read_line(stream, buf).await?.is_empty() {
                        break;
                    }
                }
                break;
            }
            read_exact_buf(stream, buf, size + 2).await?;
            body.extend_from_slice(&buf[..size]);
            buf.drain(..size + 2);
        }
    } else if let Some(len) = get("content-length") {
        let len: usize = len.parse().map_err(|_| bad("bad Content-Length"))?;
        read_exact_buf(stream, buf, len).await?;
        body.extend(buf.drain(..len));
    }
    Ok(Some(Recorded {
        method,
        target,
        version,
        headers,
        body,
    }))
}

async fn fill_async(
    stream: &mut tokio::net::TcpStream,
    buf: &mut Vec<u8>,
) -> std::io::Result<usize> {
    use tokio::io::AsyncReadExt;
    let mut chunk = [0u8; 16 * 1024];
    let n = stream.read(&mut chunk).await?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

async fn read_exact_buf(
    stream: &mut tokio::net::TcpStream,
    buf: &mut Vec<u8>,
    n: usize,
) -> std::io::Result<()> {
    while buf.len() < n {
        if fill_async(stream, buf).await? == 0 {
            return Err(std::io::Error::new(
                ErrorKind::UnexpectedEof,
                "closed inside a body",
            ));
        }
    }
    Ok(())
}

async fn read_line(
    stream: &mut tokio::net::TcpStream,
    buf: &mut Vec<u8>,
) -> std::io::Result<String> {
    loop {
        if let Some(p) = find(buf, b"\r\n") {
            let line = String::from_utf8_lossy(&buf[..p]).into_owned();
            buf.drain(..p + 2);
            return Ok(line);
        }
        if buf.len() > MAX_HEAD {
            return Err(std::io::Error::new(ErrorKind::InvalidData, "line too long"));
        }
        if fill_async(stream, buf).await? == 0 {
            return Err(std::io::Error::new(
                ErrorKind::UnexpectedEof,
                "closed inside a line",
            ));
        }
    }
}

/// Parses one complete response leniently (a proxied answer too): the head,
/// then the body cut to `Content-Length` (none for a HEAD); `None` when the
/// head is incomplete or malformed.
pub fn parse_response(buf: &[u8], head_only: bool) -> Option<RawResponse> {
    let at = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let text = std::str::from_utf8(&buf[..at]).ok()?;
    let mut lines = text.split("\r\n");
    let mut status_line = lines.next()?.splitn(3, ' ');
    let version = status_line.next()?.to_string();
    let status = status_line.next()?.parse().ok()?;
    let reason = status_line.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (n, v) = l.split_once(':')?;
            Some((n.to_string(), v.trim().to_string()))
        })
        .collect::<Option<_>>()?;
    let mut body = buf[at + 4..].to_vec();
    if head_only {
        body.clear();
    } else if let Some(len) = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        body.truncate(len);
    }
    Some(RawResponse {
        version,
        status,
        reason,
        headers,
        body,
    })
}
