//! The two figures that take a replicated cluster through time: a steady write of several
//! minutes (does throughput hold?), and a resync (a replica misses writes, comes back, and
//! is brought up to date while a client keeps writing).

use crate::data::Pattern;
use crate::files::{Access, nfs_err};
use crate::harness::Options;
use crate::nfs::{Fh, Nfs};
use crate::procstat::{self, Snapshot};
use crate::report::{Record, Report, Spread};
use crate::systems::System;
use crate::workloads::MIB;
use codetta_cluster::Inspector;
use codetta_wire::Fid;
use nfs3_client::nfs3_types::nfs3::stable_how;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

fn nfs_addr(system: &System) -> anyhow::Result<std::net::SocketAddr> {
    match system.access {
        Access::Nfs(addr) => Ok(addr),
        Access::Path(_) => anyhow::bail!("{} is not an NFS endpoint", system.name()),
    }
}

/// Writes `mib` MiB of file `seed` into `file` from `offset_mib` in 1 MiB UNSTABLE writes,
/// then COMMITs; calls `each` with every MiB acknowledged, and stops writing early (still
/// committing) once it answers false.
async fn write_mib(
    nfs: &mut Nfs,
    file: &Fh,
    seed: u64,
    offset_mib: u64,
    mib: u64,
    mut each: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let pattern = Pattern::default();
    let mut buf = vec![0u8; MIB as usize];
    for i in offset_mib..offset_mib + mib {
        pattern.fill(&mut buf, seed, i * MIB);
        patiently!(nfs.write(file, i * MIB, &buf, stable_how::UNSTABLE).await)
            .map_err(nfs_err("WRITE", ""))?;
        if !each() {
            break;
        }
    }
    patiently!(nfs.commit(file).await).map_err(nfs_err("COMMIT", ""))?;
    Ok(())
}

async fn create(nfs: &mut Nfs, name: &str) -> anyhow::Result<Fh> {
    let root = nfs.root.clone();
    patiently!(nfs.create(&root, name).await).map_err(nfs_err("CREATE", name))
}

/// Writes 256 MiB files one after another (each committed; the fourth-last removed) for
/// `steady_secs`, and compares the median MiB/s of the first and the last minute (or
/// fifth, for runs under two minutes).
pub async fn steady(
    system: &mut System,
    opts: &Options,
    report: &mut Report,
) -> anyhow::Result<()> {
    const FILE_MIB: u64 = 256;
    let secs = opts.profile.steady_secs;
    let mut nfs = Nfs::connect_to(nfs_addr(system)?, 0, 0).await?;
    let root = nfs.root.clone();
    let before = Snapshot::take(&system.watched);
    let started = Instant::now();
    let mut per_second: Vec<u64> = Vec::new();
    let mut written = 0u64;
    let mut k = 0u64;
    while started.elapsed().as_secs() < secs {
        let name = format!("steady-{k}");
        let f = create(&mut nfs, &name).await?;
        write_mib(&mut nfs, &f, 1_000 + k, 0, FILE_MIB, || {
            let s = started.elapsed().as_secs() as usize;
            if per_second.len() <= s {
                per_second.resize(s + 1, 0);
            }
            per_second[s] += 1;
            written += 1;
            true
        })
        .await?;
        if k >= 4 {
            let old = format!("steady-{}", k - 4);
            patiently!(nfs.remove(&root, &old).await).map_err(nfs_err("REMOVE", &old))?;
        }
        k += 1;
        eprint!(
            "\r\x1b[2Ksteady write on {}: {:.0} s of {secs}, {written} MiB",
            system.name(),
            started.elapsed().as_secs_f64()
        );
    }
    eprintln!();
    let after = Snapshot::take(&system.watched);
    for i in k.saturating_sub(4)..k {
        let _ = nfs.remove(&root, &format!("steady-{i}")).await;
    }
    // The last second is partial.
    per_second.pop();
    let window = if per_second.len() >= 120 {
        60
    } else {
        (per_second.len() / 5).max(1)
    };
    let rates: Vec<f64> = per_second.iter().map(|m| *m as f64).collect();
    let first = Spread::of(&rates[..window.min(rates.len())]).map_or(0.0, |s| s.median);
    let last = Spread::of(&rates[rates.len().saturating_sub(window)..]).map_or(0.0, |s| s.median);
    let mut r = Record::new(
        &system.name(),
        "steady write, last minute median",
        last,
        "MiB/s",
    );
    r.procs = procstat::delta(&before, &after);
    let gib = written as f64 / 1024.0;
    r.cpu_secs_per_gib = Some(
        r.procs
            .iter()
            .filter(|p| p.name != "bench")
            .map(|p| p.cpu_secs)
            .sum::<f64>()
            / gib.max(1e-9),
    );
    r.extra = vec![
        ("seconds".into(), started.elapsed().as_secs_f64()),
        ("window_seconds".into(), window as f64),
        ("first_window_median_mib_s".into(), first),
        ("last_window_median_mib_s".into(), last),
        ("last_over_first".into(), last / first.max(1e-9)),
    ];
    r.extra.extend(
        rates
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("second_{i}"), *v)),
    );
    eprintln!(
        "steady write on {}: first {window} s median {first:.0} MiB/s, last {window} s median {last:.0} MiB/s ({:.0}%)",
        system.name(),
        100.0 * last / first.max(1e-9)
    );
    report.records.push(r);
    Ok(())
}

fn fid_of(fh: &Fh) -> anyhow::Result<Fid> {
    let bytes = fh.data.as_ref();
    anyhow::ensure!(bytes.len() > 8, "not a Codetta handle");
    Fid::from_bytes(&bytes[8..]).ok_or_else(|| anyhow::anyhow!("not a Codetta handle"))
}

/// Bytes resolution has shipped, summed over the servers that answer.
async fn shipped(inspector: &Inspector, servers: usize) -> u64 {
    let mut total = 0;
    for i in 0..servers {
        if let Ok(s) = inspector.status(i).await {
            total += s.resolution.bytes_shipped;
        }
    }
    total
}

/// Waits until the client daemon's `status.json` (rewritten every second), written after
/// `since`, shows every server of its volume in the AVSG; false if `deadline` came first.
async fn wait_for_full_avsg(
    status: &std::path::Path,
    since: SystemTime,
    deadline: Instant,
) -> bool {
    let full = || -> Option<bool> {
        let written = std::fs::metadata(status).ok()?.modified().ok()?;
        let json: serde_json::Value = serde_json::from_slice(&std::fs::read(status).ok()?).ok()?;
        let servers = json.get("servers")?.as_array()?;
        Some(
            written > since
                && !servers.is_empty()
                && servers
                    .iter()
                    .all(|s| s.get(1).and_then(|up| up.as_bool()) == Some(true)),
        )
    };
    while full() != Some(true) {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

/// The resync figure on a 3-replica cluster: the last server is SIGKILLed; `resync_mib`
/// MiB change (1 MiB overwritten inside a big file, the rest a new file); the server comes
/// back, and the time until every replica holds both files alike is measured, with the
/// bytes resolution shipped, while a client writes 64 MiB files throughout (its throughput
/// is compared with the same writes before the failure).
pub async fn resync(
    system: &mut System,
    opts: &Options,
    report: &mut Report,
) -> anyhow::Result<()> {
    let mib = opts.profile.resync_mib.max(2);
    let addr = nfs_addr(system)?;
    let name = system.name();
    let cluster = system
        .cluster()
        .ok_or_else(|| anyhow::anyhow!("{name}: not a cluster the harness started"))?;
    let servers = cluster.layout.servers.len();
    let last = servers - 1;
    let inspector = Inspector::new(&cluster.layout)?;
    let mut nfs = Nfs::connect_to(addr, 0, 0).await?;

    // Before the failure: the big file, and the writer's throughput with every replica up.
    eprintln!("resync on {name}: writing {mib} MiB with every replica up");
    let big = create(&mut nfs, "resync-big").await?;
    write_mib(&mut nfs, &big, 7, 0, mib, || true).await?;
    let t = Instant::now();
    let alone_file = create(&mut nfs, "resync-alone").await?;
    write_mib(&mut nfs, &alone_file, 8, 0, 64, || true).await?;
    let alone = 64.0 / t.elapsed().as_secs_f64();

    // The failure, and the changes the replica misses.
    cluster.servers.kill(last);
    eprintln!("resync on {name}: s{} killed; changing {mib} MiB", last + 1);
    let t = Instant::now();
    write_mib(&mut nfs, &big, 9, mib / 2, 1, || true).await?;
    let new = create(&mut nfs, "resync-new").await?;
    write_mib(&mut nfs, &new, 10, 0, mib - 1, || true).await?;
    let write_secs = t.elapsed().as_secs_f64();
    let fids = [fid_of(&big)?, fid_of(&new)?];

    let shipped_before = shipped(&inspector, servers).await;
    let status = cluster.layout.dir.join("client").join("status.json");
    cluster.servers.start(last).await?;
    let restarted = Instant::now();
    let restarted_at = SystemTime::now();
    system.rewatch();
    // The writer below starts once the client has the server back in its AVSG: what it
    // writes then reaches every replica, so resolution ships only what the server missed
    // (writes made while it was still out would be missed too, and counted as shipped
    // without being counted as changed).
    if !wait_for_full_avsg(&status, restarted_at, restarted + Duration::from_secs(60)).await {
        eprintln!(
            "resync on {name}: {} shows no full AVSG after 60 s; the writer starts anyway",
            status.display()
        );
    }
    let before = Snapshot::take(&system.watched);

    // A client keeps writing while the replica is brought up to date.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut nfs = Nfs::connect_to(addr, 0, 0).await?;
            let mut bytes = 0u64;
            let t = Instant::now();
            let mut k = 0;
            // The same writes as the figure before the failure: 64 MiB files, one COMMIT
            // each (the last one cut short when the replica has caught up).
            while !stop.load(Ordering::Relaxed) {
                let f = create(&mut nfs, &format!("resync-during-{k}")).await?;
                write_mib(&mut nfs, &f, 100 + k, 0, 64, || {
                    bytes += MIB;
                    !stop.load(Ordering::Relaxed)
                })
                .await?;
                k += 1;
            }
            anyhow::Ok((bytes, t.elapsed().as_secs_f64(), k))
        })
    };
    let deadline = restarted + Duration::from_secs(1800);
    loop {
        let mut agreed = true;
        for fid in fids {
            agreed &= inspector.agree(fid).await;
        }
        if agreed {
            break;
        }
        if Instant::now() > deadline {
            stop.store(true, Ordering::Relaxed);
            anyhow::bail!("the replica did not catch up in 30 min");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let resync_secs = restarted.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let (during_bytes, during_secs, files) = writer.await??;
    let after = Snapshot::take(&system.watched);
    let shipped = shipped(&inspector, servers)
        .await
        .saturating_sub(shipped_before);
    let during = during_bytes as f64 / MIB as f64 / during_secs.max(1e-9);

    // Clean up.
    let root = nfs.root.clone();
    for n in ["resync-big", "resync-alone", "resync-new"] {
        let _ = nfs.remove(&root, n).await;
    }
    for k in 0..files {
        let _ = nfs.remove(&root, &format!("resync-during-{k}")).await;
    }
    inspector.close().await;

    let changed = (mib * MIB) as f64;
    let mut r = Record::new(
        &name,
        &format!("resync after {mib} MiB missed"),
        resync_secs,
        "s",
    );
    r.procs = procstat::delta(&before, &after);
    r.extra = vec![
        ("write_seconds".into(), write_secs),
        (
            "resync_over_write_time".into(),
            resync_secs / write_secs.max(1e-9),
        ),
        ("shipped_mib".into(), shipped as f64 / MIB as f64),
        ("shipped_per_changed_byte".into(), shipped as f64 / changed),
        ("client_mib_s_during".into(), during),
        ("client_mib_s_alone".into(), alone),
        ("client_during_over_alone".into(), during / alone.max(1e-9)),
    ];
    eprintln!(
        "resync on {name}: {resync_secs:.1} s ({:.2}x the {write_secs:.1} s the writes took); shipped {:.0} MiB for {mib} MiB changed ({:.2}x); a client wrote {during:.0} MiB/s during it, {alone:.0} MiB/s before ({:.0}%)",
        resync_secs / write_secs.max(1e-9),
        shipped as f64 / MIB as f64,
        shipped as f64 / changed,
        100.0 * during / alone.max(1e-9)
    );
    report.records.push(r);
    Ok(())
}
