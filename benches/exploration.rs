//! Exploration at scale: events/s of one run as steps, pages and standbys
//! grow (every invariant checked on every step), runs/s of `explore` on
//! the default matrix, and the time to shrink a known failure.
//! Figures and commands: docs/PERFORMANCE.md.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::sync::atomic::AtomicBool;
use walsim::args::SeedRange;
use walsim::explore::{Plan, Spec, SweepOptions, default_jobs, sweep};
use walsim::run::{NoObserver, RunOptions, run_seed};

fn settings(sets: &[String]) -> walsim::model::Settings {
    walsim::config::load(None, sets).expect("valid bench settings")
}

/// One run, varying one setting at a time from the defaults.
fn run_cost(c: &mut Criterion) {
    let mut g = c.benchmark_group("run");
    for (key, values) in [
        ("scheduler.steps", &[500u64, 2_000, 8_000][..]),
        ("cluster.rel_pages", &[8, 32, 256]),
        ("cluster.standbys", &[0, 1, 2]),
    ] {
        for &v in values {
            // Standbys without the default failover story (which needs
            // node2): plain streaming to 0, 1 or 2 standbys.
            let mut sets = vec![format!("{key}={v}")];
            if key == "cluster.standbys" {
                sets.push("operator=[]".into());
                sets.push(format!("synchronous_standby_names={}", if v == 0 { "" } else { "*" }));
            }
            let s = settings(&sets);
            let events = run_seed(&s, 1, RunOptions::default(), &mut NoObserver).events;
            g.throughput(Throughput::Elements(events));
            g.bench_with_input(BenchmarkId::new(key, v), &s, |b, s| {
                b.iter(|| run_seed(black_box(s), 1, RunOptions::default(), &mut NoObserver))
            });
        }
    }
    g.finish();
}

/// Cost by run length (issue 11): streaming to one synchronous standby,
/// no operator story, a table that fits its pages (docs/PERFORMANCE.md,
/// "Cost by run length", column B). Events/s should not fall as the run
/// grows: time per step within 1.5× between the lengths.
fn run_length(c: &mut Criterion) {
    let mut g = c.benchmark_group("run_length");
    g.sample_size(10);
    for steps in [10_000u64, 100_000, 1_000_000] {
        let sets: Vec<String> =
            ["operator=[]", "wal_keep_size=64", "workload.key_space=2000", "workload.update_percent=80"]
                .iter()
                .map(|s| s.to_string())
                .chain([format!("scheduler.steps={steps}")])
                .collect();
        let s = settings(&sets);
        let events = run_seed(&s, 1, RunOptions::default(), &mut NoObserver).events;
        g.throughput(Throughput::Elements(events));
        g.bench_with_input(BenchmarkId::new("streaming_fitting_table", steps), &s, |b, s| {
            b.iter(|| run_seed(black_box(s), 1, RunOptions::default(), &mut NoObserver))
        });
    }
    g.finish();
}

/// `walsim explore` on the default matrix: 36 cells × 8 seeds per sample.
fn explore_matrix(c: &mut Criterion) {
    let spec = Spec { seeds: SeedRange::first(8).unwrap(), ..Spec::default() };
    let plan = Plan::new(&spec).unwrap();
    let stop = AtomicBool::new(false);
    let opts = SweepOptions { jobs: default_jobs(), stop: &stop, on_run: &|| {} };
    let mut g = c.benchmark_group("explore");
    g.sample_size(10);
    g.throughput(Throughput::Elements(plan.runs()));
    g.bench_function("default_matrix", |b| b.iter(|| sweep(&plan, &opts).unwrap()));
    g.finish();
}

/// Shrinking the first failing seed of rules.wal_before_data=false.
fn shrink_known_failure(c: &mut Criterion) {
    let s = settings(&["rules.wal_before_data=false".into()]);
    let rec = RunOptions { record: true, log: false, max_events: None };
    let r =
        (1..).map(|seed| run_seed(&s, seed, rec, &mut NoObserver)).find(|r| r.violation.is_some()).unwrap();
    let choices = r.choices.clone().unwrap();
    let mut g = c.benchmark_group("shrink");
    g.sample_size(10);
    g.bench_function("wal_before_data", |b| {
        b.iter(|| walsim::shrink::shrink(&s, r.seed, black_box(&choices), 50_000).unwrap())
    });
    g.finish();
}

criterion_group!(benches, run_cost, run_length, explore_matrix, shrink_known_failure);
criterion_main!(benches);
