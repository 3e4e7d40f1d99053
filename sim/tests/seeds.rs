//! The simulation over many seeds: 20 in every test run, more with `CODETTA_SIM_SEEDS`
//! (`cargo test -p codetta-sim --release -- --ignored` runs the long one).

fn run(seeds: std::ops::Range<u64>, ops: usize) {
    let mut failures = Vec::new();
    for seed in seeds {
        match codetta_sim::run_seed(seed, ops) {
            Ok(r) => eprintln!(
                "seed {seed}: {} events, {} acknowledged, {} faults, {} conflicts, {} objects, {} volume comparisons, {} tombstones collected",
                r.events, r.acked, r.faults, r.conflicts, r.objects, r.volume_compares, r.collected
            ),
            Err(e) => failures.push(format!("seed {seed}: {e:#}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn twenty_seeds() {
    run(0..20, 150);
}

#[test]
#[ignore = "long run: CODETTA_SIM_SEEDS seeds (default 500) of 400 operations"]
fn many_seeds() {
    let n = std::env::var("CODETTA_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500);
    let first = std::env::var("CODETTA_SIM_FIRST")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    run(first..first + n, 400);
}
