//! A whole bench run: systems started once, then for every repeat every system runs every
//! phase in turn (so a noisy moment of the machine touches all systems alike), then the
//! long steady write and the resync figure on the replicated cluster.

use crate::files::Access;
use crate::procstat::{self, Snapshot};
use crate::report::{Record, Report};
use crate::systems::{System, SystemSpec};
use crate::workloads::{self, Kind, MIB, Progress, Shape, Sizes};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Sizes and extras of a run.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: &'static str,
    pub sizes: Sizes,
    pub repeats: usize,
    /// Stream counts the small-file phases run with.
    pub small_streams: Vec<usize>,
    /// Length of the steady write on the replicated cluster (0: none).
    pub steady_secs: u64,
    /// MiB a replica misses before the resync figure (0: none).
    pub resync_mib: u64,
}

impl Profile {
    /// For `cargo bench`: a few minutes.
    pub fn quick() -> Profile {
        Profile {
            name: "quick",
            sizes: Sizes {
                seq_mib: 256,
                rand_ops: 2_000,
                small_files: 500,
                tree_dirs: 20,
                tree_files_per_dir: 50,
            },
            repeats: 1,
            small_streams: vec![1, 4],
            steady_secs: 0,
            resync_mib: 64,
        }
    }

    /// `--profile full`: three repeats, a steady write over two minutes, a 512 MiB resync.
    pub fn full() -> Profile {
        Profile {
            name: "full",
            sizes: Sizes {
                seq_mib: 1024,
                rand_ops: 10_000,
                small_files: 1_200,
                tree_dirs: 40,
                tree_files_per_dir: 100,
            },
            repeats: 3,
            small_streams: vec![1, 4],
            steady_secs: 130,
            resync_mib: 512,
        }
    }

    pub fn by_name(name: &str) -> anyhow::Result<Profile> {
        match name {
            "quick" => Ok(Profile::quick()),
            "full" => Ok(Profile::full()),
            other => anyhow::bail!("unknown profile {other:?} (quick or full)"),
        }
    }
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct Options {
    pub profile: Profile,
    pub systems: Vec<SystemSpec>,
    pub shape: Shape,
    /// Phases to run (all by default).
    pub kinds: Vec<Kind>,
    /// Where the local disk's files and the clusters' data live.
    pub scratch: PathBuf,
    /// The `codetta` executable the clusters and the NFS layer run as.
    pub binary: PathBuf,
}

/// Prints a progress line (on stderr, rewritten in place) while `work` runs.
async fn with_progress<T>(
    label: &str,
    progress: &Arc<Progress>,
    work: impl std::future::Future<Output = T>,
) -> T {
    let started = Instant::now();
    let mut work = std::pin::pin!(work);
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            out = &mut work => {
                eprint!("\r\x1b[2K");
                return out;
            }
            _ = tick.tick() => {
                let secs = started.elapsed().as_secs_f64().max(1e-3);
                let ops = progress.ops.load(Ordering::Relaxed);
                let mib = progress.bytes.load(Ordering::Relaxed) as f64 / MIB as f64;
                eprint!(
                    "\r\x1b[2K{label}: {secs:.0} s, {ops} ops, {mib:.0} MiB ({:.0} MiB/s, {:.0} ops/s)",
                    mib / secs,
                    ops as f64 / secs
                );
                let _ = std::io::stderr().flush();
            }
        }
    }
}

/// The processes of a system other than the bench.
fn system_procs(procs: &[procstat::ProcDelta]) -> impl Iterator<Item = &procstat::ProcDelta> {
    procs.iter().filter(|p| p.name != "bench")
}

/// Builds the record of one phase from its result and the counters around it.
fn phase_record(
    system: &System,
    kind: Kind,
    workload: String,
    repeat: usize,
    shape: Shape,
    phase: workloads::PhaseResult,
    (before, after): (&Snapshot, &Snapshot),
) -> Record {
    let procs = procstat::delta(before, after);
    let bytes = phase.bytes as f64;
    let local = matches!(system.access, Access::Path(_));
    // Endpoints the harness did not start have no processes here to count.
    let counted = local || procs.iter().any(|p| p.name != "bench");
    let writes = kind.writes() && bytes > 0.0 && counted;
    let net = (writes && !local).then(|| {
        let lo = after.loopback_tx.saturating_sub(before.loopback_tx);
        lo.saturating_sub(phase.nfs_traffic) as f64 / bytes
    });
    // The local disk's writer is the bench itself.
    let disk = writes.then(|| {
        let written: u64 = procs
            .iter()
            .filter(|p| local == (p.name == "bench"))
            .map(|p| p.disk_write_bytes)
            .sum();
        written as f64 / bytes
    });
    let cpu = (kind.measures_bytes() && !local && counted).then(|| {
        let secs: f64 = system_procs(&procs).map(|p| p.cpu_secs).sum();
        secs / (bytes / (1u64 << 30) as f64)
    });
    Record {
        system: system.name(),
        workload,
        repeat,
        streams: shape.streams,
        queue_depth: shape.queue_depth,
        value: phase.rate(kind),
        unit: if kind.measures_bytes() {
            "MiB/s"
        } else {
            "ops/s"
        },
        phase: Some(phase),
        procs,
        net_bytes_per_byte: net,
        disk_bytes_per_byte: disk,
        cpu_secs_per_gib: cpu,
        extra: vec![],
    }
}

/// The name a phase's figure goes under.
fn workload_name(kind: Kind, shape: Shape) -> String {
    let mut name = kind.name().to_string();
    if shape.streams > 1 {
        name += &format!(" ×{} streams", shape.streams);
    }
    if shape.queue_depth > 1 {
        name += &format!(" qd{}", shape.queue_depth);
    }
    name
}

/// The phases of one repeat on one system, in order: the sequential and random phases,
/// the small-file phases once per stream count, the tree.
fn plan(opts: &Options) -> Vec<(Kind, Shape)> {
    let wanted = |k: &Kind| opts.kinds.contains(k);
    let mut plan: Vec<(Kind, Shape)> = Vec::new();
    let data = [
        Kind::SeqWrite,
        Kind::SeqRead,
        Kind::SeqReread,
        Kind::RandWrite,
        Kind::RandRead,
    ];
    plan.extend(data.into_iter().filter(wanted).map(|k| (k, opts.shape)));
    let mut counts: Vec<usize> = opts
        .profile
        .small_streams
        .iter()
        .map(|&n| if n == 1 { opts.shape.streams } else { n })
        .collect();
    counts.dedup();
    for streams in counts {
        let shape = Shape {
            streams,
            ..opts.shape
        };
        let small = [
            Kind::Create,
            Kind::Stat,
            Kind::StatAgain,
            Kind::Readdir,
            Kind::Unlink,
        ];
        plan.extend(small.into_iter().filter(wanted).map(|k| (k, shape)));
    }
    let tree = [Kind::TreeCopy, Kind::TreeList, Kind::TreeDelete];
    plan.extend(tree.into_iter().filter(wanted).map(|k| (k, opts.shape)));
    plan
}

/// The most streams any phase of the plan uses.
fn most_streams(opts: &Options) -> usize {
    plan(opts).iter().map(|(_, s)| s.streams).max().unwrap_or(1)
}

/// Runs every phase of one repeat on one system.
async fn run_system(
    system: &System,
    opts: &Options,
    repeat: usize,
    step: &mut usize,
    steps: usize,
    report: &mut Report,
) -> anyhow::Result<()> {
    let base = format!("bench-{repeat}");
    for (kind, shape) in plan(opts) {
        *step += 1;
        let workload = workload_name(kind, shape);
        let label = format!(
            "[{step}/{steps}] {} · {workload} · repeat {}",
            system.name(),
            repeat + 1
        );
        let progress = Arc::new(Progress::default());
        let before = Snapshot::take(&system.watched);
        let phase = with_progress(
            &label,
            &progress,
            workloads::run_phase(
                &system.access,
                kind,
                &base,
                &opts.profile.sizes,
                shape,
                progress.clone(),
            ),
        )
        .await
        .map_err(|e| e.context(format!("{} on {}", workload, system.name())))?;
        let after = Snapshot::take(&system.watched);
        let record = phase_record(
            system,
            kind,
            workload,
            repeat,
            shape,
            phase,
            (&before, &after),
        );
        eprintln!(
            "{label}: {} {}",
            crate::report::fmt_num(record.value),
            record.unit
        );
        report.records.push(record);
    }
    let shape = Shape {
        streams: most_streams(opts),
        ..opts.shape
    };
    workloads::clean_up(&system.access, &base, shape).await?;
    Ok(())
}

/// Runs the whole bench and returns its report.
pub async fn run(opts: &Options) -> anyhow::Result<Report> {
    std::fs::create_dir_all(&opts.scratch)?;
    let mut systems = Vec::new();
    for spec in &opts.systems {
        eprintln!("starting {}", spec.name());
        systems.push(System::start(spec, &opts.binary, &opts.scratch).await?);
    }
    let mut report = Report {
        profile: opts.profile.name.to_string(),
        records: Vec::new(),
    };
    let steps = plan(opts).len() * systems.len() * opts.profile.repeats;
    let mut step = 0;
    // No phase but the long ones (`--workloads resync`): nothing to repeat.
    let repeats = if steps == 0 { 0 } else { opts.profile.repeats };
    for repeat in 0..repeats {
        for system in &systems {
            run_system(system, opts, repeat, &mut step, steps, &mut report).await?;
        }
    }
    for system in &mut systems {
        if matches!(system.spec, SystemSpec::Codetta { replicas } if replicas >= 3) {
            if opts.profile.steady_secs > 0 {
                crate::long::steady(system, opts, &mut report).await?;
            }
            if opts.profile.resync_mib > 0 {
                crate::long::resync(system, opts, &mut report).await?;
            }
        }
    }
    for mut s in systems {
        s.stop();
    }
    Ok(report)
}

/// Prints the tables and writes the raw figures (JSON), the headline table (Markdown,
/// beside the JSON) and the chart (SVG).
pub fn write_outputs(
    report: &Report,
    json: &std::path::Path,
    svg: &std::path::Path,
) -> anyhow::Result<()> {
    println!("{}", report.tables());
    for r in report.records.iter().filter(|r| r.phase.is_none()) {
        let extra: Vec<String> = r
            .extra
            .iter()
            .filter(|(k, _)| !k.starts_with("second_"))
            .map(|(k, v)| format!("{k} {}", crate::report::fmt_num(*v)))
            .collect();
        println!(
            "{} · {}: {} {}; {}",
            r.system,
            r.workload,
            crate::report::fmt_num(r.value),
            r.unit,
            extra.join(", ")
        );
    }
    std::fs::write(json, serde_json::to_vec_pretty(report)?)?;
    let markdown = json.with_extension("md");
    std::fs::write(&markdown, report.markdown())?;
    std::fs::write(svg, report.svg())?;
    println!(
        "\nraw figures: {}; table: {}; chart: {}",
        json.display(),
        markdown.display(),
        svg.display()
    );
    Ok(())
}
