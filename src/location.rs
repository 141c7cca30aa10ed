//! Building the `Location` of a redirect, and the checks that keep it safe.
//!
//! A rule's `to` is parsed once at load into a [`Target`]: scheme and authority
//! fixed by the configuration (or `${host}` of a configured host pattern),
//! literal text already percent-encoded, and variables (`${host}`, `${path}`,
//! `${1}`, `${name}`) resolved to pieces. At request time [`assemble`] joins
//! the target, the suffix a prefix rule keeps and the query, copying request
//! bytes through [`push_encoded`], which keeps valid escapes byte for byte and
//! encodes every byte that may not appear raw (docs/security.md,
//! "Invariants"): control bytes, space, backslash, bytes ≥ 0x80, and a few
//! delimiters. A relative result never starts with `//`.
//!
//! `to` is split here rather than by `http::Uri` or `url`: it is a template
//! (`${host}` may stand in the authority, `${1}` anywhere), which neither
//! parses, and `url` would also normalise what must stay as written. The
//! host is checked by [`normalize_config_host`] and the bytes are escaped
//! with the one table of `matcher::path` (the `percent-encoding` crate).

use crate::matcher::host::normalize_config_host;
use crate::matcher::path::{needs_escape, push_escaped};

fn is_hex(b: u8) -> bool {
    b.is_ascii_hexdigit()
}

/// Where in the URL bytes are copied to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Path,
    Query,
}

/// Appends `bytes` to `out`, keeping valid `%XX` escapes as they are and
/// percent-encoding everything that must not appear raw. In a path part a raw
/// `?` is encoded too, so copied path bytes cannot start a query.
pub fn push_encoded(out: &mut String, bytes: &[u8], part: Part) {
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            if i + 2 < bytes.len() && is_hex(bytes[i + 1]) && is_hex(bytes[i + 2]) {
                out.push('%');
                out.push(bytes[i + 1] as char);
                out.push(bytes[i + 2] as char);
                i += 3;
                continue;
            }
            out.push_str("%25");
        } else if needs_escape(b) || (part == Part::Path && b == b'?') {
            push_escaped(out, b);
        } else {
            out.push(b as char);
        }
        i += 1;
    }
}

/// One piece of a target template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Literal text, already encoded.
    Lit(String),
    /// `${host}`: the normalised request host.
    Host,
    /// `${path}`: the request path (dot segments resolved).
    Path,
    /// `${1}` or `${name}`: a regex group, by index.
    Group(usize),
}

/// A parsed `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `http(s)://…` rather than `/…`.
    pub absolute: bool,
    /// Scheme, authority and path.
    pub path: Vec<Piece>,
    /// After `?` (`Some(empty)` for a bare `?`).
    pub query: Option<Vec<Piece>>,
    /// After `#`.
    pub fragment: Option<Vec<Piece>>,
}

/// A target refused at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetError {
    /// `bad_target` or `bad_capture`.
    pub code: &'static str,
    pub message: String,
}

fn err(code: &'static str, message: impl Into<String>) -> TargetError {
    TargetError {
        code,
        message: message.into(),
    }
}

/// How `${name}` variables resolve: the named and numbered groups a regex has.
pub trait Groups {
    /// The index of group `name` (a number or a name), if it exists.
    fn index(&self, name: &str) -> Option<usize>;
}

/// No groups at all (exact and prefix rules, pools).
pub struct NoGroups;

impl Groups for NoGroups {
    fn index(&self, _: &str) -> Option<usize> {
        None
    }
}

impl Groups for regex_automata::meta::Regex {
    fn index(&self, name: &str) -> Option<usize> {
        crate::matcher::regex_tier::group_index(self, name)
    }
}

/// Splits a template into literal text and variables.
fn tokenize(s: &str) -> Result<Vec<(bool, &str)>, TargetError> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        if i > 0 {
            out.push((false, &rest[..i]));
        }
        let after = &rest[i + 2..];
        let Some(end) = after.find('}') else {
            return Err(err(
                "bad_target",
                "`${` is not closed by `}`; write `${1}`, `${name}`, `${host}` or `${path}`",
            ));
        };
        let name = &after[..end];
        let ok = !name.is_empty()
            && (name.bytes().all(|b| b.is_ascii_digit())
                || (name.as_bytes()[0].is_ascii_alphabetic() || name.as_bytes()[0] == b'_')
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        if !ok {
            return Err(err(
                "bad_target",
                format!("`${{{name}}}` is not a variable name"),
            ));
        }
        out.push((true, name));
        rest = &after[end + 1..];
    }
    if !rest.is_empty() {
        out.push((false, rest));
    }
    Ok(out)
}

fn encode_literal(s: &str, part: Part) -> String {
    let mut out = String::with_capacity(s.len());
    push_encoded(&mut out, s.as_bytes(), part);
    out
}

fn pieces(
    text: &str,
    part: Part,
    groups: &dyn Groups,
    has_host: bool,
) -> Result<Vec<Piece>, TargetError> {
    let mut out = Vec::new();
    for (var, t) in tokenize(text)? {
        if !var {
            out.push(Piece::Lit(encode_literal(t, part)));
            continue;
        }
        out.push(match t {
            "host" if has_host => Piece::Host,
            "host" => return Err(err("bad_capture", "`${host}` needs a rule with `host`; without one it would copy any Host a client sends")),
            "path" => Piece::Path,
            name => match groups.index(name) {
                Some(i) => Piece::Group(i),
                None => {
                    return Err(err(
                        "bad_capture",
                        format!("`${{{name}}}` names no group of the rule's regex; groups are written `(…)` or `(?P<name>…)`"),
                    ))
                }
            },
        });
    }
    Ok(out)
}

/// Checks and normalises an authority (`host[:port]`), which may hold `${host}`.
fn authority(auth: &str, has_host: bool) -> Result<String, TargetError> {
    // Bulk lists repeat the same few target hosts: remember the last one.
    thread_local! {
        static LAST: std::cell::RefCell<(String, String)> = const { std::cell::RefCell::new((String::new(), String::new())) };
    }
    let cached = LAST.with(|l| {
        let l = l.borrow();
        (!l.0.is_empty() && l.0 == auth).then(|| l.1.clone())
    });
    if let Some(c) = cached {
        return Ok(c);
    }
    let out = authority_uncached(auth, has_host)?;
    if !auth.contains("${") {
        LAST.with(|l| *l.borrow_mut() = (auth.to_string(), out.clone()));
    }
    Ok(out)
}

fn authority_uncached(auth: &str, has_host: bool) -> Result<String, TargetError> {
    if auth.is_empty() {
        return Err(err("bad_target", "the URL has no host"));
    }
    if auth.contains('@') {
        return Err(err(
            "bad_target",
            "userinfo (`user@`) is not allowed in a target",
        ));
    }
    let mut probe = auth.to_string();
    if auth.contains("${") {
        for (var, name) in tokenize(auth)? {
            if var && name == "host" {
                if !has_host {
                    return Err(err("bad_capture", "`${host}` needs a rule with `host`; without one it would copy any Host a client sends"));
                }
            } else if var {
                return Err(err(
                    "bad_capture",
                    format!("`${{{name}}}` may not be used in the scheme, host or port of `to`; request text there would make an open redirect"),
                ));
            }
        }
        probe = probe.replace("${host}", "h");
        if !probe.is_ascii() {
            return Err(err(
                "bad_target",
                "a host built with `${host}` must be ASCII",
            ));
        }
    }
    let (host, port) = if probe.starts_with('[') {
        match probe.find(']') {
            Some(i) => (&probe[..=i], probe[i + 1..].strip_prefix(':')),
            None => return Err(err("bad_target", "unclosed `[` in the host")),
        }
    } else {
        match probe.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (probe.as_str(), None),
        }
    };
    if let Some(p) = port {
        if p.is_empty()
            || !p.bytes().all(|b| b.is_ascii_digit())
            || p.parse::<u32>().map_or(true, |n| n > 65535)
        {
            return Err(err(
                "bad_target",
                format!("port \"{p}\" is not a number up to 65535"),
            ));
        }
    }
    let host_norm = normalize_config_host(host)
        .map_err(|e| err("bad_target", format!("host \"{host}\": {e}")))?;
    if auth.contains("${") {
        Ok(auth.to_ascii_lowercase())
    } else {
        Ok(match port {
            Some(p) => format!("{host_norm}:{p}"),
            None => host_norm,
        })
    }
}

/// Parses a rule's `to`.
///
/// `has_host` says whether the rule has a `host` (and may use `${host}`);
/// `groups` resolves `${1}` and `${name}`.
pub fn parse_target(to: &str, has_host: bool, groups: &dyn Groups) -> Result<Target, TargetError> {
    if to.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(err("bad_target", "the target holds a control character"));
    }
    if to.len() > 8192 {
        return Err(err("bad_target", "the target is longer than 8192 bytes"));
    }
    if let Some(i) = to.find("://") {
        if to[..i].contains("${") {
            return Err(err(
                "bad_capture",
                "a variable may not be used in the scheme of `to`; request text there would make an open redirect",
            ));
        }
    }
    let lower = to.get(..8).unwrap_or(to).to_ascii_lowercase();
    let (absolute, head, rest) = if lower.starts_with("https://") {
        (true, "https://", &to[8..])
    } else if lower.starts_with("http://") {
        (true, "http://", &to[7..])
    } else if to.starts_with('/') && !to[1..].starts_with('/') && !to[1..].starts_with('\\') {
        (false, "", to)
    } else {
        return Err(err(
            "bad_target",
            format!("\"{to}\" is neither an absolute http(s) URL nor a path starting with one `/`"),
        ));
    };
    let mut path_pieces = Vec::new();
    let after_auth = if absolute {
        let end = rest
            .find(['/', '?', '#'])
            .map(|i| i.min(rest.find("${path}").unwrap_or(usize::MAX)))
            .unwrap_or_else(|| rest.find("${path}").unwrap_or(rest.len()));
        let auth = authority(&rest[..end], has_host)?;
        path_pieces.push(Piece::Lit(head.to_string()));
        for (var, t) in tokenize(&auth)? {
            path_pieces.push(if var {
                Piece::Host
            } else {
                Piece::Lit(t.to_string())
            });
        }
        &rest[end..]
    } else {
        rest
    };
    let (before_frag, fragment) = match after_auth.split_once('#') {
        Some((a, f)) => (a, Some(f)),
        None => (after_auth, None),
    };
    let (path, query) = match before_frag.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (before_frag, None),
    };
    path_pieces.extend(pieces(path, Part::Path, groups, has_host)?);
    let query = query
        .map(|q| pieces(q, Part::Query, groups, has_host))
        .transpose()?;
    let fragment = fragment
        .map(|f| pieces(f, Part::Query, groups, has_host))
        .transpose()?;
    Ok(Target {
        absolute,
        path: merge_literals(path_pieces),
        query: query.map(merge_literals),
        fragment: fragment.map(merge_literals),
    })
}

fn merge_literals(pieces: Vec<Piece>) -> Vec<Piece> {
    let mut out: Vec<Piece> = Vec::with_capacity(pieces.len());
    for p in pieces {
        match (out.last_mut(), p) {
            (Some(Piece::Lit(a)), Piece::Lit(b)) => a.push_str(&b),
            (_, p) => out.push(p),
        }
    }
    out
}

impl Target {
    /// The whole target when it holds no variable: (path, query, fragment).
    pub fn literal(&self) -> Option<(String, Option<String>, Option<String>)> {
        fn lit(p: &[Piece]) -> Option<String> {
            let mut s = String::new();
            for piece in p {
                match piece {
                    Piece::Lit(l) => s.push_str(l),
                    _ => return None,
                }
            }
            Some(s)
        }
        let path = lit(&self.path)?;
        let query = match &self.query {
            Some(q) => Some(lit(q)?),
            None => None,
        };
        let fragment = match &self.fragment {
            Some(f) => Some(lit(f)?),
            None => None,
        };
        Some((path, query, fragment))
    }
}

impl Target {
    /// Writes the Location of this target for one request: the variables
    /// expanded, then the kept `suffix` and the request `query` joined as
    /// [`assemble`] does.
    pub fn render(
        &self,
        out: &mut String,
        vars: &Vars<'_>,
        suffix: Option<&[u8]>,
        query: Option<&[u8]>,
    ) {
        let part = |pieces: &[Piece], part: Part| {
            let mut s = String::new();
            expand(&mut s, pieces, vars, part);
            s
        };
        // The path goes straight into `out`; a query or fragment of the
        // target (rare) is expanded on the side.
        let start = out.len();
        expand(out, &self.path, vars, Part::Path);
        let tq = self.query.as_deref().map(|q| part(q, Part::Query));
        let tf = self.fragment.as_deref().map(|f| part(f, Part::Query));
        append_rest(
            out,
            start,
            !self.absolute,
            tq.as_deref(),
            tf.as_deref(),
            suffix,
            query,
        );
    }
}

/// What variables expand to for one request.
pub struct Vars<'a> {
    pub host: Option<&'a str>,
    /// The dot-resolved request path.
    pub path: &'a [u8],
    /// Regex groups as byte ranges of `path`.
    pub groups: &'a [Option<(usize, usize)>],
}

/// Expands pieces into `out`.
pub fn expand(out: &mut String, pieces: &[Piece], vars: &Vars<'_>, part: Part) {
    for p in pieces {
        match p {
            Piece::Lit(l) => out.push_str(l),
            Piece::Host => out.push_str(vars.host.unwrap_or("")),
            Piece::Path => push_encoded(out, vars.path, part),
            Piece::Group(i) => {
                if let Some(Some((s, e))) = vars.groups.get(*i) {
                    push_encoded(out, &vars.path[*s..*e], part);
                }
            }
        }
    }
}

/// Joins a target (already expanded) with a kept suffix and the request query.
///
/// `suffix` is appended to the path with exactly one `/` between them;
/// `req_query` (non-empty) is joined with `&` to the target's own query and
/// placed before the fragment. A relative result never starts with `//`.
#[allow(clippy::too_many_arguments)]
pub fn assemble(
    out: &mut String,
    relative: bool,
    path: &str,
    target_query: Option<&str>,
    fragment: Option<&str>,
    suffix: Option<&[u8]>,
    req_query: Option<&[u8]>,
) {
    let start = out.len();
    out.push_str(path);
    append_rest(
        out,
        start,
        relative,
        target_query,
        fragment,
        suffix,
        req_query,
    );
}

/// [`assemble`] once the target's path is in `out` from `start` on.
fn append_rest(
    out: &mut String,
    start: usize,
    relative: bool,
    target_query: Option<&str>,
    fragment: Option<&str>,
    suffix: Option<&[u8]>,
    req_query: Option<&[u8]>,
) {
    if let Some(rest) = suffix.filter(|s| !s.is_empty()) {
        let slash = out[start..].ends_with('/');
        let rest = if slash && rest[0] == b'/' {
            &rest[1..]
        } else {
            rest
        };
        if !slash && rest.first() != Some(&b'/') && !rest.is_empty() {
            out.push('/');
        }
        push_encoded(out, rest, Part::Path);
    }
    let req_query = req_query.filter(|q| !q.is_empty());
    match (target_query, req_query) {
        (Some(t), Some(r)) => {
            out.push('?');
            out.push_str(t);
            if !t.is_empty() {
                out.push('&');
            }
            push_encoded(out, r, Part::Query);
        }
        (Some(t), None) => {
            out.push('?');
            out.push_str(t);
        }
        (None, Some(r)) => {
            out.push('?');
            push_encoded(out, r, Part::Query);
        }
        (None, None) => {}
    }
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    if relative && out[start..].starts_with("//") {
        let extra = out[start..].bytes().take_while(|b| *b == b'/').count() - 1;
        out.replace_range(start..start + extra, "");
    }
    if relative && out.len() == start {
        out.push('/');
    }
}

/// Checks a pool target base URL: absolute http(s), a host, no query,
/// fragment or variable.
pub fn check_pool_base(url: &str) -> Result<(), String> {
    if url.contains("${") || url.contains('?') || url.contains('#') {
        return Err("a pool target is a base URL: no variables, query or fragment".into());
    }
    let t = parse_target(url, false, &NoGroups).map_err(|e| e.message)?;
    if !t.absolute {
        return Err("a pool target must be an absolute http(s) URL".into());
    }
    Ok(())
}

/// The normalised base of a pool target (no trailing `/`).
pub fn pool_base(url: &str) -> String {
    match parse_target(url, false, &NoGroups)
        .ok()
        .and_then(|t| t.literal())
    {
        Some((p, _, _)) => p.trim_end_matches('/').to_string(),
        None => url.trim_end_matches('/').to_string(),
    }
}

/// HTML body of a redirect: a short page linking to the target, escaped.
pub fn html_body(status: u16, location: &str) -> String {
    let head = match status {
        301 => "<!DOCTYPE html>\n<html><head><title>301 Moved Permanently</title></head><body><a href=\"",
        302 => "<!DOCTYPE html>\n<html><head><title>302 Found</title></head><body><a href=\"",
        303 => "<!DOCTYPE html>\n<html><head><title>303 See Other</title></head><body><a href=\"",
        307 => "<!DOCTYPE html>\n<html><head><title>307 Temporary Redirect</title></head><body><a href=\"",
        308 => "<!DOCTYPE html>\n<html><head><title>308 Permanent Redirect</title></head><body><a href=\"",
        _ => "<!DOCTYPE html>\n<html><head><title>Redirect</title></head><body><a href=\"",
    };
    const TAIL: &str = "</a></body></html>\n";
    let needs_escape = |b: &u8| matches!(b, b'&' | b'<' | b'>' | b'"' | b'\'');
    let link: std::borrow::Cow<'_, str> = if !location.as_bytes().iter().any(needs_escape) {
        std::borrow::Cow::Borrowed(location)
    } else {
        let mut e = String::with_capacity(location.len() + 16);
        for c in location.chars() {
            match c {
                '&' => e.push_str("&amp;"),
                '<' => e.push_str("&lt;"),
                '>' => e.push_str("&gt;"),
                '"' => e.push_str("&quot;"),
                '\'' => e.push_str("&#39;"),
                c => e.push(c),
            }
        }
        std::borrow::Cow::Owned(e)
    };
    let mut s = String::with_capacity(head.len() + 2 * link.len() + 2 + TAIL.len());
    s.push_str(head);
    s.push_str(&link);
    s.push_str("\">");
    s.push_str(&link);
    s.push_str(TAIL);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(t: &Target) -> (String, Option<String>, Option<String>) {
        t.literal().unwrap()
    }

    #[test]
    fn parses_absolute_and_relative_targets() {
        let t = parse_target("HTTPS://New.Example:8443/a b/é?x=1#top", false, &NoGroups).unwrap();
        assert!(t.absolute);
        assert_eq!(
            lit(&t),
            (
                "https://new.example:8443/a%20b/%C3%A9".into(),
                Some("x=1".into()),
                Some("top".into())
            )
        );
        let r = parse_target("/docs", false, &NoGroups).unwrap();
        assert!(!r.absolute);
        assert_eq!(lit(&r).0, "/docs");
    }

    #[test]
    fn refuses_unsafe_targets() {
        for bad in [
            "//evil.com/x",
            "/\\evil.com",
            "javascript:alert(1)",
            "evil.com",
            "https://",
            "https://a@evil.com/",
            "https://x:99999/",
            "/a\r\nb",
            "ftp://x/",
        ] {
            let e = parse_target(bad, false, &NoGroups).unwrap_err();
            assert_eq!(e.code, "bad_target", "{bad:?}");
        }
    }

    #[test]
    fn host_variable_needs_a_rule_host() {
        assert_eq!(
            parse_target("https://${host}/x", false, &NoGroups)
                .unwrap_err()
                .code,
            "bad_capture"
        );
        let t = parse_target("https://${host}/x", true, &NoGroups).unwrap();
        assert_eq!(
            t.path,
            vec![
                Piece::Lit("https://".into()),
                Piece::Host,
                Piece::Lit("/x".into())
            ]
        );
    }

    #[test]
    fn groups_in_authority_are_bad_capture() {
        let re = crate::matcher::regex_tier::compile_regex("^/(.*)$", false).unwrap();
        assert_eq!(
            parse_target("https://new.example${1}", false, &re)
                .unwrap_err()
                .code,
            "bad_capture"
        );
        assert_eq!(
            parse_target("https://${1}.example/", false, &re)
                .unwrap_err()
                .code,
            "bad_capture"
        );
        assert_eq!(
            parse_target("/x/${2}", false, &re).unwrap_err().code,
            "bad_capture"
        );
        let ok = parse_target("https://new.example${path}", false, &re).unwrap();
        assert_eq!(
            ok.path,
            vec![Piece::Lit("https://new.example".into()), Piece::Path]
        );
    }

    #[test]
    fn assemble_joins_with_one_slash_and_query() {
        let mut s = String::new();
        assemble(
            &mut s,
            false,
            "https://n.example/doc/",
            Some("a=1"),
            Some("f"),
            Some(b"/x/y"),
            Some(b"b=2"),
        );
        assert_eq!(s, "https://n.example/doc/x/y?a=1&b=2#f");
        let mut s = String::new();
        assemble(&mut s, true, "/", None, None, Some(b"//evil.com"), None);
        assert_eq!(s, "/evil.com");
        let mut s = String::new();
        assemble(
            &mut s,
            false,
            "https://n.example/doc",
            Some(""),
            None,
            None,
            Some(b"q"),
        );
        assert_eq!(s, "https://n.example/doc?q");
    }

    #[test]
    fn push_encoded_keeps_escapes_and_encodes_forbidden_bytes() {
        let mut s = String::new();
        push_encoded(&mut s, b"/a%2f%0D\r\n\t \\\x80#?%", Part::Path);
        assert_eq!(s, "/a%2f%0D%0D%0A%09%20%5C%80%23%3F%25");
    }

    #[test]
    fn html_body_escapes_the_link() {
        let b = html_body(307, "/a\"><script>");
        assert!(b.contains("/a&quot;&gt;&lt;script&gt;"));
        assert!(!b.contains("<script>"));
    }
}
