//! The fast path: bodiless HTTP/1.1 `GET` and `HEAD` requests that a rule
//! redirects are answered here, below Pingora's proxy layer, before the
//! connection reaches it.
//!
//! Pingora's HTTP/1 session and proxy phases cost about as much per request
//! as everything this product does on top of them (docs/benchmarks.md,
//! "Where the time goes"). A redirect needs none of them: the head is parsed
//! with `httparse` (the parser Pingora uses, with its defaults), the rules
//! decide as they do for Pingora's `request_filter`, and the answer is
//! written with the bytes Pingora would write for it (the same fields in
//! the same order, `Date` from Pingora's own clock, `Connection:
//! keep-alive`). Metrics and the access log record it as they record any
//! other redirect.
//!
//! Anything else goes to Pingora unchanged, with the bytes read so far
//! handed back so Pingora reads them as if nothing had: a method other than
//! `GET`/`HEAD`, HTTP/1.0, a body or a framing field (`Content-Length`,
//! `Transfer-Encoding`), `Expect`, `Upgrade`, a `Connection` field other than
//! `keep-alive`, a target that is not a plain origin-form path, a `Host` that
//! is missing, repeated or not a plain name, a head Pingora's parser would
//! reject or rewrite, one larger than [`MAX_HEAD`], a decision other than a
//! rule's redirect (a pool, a 404, a proxied request, a 400/414), HTTP/2,
//! and every request of a connection once a graceful shutdown has begun. From
//! then on Pingora serves the connection. The connection guard's deadlines
//! hold throughout: the head deadline (with its 408) on every head read here,
//! and `idle_timeout` between keep-alive requests.
//!
//! `[server] fast_path = false` sends every request to Pingora; the tests
//! compare the bytes of both paths for the same requests.

use crate::access_log::{access_log, Entry};
use crate::guard::GuardedStream;
use crate::request::{forwarded, RequestView, Scheme};
use crate::route::{Action, Outcome, Reply, Routed};
use crate::rules::Decision;
use crate::snapshot::{Shared, Snapshot};
use http::header;
use pingora::server::ShutdownWatch;
use std::pin::Pin;
use tokio::io::AsyncReadExt;
use tokio::time::{Instant, Sleep};

/// The longest head answered here; a longer one goes to Pingora.
pub const MAX_HEAD: usize = 16 * 1024;
/// The most header fields answered here (httparse reports more as an
/// error, and the request goes to Pingora).
const MAX_FIELDS: usize = 64;

/// What becomes of the connection after the fast path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Pingora serves it from here, reading first what was handed back.
    Handoff,
    /// It is over: the client left, or timed out.
    Close,
}

/// A request the fast path can answer, read from its head.
struct Head<'b> {
    head: bool,
    target: &'b str,
    host: &'b str,
    headers: http::HeaderMap,
}

/// Serves the requests of `stream` that the fast path answers, until one it
/// does not (see the module doc).
pub async fn serve(stream: &mut GuardedStream, shared: &Shared, shutdown: &ShutdownWatch) -> Next {
    let h2c = {
        let snap = shared.load();
        if stream.is_h2() || !snap.config.server.fast_path {
            return Next::Handoff;
        }
        snap.config.server.h2c
    };
    let mut buf: Vec<u8> = Vec::with_capacity(2048);
    let mut at = 0;
    let mut out: Vec<u8> = Vec::with_capacity(1024);
    let mut answered = false;
    // One wait for the start of a graceful shutdown and one idle timer for
    // the whole connection: registered once, the timer pushed back at each
    // wait (a later deadline costs a store, where a new timer per request
    // took a sixth of the time a redirect takes).
    let mut rx = shutdown.clone();
    let stopping = rx.changed();
    tokio::pin!(stopping);
    let mut idle_timer: Option<Pin<Box<Sleep>>> = None;
    loop {
        if *shutdown.borrow() {
            if answered && at == buf.len() {
                // An idle keep-alive connection: closed, as Pingora closes
                // its own when a graceful shutdown begins.
                return Next::Close;
            }
            // Pingora closes the connection after this request, and says so.
            stream.unread(&buf[at..]);
            return Next::Handoff;
        }
        if at == buf.len() {
            buf.clear();
            at = 0;
            let read = if answered {
                // Between keep-alive requests: `idle_timeout`, or the
                // start of a graceful shutdown, ends the wait.
                stream.idle();
                // Whole seconds, at least one, as Pingora's keep-alive.
                let idle = stream.limits().idle_timeout.as_secs().max(1);
                let until = Instant::now() + std::time::Duration::from_secs(idle);
                let timer = match &mut idle_timer {
                    Some(t) => {
                        t.as_mut().reset(until);
                        t
                    }
                    None => idle_timer.insert(Box::pin(tokio::time::sleep_until(until))),
                };
                tokio::select! {
                    biased;
                    r = stream.read_buf(&mut buf) => Some(r),
                    _ = timer => None,
                    _ = &mut stopping => None,
                }
            } else {
                Some(stream.read_buf(&mut buf).await)
            };
            match read {
                Some(Ok(n)) if n > 0 => {}
                _ => return Next::Close,
            }
            // With h2c, what may be the start of the HTTP/2 preface is for
            // Pingora to tell apart (it looks for it on a new connection).
            if h2c && !answered && crate::guard::H2_PREFACE.starts_with(&buf[..buf.len().min(24)]) {
                stream.unread(&buf);
                return Next::Handoff;
            }
        }
        let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
        let mut req = httparse::Request::new(&mut fields);
        let len = match req.parse(&buf[at..]) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() - at <= MAX_HEAD => {
                // The rest of the head, within the guard's head deadline;
                // what was answered goes, so the buffer holds one head.
                if at > 0 {
                    buf.drain(..at);
                    at = 0;
                }
                match stream.read_buf(&mut buf).await {
                    Ok(n) if n > 0 => continue,
                    _ => return Next::Close,
                }
            }
            _ => {
                stream.unread(&buf[at..]);
                return Next::Handoff;
            }
        };
        let snap = shared.load();
        let Some((h, done)) = head(&req).and_then(|h| {
            let done = answer(stream, &snap, &h, &mut out)?;
            Some((h, done))
        }) else {
            stream.unread(&buf[at..]);
            return Next::Handoff;
        };
        let written = stream.write_answer(&out).await;
        done.finish(&h, written.is_ok());
        if written.is_err() {
            return Next::Close;
        }
        answered = true;
        at += len;
        if at < buf.len() {
            stream.next_head(buf.len() - at);
        }
    }
}

/// The request in `req`, if the fast path may answer it.
fn head<'b>(req: &httparse::Request<'_, 'b>) -> Option<Head<'b>> {
    let head = match req.method? {
        "GET" => false,
        "HEAD" => true,
        _ => return None,
    };
    if req.version? != 1 {
        return None;
    }
    let target = req.path?;
    if !target.starts_with('/') || target.contains('#') {
        return None;
    }
    let mut headers = http::HeaderMap::with_capacity(req.headers.len());
    let mut host = None;
    for f in req.headers.iter() {
        let name = header::HeaderName::from_bytes(f.name.as_bytes()).ok()?;
        let value = header::HeaderValue::from_bytes(f.value).ok()?;
        match name {
            header::HOST => {
                if host.is_some() {
                    return None;
                }
                host = Some(std::str::from_utf8(f.value).ok()?);
            }
            header::CONTENT_LENGTH
            | header::TRANSFER_ENCODING
            | header::EXPECT
            | header::UPGRADE => return None,
            header::CONNECTION if !f.value.trim_ascii().eq_ignore_ascii_case(b"keep-alive") => {
                return None
            }
            _ => {}
        }
        headers.append(name, value);
    }
    let host = host.filter(|h| plain_host(h.as_bytes()))?;
    Some(Head {
        head,
        target,
        host,
        headers,
    })
}

/// A host name, with a port or without: letters, digits, `-` and `.`,
/// then `:` and digits. (An IPv6 literal, userinfo or anything unusual
/// goes to Pingora, which checks it.)
fn plain_host(h: &[u8]) -> bool {
    let (name, port) = match h.iter().position(|&b| b == b':') {
        Some(i) => (&h[..i], Some(&h[i + 1..])),
        None => (h, None),
    };
    !name.is_empty()
        && name
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'))
        && port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.iter().all(u8::is_ascii_digit))
}

/// What is recorded of an answered request once it is written.
struct Answered<'s> {
    routed: Routed<'s>,
    started: std::time::Instant,
    scheme: Scheme,
    client: Option<std::net::IpAddr>,
    bytes: usize,
    status: u16,
    /// Whether the access log was on when the request arrived.
    logged: bool,
}

impl Answered<'_> {
    /// The request's duration and its access-log line, as `FrontProxy`'s
    /// `logging` records them; `written` is false when the client left
    /// before the answer was written (logged as 499, as nginx does).
    fn finish(&self, h: &Head<'_>, written: bool) {
        let duration = self.started.elapsed();
        if crate::metrics::enabled() {
            crate::metrics::duration_of(self.routed.outcome.as_str())
                .observe(duration.as_secs_f64());
        }
        let log = access_log();
        if !self.logged || !log.enabled() {
            return;
        }
        let Action::Redirect(reply) = &self.routed.action else {
            return;
        };
        let field = |name| h.headers.get(name).map(|v| v.as_bytes());
        log.log(&Entry {
            client: self.client,
            method: Some(if h.head { "HEAD" } else { "GET" }),
            scheme: self.scheme,
            host: Some(h.host.as_bytes()),
            target: h.target.as_bytes(),
            protocol: "HTTP/1.1",
            status: if written { self.status } else { 499 },
            bytes: if written { self.bytes } else { 0 },
            duration,
            outcome: self.routed.outcome.as_str(),
            rule: reply.rule.as_ref().map(|r| r.id()),
            location: Some(&reply.location),
            backend: None,
            upstream_status: None,
            user_agent: field(header::USER_AGENT),
            referer: field(header::REFERER),
        });
    }
}

/// Renders the answer to `h` into `out`, if the fast path gives it: a
/// rule's redirect.
fn answer<'s>(
    stream: &GuardedStream,
    snap: &'s Snapshot,
    h: &Head<'_>,
    out: &mut Vec<u8>,
) -> Option<Answered<'s>> {
    // Pingora's URI for the target: path and query as it reads them.
    let uri = http::uri::PathAndQuery::try_from(h.target).ok()?;
    if uri.as_str() != h.target {
        return None;
    }
    let tls = stream.is_tls();
    let peer = stream.peer();
    let (scheme, client) = if tls {
        let (_, client) = forwarded(peer, &h.headers, &snap.trusted_proxies, Scheme::Https);
        (Scheme::Https, client)
    } else {
        forwarded(peer, &h.headers, &snap.trusted_proxies, Scheme::Http)
    };
    let logged = access_log().enabled();
    let now = crate::unix_now();
    let method = if h.head { "HEAD" } else { "GET" };
    let view = RequestView::new(
        method,
        scheme,
        Some(h.host),
        uri.path().as_bytes(),
        uri.query().map(str::as_bytes),
    )
    .from_client(client)
    .with_headers(&h.headers)
    .at(now);
    let Decision::Redirect(r) = snap.rules.decide(&view) else {
        return None;
    };
    // Fields Pingora would reorder (a repeated name) or replace (`Date`).
    let fields = r.headers;
    for (i, (k, _)) in fields.iter().enumerate() {
        if k.eq_ignore_ascii_case("date")
            || fields[..i].iter().any(|(e, _)| e.eq_ignore_ascii_case(k))
        {
            return None;
        }
    }
    let reply = Reply::of_rule(snap, r);
    let hsts = snap
        .tls
        .as_ref()
        .and_then(|t| t.hsts.as_ref())
        .filter(|_| tls);
    let body = crate::location::html_body(reply.status, &reply.location);
    render(out, &reply, hsts, &body, h.head);
    let status = reply.status;
    let routed = Routed {
        action: Action::Redirect(reply),
        outcome: Outcome::Redirect,
    };
    routed.record(snap, now);
    if crate::metrics::enabled() {
        crate::metrics::metrics().fast_path.inc();
    }
    Some(Answered {
        routed,
        started: stream.head_started(),
        scheme,
        client,
        bytes: if h.head { 0 } else { body.len() },
        status,
        logged,
    })
}

/// The bytes Pingora writes for the same redirect (`response::write_redirect`
/// through its HTTP/1 session): status line, `Location`, `Content-Type`,
/// `Cache-Control`, `Retry-After`, the rule's fields, HSTS,
/// `Content-Length`, `Date`, `Connection`, then the body but for `HEAD`.
fn render(
    out: &mut Vec<u8>,
    r: &Reply<'_>,
    hsts: Option<&http::HeaderValue>,
    body: &str,
    head: bool,
) {
    out.clear();
    let reason = http::StatusCode::from_u16(r.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let mut num = itoa::Buffer::new();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(num.format(r.status).as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    let mut field = |name: &[u8], value: &[u8]| {
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
    };
    field(b"Location", r.location.as_bytes());
    field(b"Content-Type", b"text/html; charset=utf-8");
    field(b"Cache-Control", r.cache_control.as_bytes());
    if let Some(s) = r.retry_after {
        field(b"Retry-After", num.format(s).as_bytes());
    }
    for (k, v) in r.headers {
        field(k.as_bytes(), v.as_bytes());
    }
    if let Some(v) = hsts {
        field(b"Strict-Transport-Security", v.as_bytes());
    }
    field(b"Content-Length", num.format(body.len()).as_bytes());
    field(
        b"Date",
        pingora::protocols::http::date::get_cached_date().as_bytes(),
    );
    field(b"Connection", b"keep-alive");
    out.extend_from_slice(b"\r\n\r\n");
    if !head {
        out.extend_from_slice(body.as_bytes());
    }
}
