//! `cargo bench -p codetta-bench`: the quick profile. Sequential write and read of
//! `CODETTA_BENCH_MIB` MiB (default 256) and 2,000 small files, on a 1-replica Codetta
//! cluster, the NFS layer alone and the local disk, in one run. The scratch directory is
//! `CODETTA_BENCH_DIR` (default: the system temp dir; use a journaled disk for real figures).

use codetta_bench::nfs::Nfs;
use codetta_bench::{Report, targets, workloads};

const FILES: u64 = 2_000;

async fn nfs_workloads(
    report: &mut Report,
    system: &str,
    port: u16,
    mib: u64,
) -> anyhow::Result<()> {
    let mut nfs = Nfs::connect(port).await?;
    report.add(
        system,
        "seq write 1 MiB",
        workloads::nfs_seq_write(&mut nfs, "seq", mib).await?,
        "MiB/s",
    );
    report.add(
        system,
        "seq read 1 MiB",
        workloads::nfs_seq_read(&mut nfs, "seq").await?,
        "MiB/s",
    );
    report.add(
        system,
        "create+4KiB+commit",
        workloads::nfs_small_files(&mut nfs, "small", FILES).await?,
        "files/s",
    );
    Ok(())
}

async fn run() -> anyhow::Result<()> {
    let mib: u64 = std::env::var("CODETTA_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let base = std::env::var_os("CODETTA_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let mut report = Report::default();

    let disk = tempfile::tempdir_in(&base)?;
    let (w, r, c) = workloads::local_disk(disk.path(), mib, FILES)?;
    report.add("local disk", "seq write 1 MiB", w, "MiB/s");
    report.add("local disk", "seq read 1 MiB", r, "MiB/s");
    report.add("local disk", "create+4KiB+commit", c, "files/s");
    drop(disk);

    let port = targets::nfs_layer_alone().await?;
    nfs_workloads(&mut report, "NFS layer alone", port, mib).await?;

    for replicas in [1, 3] {
        let dir = tempfile::tempdir_in(&base)?;
        let cluster = targets::codetta(dir.path(), replicas).await?;
        let name = format!(
            "codetta {replicas} replica{}",
            if replicas > 1 { "s" } else { "" }
        );
        nfs_workloads(&mut report, &name, cluster.nfs_port(), mib).await?;
        cluster.shutdown().await;
    }

    println!("{report}");
    Ok(())
}

fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}
