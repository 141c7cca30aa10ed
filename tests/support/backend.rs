//! A recording HTTP/1.1 test backend that can be stopped and restarted on
//! the same port.

#![allow(dead_code)]

use super::client::{find, RawResponse};
use super::fixtures::*;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
