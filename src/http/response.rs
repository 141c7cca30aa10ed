//! Every reply the product writes itself, and the one change it makes to
//! the replies it proxies ([`own_response`]).
//!
//! A reply is framed with `Content-Length` and has no body for HEAD, on
//! HTTP/1.1 and HTTP/2. Keep-alive is kept for requests without a body; a
//! small body is drained first and a larger one answered with
//! `Connection: close`, so it is never read as the next request. On HTTP/2
//! a body is read before the answer (within a time bound) and whatever is
//! left after it, so the stream ends cleanly.
//! 400 and 414 close the connection: what follows a request that was not
//! understood is not trusted.

use crate::location;
use crate::route::Action;
use bytes::Bytes;
use http::HeaderValue;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use std::time::Duration;

/// Request bodies up to this size are read and dropped so the connection can
/// be kept; larger (or unsized) ones close it after the response.
pub const DRAIN_LIMIT: u64 = 64 * 1024;
/// How long draining a small body may take.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// An HTTP/2 request body is read and dropped up to this size before the
/// answer and again after it (each within [`DRAIN_TIMEOUT`]), so the stream
/// ends cleanly; a larger one, or one still arriving after that, gets
/// `RST_STREAM(NO_ERROR)`.
pub const H2_DRAIN_LIMIT: usize = 8 * 1024 * 1024;

/// Does the client wait for `100 Continue` before it sends its body?
fn expects_continue(session: &Session) -> bool {
    session
        .req_header()
        .headers
        .get(http::header::EXPECT)
        .is_some()
}

/// The request's `Content-Length`, when it has one that is a number.
fn content_length(session: &Session) -> Option<u64> {
    session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// Reads and drops a small request body so the connection can be kept;
/// returns whether keep-alive is safe.
async fn settle_body(session: &mut Session) -> bool {
    if session.is_http2() {
        // A body of announced size is read before the answer, so the
        // client's upload is over when the answer comes: curl 7.88 stops
        // uploading a stream that was answered early when it follows the
        // redirect (`-L`) and waits forever. What is not read within the
        // time, and a body of unknown length (which may wait for the
        // answer), is read after.
        if !expects_continue(session)
            && content_length(session).is_some_and(|n| n <= H2_DRAIN_LIMIT as u64)
        {
            read_h2_body(session).await;
        }
        return true;
    }
    if session.is_body_empty() {
        return true;
    }
    // A client waiting for `100 Continue` has not sent its body: answer now
    // and close rather than wait for bytes that will not come.
    if expects_continue(session) {
        return false;
    }
    match content_length(session) {
        Some(n) if n <= DRAIN_LIMIT => {
            session.set_total_drain_timeout(Some(DRAIN_TIMEOUT));
            session.drain_request_body().await.is_ok()
        }
        _ => false,
    }
}

async fn finish_response(
    session: &mut Session,
    mut resp: ResponseHeader,
    body: Bytes,
    hsts: Option<&HeaderValue>,
) -> pingora::Result<()> {
    if let Some(v) = hsts {
        resp.insert_header("Strict-Transport-Security", v.clone())?;
    }
    let keep = settle_body(session).await;
    if !keep {
        session.set_keepalive(None);
    }
    resp.set_content_length(body.len())?;
    let head = session.req_header().method == http::Method::HEAD;
    session.write_response_header(Box::new(resp), head).await?;
    if !head {
        session.write_response_body(Some(body), true).await?;
    }
    drain_h2_after_answer(session).await;
    Ok(())
}

/// After an HTTP/2 answer, reads the rest of the request body (bounded by
/// [`H2_DRAIN_LIMIT`] and [`DRAIN_TIMEOUT`]) so the stream ends with both
/// sides closed. RFC 9113 §8.1 also allows `RST_STREAM(NO_ERROR)` instead,
/// which is what a larger or slower body gets; but clients that are still
/// sending take that reset as an error (curl 7.88 reports "Stream error in
/// the HTTP/2 framing layer" and no response), so a body of ordinary size is
/// read to its end.
async fn drain_h2_after_answer(session: &mut Session) {
    if !session.is_http2() || expects_continue(session) {
        return;
    }
    read_h2_body(session).await;
}

/// Reads and drops the rest of an HTTP/2 request body, up to
/// [`H2_DRAIN_LIMIT`] and for at most [`DRAIN_TIMEOUT`].
async fn read_h2_body(session: &mut Session) {
    let down = session.as_downstream_mut();
    if down.is_body_done() {
        return;
    }
    let drain = async {
        let mut read = 0usize;
        while let Ok(Some(chunk)) = down.read_request_body().await {
            read += chunk.len();
            if read > H2_DRAIN_LIMIT {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, drain).await;
}

/// Writes a redirect: `Location`, `Content-Type`, `Cache-Control`,
/// `Retry-After` when set, the rule's headers, and a short HTML body.
pub async fn write_redirect(
    session: &mut Session,
    status: u16,
    location: &str,
    cache_control: HeaderValue,
    retry_after: Option<u32>,
    headers: &[(Box<str>, Box<str>)],
    hsts: Option<&HeaderValue>,
) -> pingora::Result<()> {
    let body = location::html_body(status, location);
    let mut resp = ResponseHeader::build(status, Some(7 + headers.len()))?;
    resp.insert_header("Location", location)?;
    resp.insert_header(
        "Content-Type",
        HeaderValue::from_static("text/html; charset=utf-8"),
    )?;
    resp.insert_header("Cache-Control", cache_control)?;
    if let Some(s) = retry_after {
        resp.insert_header("Retry-After", s.to_string())?;
    }
    for (k, v) in headers {
        resp.append_header(k.to_string(), v.as_ref())?;
    }
    finish_response(session, resp, Bytes::from(body), hsts).await
}

/// Writes a short plain-text error (400, 404, 414, 502, 503) with its reason.
pub async fn write_error(
    session: &mut Session,
    status: u16,
    reason: &str,
    hsts: Option<&HeaderValue>,
) -> pingora::Result<()> {
    let mut resp = ResponseHeader::build(status, Some(5))?;
    resp.insert_header("Content-Type", "text/plain; charset=utf-8")?;
    resp.insert_header("Cache-Control", "no-store")?;
    let title = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let body = format!("{status} {title}: {reason}\n");
    if status == 400 || status == 414 {
        // The request was not understood: do not trust what follows it.
        session.set_keepalive(None);
    }
    finish_response(session, resp, Bytes::from(body), hsts).await
}

/// 503 with `Retry-After`: a pool has no healthy target.
pub async fn write_unavailable(
    session: &mut Session,
    retry_after: u32,
    hsts: Option<&HeaderValue>,
) -> pingora::Result<()> {
    let mut resp = ResponseHeader::build(503, Some(5))?;
    resp.insert_header("Content-Type", "text/plain; charset=utf-8")?;
    resp.insert_header("Cache-Control", "no-store")?;
    resp.insert_header("Retry-After", retry_after.to_string())?;
    finish_response(
        session,
        resp,
        Bytes::from_static(b"503 Service Unavailable: no healthy target\n"),
        hsts,
    )
    .await
}

/// Writes the reply of `action` (everything but [`Action::Proxy`], which
/// writes nothing here), with `hsts` as `Strict-Transport-Security` when
/// given (on TLS connections only, SPEC §10).
pub async fn write(
    session: &mut Session,
    action: &Action<'_>,
    hsts: Option<&HeaderValue>,
) -> pingora::Result<()> {
    match action {
        Action::Redirect(r) => {
            write_redirect(
                session,
                r.status,
                &r.location,
                r.cache_control.clone(),
                r.retry_after,
                r.headers,
                hsts,
            )
            .await
        }
        Action::Unavailable { retry_after, .. } => {
            write_unavailable(session, *retry_after, hsts).await
        }
        Action::Bad { status, reason } => write_error(session, *status, reason, hsts).await,
        Action::NoBackend(reason) => write_error(session, 502, reason, hsts).await,
        Action::NotFound => write_error(session, 404, "no rule matches this URL", hsts).await,
        Action::Proxy(_) => Ok(()),
    }
}

/// The `Strict-Transport-Security` value for a response to `session`: the
/// snapshot's `[tls] hsts` on a TLS connection, else nothing (RFC 6797 §7.2:
/// never over plain HTTP).
pub fn hsts_for<'s>(
    session: &Session,
    snap: &'s crate::snapshot::Snapshot,
) -> Option<&'s HeaderValue> {
    snap.tls
        .as_ref()
        .and_then(|t| t.hsts.as_ref())
        .filter(|_| crate::tls::is_tls(session))
}

/// Makes a backend's response this proxy's own before it goes to a client
/// that asked with `version`:
///
/// * An intermediary sends its own HTTP version (RFC 9110 §6.2): a backend's
///   `HTTP/1.0 200 OK` reaches an HTTP/1.x client as `HTTP/1.1 200 OK`.
/// * Hop-by-hop fields are the backend's business with us, not the client's
///   (RFC 9110 §7.6.1): `Keep-Alive`, `Proxy-Connection` and every field the
///   backend's `Connection` names are removed (Pingora writes the client's
///   own `Connection`). A `101` keeps its upgrade fields.
/// * An HTTP/1.0 client cannot read chunked framing, which Pingora chooses
///   for a body of unknown length (a close-delimited HTTP/1.0 backend's, or
///   a chunked one's): without `Transfer-Encoding` that body is sent as is
///   and ends with the connection, as HTTP/1.0 frames it. An HTTP/1.1 client
///   keeps its chunked body and its keep-alive connection.
pub fn own_response(version: http::Version, resp: &mut ResponseHeader) {
    if version == http::Version::HTTP_2 || resp.status == http::StatusCode::SWITCHING_PROTOCOLS {
        return;
    }
    resp.set_version(http::Version::HTTP_11);
    let nominated: Vec<http::HeaderName> = resp
        .headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| http::HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .filter(|n| {
            !matches!(
                *n,
                http::header::CONNECTION
                    | http::header::CONTENT_LENGTH
                    | http::header::TRANSFER_ENCODING
            )
        })
        .collect();
    for name in nominated {
        resp.remove_header(&name);
    }
    resp.remove_header("keep-alive");
    resp.remove_header("proxy-connection");
    if version < http::Version::HTTP_11 {
        resp.remove_header(&http::header::TRANSFER_ENCODING);
    }
}
