//! From a Pingora `Session` to a [`RequestView`]: the host (an HTTP/1
//! absolute-form authority, the HTTP/2 `:authority`, else `Host`), the
//! scheme and client address (a trusted proxy's word for them, see
//! [`forwarded`]), and the 400s for what cannot be read (no `Host` on
//! HTTP/1.1, two `Host` fields, a `Host` that is not ASCII).

use crate::request::{forwarded, RequestView, Scheme};
use ipnet::IpNet;
use pingora::proxy::Session;
use std::borrow::Cow;
use std::net::IpAddr;

/// The parts of a request that are not plain fields of its head.
pub struct Parts<'a> {
    pub host: Option<Cow<'a, str>>,
    pub scheme: Scheme,
    pub client: Option<IpAddr>,
}

/// The authority of an HTTP/1 absolute-form target (`GET http://host/path`),
/// which Pingora leaves out of the parsed URI: the text between `://` and
/// the path, checked by `http::uri::Authority`.
fn absolute_form_authority(raw: &[u8]) -> Option<&str> {
    let at = raw.windows(3).position(|w| w == b"://")?;
    let scheme = &raw[..at];
    if !scheme.eq_ignore_ascii_case(b"http") && !scheme.eq_ignore_ascii_case(b"https") {
        return None;
    }
    let rest = &raw[at + 3..];
    let end = rest
        .iter()
        .position(|b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    let authority = std::str::from_utf8(&rest[..end]).ok()?;
    http::uri::Authority::try_from(authority).ok()?;
    Some(authority)
}

/// Reads the host, scheme and client of the request in `session`; `Err` is
/// the reason for a 400.
pub fn parts<'a>(session: &'a Session, trusted_proxies: &[IpNet]) -> Result<Parts<'a>, String> {
    let req = session.req_header();
    let peer = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip());
    let mut hosts = req.headers.get_all(http::header::HOST).iter();
    let first_host = hosts.next();
    if hosts.next().is_some() {
        return Err("more than one Host header".into());
    }
    let authority = match req.uri.authority() {
        Some(a) => Some(a.as_str()),
        None if req.raw_path().first() != Some(&b'/') => absolute_form_authority(req.raw_path()),
        None => None,
    };
    let host = match authority {
        Some(a) => Some(Cow::Borrowed(a)),
        None => match first_host {
            Some(h) => Some(Cow::Borrowed(
                h.to_str()
                    .map_err(|_| "malformed Host: not ASCII".to_string())?,
            )),
            None if req.version == http::Version::HTTP_10
                || req.version == http::Version::HTTP_09 =>
            {
                None
            }
            None => return Err("the request has no Host".into()),
        },
    };
    // A TLS connection is https whatever a proxy says; on a plain one a
    // trusted proxy's X-Forwarded-Proto wins (SPEC §10).
    let (scheme, client) = if crate::tls::is_tls(session) {
        let (_, client) = forwarded(peer, &req.headers, trusted_proxies, Scheme::Https);
        (Scheme::Https, client)
    } else {
        forwarded(peer, &req.headers, trusted_proxies, Scheme::Http)
    };
    Ok(Parts {
        host,
        scheme,
        client,
    })
}

/// The view of the request in `session`, with `parts` read from it.
pub fn view<'a>(session: &'a Session, parts: &'a Parts<'a>, now: i64) -> RequestView<'a> {
    let req = session.req_header();
    RequestView::new(
        req.method.as_str(),
        parts.scheme,
        parts.host.as_deref(),
        req.uri.path().as_bytes(),
        req.uri.query().map(str::as_bytes),
    )
    .from_client(parts.client)
    .with_headers(&req.headers)
    .at(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_form_authority_is_the_text_after_the_scheme() {
        assert_eq!(
            absolute_form_authority(b"http://Old.Example:8080/a?b"),
            Some("Old.Example:8080")
        );
        assert_eq!(
            absolute_form_authority(b"HTTPS://a.example"),
            Some("a.example")
        );
        assert_eq!(absolute_form_authority(b"ftp://a.example/"), None);
        assert_eq!(absolute_form_authority(b"http://a b/"), None);
    }
}
