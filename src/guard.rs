//! Slow and abusive clients: per-listener connection bounds and read deadlines.
//!
//! Pingora times out each *read* (60 s by default), so a client that dribbles
//! one byte a minute keeps a connection, and the task and buffer behind it,
//! for as long as it likes. [`Guarded`] wraps the proxy application and every
//! accepted connection:
//!
//! * **Header deadline.** The whole request head must arrive within
//!   `header_timeout` of its first byte (of the accept, for a new connection).
//!   A client that has sent part of a head and then stalls gets
//!   `408 Request Timeout` and is closed; one that sent nothing is closed.
//!   The hooks mark the end of the head ([`headers_read`]) and of the request
//!   ([`request_done`]); between requests the keep-alive `idle_timeout` holds.
//! * **Body reads** wait at most `body_timeout` for the next bytes.
//! * **Connection bound.** At most `max_connections` client connections per
//!   listener are open at once. Beyond that a connection gets
//!   `503 Service Unavailable` with `Retry-After: 1` and is closed, so a flood
//!   of connections cannot exhaust file descriptors or memory.
//! * **h2c detection without waiting.** With `h2c = true` Pingora reads 24
//!   bytes to look for the HTTP/2 preface and waits forever for a shorter
//!   HTTP/1 request. The guard answers that peek as soon as a byte differs
//!   from the preface (and within the header deadline).
//!
//! An HTTP/2 connection is left to the HTTP/2 layer after its preface: its
//! streams are multiplexed, so one slow stream does not hold the others, and
//! an idle connection is closed by `idle_timeout`.
//!
//! The guard also watches what is written, to count the 4xx that Pingora
//! sends before any hook runs (see [`crate::reply_watch`]); its own 408 is
//! counted there too.

use crate::access_log::{access_log, Entry};
use crate::metrics::metrics;
use crate::reply_watch::ReplyWatch;
use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, Ssl, Stream, UniqueID,
    UniqueIDType, ALPN,
};
use pingora::proxy::Session;
use pingora::server::ShutdownWatch;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};

pub(crate) const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

const TIMEOUT_408: &[u8] = b"HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 48\r\nConnection: close\r\n\r\nThe request head did not arrive within the time.";
const BUSY_503: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 42\r\nRetry-After: 1\r\nConnection: close\r\n\r\nToo many connections to this listener now.";

/// The body length of a canned answer: what follows its blank line.
const fn body_len(answer: &[u8]) -> usize {
    let mut i = 0;
    while i + 4 <= answer.len() {
        if answer[i] == b'\r'
            && answer[i + 1] == b'\n'
            && answer[i + 2] == b'\r'
            && answer[i + 3] == b'\n'
        {
            return answer.len() - i - 4;
        }
        i += 1;
    }
    0
}
const TIMEOUT_408_BODY: usize = body_len(TIMEOUT_408);
const BUSY_503_BODY: usize = body_len(BUSY_503);

/// The limits of `[server]` that apply to client connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl Limits {
    pub fn from_server(s: &crate::config::ServerConfig) -> Limits {
        Limits {
            header_timeout: s.header_timeout,
            body_timeout: s.body_timeout,
            idle_timeout: s.idle_timeout,
            max_connections: s.max_connections,
        }
    }
}

/// A [`ServerApp`] that bounds connections per listener and wraps every
/// connection in a [`GuardedStream`] before handing it to `inner`.
pub struct Guarded<A> {
    inner: Arc<A>,
    limits: Limits,
    /// One bound per listening port, made at start.
    listeners: HashMap<u16, Listener>,
    /// For connections on a port not listed (none in practice).
    other: Listener,
    /// The snapshot in force: the certificates of TLS handshakes, and
    /// whether the fast path (`crate::fast`) answers first.
    shared: Option<crate::snapshot::Shared>,
}

struct Listener {
    label: String,
    /// Connections on it begin with a TLS handshake.
    tls: bool,
    slots: Arc<Semaphore>,
    open: prometheus::IntGauge,
    rejected: prometheus::IntCounter,
}

impl Listener {
    fn new(label: String, max: usize) -> Listener {
        let m = metrics();
        Listener {
            open: m.connections.with_label_values(&[&label]),
            rejected: m.connections_rejected.with_label_values(&[&label]),
            slots: Arc::new(Semaphore::new(max)),
            label,
            tls: false,
        }
    }
}

impl<A> Guarded<A> {
    /// Guards `inner` on the `listen` addresses.
    pub fn new(inner: A, limits: Limits, listen: &[std::net::SocketAddr]) -> Guarded<A> {
        let listeners = listen
            .iter()
            .map(|a| {
                (
                    a.port(),
                    Listener::new(a.to_string(), limits.max_connections),
                )
            })
            .collect();
        Guarded {
            inner: Arc::new(inner),
            limits,
            listeners,
            other: Listener::new("other".into(), limits.max_connections),
            shared: None,
        }
    }

    /// Reads the snapshot in force from `shared`: with `[server] fast_path`
    /// on, bodiless HTTP/1.1 GET and HEAD redirects are answered by
    /// [`crate::fast`] before the connection reaches `inner`.
    pub fn with_snapshot(mut self, shared: crate::snapshot::Shared) -> Guarded<A> {
        self.shared = Some(shared);
        self
    }

    /// Adds the TLS listeners `listen`: their connections are handshaken
    /// here (within `header_timeout`, holding a connection slot) with the
    /// certificates of the snapshot in force (see [`Guarded::with_snapshot`]).
    pub fn with_tls(mut self, listen: &[std::net::SocketAddr]) -> Guarded<A> {
        for a in listen {
            let mut l = Listener::new(a.to_string(), self.limits.max_connections);
            l.tls = true;
            self.listeners.insert(a.port(), l);
        }
        self
    }

    /// The TLS handshake of a connection on a TLS listener, bounded by the
    /// head deadline; `None` when it failed or took too long (the client is
    /// closed: there is no HTTP to answer in yet).
    async fn handshake(&self, stream: Stream) -> Option<Stream> {
        let state = self.shared.as_ref()?.load().tls.clone()?;
        let peer = peer_ip(&stream);
        match tokio::time::timeout(
            self.limits.header_timeout,
            crate::tls::handshake(stream, &state),
        )
        .await
        {
            Ok(Ok(s)) => Some(s),
            Ok(Err(e)) => {
                log::debug!("TLS handshake with {peer:?} failed: {e}");
                None
            }
            Err(_) => {
                metrics()
                    .client_timeouts
                    .with_label_values(&["handshake"])
                    .inc();
                log::debug!("TLS handshake with {peer:?} did not finish within header_timeout");
                None
            }
        }
    }

    fn listener(&self, stream: &Stream) -> &Listener {
        stream
            .get_socket_digest()
            .and_then(|d| d.local_addr().and_then(|a| a.as_inet()).map(|a| a.port()))
            .and_then(|port| self.listeners.get(&port))
            .unwrap_or(&self.other)
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Guarded<A> {
    async fn process_new(
        self: &Arc<Self>,
        mut stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let listener = self.listener(&stream);
        let accepted = Instant::now();
        let Ok(_slot) = listener.slots.clone().try_acquire_owned() else {
            listener.rejected.inc();
            if listener.tls {
                // No HTTP can be written before a handshake: close.
                return None;
            }
            log::warn!(
                "listener {} has max_connections = {} open: answered 503",
                listener.label,
                self.limits.max_connections
            );
            let started = std::time::Instant::now();
            refuse(&mut stream).await;
            if access_log().enabled() {
                access_log().log(&Entry::without_request(
                    peer_ip(&stream),
                    "HTTP/1.1",
                    503,
                    BUSY_503_BODY,
                    started.elapsed(),
                    "rejected",
                ));
            }
            return None;
        };
        listener.open.inc();
        if listener.tls {
            match self.handshake(stream).await {
                Some(s) => stream = s,
                None => {
                    listener.open.dec();
                    return None;
                }
            }
        }
        let mut guarded = GuardedStream::new(stream, self.limits, accepted);
        if let Some(shared) = &self.shared {
            if crate::fast::serve(&mut guarded, shared, shutdown).await == crate::fast::Next::Close
            {
                listener.open.dec();
                return None;
            }
        }
        // The connection, its keep-alive requests included, is served here;
        // the slot is held until it ends.
        let reused = self.inner.process_new(Box::new(guarded), shutdown).await;
        listener.open.dec();
        reused
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await
    }
}

/// The client's address of a connection.
fn peer_ip(stream: &Stream) -> Option<std::net::IpAddr> {
    stream
        .get_socket_digest()
        .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()))
}

/// Answers 503 and closes, reading what the client sent meanwhile (briefly)
/// so the close does not reset the connection before the answer is read.
async fn refuse(stream: &mut Stream) {
    let answer = async {
        stream.write_all(BUSY_503).await?;
        stream.flush().await?;
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        io::Result::Ok(())
    };
    let _ = tokio::time::timeout(Duration::from_millis(500), answer).await;
}

const HEAD: u8 = 0;
const BODY: u8 = 1;
const IDLE: u8 = 2;
const H2: u8 = 3;
/// HTTP/2 chosen by ALPN, its connection preface not read yet: the head
/// deadline holds until it is.
const H2_PREFACE_DUE: u8 = 4;

/// A client connection with a deadline on its request heads.
#[derive(Debug)]
pub struct GuardedStream {
    inner: Stream,
    limits: Limits,
    /// HEAD, BODY, IDLE or H2; set by the hooks through a shared reference.
    phase: AtomicU8,
    /// The head deadline: from the accept for a connection's first head;
    /// for a later one, from the first read of it that has to wait.
    deadline: Option<Pin<Box<Sleep>>>,
    /// Bytes read for the current head, so a stall after some of it gets 408.
    head_bytes: usize,
    /// Bytes read while peeking for the HTTP/2 preface, served first.
    peeked: Vec<u8>,
    peeked_at: usize,
    /// How much of the 408 answer is written, once the deadline passed.
    timeout_written: Option<usize>,
    /// Answers written outside the hooks, for the bad-request count.
    replies: ReplyWatch,
    /// When the current request head began: the accept for the first,
    /// its first byte for a later one (the start of the request's duration).
    head_started: Instant,
    /// The fast path answered a request on it: Pingora, handed the
    /// connection later, must not look for an HTTP/2 preface (see
    /// `try_peek`).
    reused: bool,
    /// The lingering close, once `poll_shutdown` has begun it.
    linger: Option<Linger>,
}

impl GuardedStream {
    /// Guards `inner`, accepted at `accepted`: its first head must arrive
    /// within `header_timeout` of that (a TLS handshake included). A TLS
    /// connection that chose HTTP/2 by ALPN must send its connection preface
    /// within that time, and is then left to the HTTP/2 layer.
    fn new(inner: Stream, limits: Limits, accepted: Instant) -> GuardedStream {
        let h2 = inner.selected_alpn_proto() == Some(ALPN::H2);
        GuardedStream {
            inner,
            limits,
            phase: AtomicU8::new(if h2 { H2_PREFACE_DUE } else { HEAD }),
            deadline: Some(Box::pin(tokio::time::sleep_until(
                accepted + limits.header_timeout,
            ))),
            head_bytes: 0,
            peeked: Vec::new(),
            peeked_at: 0,
            timeout_written: None,
            replies: ReplyWatch::default(),
            // A request's duration starts with its head (after the handshake).
            head_started: Instant::now(),
            reused: false,
            linger: None,
        }
    }

    /// Counts and logs a 4xx that Pingora (or the 408 here) wrote outside
    /// the hooks; `bytes` of body.
    fn answered_outside(&self, status: u16, bytes: usize) {
        crate::reply_watch::count();
        let log = access_log();
        if !log.enabled() {
            return;
        }
        let protocol = if matches!(self.phase.load(Ordering::Acquire), H2 | H2_PREFACE_DUE) {
            "HTTP/2.0"
        } else {
            "HTTP/1.1"
        };
        log.log(&Entry::without_request(
            peer_ip(&self.inner),
            protocol,
            status,
            bytes,
            self.head_started.elapsed(),
            "bad_request",
        ));
    }

    /// Shows the first `n` bytes of what was just written to the watch.
    fn written<'b>(&mut self, n: usize, bufs: impl Iterator<Item = &'b [u8]>) {
        let phase = self.phase.load(Ordering::Acquire);
        if phase == BODY {
            self.replies.in_request();
            return;
        }
        let mut left = n;
        for b in bufs {
            if left == 0 {
                break;
            }
            let b = &b[..b.len().min(left)];
            left -= b.len();
            if phase == H2 || phase == H2_PREFACE_DUE {
                for _ in 0..self.replies.h2(b) {
                    self.answered_outside(400, 0);
                }
            } else if let Some(status) = self.replies.outside_request(b) {
                self.answered_outside(status, 0);
            }
        }
    }

    /// A read of an ALPN HTTP/2 connection before its 24-byte preface has
    /// come: bounded by the head deadline (no 408: it is not HTTP/1).
    fn poll_read_preface(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                let got = buf.filled().len() - before;
                self.head_bytes += got;
                if self.head_bytes >= H2_PREFACE.len() || got == 0 || r.is_err() {
                    self.phase.store(H2, Ordering::Release);
                    self.deadline = None;
                }
                Poll::Ready(r)
            }
            Poll::Pending => {
                let expired = self
                    .deadline
                    .as_mut()
                    .is_some_and(|d| d.as_mut().poll(cx).is_ready());
                if !expired {
                    return Poll::Pending;
                }
                self.phase.store(H2, Ordering::Release);
                self.deadline = None;
                metrics()
                    .client_timeouts
                    .with_label_values(&["header"])
                    .inc();
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the HTTP/2 connection preface did not arrive within header_timeout",
                )))
            }
        }
    }

    /// The deadline passed: write the 408 (if part of a head came), then fail.
    fn poll_timed_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.head_bytes > 0 {
            let mut at = *self.timeout_written.get_or_insert(0);
            while at < TIMEOUT_408.len() {
                match Pin::new(&mut self.inner).poll_write(cx, &TIMEOUT_408[at..]) {
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => break,
                    Poll::Ready(Ok(n)) => {
                        at += n;
                        self.timeout_written = Some(at);
                    }
                    Poll::Pending => return Poll::Pending,
                }
            }
            let _ = Pin::new(&mut self.inner).poll_flush(cx);
        }
        if self.timeout_written != Some(usize::MAX) {
            if self.timeout_written.is_some() {
                self.replies.outside_request(TIMEOUT_408);
                self.answered_outside(408, TIMEOUT_408_BODY);
            }
            self.timeout_written = Some(usize::MAX);
            metrics()
                .client_timeouts
                .with_label_values(&["header"])
                .inc();
        }
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the request head did not arrive within header_timeout",
        )))
    }
}

/// What the fast path (`crate::fast`) needs of the connection it serves
/// before Pingora does.
impl GuardedStream {
    pub(crate) fn limits(&self) -> Limits {
        self.limits
    }

    /// Whether HTTP/2 was chosen by ALPN.
    pub(crate) fn is_h2(&self) -> bool {
        matches!(self.phase.load(Ordering::Acquire), H2 | H2_PREFACE_DUE)
    }

    /// The client's address.
    pub(crate) fn peer(&self) -> Option<std::net::IpAddr> {
        peer_ip(&self.inner)
    }

    /// Whether the connection is TLS.
    pub(crate) fn is_tls(&self) -> bool {
        self.inner.get_ssl_digest().is_some()
    }

    /// When the current request head began.
    pub(crate) fn head_started(&self) -> std::time::Instant {
        self.head_started.into_std()
    }

    /// A request was answered and nothing of the next one has come: the
    /// keep-alive wait, whose bound is the caller's.
    pub(crate) fn idle(&mut self) {
        self.reused = true;
        set_phase_unless_h2(&self.phase, IDLE);
    }

    /// A request was answered and `bytes` of the next head are already
    /// read: that head's deadline starts with the next read that waits.
    pub(crate) fn next_head(&mut self, bytes: usize) {
        self.reused = true;
        set_phase_unless_h2(&self.phase, HEAD);
        self.head_bytes = bytes;
        self.deadline = None;
        self.head_started = Instant::now();
    }

    /// Hands `bytes` (read but not answered) back: the next reads, Pingora's,
    /// see them first, as if they had not been read.
    pub(crate) fn unread(&mut self, bytes: &[u8]) {
        let mut rest = bytes.to_vec();
        rest.extend_from_slice(&self.peeked[self.peeked_at..]);
        self.peeked = rest;
        self.peeked_at = 0;
    }

    /// Writes an answer to the client (not watched: it is a response to a
    /// request, counted where it is made).
    pub(crate) async fn write_answer(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.inner.write_all(bytes).await?;
        self.inner.flush().await
    }
}

/// The guard of a request's connection, if the service wraps its connections.
fn guard_of(session: &Session) -> Option<&GuardedStream> {
    let stream = session.as_downstream().stream()?;
    (**stream).as_any().downcast_ref::<GuardedStream>()
}

/// Call when a request head has been read (Pingora's `early_request_filter`):
/// stops the head deadline and applies `body_timeout` and `idle_timeout`.
pub fn headers_read(session: &mut Session) {
    let Some(limits) = guard_of(session).map(|g| {
        // From HEAD, or from IDLE for a pipelined request whose head was
        // already buffered (no read started its deadline).
        set_phase_unless_h2(&g.phase, BODY);
        g.limits
    }) else {
        return;
    };
    let down = session.as_downstream_mut();
    down.set_read_timeout(Some(limits.body_timeout));
    // Setting keep-alive makes Pingora read the request's `Connection`
    // again: only when it changes (the value carries over to the next
    // request on the connection).
    let idle = limits.idle_timeout.as_secs().max(1);
    if down.get_keepalive().is_some_and(|k| k != idle) {
        down.set_keepalive(Some(idle));
    }
}

/// When the head of the request in `session` began (its first byte; the
/// accept for a connection's first request), if the service guards it.
pub fn head_started(session: &Session) -> Option<std::time::Instant> {
    guard_of(session).map(|g| g.head_started.into_std())
}

/// Call when a request is over (Pingora's `logging`): the next head's
/// deadline starts with its first byte.
pub fn request_done(session: &Session) {
    if let Some(g) = guard_of(session) {
        set_phase_unless_h2(&g.phase, IDLE);
    }
}

fn set_phase_unless_h2(phase: &AtomicU8, to: u8) {
    let _ = phase.fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| {
        (p != H2 && p != H2_PREFACE_DUE).then_some(to)
    });
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.peeked_at < this.peeked.len() {
            let n = (this.peeked.len() - this.peeked_at).min(buf.remaining());
            buf.put_slice(&this.peeked[this.peeked_at..this.peeked_at + n]);
            this.peeked_at += n;
            return Poll::Ready(Ok(()));
        }
        let phase = this.phase.load(Ordering::Acquire);
        if phase == IDLE {
            let before = buf.filled().len();
            let r = Pin::new(&mut this.inner).poll_read(cx, buf);
            let got = buf.filled().len() - before;
            if got > 0 {
                // The next request has begun: its head has a deadline, set
                // when a read first has to wait (a head that arrives whole,
                // the usual case, never needs a timer).
                this.phase.store(HEAD, Ordering::Release);
                this.head_bytes = got;
                this.deadline = None;
                this.head_started = Instant::now();
            }
            return r;
        }
        if phase == H2_PREFACE_DUE {
            return this.poll_read_preface(cx, buf);
        }
        if phase != HEAD {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        if this.timeout_written.is_some() {
            return this.poll_timed_out(cx);
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                this.head_bytes += buf.filled().len() - before;
                Poll::Ready(r)
            }
            Poll::Pending => {
                let timeout = this.limits.header_timeout;
                let expired = this
                    .deadline
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)))
                    .as_mut()
                    .poll(cx)
                    .is_ready();
                if expired {
                    this.poll_timed_out(cx)
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

/// Reads and drops what the client sends until it closes, the linger's
/// deadline passes or [`LINGER_BYTES`] are read.
fn poll_drain(
    inner: &mut Stream,
    linger: &mut Linger,
    cx: &mut Context<'_>,
    sink: &mut [u8],
) -> Poll<()> {
    loop {
        if linger.read >= LINGER_BYTES || linger.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(());
        }
        let mut buf = ReadBuf::new(sink);
        match Pin::new(&mut *inner).poll_read(cx, &mut buf) {
            Poll::Ready(Ok(())) if !buf.filled().is_empty() => linger.read += buf.filled().len(),
            Poll::Ready(_) => return Poll::Ready(()),
            Poll::Pending => return Poll::Pending,
        }
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.written(n, std::iter::once(buf));
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = r {
            self.written(n, bufs.iter().map(|b| &**b));
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    /// A lingering close, as nginx's: the sending side is closed, then
    /// what the client still sends is read and dropped until it closes too
    /// (for at most [`LINGER`] and [`LINGER_BYTES`]) before the socket is.
    /// A socket closed with unread bytes resets the connection, and the
    /// reset can destroy the answer still on its way: a client sending a
    /// body that was answered with `Connection: close` would see "broken
    /// pipe" and no answer. Over TLS nothing can be read once
    /// `close_notify` is sent, so a client still sending is read first
    /// (only one whose bytes are already waiting: a client waiting for the
    /// close that ends its answer gets it at once).
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let tls = this.inner.get_ssl().is_some();
        let linger = this.linger.get_or_insert_with(|| Linger {
            deadline: Box::pin(tokio::time::sleep(LINGER)),
            read: 0,
            stage: if tls {
                LingerStage::Peek
            } else {
                LingerStage::CloseThenDrain
            },
        });
        let inner = &mut this.inner;
        let mut sink = [0u8; 8192];
        loop {
            match linger.stage {
                LingerStage::Peek => {
                    let mut buf = ReadBuf::new(&mut sink);
                    linger.stage = match Pin::new(&mut *inner).poll_read(cx, &mut buf) {
                        Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                            linger.read += buf.filled().len();
                            LingerStage::DrainThenClose
                        }
                        _ => LingerStage::Close,
                    };
                }
                LingerStage::DrainThenClose => {
                    ready!(poll_drain(inner, linger, cx, &mut sink));
                    linger.stage = LingerStage::Close;
                }
                LingerStage::Close => return Pin::new(&mut *inner).poll_shutdown(cx),
                LingerStage::CloseThenDrain => {
                    let _ = ready!(Pin::new(&mut *inner).poll_shutdown(cx));
                    linger.stage = LingerStage::Drain;
                }
                LingerStage::Drain => {
                    ready!(poll_drain(inner, linger, cx, &mut sink));
                    return Poll::Ready(Ok(()));
                }
            }
        }
    }
}

#[async_trait]
impl Peek for GuardedStream {
    /// Reads until `buf` is full or the bytes stop matching the HTTP/2
    /// preface, whichever is first, within the head deadline. The bytes read
    /// are served again by the next reads.
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        if self.reused {
            // A keep-alive connection the fast path served first: its later
            // requests are HTTP/1.1, as on Pingora's own keep-alive
            // connections, which are never peeked.
            buf.fill(0);
            return Ok(true);
        }
        let deadline = Instant::now() + self.limits.header_timeout;
        let mut chunk = [0u8; 64];
        while self.peeked.len() < buf.len()
            && H2_PREFACE.starts_with(&self.peeked[..self.peeked.len().min(H2_PREFACE.len())])
        {
            let n = match tokio::time::timeout_at(deadline, self.inner.read(&mut chunk)).await {
                Ok(r) => r?,
                Err(_) => {
                    metrics()
                        .client_timeouts
                        .with_label_values(&["header"])
                        .inc();
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no request within header_timeout",
                    ));
                }
            };
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.peeked.extend_from_slice(&chunk[..n]);
        }
        let n = self.peeked.len().min(buf.len());
        buf[..n].copy_from_slice(&self.peeked[..n]);
        buf[n..].fill(0);
        if self.peeked.starts_with(H2_PREFACE) {
            self.phase.store(H2, Ordering::Release);
            self.deadline = None;
        } else {
            self.head_bytes = self.peeked.len();
        }
        Ok(true)
    }
}

/// How long a closing connection goes on reading what the client still
/// sends, and how much of it (see [`GuardedStream`]'s `poll_shutdown`).
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1 << 20;

/// Where a lingering close is (see `poll_shutdown`).
#[derive(Debug)]
struct Linger {
    deadline: Pin<Box<Sleep>>,
    read: usize,
    stage: LingerStage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LingerStage {
    /// TLS: is the client still sending?
    Peek,
    /// TLS: it is; read it before `close_notify`.
    DrainThenClose,
    /// Close the sending side (TLS: `close_notify`), then be done.
    Close,
    /// Plain TCP: close the sending side, then read.
    CloseThenDrain,
    /// Plain TCP: read what still comes.
    Drain,
}

#[async_trait]
impl Shutdown for GuardedStream {
    async fn shutdown(&mut self) {
        let _ = AsyncWriteExt::shutdown(self).await;
    }
}

impl UniqueID for GuardedStream {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for GuardedStream {
    fn get_ssl(&self) -> Option<&pingora::protocols::tls::TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for GuardedStream {
    fn get_timing_digest(&self) -> Vec<Option<pingora::protocols::TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for GuardedStream {
    fn get_proxy_digest(&self) -> Option<Arc<pingora::protocols::raw_connect::ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: pingora::protocols::raw_connect::ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for GuardedStream {
    fn get_socket_digest(&self) -> Option<Arc<pingora::protocols::SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: pingora::protocols::SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}
