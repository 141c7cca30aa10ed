//! Scale report: `decide()` latency percentiles, compile time, resident
//! memory per rule and lint time at 1k, 100k and 1M rules, and regex rules at
//! 100 and 10,000 of three shapes: a literal each, one literal shared by all,
//! no literal at all; and 1,000 rules on one path told apart by the value of
//! a header (`match_headers`), the A/B and beta shape of conditions.
//!
//! `cargo bench --bench scale` prints a Markdown table (see docs/benchmarks.md).
//! Each lookup is timed on its own with `Instant` (the timer's own cost,
//! measured the same way, is subtracted), so the percentiles are per request.

#[path = "common/mod.rs"]
mod common;

use pingora_redirect::{compile, read_sources, Decision, RequestView, Scheme, Sources};
use std::hint::black_box;
use std::time::{Duration, Instant};

const SAMPLES: usize = 200_000;

fn timer_overhead() -> u64 {
    let mut v: Vec<u64> = (0..100_000)
        .map(|_| {
            let t = Instant::now();
            black_box(());
            t.elapsed().as_nanos() as u64
        })
        .collect();
    v.sort_unstable();
    v[v.len() / 2]
}

struct Lat {
    p50: f64,
    p99: f64,
    p999: f64,
    mean: f64,
}

fn measure(mut f: impl FnMut(usize) -> bool, overhead: u64) -> (Lat, usize) {
    // Warm up.
    for i in 0..20_000 {
        black_box(f(i));
    }
    let mut v = Vec::with_capacity(SAMPLES);
    let mut hits = 0;
    let start = Instant::now();
    for i in 0..SAMPLES {
        let t = Instant::now();
        let hit = black_box(f(i));
        v.push((t.elapsed().as_nanos() as u64).saturating_sub(overhead));
        hits += hit as usize;
    }
    let total = start.elapsed();
    v.sort_unstable();
    let pct = |p: f64| v[((v.len() as f64 * p) as usize).min(v.len() - 1)] as f64 / 1000.0;
    (
        Lat {
            p50: pct(0.50),
            p99: pct(0.99),
            p999: pct(0.999),
            mean: total.as_nanos() as f64 / SAMPLES as f64 / 1000.0 - overhead as f64 / 1000.0,
        },
        hits,
    )
}

fn secs(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64())
}

fn main() {
    // `cargo bench` passes `--bench`; under `cargo test` (no `--bench`) the
    // report runs at its smallest sizes only, as a smoke test.
    let full = std::env::args().any(|a| a == "--bench");
    let (lists, regexes): (&[usize], &[usize]) = if full {
        (&[1_000, 100_000, 1_000_000], &[100, 10_000])
    } else {
        (&[1_000], &[100])
    };
    let overhead = timer_overhead();
    println!("timer overhead subtracted: {overhead} ns\n");
    println!("| rules | kind | compile (s) | lint (s) | RSS / rule (B) | p50 (µs) | p99 (µs) | p99.9 (µs) | mean (µs) | hits |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for &n in lists {
        let conf = common::write_list_config(n);
        let before = common::rss();
        let t = Instant::now();
        let sources = read_sources(&conf).expect("read");
        assert!(sources.problems.is_empty());
        let (set, problems) = compile(&sources);
        drop(sources);
        assert!(
            problems.iter().all(|p| !p.is_error()),
            "{:?}",
            problems.first()
        );
        let compile = t.elapsed();
        let after = common::rss();
        let t = Instant::now();
        let lint = set.lint(0);
        let lint_time = t.elapsed();
        assert!(lint.iter().all(|p| !p.is_error()));
        drop(lint);
        let reqs = common::list_requests(n, 65_536);
        let (lat, hits) = measure(
            |i| {
                matches!(
                    set.decide(&common::view(&reqs[i & 65_535])),
                    Decision::Redirect(_)
                )
            },
            overhead,
        );
        println!(
            "| {n} | exact+prefix, {} hosts | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0}% |",
            common::HOSTS,
            secs(compile),
            secs(lint_time),
            (after.saturating_sub(before)) / n,
            lat.p50,
            lat.p99,
            lat.p999,
            lat.mean,
            100.0 * hits as f64 / SAMPLES as f64
        );
        drop(set);
        let _ = std::fs::remove_dir_all(conf.parent().expect("dir"));
    }
    header_variants(1_000, overhead);
    for shape in common::Regexes::ALL {
        for &n in regexes {
            let conf = common::write_regexes(shape, n);
            let before = common::rss();
            let t = Instant::now();
            let sources = read_sources(&conf).expect("read");
            assert!(sources.problems.is_empty());
            let (set, problems) = compile(&sources);
            drop(sources);
            assert!(problems.iter().all(|p| !p.is_error()));
            let compile = t.elapsed();
            let t = Instant::now();
            let _ = set.lint(0);
            let lint_time = t.elapsed();
            let reqs = common::regex_shape_requests(shape, n, 65_536);
            let (lat, hits) = measure(
                |i| {
                    matches!(
                        set.decide(&common::view(&reqs[i & 65_535])),
                        Decision::Redirect(_)
                    )
                },
                overhead,
            );
            // Measured after the lookups: the lazy DFA's states are built as
            // keys need them.
            let after = common::rss();
            println!(
                "| {n} | {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0}% |",
                shape.name(),
                secs(compile),
                secs(lint_time),
                (after.saturating_sub(before)) / n,
                lat.p50,
                lat.p99,
                lat.p999,
                lat.mean,
                100.0 * hits as f64 / SAMPLES as f64
            );
            drop(set);
            let _ = std::fs::remove_dir_all(conf.parent().expect("dir"));
        }
    }
}

/// `n` rules on one host and path, each with `match_headers = { "X-Variant"
/// = "vI" }`, then one without a condition; requests carry a variant from 0
/// to n + n/10 (a tenth match no variant and fall through to the last rule).
fn header_variants(n: usize, overhead: u64) {
    let mut config = String::new();
    for i in 0..n {
        config.push_str(&format!(
            "[[redirect]]\nid = \"v{i}\"\nhost = \"a.example\"\npath = \"/home\"\nto = \"https://b.example/v{i}\"\nmatch_headers = {{ \"X-Variant\" = \"v{i}\" }}\n\n"
        ));
    }
    config.push_str("[[redirect]]\nid = \"rest\"\nhost = \"a.example\"\npath = \"/home\"\nto = \"https://b.example/\"\n");
    let t = Instant::now();
    let sources = Sources::from_text(&config, std::path::Path::new("variants.toml"), |_| {
        Ok(Vec::new())
    });
    assert!(sources.problems.is_empty());
    let (set, problems) = compile(&sources);
    assert!(problems.is_empty(), "{:?}", problems.first());
    let compile = t.elapsed();
    let t = Instant::now();
    let _ = set.lint(0);
    let lint_time = t.elapsed();
    let headers: Vec<http::HeaderMap> = (0..4096)
        .map(|i| {
            let mut h = http::HeaderMap::new();
            h.insert("user-agent", "Mozilla/5.0".parse().expect("value"));
            h.insert("accept", "*/*".parse().expect("value"));
            let v = (i * 7919) % (n + n / 10);
            h.insert("x-variant", format!("v{v}").parse().expect("value"));
            h
        })
        .collect();
    let (lat, hits) = measure(
        |i| {
            let view = RequestView::new("GET", Scheme::Https, Some("a.example"), b"/home", None)
                .with_headers(&headers[i & 4095]);
            matches!(set.decide(&view), Decision::Redirect(r) if r.rule.id() != "rest")
        },
        overhead,
    );
    println!(
        "| {n} | one path, match_headers values | {} | {} | – | {:.2} | {:.2} | {:.2} | {:.2} | {:.0}% |",
        secs(compile),
        secs(lint_time),
        lat.p50,
        lat.p99,
        lat.p999,
        lat.mean,
        100.0 * hits as f64 / SAMPLES as f64
    );
}
