//! Single-node events per second: one full run (main + quiesce phase) with
//! every invariant checked on every step, at the default settings and with
//! faults at ten times the default rate.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use walsim::run::{NoObserver, RunOptions, run_seed};

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("single_node");
    for (name, sets) in [
        ("defaults", vec![]),
        ("faults_x10", vec!["faults.process_crash=0.02".to_string(), "faults.power_loss=0.01".to_string()]),
    ] {
        let s = walsim::config::load(None, &sets).expect("valid");
        let events = run_seed(&s, 1, RunOptions::default(), &mut NoObserver).events;
        g.throughput(Throughput::Elements(events));
        g.bench_function(name, |b| {
            b.iter(|| run_seed(black_box(&s), 1, RunOptions::default(), &mut NoObserver))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
