//! The conditions of a rule, in one place: what they are ([`Conditions`]),
//! how they are read from a `[[redirect]]` table, how a request is tested
//! against them ([`Conditions::holds`]), how two rules' conditions compare
//! for `duplicate_rule` and `shadowed`, and how they are shown (`Display`).
//!
//! A rule whose conditions do not hold is skipped and the search goes on
//! (docs/configuration.md, "Precedence"). The compiled rule set keeps each
//! distinct [`Conditions`] once and gives a rule its index, so two rules have
//! the same conditions exactly when they have the same index, and a rule
//! without conditions costs nothing to test.
//!
//! It lives with the configuration model because the conditions are part of
//! a rule as written; testing them needs only the plain [`Facts`] of a
//! request, no rule set.

use super::reader::{Reader, Val};
use crate::request::Scheme;
use std::fmt;
use std::ops::Range;
use toml::de::DeValue;

/// Request methods as a bit set (0 = any method).
pub mod methods {
    pub const NAMES: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
    ];

    /// The bit of a method name, if it is one of the nine of RFC 9110 and RFC 5789.
    pub fn bit(name: &str) -> Option<u16> {
        NAMES.iter().position(|m| *m == name).map(|i| 1 << i)
    }

    /// Names of the methods in `mask`.
    pub fn names(mask: u16) -> Vec<&'static str> {
        NAMES
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, n)| *n)
            .collect()
    }
}

/// What must hold of a request for a rule to answer it. The default holds
/// for every request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Conditions {
    /// `methods`, as a bit set of [`methods`]; 0 = any method.
    pub methods: u16,
    /// `scheme`; `None` = either.
    pub scheme: Option<Scheme>,
    /// `active_from`, Unix seconds.
    pub active_from: Option<i64>,
    /// `active_until`, Unix seconds (the rule is active before it).
    pub active_until: Option<i64>,
}

/// What conditions are tested against.
#[derive(Debug, Clone, Copy)]
pub struct Facts {
    /// The method's bit ([`methods::bit`]); 0 for a method not listed there.
    pub method: u16,
    /// `None` when unknown (a rule with a `scheme` then does not hold).
    pub scheme: Option<Scheme>,
    /// Unix seconds; `None` ignores time windows (the lint follows rules
    /// whatever the time).
    pub now: Option<i64>,
}

impl Conditions {
    /// The conditions of a list row: its source URL's scheme, if any.
    pub fn scheme_only(scheme: Option<Scheme>) -> Conditions {
        Conditions {
            scheme,
            ..Conditions::default()
        }
    }

    /// Whether a rule with no condition at all.
    pub fn is_unconditional(&self) -> bool {
        *self == Conditions::default()
    }

    /// Whether the rule has a time window.
    pub fn is_timed(&self) -> bool {
        self.active_from.is_some() || self.active_until.is_some()
    }

    /// Does a request with these facts meet every condition?
    pub fn holds(&self, f: &Facts) -> bool {
        if self.methods != 0 && self.methods & f.method == 0 {
            return false;
        }
        if self.scheme.is_some() && self.scheme != f.scheme {
            return false;
        }
        if let Some(now) = f.now {
            if self.active_from.is_some_and(|t| now < t)
                || self.active_until.is_some_and(|t| now >= t)
            {
                return false;
            }
        }
        true
    }
}

fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}

/// `methods GET, HEAD; scheme https; from 2026-12-01T00:00:00Z; until …`,
/// or `none`.
impl fmt::Display for Conditions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.methods != 0 {
            parts.push(format!(
                "methods {}",
                methods::names(self.methods).join(", ")
            ));
        }
        if let Some(s) = self.scheme {
            parts.push(format!("scheme {}", s.as_str()));
        }
        if let Some(t) = self.active_from {
            parts.push(format!("from {}", rfc3339(t)));
        }
        if let Some(t) = self.active_until {
            parts.push(format!("until {}", rfc3339(t)));
        }
        if parts.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&parts.join("; "))
        }
    }
}

/// Unix seconds of a TOML offset date-time.
pub(super) fn datetime_to_unix(dt: &toml::value::Datetime) -> Option<i64> {
    let (date, t, offset) = (dt.date?, dt.time?, dt.offset?);
    let month = time::Month::try_from(date.month).ok()?;
    let d = time::Date::from_calendar_date(date.year as i32, month, date.day).ok()?;
    let tm = time::Time::from_hms(t.hour, t.minute, t.second.min(59)).ok()?;
    let minutes = match offset {
        toml::value::Offset::Z => 0,
        toml::value::Offset::Custom { minutes } => minutes as i32,
    };
    let off = time::UtcOffset::from_whole_seconds(minutes * 60).ok()?;
    Some(d.with_time(tm).assume_offset(off).unix_timestamp())
}

/// The conditions of one `[[redirect]]` as its keys are read.
#[derive(Default)]
pub(super) struct ConditionsRead {
    pub(super) conditions: Conditions,
    from_span: Option<Range<usize>>,
}

impl Reader<'_> {
    /// Reads `key` into `c` when it is a condition key: `None` when it is
    /// not one, else whether its value was good.
    pub(super) fn condition(
        &mut self,
        c: &mut ConditionsRead,
        key: &str,
        val: &Val<'_>,
        rid: Option<&str>,
    ) -> Option<bool> {
        let ok = match key {
            "methods" => match self.strings(val, "methods", rid) {
                Some(list) if !list.is_empty() => {
                    let mut ok = true;
                    for (m, span) in list {
                        match methods::bit(&m.to_ascii_uppercase()) {
                            Some(b) => c.conditions.methods |= b,
                            None => {
                                self.push(
                                    "bad_value",
                                    span,
                                    rid,
                                    format!(
                                        "`methods`: \"{m}\" is not a method; write any of {}",
                                        methods::NAMES.join(", ")
                                    ),
                                );
                                ok = false;
                            }
                        }
                    }
                    ok
                }
                Some(_) => {
                    self.bad(
                        val,
                        rid,
                        "`methods` = [] would never match; omit it to allow every method".into(),
                    );
                    false
                }
                None => false,
            },
            "scheme" => match self.string(val, "scheme", rid).as_deref() {
                Some("http") => {
                    c.conditions.scheme = Some(Scheme::Http);
                    true
                }
                Some("https") => {
                    c.conditions.scheme = Some(Scheme::Https);
                    true
                }
                Some(other) => {
                    self.bad(
                        val,
                        rid,
                        format!("`scheme` = \"{other}\" is not \"http\" or \"https\""),
                    );
                    false
                }
                None => false,
            },
            "active_from" | "active_until" => match self.datetime(val, key, rid) {
                Some(ts) => {
                    if key == "active_from" {
                        c.from_span = Some(val.span());
                        c.conditions.active_from = Some(ts);
                    } else {
                        c.conditions.active_until = Some(ts);
                    }
                    true
                }
                None => false,
            },
            _ => return None,
        };
        Some(ok)
    }

    /// Checks the conditions of a whole rule (`whole` is its table) once
    /// every key is read; returns whether they can ever hold.
    pub(super) fn check_conditions(
        &mut self,
        c: &ConditionsRead,
        whole: &Val<'_>,
        rid: Option<&str>,
    ) -> bool {
        if let (Some(from), Some(until)) = (c.conditions.active_from, c.conditions.active_until) {
            if until <= from {
                self.push(
                    "bad_time_window",
                    c.from_span.clone().unwrap_or(whole.span()),
                    rid,
                    "`active_until` is not after `active_from`; the rule could never be active"
                        .into(),
                );
                return false;
            }
        }
        true
    }

    fn datetime(&mut self, v: &Val<'_>, key: &str, rule: Option<&str>) -> Option<i64> {
        let DeValue::Datetime(dt) = v.get_ref() else {
            self.bad(
                v,
                rule,
                format!("`{key}` must be an offset date-time, e.g. {key} = 2026-12-01T00:00:00Z"),
            );
            return None;
        };
        match datetime_to_unix(dt) {
            Some(ts) => Some(ts),
            None => {
                self.bad(
                    v,
                    rule,
                    format!(
                        "`{key}` needs a date, a time and an offset, e.g. 2026-12-01T00:00:00Z"
                    ),
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(method: &str, scheme: Scheme, now: Option<i64>) -> Facts {
        Facts {
            method: methods::bit(method).unwrap_or(0),
            scheme: Some(scheme),
            now,
        }
    }

    #[test]
    fn every_condition_must_hold() {
        let c = Conditions {
            methods: methods::bit("GET").unwrap() | methods::bit("HEAD").unwrap(),
            scheme: Some(Scheme::Https),
            active_from: Some(100),
            active_until: Some(200),
        };
        assert!(c.holds(&facts("GET", Scheme::Https, Some(150))));
        assert!(!c.holds(&facts("POST", Scheme::Https, Some(150))));
        assert!(!c.holds(&facts("GET", Scheme::Http, Some(150))));
        assert!(!c.holds(&facts("GET", Scheme::Https, Some(200))));
        assert!(!c.holds(&facts("GET", Scheme::Https, Some(99))));
        assert!(
            c.holds(&facts("GET", Scheme::Https, None)),
            "no clock: no window"
        );
        assert!(Conditions::default().holds(&facts("BREW", Scheme::Http, Some(0))));
        assert_eq!(
            c.to_string(),
            "methods GET, HEAD; scheme https; from 1970-01-01T00:01:40Z; until 1970-01-01T00:03:20Z"
        );
        assert_eq!(Conditions::default().to_string(), "none");
    }
}
