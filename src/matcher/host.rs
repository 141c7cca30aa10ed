//! Hosts: the `Host` of a request and the `host` of a rule.
//!
//! A request's `Host` (or `:authority`) is normalised for lookup: lower case,
//! no port, no trailing dot, and a strict syntax check so that nothing but a
//! DNS name, an IPv4 address or a bracketed IPv6 address (with at most one
//! numeric port) is ever used ([`normalize_host`]). A rule's `host` is a
//! [`HostPattern`]: an exact name, `*.example.com` or `.example.com`, written
//! in Unicode or ASCII and compared in its IDNA (punycode) form
//! ([`parse_host_pattern`], [`normalize_config_host`], with the `idna` crate).

use std::borrow::Cow;
use std::fmt;

/// Why a Host value was refused (answered with 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostError {
    Empty,
    BadPort,
    BadCharacter,
    BadIpv6,
    EmptyLabel,
    TooLong,
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HostError::Empty => "empty Host",
            HostError::BadPort => "malformed Host: the port must be one number",
            HostError::BadCharacter => "malformed Host: only a DNS name, an IPv4 address or a bracketed IPv6 address is allowed",
            HostError::BadIpv6 => "malformed Host: not an IPv6 address between brackets",
            HostError::EmptyLabel => "malformed Host: empty label",
            HostError::TooLong => "malformed Host: longer than 253 characters",
        })
    }
}

fn valid_port(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 5
        && p.bytes().all(|b| b.is_ascii_digit())
        && p.parse::<u32>().is_ok_and(|n| n <= 65535)
}

/// Normalises a raw Host (or `:authority`) value.
///
/// Returns `Ok(None)` never for a non-empty valid host; an empty value is an
/// error. The result borrows when nothing had to change.
pub fn normalize_host(raw: &str) -> Result<Option<Cow<'_, str>>, HostError> {
    if raw.is_empty() {
        return Err(HostError::Empty);
    }
    if let Some(rest) = raw.strip_prefix('[') {
        let Some(end) = rest.find(']') else {
            return Err(HostError::BadIpv6);
        };
        let (inside, after) = (&rest[..end], &rest[end + 1..]);
        if inside.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(HostError::BadIpv6);
        }
        if !after.is_empty() {
            match after.strip_prefix(':') {
                Some(p) if p.is_empty() || valid_port(p) => {}
                _ => return Err(HostError::BadPort),
            }
        }
        let host = &raw[..end + 2];
        return Ok(Some(if host.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(host.to_ascii_lowercase())
        } else {
            Cow::Borrowed(host)
        }));
    }
    // One pass over the name; the port is checked first, as its error wins.
    let bytes = raw.as_bytes();
    let (name, port) = match bytes.iter().position(|b| *b == b':') {
        Some(i) => (&raw[..i], Some(&raw[i + 1..])),
        None => (raw, None),
    };
    if let Some(p) = port.filter(|p| !p.is_empty()) {
        if !valid_port(p) {
            return Err(HostError::BadPort);
        }
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Err(HostError::Empty);
    }
    if name.len() > 253 {
        return Err(HostError::TooLong);
    }
    let mut upper = false;
    let mut after_dot = true;
    let mut empty_label = false;
    for b in name.bytes() {
        match b {
            b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => after_dot = false,
            b'.' => {
                empty_label |= after_dot;
                after_dot = true;
            }
            b'A'..=b'Z' => {
                upper = true;
                after_dot = false;
            }
            _ => return Err(HostError::BadCharacter),
        }
    }
    if empty_label || after_dot {
        return Err(HostError::EmptyLabel);
    }
    Ok(Some(if upper {
        Cow::Owned(name.to_ascii_lowercase())
    } else {
        Cow::Borrowed(name)
    }))
}

/// A rule's `host`, normalised: lower case, IDNA (punycode), no trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// No `host`: any host.
    Any,
    /// `example.com`: exactly that host.
    Exact(String),
    /// `*.example.com`: any subdomain, not the apex (holds `example.com`).
    Subdomains(String),
    /// `.example.com`: the apex and every subdomain (holds `example.com`).
    ApexAndSubdomains(String),
}

impl HostPattern {
    /// Does `host` (already normalised) fall under this pattern?
    pub fn matches(&self, host: Option<&str>) -> bool {
        match (self, host) {
            (HostPattern::Any, _) => true,
            (_, None) => false,
            (HostPattern::Exact(h), Some(x)) => h == x,
            (HostPattern::Subdomains(s), Some(x)) => is_subdomain(x, s),
            (HostPattern::ApexAndSubdomains(s), Some(x)) => x == s || is_subdomain(x, s),
        }
    }
}

fn is_subdomain(host: &str, suffix: &str) -> bool {
    host.len() > suffix.len() + 1
        && host.ends_with(suffix)
        && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
}

/// Normalises a host name: lower case, IDNA (punycode), no trailing dot.
pub fn normalize_config_host(h: &str) -> Result<String, String> {
    let h = h.strip_suffix('.').unwrap_or(h);
    if h.is_empty() {
        return Err("the host is empty".into());
    }
    if h.starts_with('[') || h.parse::<std::net::Ipv4Addr>().is_ok() {
        return normalize_host(h).map_err(|e| e.to_string()).and_then(|o| {
            o.map(|c| c.into_owned())
                .ok_or_else(|| "the host is empty".to_string())
        });
    }
    if h.contains(':') {
        return Err("a rule's host takes no port".into());
    }
    let plain = h.bytes().all(|b| {
        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.' || b == b'_'
    }) && !h.contains("xn--");
    let ascii = if plain {
        h.to_string()
    } else {
        idna::domain_to_ascii(h).map_err(|_| "not a valid host name (IDNA)".to_string())?
    };
    if ascii.is_empty()
        || ascii.split('.').any(|l| l.is_empty() || l.len() > 63)
        || !ascii
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
    {
        return Err("not a valid host name; write e.g. \"example.com\", \"*.example.com\" or \".example.com\"".into());
    }
    // A URL parser (WHATWG) reads a host whose last label is a number as an
    // IPv4 address: `a.0x1` or `10.1` would not reach the name written.
    let last = ascii.rsplit('.').next().unwrap_or("");
    let hex = last
        .strip_prefix("0x")
        .is_some_and(|d| d.bytes().all(|b| b.is_ascii_hexdigit()));
    if hex || last.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "\"{ascii}\" ends in a number, so browsers read it as an IPv4 address; write an IPv4 address as four decimal numbers (e.g. \"192.0.2.1\")"
        ));
    }
    Ok(ascii)
}

/// Parses a rule's `host`: `example.com`, `*.example.com` or `.example.com`.
pub fn parse_host_pattern(h: &str) -> Result<HostPattern, String> {
    if let Some(rest) = h.strip_prefix("*.") {
        Ok(HostPattern::Subdomains(normalize_config_host(rest)?))
    } else if let Some(rest) = h.strip_prefix('.') {
        Ok(HostPattern::ApexAndSubdomains(normalize_config_host(rest)?))
    } else if h.contains('*') {
        Err("a wildcard is written `*.example.com` (any subdomain) or `.example.com` (apex and subdomains)".into())
    } else {
        Ok(HostPattern::Exact(normalize_config_host(h)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Result<String, HostError> {
        normalize_host(s).map(|h| h.unwrap().into_owned())
    }

    #[test]
    fn lower_cases_and_strips_port_and_trailing_dot() {
        assert_eq!(n("Example.COM:8080").unwrap(), "example.com");
        assert_eq!(n("example.com.").unwrap(), "example.com");
        assert_eq!(n("10.0.0.1:80").unwrap(), "10.0.0.1");
        assert_eq!(n("[::1]:8080").unwrap(), "[::1]");
        assert_eq!(n("[FE80::1]").unwrap(), "[fe80::1]");
    }

    #[test]
    fn refuses_malformed_hosts() {
        assert_eq!(n("example.com:").unwrap(), "example.com");
        for bad in [
            "a@evil",
            "a/evil",
            "a\\evil",
            "evil#a",
            "a?b",
            "a b",
            "a:1:2",
            "a:x",
            "",
            ".",
            "a..b",
            "[::1",
            "[zz]",
            "[::1]x",
            "ex%41mple.com",
            "bücher.de",
            ":80",
        ] {
            assert!(n(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn hosts_normalise_to_punycode_and_lower_case() {
        assert_eq!(
            parse_host_pattern("Bücher.Example."),
            Ok(HostPattern::Exact("xn--bcher-kva.example".into()))
        );
        assert_eq!(
            parse_host_pattern("*.Example.com"),
            Ok(HostPattern::Subdomains("example.com".into()))
        );
        assert_eq!(
            parse_host_pattern(".example.com"),
            Ok(HostPattern::ApexAndSubdomains("example.com".into()))
        );
        assert!(parse_host_pattern("a*.example.com").is_err());
        assert!(parse_host_pattern("example.com:80").is_err());
    }

    #[test]
    fn host_pattern_matching() {
        let sub = HostPattern::Subdomains("example.com".into());
        let all = HostPattern::ApexAndSubdomains("example.com".into());
        assert!(sub.matches(Some("a.example.com")));
        assert!(!sub.matches(Some("example.com")));
        assert!(!sub.matches(Some("aexample.com")));
        assert!(all.matches(Some("example.com")));
        assert!(all.matches(Some("b.a.example.com")));
        assert!(!all.matches(None));
    }
}
