//! A byte-exact raw HTTP/1.1 client: one response at a time, pipelined
//! responses in order, and the admin `/metrics` read through it.

#![allow(dead_code)]

use super::fixtures::*;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

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

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
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
