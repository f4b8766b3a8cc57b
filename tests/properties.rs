//! Properties over seeds and configurations (proptest): with every
//! PostgreSQL rule on, no invariant is violated, and runs are
//! reproducible.

mod common;
use common::run;
use proptest::prelude::*;
use walsim_model::Settings;
use walsim_model::settings::SynchronousCommit;

fn configs() -> impl Strategy<Value = Settings> {
    (
        prop_oneof![
            Just(SynchronousCommit::Off),
            Just(SynchronousCommit::Local),
            Just(SynchronousCommit::On)
        ],
        any::<bool>(),
        any::<bool>(),
        2u32..24,
        1u32..48,
        1u8..8,
        prop_oneof![Just(16u32), Just(1000), Just(100_000)],
        0.0f64..0.02,
        0.0f64..0.01,
    )
        .prop_map(|(sc, hints, fpw, bufs, pages, clients, keys, crash, power)| {
            let mut s = Settings {
                synchronous_commit: sc,
                wal_log_hints: hints,
                full_page_writes: fpw,
                shared_buffers: bufs,
                ..Settings::default()
            };
            s.cluster.rel_pages = pages;
            s.workload.clients = clients;
            s.workload.key_space = keys;
            s.faults.process_crash = crash;
            s.faults.power_loss = power;
            s.scheduler.steps = 800;
            s
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn rules_on_no_violation(s in configs(), seed in any::<u64>()) {
        prop_assert!(s.validate().is_ok());
        let r = run(&s, seed);
        prop_assert!(r.violation.is_none(), "seed {}: {}", seed, r.detail);
    }

    #[test]
    fn runs_are_reproducible(s in configs(), seed in any::<u64>()) {
        let a = run(&s, seed);
        let b = run(&s, seed);
        prop_assert_eq!(a.trace_hash, b.trace_hash);
        prop_assert_eq!(a.events, b.events);
        prop_assert_eq!(a.outcome, b.outcome);
    }
}
