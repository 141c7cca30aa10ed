//! Host normalisation (SPEC §4, §6): lower case, no port, no trailing dot, and
//! a strict syntax check so that nothing but a DNS name, an IPv4 address or a
//! bracketed IPv6 address (with at most one numeric port) is ever used.

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
    let (name, port) = match raw.split_once(':') {
        Some((n, p)) => (n, Some(p)),
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
    for b in name.bytes() {
        match b {
            b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {}
            b'A'..=b'Z' => upper = true,
            _ => return Err(HostError::BadCharacter),
        }
    }
    if name.split('.').any(str::is_empty) {
        return Err(HostError::EmptyLabel);
    }
    Ok(Some(if upper {
        Cow::Owned(name.to_ascii_lowercase())
    } else {
        Cow::Borrowed(name)
    }))
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
}
