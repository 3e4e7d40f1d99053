//! `cargo bench`: the bench harness's quick profile on this machine: every workload on the
//! local disk, the NFS layer alone, a 1-replica and a 3-replica Codetta cluster (started
//! as processes of the `codetta` binary built with this bench), interleaved, then the
//! resync figure. `CODETTA_BENCH_DIR` sets the scratch directory (a journaled disk gives
//! honest figures); `CODETTA_BENCH_PROFILE=full` runs the full profile. Outputs:
//! target/bench.json and target/bench.svg.

use codetta_bench::systems::SystemSpec;
use codetta_bench::workloads::{Kind, Shape};
use codetta_bench::{Options, Profile};
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; nothing else is taken from the command line.
    let profile = std::env::var("CODETTA_BENCH_PROFILE").unwrap_or_else(|_| "quick".into());
    let scratch = std::env::var_os("CODETTA_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("codetta-bench"));
    let opts = Options {
        profile: Profile::by_name(&profile)?,
        systems: vec![
            SystemSpec::LocalDisk,
            SystemSpec::NfsLayer,
            SystemSpec::Codetta { replicas: 1 },
            SystemSpec::Codetta { replicas: 3 },
        ],
        shape: Shape {
            streams: 1,
            queue_depth: 1,
        },
        kinds: Kind::ALL.to_vec(),
        scratch,
        binary: PathBuf::from(env!("CARGO_BIN_EXE_codetta")),
    };
    let target = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target");
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let report = codetta_bench::harness::run(&opts).await?;
            codetta_bench::harness::write_outputs(
                &report,
                &target.join("bench.json"),
                &target.join("bench.svg"),
            )
        })
}
