//! Synthetic rule sets for the benchmarks: N exact and prefix rules spread over
//! 1,000 hosts (as a Cloudflare bulk list, the way a million rules are
//! written), and N regex rules (as `[[redirect]]` tables).

#![allow(dead_code)]

use pingora_redirect::{Loaded, RequestView, Scheme};
use std::fmt::Write as _;
use std::path::PathBuf;

pub const HOSTS: usize = 1000;

/// A fresh directory for generated files.
pub fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "pingora-redirect-bench-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// Writes a configuration with `n` list rules (half exact, half prefix) over
/// 1,000 hosts; returns its path.
pub fn write_list_config(n: usize) -> PathBuf {
    let d = dir(&format!("list-{n}"));
    let mut csv = String::with_capacity(n * 80);
    for j in 0..n {
        let h = j % HOSTS;
        if j % 2 == 0 {
            let _ = writeln!(
                csv,
                "h{h}.example.com/old/{j}/page.html,https://new.example.com/new/{j},301,TRUE"
            );
        } else {
            let _ = writeln!(
                csv,
                "h{h}.example.com/dir/{j},https://new.example.com/d/{j},301,TRUE,FALSE,TRUE,TRUE"
            );
        }
    }
    std::fs::write(d.join("rules.csv"), csv).expect("write csv");
    let conf = d.join("bench.toml");
    std::fs::write(&conf, "[[list]]\nid = \"bulk\"\nfile = \"rules.csv\"\n").expect("write toml");
    conf
}

/// The shapes of regex rule sets the benchmarks measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Regexes {
    /// `^/rI/(\d+)/(?P<slug>[a-z-]+)$`: a literal of its own per rule.
    Distinct,
    /// `^/article/(?P<id>[0-9]+)-topicI$`: every rule shares `/article/`.
    SharedLiteral,
    /// `^.[a-z]{A}[0-9]{B}$` (A, B from 1 to 100): no literal at all.
    NoLiteral,
}

impl Regexes {
    pub const ALL: [Regexes; 3] = [
        Regexes::Distinct,
        Regexes::SharedLiteral,
        Regexes::NoLiteral,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Regexes::Distinct => "regex, a literal each",
            Regexes::SharedLiteral => "regex, one shared literal",
            Regexes::NoLiteral => "regex, no literal",
        }
    }

    /// Pattern and target of rule `i`.
    pub fn rule(self, i: usize) -> (String, String) {
        match self {
            Regexes::Distinct => (
                format!(r"^/r{i}/(\d+)/(?P<slug>[a-z-]+)$"),
                format!("https://new.example.com/n{i}/${{1}}/${{slug}}"),
            ),
            Regexes::SharedLiteral => (
                format!(r"^/article/(?P<id>[0-9]+)-topic{i}$"),
                format!("https://new.example.com/t{i}/${{id}}"),
            ),
            Regexes::NoLiteral => (
                format!(r"^.[a-z]{{{}}}[0-9]{{{}}}$", i % 100 + 1, i / 100 + 1),
                format!("https://new.example.com/lit/{i}"),
            ),
        }
    }

    /// A path that rule `i` answers, and one no rule answers (`k` varies it).
    pub fn paths(self, i: usize, k: usize) -> (String, String) {
        match self {
            Regexes::Distinct => (format!("/r{i}/{k}/some-slug"), format!("/r{i}/x/miss")),
            Regexes::SharedLiteral => (
                format!("/article/{k}-topic{i}"),
                format!("/article/{k}-topic{i}x"),
            ),
            Regexes::NoLiteral => {
                let (a, b) = (i % 100 + 1, i / 100 + 1);
                let hit = format!("/{}{}", "q".repeat(a), "7".repeat(b));
                let miss = format!("/{}{}x", "q".repeat(a), "7".repeat(b));
                (hit, miss)
            }
        }
    }
}

/// Writes a configuration with `n` regex rules of shape `shape` (no host).
pub fn write_regexes(shape: Regexes, n: usize) -> PathBuf {
    let d = dir(&format!("regex-{shape:?}-{n}"));
    let mut toml = String::with_capacity(n * 150);
    for i in 0..n {
        let (pattern, to) = shape.rule(i);
        let _ = write!(
            toml,
            "[[redirect]]\nid = \"re{i}\"\nregex = '{pattern}'\nto = \"{to}\"\n\n"
        );
    }
    let conf = d.join("bench.toml");
    std::fs::write(&conf, toml).expect("write toml");
    conf
}

/// Requests against a regex set of shape `shape`: hits spread over the
/// rules (three in four), and misses.
pub fn regex_shape_requests(
    shape: Regexes,
    n: usize,
    count: usize,
) -> Vec<(String, String, Option<String>)> {
    (0..count)
        .map(|k| {
            let i = (k * 7919) % n;
            let (hit, miss) = shape.paths(i, k);
            let path = if k % 4 == 3 { miss } else { hit };
            ("any.example".to_string(), path, None)
        })
        .collect()
}

pub fn load(conf: &std::path::Path) -> Loaded {
    let l = pingora_redirect::load(conf, 0).expect("load");
    assert!(
        l.rules.is_some(),
        "bench config does not load: {:?}",
        l.problems.first()
    );
    l
}

/// Requests against a list config: exact hits, prefix hits with a suffix and
/// a query, and misses, in a fixed pseudo-random order.
pub fn list_requests(n: usize, count: usize) -> Vec<(String, String, Option<String>)> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let j = (x % n as u64) as usize;
        let h = j % HOSTS;
        let host = format!("h{h}.example.com");
        match x % 4 {
            0 | 1 if j % 2 == 0 => out.push((host, format!("/old/{j}/page.html"), None)),
            0 | 1 => out.push((host, format!("/dir/{j}/a/b/c"), Some("x=1".to_string()))),
            2 => {
                let k = j | 1;
                out.push((
                    format!("h{}.example.com", k % HOSTS),
                    format!("/dir/{k}/sub"),
                    None,
                ))
            }
            _ => out.push((host, "/nothing/here/at/all".to_string(), None)),
        }
    }
    out
}

pub fn view<'a>(r: &'a (String, String, Option<String>)) -> RequestView<'a> {
    RequestView::new(
        "GET",
        Scheme::Https,
        Some(&r.0),
        r.1.as_bytes(),
        r.2.as_deref().map(str::as_bytes),
    )
}

/// Resident set size of this process, in bytes.
pub fn rss() -> usize {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = s
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}
