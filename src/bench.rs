//! `codetta bench`: the bench harness's command line (workloads, systems, outputs).

use codetta_bench::systems::SystemSpec;
use codetta_bench::workloads::{Kind, Shape};
use codetta_bench::{Options, Profile};
use std::path::PathBuf;

#[derive(clap::Args)]
pub(crate) struct BenchArgs {
    /// `quick` (a few minutes) or `full` (three repeats, a steady write over two
    /// minutes and a 512 MiB resync; within 30 minutes).
    #[arg(long, default_value = "quick")]
    profile: String,
    /// Systems to measure, in this order: local-disk, nfs-layer, codetta-1, codetta-3
    /// (any replica count: codetta-N); also front-alone (Codetta's front end over a file
    /// system in memory).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "local-disk,nfs-layer,codetta-1,codetta-3"
    )]
    systems: Vec<String>,
    /// Another NFSv3 endpoint to measure beside them: NAME=host:port (NFS and MOUNT on
    /// that port). Repeatable.
    #[arg(long)]
    target: Vec<String>,
    /// A directory where an NFS export is mounted, measured with system calls:
    /// NAME=PATH. Repeatable.
    #[arg(long)]
    mount: Vec<String>,
    /// Parallel streams (each its own file or directory).
    #[arg(long, default_value_t = 1)]
    streams: usize,
    /// Requests in flight per stream (each on its own connection).
    #[arg(long, default_value_t = 1)]
    queue_depth: usize,
    /// Repeats (default: the profile's).
    #[arg(long)]
    repeats: Option<usize>,
    /// Phases to run (default all): seq-write, seq-read, seq-reread, random-write,
    /// random-read, create, stat, stat-again, readdir, unlink, tree-copy, tree-list,
    /// tree-delete, and the profile's long ones, steady and resync (run only when listed,
    /// once a list is given). A phase that works on another's files brings it along
    /// (stat runs after create, seq-read after seq-write, tree-list after tree-copy).
    #[arg(long, value_delimiter = ',')]
    workloads: Vec<String>,
    /// MiB each stream writes and reads sequentially (default: the profile's).
    #[arg(long)]
    seq_mib: Option<u64>,
    /// Skip the steady write and the resync figure.
    #[arg(long)]
    no_long: bool,
    /// Scratch directory for the local disk's files and the clusters' data (put it on a
    /// journaled disk for honest figures).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Where to write every run's raw figures.
    #[arg(long, default_value = "bench.json")]
    json: PathBuf,
    /// Where to write the chart.
    #[arg(long, default_value = "bench.svg")]
    svg: PathBuf,
}

fn parse_system(name: &str) -> anyhow::Result<SystemSpec> {
    match name {
        "local-disk" => Ok(SystemSpec::LocalDisk),
        "nfs-layer" => Ok(SystemSpec::NfsLayer),
        "front-alone" => Ok(SystemSpec::FrontAlone),
        other => {
            let replicas = other
                .strip_prefix("codetta-")
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|n| (1..=7).contains(n))
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "unknown system {other:?}: local-disk, nfs-layer, front-alone or codetta-N (N in 1..=7)"
                    )
                })?;
            Ok(SystemSpec::Codetta { replicas })
        }
    }
}

fn parse_kind(name: &str) -> anyhow::Result<Kind> {
    Kind::ALL
        .iter()
        .copied()
        .find(|k| k.arg() == name)
        .ok_or_else(|| anyhow::anyhow!("unknown workload {name:?}"))
}

/// The options `args` describe; `binary` runs the clusters and the NFS layer.
pub(crate) fn options(args: BenchArgs, binary: PathBuf) -> anyhow::Result<Options> {
    let mut profile = Profile::by_name(&args.profile)?;
    if let Some(r) = args.repeats {
        anyhow::ensure!(r >= 1, "--repeats must be at least 1");
        profile.repeats = r;
    }
    if let Some(mib) = args.seq_mib {
        anyhow::ensure!(mib >= 1, "--seq-mib must be at least 1");
        profile.sizes.seq_mib = mib;
    }
    if args.no_long {
        profile.steady_secs = 0;
        profile.resync_mib = 0;
    }
    anyhow::ensure!(
        (1..=64).contains(&args.streams) && (1..=64).contains(&args.queue_depth),
        "--streams and --queue-depth must be within 1..=64"
    );
    let mut systems = args
        .systems
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| parse_system(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for t in &args.target {
        systems.push(SystemSpec::parse_target(t)?);
    }
    for m in &args.mount {
        systems.push(SystemSpec::parse_mount(m)?);
    }
    anyhow::ensure!(!systems.is_empty(), "no system to measure");
    let kinds = if args.workloads.is_empty() {
        Kind::ALL.to_vec()
    } else {
        let listed = |name: &str| args.workloads.iter().any(|w| w == name);
        if !listed("steady") {
            profile.steady_secs = 0;
        }
        if !listed("resync") {
            profile.resync_mib = 0;
        }
        let listed = args
            .workloads
            .iter()
            .filter(|w| !matches!(w.as_str(), "steady" | "resync"))
            .map(|w| parse_kind(w))
            .collect::<anyhow::Result<Vec<_>>>()?;
        // A phase that works on another's files brings that phase along.
        Kind::with_needs(&listed)
    };
    let scratch = args
        .dir
        .unwrap_or_else(|| std::env::temp_dir().join("codetta-bench"));
    Ok(Options {
        profile,
        systems,
        shape: Shape {
            streams: args.streams,
            queue_depth: args.queue_depth,
        },
        kinds,
        scratch,
        binary,
    })
}

/// Runs the bench, prints the tables and writes the JSON and the chart.
pub(crate) async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let (json, svg) = (args.json.clone(), args.svg.clone());
    let binary = std::env::current_exe()?;
    let opts = options(args, binary)?;
    let report = codetta_bench::harness::run(&opts).await?;
    codetta_bench::harness::write_outputs(&report, &json, &svg)?;
    Ok(())
}
