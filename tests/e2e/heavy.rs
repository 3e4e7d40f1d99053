//! Heavy checks, not run by default (`cargo test --release --test e2e -- --ignored
//! --nocapture heavy`): memory stays bounded while a 2 GiB file is written and read (the
//! client's by its data cache plus 128 MiB, a server's by 256 MiB).

use crate::durability::Procs;
use crate::support::stream_round_trip;

/// Peak resident set of a process, from /proc.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "heavy: 2 GiB through the endpoint"]
async fn heavy_2_gib_file_keeps_memory_bounded() {
    let p = Procs::start().await;
    let mut nfs = p.nfs().await;
    let (write_secs, read_secs) = stream_round_trip(&mut nfs, "big", 2048).await;
    let client = peak_rss_kib(p.client_pid());
    let server = peak_rss_kib(p.servers.pid(0).unwrap_or(0));
    println!(
        "2 GiB: write {:.0} MiB/s, read {:.0} MiB/s; peak RSS client {} MiB, server {} MiB",
        2048.0 / write_secs,
        2048.0 / read_secs,
        client / 1024,
        server / 1024
    );
    // The data cache may fill (the read passes 2 GiB through it); beside it the client
    // holds its shipping queue (64 MiB at most), read-ahead and allocator slack. What must
    // not happen is memory growing with the file.
    let cache_kib = codetta_client::config::DEFAULT_CACHE_MIB * 1024;
    assert!(
        client < cache_kib + 128 * 1024,
        "client peak RSS {client} KiB (cache {cache_kib} KiB)"
    );
    assert!(server < 256 * 1024, "server peak RSS {server} KiB");
}

/// CPU seconds (user + system) a process has used, from /proc/PID/stat.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields
        .get(11)
        .zip(fields.get(12))
        .map(|(u, s)| u.parse::<f64>().unwrap_or(0.0) + s.parse::<f64>().unwrap_or(0.0))
        .unwrap_or(0.0);
    // USER_HZ is 100 on Linux.
    ticks / 100.0
}

/// Closing-note figures for replication: 1 GiB written to a 3-replica volume (write and
/// read throughput, CPU seconds per GiB of each process), then a replica that missed
/// 1 GiB of writes is restarted and the time until it agrees is measured (healing without a
/// client), with the bytes resolution shipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "heavy: 1 GiB on 3 replicas, and a 1 GiB resync"]
async fn heavy_three_replicas_cpu_and_a_1_gib_resync() {
    use crate::replication::{fid_of, wait_until_agreed};
    let mut p = Procs::start_replicated(3).await;
    let inspector = codetta_cluster::Inspector::new(&p.layout).expect("inspector");
    let mut nfs = p.nfs().await;
    let pids: Vec<(String, u32)> = (0..3)
        .map(|i| (format!("s{}", i + 1), p.servers.pid(i).unwrap_or(0)))
        .chain(std::iter::once(("client".to_string(), p.client_pid())))
        .collect();
    let before: Vec<f64> = pids.iter().map(|(_, pid)| cpu_secs(*pid)).collect();
    let (write_secs, read_secs) = stream_round_trip(&mut nfs, "big", 1024).await;
    let after: Vec<f64> = pids.iter().map(|(_, pid)| cpu_secs(*pid)).collect();
    println!(
        "3 replicas, 1 GiB: write {:.0} MiB/s, read {:.0} MiB/s",
        1024.0 / write_secs,
        1024.0 / read_secs
    );
    for ((name, _), (b, a)) in pids.iter().zip(before.iter().zip(&after)) {
        println!(
            "  CPU s per GiB written and read back, {name}: {:.2}",
            a - b
        );
    }
    // Resolution while the client wrote (heal racing the client's second phase) is not
    // part of the resync.
    let mut before_resync = 0;
    for i in 0..2 {
        if let Ok(s) = inspector.status(i).await {
            before_resync += s.resolution.bytes_shipped;
        }
    }
    println!(
        "  shipped by resolution while all three were up: {:.0} MiB",
        before_resync as f64 / 1048576.0
    );
    // A replica misses 1 GiB of writes, then comes back.
    let root = nfs.root.clone();
    p.kill_server(2);
    let f = codetta_bench::patiently!(nfs.create(&root, "missed").await).expect("create");
    let mut h = blake3::Hasher::new();
    for i in 0..1024u64 {
        let data = codetta_bench::workloads::payload(10_000 + i, 1 << 20);
        h.update(&data);
        codetta_bench::patiently!(
            nfs.write(
                &f,
                i << 20,
                &data,
                nfs3_client::nfs3_types::nfs3::stable_how::UNSTABLE
            )
            .await
        )
        .expect("write");
    }
    codetta_bench::patiently!(nfs.commit(&f).await).expect("commit");
    drop(nfs);
    let mut while_away = 0;
    for i in 0..2 {
        if let Ok(s) = inspector.status(i).await {
            while_away += s.resolution.bytes_shipped;
        }
    }
    println!(
        "  shipped by resolution between s1 and s2 while s3 was away: {:.0} MiB",
        while_away.saturating_sub(before_resync) as f64 / 1048576.0
    );
    let before_resync = while_away;
    let started = std::time::Instant::now();
    p.start_server(2).await;
    let took = wait_until_agreed(
        &inspector,
        &[fid_of(&f), fid_of(&root)],
        std::time::Duration::from_secs(600),
    )
    .await;
    let restarted = started.elapsed();
    let mut shipped = 0;
    for i in 0..3 {
        if let Ok(s) = inspector.status(i).await {
            shipped += s.resolution.bytes_shipped;
        }
    }
    let shipped = shipped.saturating_sub(before_resync);
    // Nothing here was concurrent: no conflict copy may appear.
    for i in 0..3 {
        let status = inspector.status(i).await.expect("status");
        for v in &status.volumes {
            assert!(v.conflicts.is_empty(), "s{}: {:?}", i + 1, v.conflicts);
        }
    }
    println!(
        "resync of a replica that missed 1 GiB: agreed {:.1} s after restart ({:.1} s from its start), {:.0} MiB shipped by resolution",
        took.as_secs_f64(),
        restarted.as_secs_f64(),
        shipped as f64 / 1048576.0
    );
}
