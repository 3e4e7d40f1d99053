//! The interleaving simulation over the real client and server code: a few seeds in every
//! test run, each run twice to show it replays exactly; thousands by command:
//!
//! `CODETTA_LIVE_FIRST=1000 CODETTA_LIVE_SEEDS=500 cargo test --release -p codetta-sim --test interleave -- --ignored --nocapture`

use codetta_sim::interleave::{LiveConfig, LiveReport, run};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn one(seed: u64) -> LiveReport {
    // `CODETTA_SIM_LOG=info` (an env filter): the servers' and clients' own logs.
    if let Ok(filter) = std::env::var("CODETTA_SIM_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .try_init();
    }
    let report = run(LiveConfig::from_seed(seed)).unwrap_or_else(|e| panic!("seed {seed}: {e:#}"));
    println!(
        "seed {seed}: {} acked, {} unanswered, {} server crashes, {} power losses ({} \
         with unsynced writes), {} client \
         crashes, {} \
         partitions ({} islands), {} clock steps, replicas {} removed, {} added, {} not confirmed, {} calls, {} names and {} bytes read back, {} own \
         conflict copies, {} shared writes ({} acknowledged, {} conflict copies), {} virtual \
         ms, trace {}",
        report.acked,
        report.unanswered,
        report.server_crashes,
        report.power_losses,
        report.torn_power_losses,
        report.client_crashes,
        report.partitions,
        report.islands,
        report.clock_steps,
        report.replicas_removed,
        report.replicas_added,
        report.group_changes_refused,
        report.delivered,
        report.names,
        report.bytes,
        report.own_conflicts.len(),
        report.shared_writes,
        report.shared_acked,
        report.shared_conflicts,
        report.virtual_ms,
        report.trace
    );
    for why in &report.why_refused {
        println!("  group change not confirmed: {why}");
    }
    assert!(
        report.failures.is_empty(),
        "seed {seed} (replay: CODETTA_LIVE_FIRST={seed} CODETTA_LIVE_SEEDS=1 cargo test \
         -p codetta-sim --test interleave many_seeds -- --ignored --nocapture): {:#?}",
        report.failures
    );
    report
}

#[test]
fn a_seed_replays_exactly() {
    let seed = env("CODETTA_LIVE_FIRST", 1);
    let a = one(seed);
    let b = one(seed);
    assert_eq!(
        a.trace, b.trace,
        "seed {seed} ran differently the second time"
    );
}

#[test]
fn seeds_in_every_run() {
    let first = env("CODETTA_LIVE_FIRST", 100);
    for seed in first..first + env("CODETTA_LIVE_CI_SEEDS", 18) {
        one(seed);
    }
}

#[test]
#[ignore = "long: thousands of seeds by command (see the module's doc)"]
fn many_seeds() {
    let first = env("CODETTA_LIVE_FIRST", 1000);
    let seeds = env("CODETTA_LIVE_SEEDS", 100);
    let mut failed = Vec::new();
    let mut acked = 0;
    for seed in first..first + seeds {
        match std::panic::catch_unwind(|| one(seed)) {
            Ok(report) => acked += report.acked,
            Err(_) => failed.push(seed),
        }
    }
    println!(
        "{seeds} seeds from {first}: {acked} operations acknowledged, failed seeds {failed:?}"
    );
    assert!(failed.is_empty(), "failed seeds: {failed:?}");
}
