//! Criterion benchmarks of `RuleSet::decide` (mean time per lookup).
//!
//! `cargo bench --bench decide`. Percentiles, compile time, memory and lint
//! time come from `cargo bench --bench scale`.

#[path = "common/mod.rs"]
mod common;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use pingora_redirect::Decision;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("decide");
    g.throughput(Throughput::Elements(1));
    g.sample_size(50);
    for n in [1_000usize, 100_000, 1_000_000] {
        let conf = common::write_list_config(n);
        let loaded = common::load(&conf);
        let set = loaded.rules.as_ref().expect("loaded");
        let reqs = common::list_requests(n, 4096);
        let mut i = 0;
        g.bench_function(format!("list_{n}"), |b| {
            b.iter(|| {
                i = (i + 1) & 4095;
                let d = set.decide(&common::view(&reqs[i]));
                black_box(matches!(d, Decision::Redirect(_)))
            })
        });
        let _ = std::fs::remove_dir_all(conf.parent().expect("dir"));
    }
    for shape in common::Regexes::ALL {
        for n in [100usize, 10_000] {
            let conf = common::write_regexes(shape, n);
            let loaded = common::load(&conf);
            let set = loaded.rules.as_ref().expect("loaded");
            let reqs = common::regex_shape_requests(shape, n, 4096);
            let mut i = 0;
            g.bench_function(format!("{shape:?}_{n}"), |b| {
                b.iter(|| {
                    i = (i + 1) & 4095;
                    let d = set.decide(&common::view(&reqs[i]));
                    black_box(matches!(d, Decision::Redirect(_)))
                })
            });
            let _ = std::fs::remove_dir_all(conf.parent().expect("dir"));
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
