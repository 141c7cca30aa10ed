//! The request as the rules see it: [`RequestView`], with no Pingora type in
//! it, so `serve`, `explain`, the tests and the benchmarks hand the same
//! value to the same functions.
//!
//! Also here, because both `serve` and `explain` need it: what a request's
//! scheme and client address are once `trusted_proxies` are taken into
//! account ([`forwarded`]).

use http::HeaderMap;
use ipnet::IpNet;
use std::net::IpAddr;

/// The request scheme a rule can require.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// One request, borrowed from wherever it came from.
///
/// ```
/// use pingora_redirect::{RequestView, Scheme};
/// let view = RequestView::new("GET", Scheme::Https, Some("old.example"), b"/docs/a", Some(b"v=2"))
///     .at(1_800_000_000);
/// assert_eq!(view.path, b"/docs/a");
/// assert!(view.headers.is_none());
/// ```
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    pub method: &'a str,
    pub scheme: Scheme,
    /// The raw authority / Host value, if the request has one.
    pub host: Option<&'a str>,
    /// The raw path, without the query.
    pub path: &'a [u8],
    /// The raw query, without `?` (`None` when there is no `?`).
    pub query: Option<&'a [u8]>,
    /// The client address (a trusted proxy's word for it, see [`forwarded`]).
    pub client: Option<IpAddr>,
    /// The request's header fields, for what reads them (pool hash keys).
    pub headers: Option<&'a HeaderMap>,
    /// Unix seconds, for time windows.
    pub now: i64,
}

impl<'a> RequestView<'a> {
    /// A request with no client address, no header fields, at time 0.
    pub fn new(
        method: &'a str,
        scheme: Scheme,
        host: Option<&'a str>,
        path: &'a [u8],
        query: Option<&'a [u8]>,
    ) -> Self {
        RequestView {
            method,
            scheme,
            host,
            path,
            query,
            client: None,
            headers: None,
            now: 0,
        }
    }

    /// The same request from `client`.
    pub fn from_client(self, client: Option<IpAddr>) -> Self {
        RequestView { client, ..self }
    }

    /// The same request with these header fields.
    pub fn with_headers(self, headers: &'a HeaderMap) -> Self {
        RequestView {
            headers: Some(headers),
            ..self
        }
    }

    /// The same request at Unix time `now`.
    pub fn at(self, now: i64) -> Self {
        RequestView { now, ..self }
    }

    /// The value of header `name` (its first field), if present.
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers?.get(name).map(|v| v.as_bytes())
    }

    /// Every `Cookie` field of the request.
    pub fn cookies(&self) -> impl Iterator<Item = &'a str> {
        self.headers
            .into_iter()
            .flat_map(|h| h.get_all(http::header::COOKIE).iter())
            .filter_map(|v| v.to_str().ok())
    }
}

/// What a pool with `selection = "hash"`, or a rule's `sample_key`, hashes on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HashKey {
    ClientIp,
    /// A header name, lowercase.
    Header(String),
    Cookie(String),
}

impl std::fmt::Display for HashKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HashKey::ClientIp => f.write_str("client_ip"),
            HashKey::Header(h) => write!(f, "header:{h}"),
            HashKey::Cookie(c) => write!(f, "cookie:{c}"),
        }
    }
}

/// FNV-1a over `parts`, then the SplitMix64 finaliser: a fixed, portable hash.
pub fn stable_hash(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in *part {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The bytes a pool with `selection = "hash"` (or a sampled rule) hashes for `req`: the client
/// address, or the value of a header or a cookie (the client address when
/// the request has no such header or cookie).
pub fn hash_key(key: &HashKey, req: &RequestView<'_>) -> Vec<u8> {
    let ip = || {
        req.client
            .map(|c| c.to_string().into_bytes())
            .unwrap_or_default()
    };
    match key {
        HashKey::ClientIp => ip(),
        HashKey::Header(name) => req.header(name).map(<[u8]>::to_vec).unwrap_or_else(ip),
        HashKey::Cookie(name) => req
            .cookies()
            .flat_map(cookie::Cookie::split_parse)
            .filter_map(Result::ok)
            .find(|c| c.name() == name)
            .map(|c| c.value().as_bytes().to_vec())
            .unwrap_or_else(ip),
    }
}

/// Is `ip` one of `nets`?
fn trusted(ip: Option<IpAddr>, nets: &[IpNet]) -> bool {
    ip.is_some_and(|ip| nets.iter().any(|n| n.contains(&ip)))
}

/// The scheme and client address of a request that arrived over `scheme`
/// from `peer`: a peer in `trusted_proxies` is believed about the original
/// scheme (`X-Forwarded-Proto`, its first value) and the client (the
/// right-most `X-Forwarded-For` address that is not a trusted proxy).
/// Anyone else is taken at the connection's word.
pub fn forwarded(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    trusted_proxies: &[IpNet],
    scheme: Scheme,
) -> (Scheme, Option<IpAddr>) {
    if trusted_proxies.is_empty() || !trusted(peer, trusted_proxies) {
        return (scheme, peer);
    }
    let mut scheme = scheme;
    if let Some(p) = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
    {
        match p
            .split(',')
            .next()
            .map(|s| s.trim().to_ascii_lowercase())
            .as_deref()
        {
            Some("https") => scheme = Scheme::Https,
            Some("http") => scheme = Scheme::Http,
            _ => {}
        }
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let client = forwarded
        .iter()
        .rev()
        .find(|ip| !trusted(Some(**ip), trusted_proxies))
        .copied()
        .or(peer);
    (scheme, client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_trusted_peers_are_believed() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        h.insert("x-forwarded-for", "203.0.113.9, 10.0.0.2".parse().unwrap());
        let nets: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(
            forwarded(Some(proxy), &h, &nets, Scheme::Http),
            (Scheme::Https, Some("203.0.113.9".parse().unwrap()))
        );
        assert_eq!(
            forwarded(Some(other), &h, &nets, Scheme::Http),
            (Scheme::Http, Some(other))
        );
        assert_eq!(
            forwarded(Some(proxy), &h, &[], Scheme::Http),
            (Scheme::Http, Some(proxy))
        );
    }
}
