//! The spanned TOML reader that every section reader builds on.
//!
//! The configuration is walked through `toml::de::DeTable` by hand rather
//! than through `#[derive(Deserialize)]`, so that every problem (an unknown
//! key, a bad value, a missing field) is reported with its file, line,
//! column and the id of the rule it belongs to, and all of them at once. The
//! helpers here read one value each and report what is wrong with it; the
//! sections (`server.rs`, `routing.rs`, `rules.rs`, `conditions.rs`) say
//! what the keys mean.

use super::model::{Place, QueryMode, Selection};
use crate::problem::{LineIndex, Problem};
use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

pub(super) type Val<'i> = Spanned<DeValue<'i>>;

/// One configuration file being read: its text, where its lines start, and
/// the problems found so far.
pub(super) struct Reader<'s> {
    pub(super) file: Arc<str>,
    pub(super) src: &'s str,
    pub(super) lines: LineIndex,
    pub(super) problems: Vec<Problem>,
    /// The configuration file's directory: relative list paths start here.
    pub(super) base: PathBuf,
    /// Pool names referenced, checked once every pool is known.
    pub(super) pool_refs: Vec<(String, Range<usize>, Option<String>)>,
    /// Every `[pools.NAME]` written, valid or not (so a broken pool is
    /// reported once, not again at each reference).
    pub(super) pool_names: Vec<String>,
    /// Whether a `[tls]` section was written, valid or not (certificates
    /// without one are an error; with a broken one, it was reported).
    pub(super) tls_written: bool,
}

impl<'s> Reader<'s> {
    pub(super) fn place(&self, span: &Range<usize>) -> Place {
        let (line, column) = self.lines.locate(self.src, span.start);
        Place {
            file: self.file.clone(),
            line,
            column,
        }
    }

    pub(super) fn push(
        &mut self,
        code: &'static str,
        span: Range<usize>,
        rule: Option<&str>,
        msg: String,
    ) {
        let (line, col) = self.lines.locate(self.src, span.start);
        self.problems.push(
            Problem::error(code, msg)
                .at(&self.file, line, Some(col))
                .rule(rule),
        );
    }

    pub(super) fn unknown(
        &mut self,
        key: &Spanned<std::borrow::Cow<'_, str>>,
        known: &[&str],
        rule: Option<&str>,
        section: &str,
    ) {
        let name = key.get_ref().as_ref();
        let hint = match closest(name, known) {
            Some(k) => format!("did you mean `{k}`?"),
            None => format!("the keys of {section} are: {}", known.join(", ")),
        };
        self.push(
            "unknown_key",
            key.span(),
            rule,
            format!("unknown key `{name}` in {section}; {hint}"),
        );
    }

    pub(super) fn bad(&mut self, v: &Val<'_>, rule: Option<&str>, msg: String) {
        self.push("bad_value", v.span(), rule, msg);
    }

    pub(super) fn table<'a, 'i>(
        &mut self,
        v: &'a Val<'i>,
        what: &str,
        rule: Option<&str>,
    ) -> Option<&'a DeTable<'i>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(t),
            other => {
                self.bad(
                    v,
                    rule,
                    format!("{what} must be a table, not a {}", other.type_str()),
                );
                None
            }
        }
    }

    pub(super) fn string(&mut self, v: &Val<'_>, key: &str, rule: Option<&str>) -> Option<String> {
        match v.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            other => {
                self.bad(
                    v,
                    rule,
                    format!("`{key}` must be a string, not a {}", other.type_str()),
                );
                None
            }
        }
    }

    pub(super) fn boolean(&mut self, v: &Val<'_>, key: &str, rule: Option<&str>) -> Option<bool> {
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            other => {
                self.bad(
                    v,
                    rule,
                    format!("`{key}` must be true or false, not a {}", other.type_str()),
                );
                None
            }
        }
    }

    pub(super) fn integer(&mut self, v: &Val<'_>, key: &str, rule: Option<&str>) -> Option<i64> {
        match v.get_ref() {
            DeValue::Integer(i) => {
                match i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()) {
                    Ok(n) => Some(n),
                    Err(_) => {
                        self.bad(v, rule, format!("`{key}` is out of range"));
                        None
                    }
                }
            }
            other => {
                self.bad(
                    v,
                    rule,
                    format!("`{key}` must be an integer, not a {}", other.type_str()),
                );
                None
            }
        }
    }

    /// An integer in `range`, else a `bad_value` that says so.
    pub(super) fn integer_in(
        &mut self,
        v: &Val<'_>,
        key: &str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Option<i64> {
        let n = self.integer(v, key, None)?;
        if range.contains(&n) {
            Some(n)
        } else {
            self.bad(
                v,
                None,
                format!(
                    "`{key}` = {n} must be between {} and {}",
                    range.start(),
                    range.end()
                ),
            );
            None
        }
    }

    pub(super) fn strings(
        &mut self,
        v: &Val<'_>,
        key: &str,
        rule: Option<&str>,
    ) -> Option<Vec<(String, Range<usize>)>> {
        match v.get_ref() {
            DeValue::Array(a) => {
                let mut out = Vec::new();
                for item in a.iter() {
                    out.push((self.string(item, key, rule)?, item.span()));
                }
                Some(out)
            }
            other => {
                self.bad(
                    v,
                    rule,
                    format!(
                        "`{key}` must be an array of strings, not a {}",
                        other.type_str()
                    ),
                );
                None
            }
        }
    }

    pub(super) fn duration(
        &mut self,
        v: &Val<'_>,
        key: &str,
        rule: Option<&str>,
    ) -> Option<Duration> {
        let s = self.string(v, key, rule)?;
        match humantime::parse_duration(&s) {
            Ok(d) => Some(d),
            Err(e) => {
                self.bad(
                    v,
                    rule,
                    format!("`{key}` = \"{s}\" is not a duration ({e}); write e.g. \"250ms\", \"5s\" or \"2m\""),
                );
                None
            }
        }
    }

    pub(super) fn positive_duration(
        &mut self,
        v: &Val<'_>,
        key: &str,
        rule: Option<&str>,
    ) -> Option<Duration> {
        let d = self.duration(v, key, rule)?;
        if d.is_zero() {
            self.bad(v, rule, format!("`{key}` must be longer than zero"));
            return None;
        }
        Some(d)
    }

    pub(super) fn socket_addr(
        &mut self,
        s: &str,
        span: Range<usize>,
        key: &str,
    ) -> Option<SocketAddr> {
        match s.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.push(
                    "bad_value",
                    span,
                    None,
                    format!("`{key}`: \"{s}\" is not an address; write IP:PORT, e.g. \"127.0.0.1:8080\" or \"[::1]:8080\""),
                );
                None
            }
        }
    }

    pub(super) fn selection(&mut self, v: &Val<'_>, rule: Option<&str>) -> Option<Selection> {
        let s = self.string(v, "selection", rule)?;
        match s.as_str() {
            "round_robin" => Some(Selection::RoundRobin),
            "random" => Some(Selection::Random),
            "hash" => Some(Selection::Hash),
            _ => {
                self.bad(
                    v,
                    rule,
                    format!(
                        "`selection` = \"{s}\" is not one of \"round_robin\", \"random\", \"hash\""
                    ),
                );
                None
            }
        }
    }

    pub(super) fn query_mode(&mut self, v: &Val<'_>, rule: Option<&str>) -> Option<QueryMode> {
        let s = self.string(v, "query", rule)?;
        match s.as_str() {
            "preserve" => Some(QueryMode::Preserve),
            "drop" => Some(QueryMode::Drop),
            _ => {
                self.bad(
                    v,
                    rule,
                    format!("`query` = \"{s}\" is not \"preserve\" or \"drop\""),
                );
                None
            }
        }
    }

    pub(super) fn status(&mut self, v: &Val<'_>, rule: Option<&str>) -> Option<u16> {
        let code = match v.get_ref() {
            DeValue::String(s) => match s.as_ref() {
                "permanent" => return Some(308),
                "temporary" => return Some(307),
                other => {
                    self.bad(
                        v,
                        rule,
                        format!("`status` = \"{other}\" is not a status; write 301, 302, 303, 307, 308, \"permanent\" or \"temporary\""),
                    );
                    return None;
                }
            },
            _ => self.integer(v, "status", rule)?,
        };
        if matches!(code, 301 | 302 | 303 | 307 | 308) {
            Some(code as u16)
        } else {
            self.bad(
                v,
                rule,
                format!(
                    "`status` = {code} is not a redirect status; write 301, 302, 303, 307 or 308"
                ),
            );
            None
        }
    }

    pub(super) fn header_text(
        &mut self,
        v: &Val<'_>,
        key: &str,
        rule: Option<&str>,
    ) -> Option<String> {
        let s = self.string(v, key, rule)?;
        if s.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            self.bad(
                v,
                rule,
                format!("`{key}` contains a control character, which no header may carry"),
            );
            return None;
        }
        Some(s)
    }

    pub(super) fn retry_after(&mut self, v: &Val<'_>, rule: Option<&str>) -> Option<u32> {
        let n = self.integer(v, "retry_after", rule)?;
        match u32::try_from(n) {
            Ok(n) => Some(n),
            Err(_) => {
                self.bad(
                    v,
                    rule,
                    format!("`retry_after` = {n} must be a number of seconds, 0 or more"),
                );
                None
            }
        }
    }
}

/// The key closest to `name` (edit distance ≤ 2), for "did you mean".
pub(super) fn closest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::levenshtein(name, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k)
}

/// `[A-Za-z0-9_.:-]+`
pub(crate) fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b))
}
