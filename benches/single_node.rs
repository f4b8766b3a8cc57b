//! Events per second of one full run (main + quiesce phase) with every
//! invariant checked on every step: a single server at the default storage
//! settings and with faults at ten times the default rate, and the default
//! replication run (primary, standby, failover story).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use walsim::run::{NoObserver, RunOptions, run_seed};

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("run");
    let single = ["cluster.standbys=0", "operator=[]", "synchronous_standby_names="].map(String::from);
    let faults_x10 = ["faults.process_crash=0.02", "faults.power_loss=0.01"].map(String::from);
    for (name, sets) in [
        ("single_node/defaults", single.to_vec()),
        ("single_node/faults_x10", [&single[..], &faults_x10[..]].concat()),
        ("replication/default_story", vec![]),
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
