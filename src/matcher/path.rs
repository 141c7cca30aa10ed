//! Path normalisation (docs/configuration.md, "Path"): dot segments, raw
//! and percent-encoded, are resolved as RFC 3986 §5.2.4 says (climbing above
//! the root is an error), and a comparison *key* is derived in which
//! percent-encoded unreserved characters are decoded and every other escape
//! has upper-case hex digits (RFC 3986 §6.2.2). The resolved path keeps the
//! request's bytes exactly: it is what a Location copies. The key is only
//! ever compared, never sent.
//!
//! Escapes are written with `percent-encoding` (the one table, shared with
//! the Location builder); the key's selective decoding is done here, since
//! it decodes unreserved characters only and must map key offsets back to
//! path offsets ([`key_offset_to_path`]), which a general decoder does not.

use std::borrow::Cow;

/// A path that resolves above the root (`/..`, `/a/../..`, `/%2e%2e`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AboveRoot;

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Appends `%XX` (upper-case hex) for `b`.
pub(crate) fn push_escaped(out: &mut String, b: u8) {
    out.push_str(percent_encoding::percent_encode_byte(b));
}

/// Bytes that never appear raw in a key, nor in request bytes copied into a
/// Location (they are percent-encoded): control bytes, space, DEL, bytes ≥
/// 0x80, `\`, `#` and the characters RFC 3986 leaves out of URLs.
pub(crate) fn needs_escape(b: u8) -> bool {
    ESCAPED[b as usize]
}

/// [`needs_escape`] as a table: one load per byte on the request path.
static ESCAPED: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = b <= b' ' as usize
            || b >= 0x7f
            || matches!(
                b as u8,
                b'"' | b'<' | b'>' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}' | b'#'
            );
        b += 1;
    }
    t
};

/// 0: not a dot segment, 1: `.`, 2: `..` (either possibly as `%2e`).
fn dot_segment(seg: &[u8]) -> u8 {
    if seg.is_empty() || seg.len() > 6 {
        return 0;
    }
    let mut dots = 0u8;
    let mut i = 0;
    while i < seg.len() {
        if seg[i] == b'.' {
            i += 1;
        } else if seg[i] == b'%'
            && seg.len() >= i + 3
            && seg[i + 1] == b'2'
            && (seg[i + 2] | 0x20) == b'e'
        {
            i += 3;
        } else {
            return 0;
        }
        dots += 1;
    }
    if dots <= 2 {
        dots
    } else {
        0
    }
}

/// Whether a segment of `body` (the path after its first `/`) is `.` or
/// `..`, raw or encoded. Only segments that start with `.` or `%` are looked
/// at, so a path without them costs one scan for `/`.
fn has_dot_segment(body: &[u8]) -> bool {
    let mut start = 0;
    loop {
        let end = body[start..]
            .iter()
            .position(|b| *b == b'/')
            .map_or(body.len(), |i| start + i);
        let seg = &body[start..end];
        if matches!(seg.first(), Some(b'.' | b'%')) && dot_segment(seg) != 0 {
            return true;
        }
        if end == body.len() {
            return false;
        }
        start = end + 1;
    }
}

/// Resolves `.` and `..` segments. `path` should start with `/`; one that does
/// not is treated as if it did.
pub fn remove_dot_segments(path: &[u8]) -> Result<Cow<'_, [u8]>, AboveRoot> {
    let body = path.strip_prefix(b"/").unwrap_or(path);
    if !has_dot_segment(body) {
        if path.first() == Some(&b'/') {
            return Ok(Cow::Borrowed(path));
        }
        let mut v = Vec::with_capacity(path.len() + 1);
        v.push(b'/');
        v.extend_from_slice(path);
        return Ok(Cow::Owned(v));
    }
    let segs: Vec<&[u8]> = body.split(|b| *b == b'/').collect();
    let last = segs.len() - 1;
    let mut out: Vec<&[u8]> = Vec::with_capacity(segs.len());
    for (i, seg) in segs.iter().enumerate() {
        match dot_segment(seg) {
            1 => {
                if i == last {
                    out.push(b"");
                }
            }
            2 => {
                if out.pop().is_none() {
                    return Err(AboveRoot);
                }
                if i == last {
                    out.push(b"");
                }
            }
            _ => out.push(seg),
        }
    }
    let mut v = Vec::with_capacity(path.len());
    for seg in out {
        v.push(b'/');
        v.extend_from_slice(seg);
    }
    if v.is_empty() {
        v.push(b'/');
    }
    Ok(Cow::Owned(v))
}

/// The comparison key of a (dot-resolved) path: always ASCII.
pub fn key(path: &[u8]) -> Cow<'_, str> {
    if !path.iter().any(|b| *b == b'%' || needs_escape(*b)) {
        // Only ASCII without escapes is left, so this cannot fail.
        if let Ok(s) = std::str::from_utf8(path) {
            return Cow::Borrowed(s);
        }
    }
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < path.len() {
        let b = path[i];
        if b == b'%' {
            if let (Some(h), Some(l)) = (
                path.get(i + 1).and_then(|x| hex(*x)),
                path.get(i + 2).and_then(|x| hex(*x)),
            ) {
                let d = h * 16 + l;
                if is_unreserved(d) {
                    out.push(d as char);
                } else {
                    push_escaped(&mut out, d);
                }
                i += 3;
                continue;
            }
            out.push_str("%25");
        } else if needs_escape(b) {
            push_escaped(&mut out, b);
        } else {
            out.push(b as char);
        }
        i += 1;
    }
    Cow::Owned(out)
}

/// Lower-cases a key for case-insensitive rules, leaving the hex digits of
/// escapes upper case so `%2F` stays `%2F`.
pub fn lower_key(key: &str) -> Cow<'_, str> {
    if !key.bytes().any(|b| b.is_ascii_uppercase()) {
        return Cow::Borrowed(key);
    }
    let b = key.as_bytes();
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push_str(&key[i..i + 3]);
            i += 3;
        } else {
            out.push(b[i].to_ascii_lowercase() as char);
            i += 1;
        }
    }
    Cow::Owned(out)
}

/// Offset in `path` of the byte at `key_off` in `key(path)`: escapes of
/// unreserved characters are one key byte but three path bytes.
pub fn key_offset_to_path(path: &[u8], key_off: usize) -> usize {
    let (mut p, mut k) = (0, 0);
    while k < key_off && p < path.len() {
        let b = path[p];
        if b == b'%' {
            let valid = path
                .get(p + 1)
                .and_then(|x| hex(*x))
                .zip(path.get(p + 2).and_then(|x| hex(*x)));
            match valid {
                Some((h, l)) if is_unreserved(h * 16 + l) => k += 1,
                Some(_) => k += 3,
                None => k += 3,
            }
            p += if valid.is_some() { 3 } else { 1 };
        } else {
            k += if needs_escape(b) { 3 } else { 1 };
            p += 1;
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rd(p: &str) -> Result<String, AboveRoot> {
        remove_dot_segments(p.as_bytes()).map(|c| String::from_utf8(c.into_owned()).unwrap())
    }

    #[test]
    fn resolves_dot_segments_raw_and_encoded() {
        assert_eq!(rd("/a/b/../c").unwrap(), "/a/c");
        assert_eq!(rd("/a/./b").unwrap(), "/a/b");
        assert_eq!(rd("/a/b/..").unwrap(), "/a/");
        assert_eq!(rd("/a/%2e%2E/b").unwrap(), "/b");
        assert_eq!(rd("/a/.%2e/b").unwrap(), "/b");
        assert_eq!(rd("/a/%2e/b").unwrap(), "/a/b");
        assert_eq!(rd("/a/...").unwrap(), "/a/...");
        assert_eq!(rd("/a/..b").unwrap(), "/a/..b");
        assert_eq!(rd("/").unwrap(), "/");
        assert_eq!(rd("/a/..").unwrap(), "/");
    }

    #[test]
    fn climbing_above_root_is_an_error() {
        assert_eq!(rd("/.."), Err(AboveRoot));
        assert_eq!(rd("/a/../.."), Err(AboveRoot));
        assert_eq!(rd("/%2e%2e/x"), Err(AboveRoot));
    }

    #[test]
    fn key_decodes_unreserved_and_upper_cases_hex() {
        assert_eq!(key(b"/%64ocs/%7e%2f%2F"), "/docs/~%2F%2F");
        assert_eq!(key(b"/caf\xc3\xa9 x"), "/caf%C3%A9%20x");
        assert_eq!(key(b"/a%zz"), "/a%25zz");
        assert!(matches!(key(b"/plain/path"), Cow::Borrowed(_)));
    }

    #[test]
    fn lower_key_keeps_escape_hex_upper() {
        assert_eq!(lower_key("/Docs/%2F%C3%A9X"), "/docs/%2F%C3%A9x");
    }

    #[test]
    fn key_offsets_map_back_to_the_path() {
        let path = b"/%64ocs/a%2fb";
        let k = key(path);
        assert_eq!(k, "/docs/a%2Fb");
        assert_eq!(key_offset_to_path(path, 5), 7); // the '/' after "docs"
        assert_eq!(key_offset_to_path(path, k.len()), path.len());
    }
}
